"""Tables, plots and the Markdown page of the benchmark; numbers come only from measurements."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from trm_ts import metrics  # noqa: E402
from trm_ts.bench import contenders as c  # noqa: E402
from trm_ts.bench.walkforward import NO_DEEP_SUPERVISION, steps_key  # noqa: E402

logger = logging.getLogger(__name__)

MODELS = (c.TRM_TS, c.EWMA, c.EWMA_HOUR, c.GARCH, c.LIGHTGBM, c.TRANSFORMER)
METRIC_LABELS = {
    "nll": "NLL",
    "crps": "CRPS (bp)",
    "mae": "MAE (bp)",
    "rmse": "RMSE (bp)",
    "cov68": "68% cov.",
    "cov95": "95% cov.",
    "dir_acc": "Dir. acc.",
}
# Error metrics are shown in basis points of log return (1 bp = 1e-4).
BASIS_POINT_METRICS = ("crps", "mae", "rmse")
COVERAGE_95_RANGE = (0.93, 0.97)
BATCHED_SPEEDUP_TARGET = 20.0
PIT_BINS = 20


# --- Metrics -------------------------------------------------------------------------------


def score(frame: pd.DataFrame, key: str) -> dict[str, float]:
    """Return ``metrics.summarize`` of prediction ``key`` over the rows of ``frame``."""
    rows = frame[f"sigma:{key}"].notna()
    return metrics.summarize(
        frame.loc[rows, "y"], frame.loc[rows, f"mu:{key}"], frame.loc[rows, f"sigma:{key}"]
    )


def per_pair(frame: pd.DataFrame, keys: Sequence[str], metric: str) -> pd.DataFrame:
    """Return a (pair x key) table of one metric, each pair pooled over its folds."""
    table = {
        key: {pair: score(rows, key)[metric] for pair, rows in frame.groupby("pair", sort=False)}
        for key in keys
    }
    return pd.DataFrame(table)


# --- Markdown helpers ----------------------------------------------------------------------


def fmt_metric(metric: str, value: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if metric in BASIS_POINT_METRICS:
        return f"{value * 1e4:.2f}"
    if metric == "nll":
        return f"{value:.4f}"
    return f"{value:.3f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


# --- Plots ----------------------------------------------------------------------------------


def plot_pit(frame: pd.DataFrame, key: str, label: str, path: Path) -> None:
    """Save the PIT histogram of one model, pooled over pairs and folds."""
    rows = frame[f"sigma:{key}"].notna()
    values = metrics.pit(
        frame.loc[rows, "y"], frame.loc[rows, f"mu:{key}"], frame.loc[rows, f"sigma:{key}"]
    )
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    ax.hist(values, bins=PIT_BINS, range=(0.0, 1.0), density=True, color="tab:blue", alpha=0.8)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT value")
    ax.set_ylabel("density")
    ax.set_title(f"PIT: {label}", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_nll_by_pair(table: pd.DataFrame, path: Path) -> None:
    """Save grouped bars of each model's test NLL minus the best classic baseline's, per pair.

    Below zero, a model beats every classic baseline on that pair.
    """
    best_classic = table[list(c.CLASSIC_MODELS)].min(axis=1)
    delta = table.sub(best_classic, axis=0)
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    width = 0.8 / len(delta.columns)
    x = np.arange(len(delta.index))
    for i, key in enumerate(delta.columns):
        ax.bar(x + i * width, delta[key].to_numpy(), width, label=c.MODEL_LABELS[key])
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x + 0.4 - width / 2, delta.index)
    ax.set_ylabel("test NLL minus best classic NLL")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_nll_vs_steps(
    steps: Sequence[int], nll: Sequence[float], trained: int, best_classic: float, path: Path
) -> None:
    """Save TRM-TS test NLL against recursion steps at inference."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.plot(steps, nll, marker="o", label="TRM-TS")
    ax.axvline(trained, color="gray", linestyle=":", label=f"trained at {trained} steps")
    ax.axhline(best_classic, color="tab:red", linestyle="--", label="best classic baseline")
    ax.set_xlabel("recursion steps at inference")
    ax.set_ylabel("test NLL (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_speed(speed: dict[str, dict], path: Path) -> None:
    """Save throughput bars of both models on a log scale."""
    labels = ["training\nsamples/s", "batched inference\ncandles/s", "loop inference\ncandles/s"]
    fields = ("train_samples_per_s", "inference_candles_per_s", "loop_candles_per_s")
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    x = np.arange(len(fields))
    models = ((c.TRM_TS, "TRM-TS"), (c.TRANSFORMER, "FreqAI transformer"))
    for i, (kind, name) in enumerate(models):
        ax.bar(x + i * 0.38, [speed[kind][f] for f in fields], 0.38, label=name)
    ax.set_xticks(x + 0.19, labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("per second (log scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- Page -----------------------------------------------------------------------------------


@dataclass
class Target:
    """One target the page reports against, with the measured value and the verdict."""

    name: str
    measured: str
    met: bool | None  # None: not measured


@dataclass
class PageInputs:
    """Everything the page shows; each number was measured in the run that writes the page."""

    run_rows: list[tuple[str, str]]
    setup_rows: list[tuple[str, str]]
    fold_rows: list[tuple[str, ...]]
    predictions: pd.DataFrame
    fits: pd.DataFrame
    speed: dict[str, dict] | None
    matmul_gflops: float | None
    speed_rows: list[tuple[str, str]]
    backtest: dict | None
    backtest_note: str
    notes: list[str] = field(default_factory=list)


def classic_best(frame: pd.DataFrame) -> tuple[str, float]:
    """Return the classic baseline with the lowest pooled NLL over ``frame`` and that NLL."""
    scores = {key: score(frame, key)["nll"] for key in c.CLASSIC_MODELS}
    best = min(scores, key=scores.get)
    return best, scores[best]


def evaluate_targets(inputs: PageInputs) -> list[Target]:
    """Check every benchmark target against the measured numbers."""
    frame = inputs.predictions
    targets = []

    nll = per_pair(frame, (c.TRM_TS, *c.CLASSIC_MODELS), "nll")
    losing = []
    for pair, row in nll.iterrows():
        best = row[list(c.CLASSIC_MODELS)].min()
        if not row[c.TRM_TS] < best:
            losing.append(f"{pair} {row[c.TRM_TS]:.4f} vs {best:.4f}")
    targets.append(
        Target(
            "TRM-TS test NLL below the best classic baseline on every pair",
            "below on all pairs" if not losing else "not below on " + "; ".join(losing),
            not losing,
        )
    )

    cov95 = score(frame, c.TRM_TS)["cov95"]
    by_pair = per_pair(frame, [c.TRM_TS], "cov95")[c.TRM_TS]
    low, high = COVERAGE_95_RANGE
    targets.append(
        Target(
            f"TRM-TS 95% interval coverage between {low} and {high}",
            f"{cov95:.3f} pooled; per pair "
            + ", ".join(f"{pair} {value:.3f}" for pair, value in by_pair.items()),
            low <= cov95 <= high,
        )
    )

    mae_model = score(frame, c.TRM_TS)["mae"]
    mae_zero = float(np.mean(np.abs(frame["y"])))
    targets.append(
        Target(
            "TRM-TS MAE no worse than the zero forecast",
            f"{mae_model * 1e4:.3f} bp vs {mae_zero * 1e4:.3f} bp",
            mae_model <= mae_zero,
        )
    )

    if inputs.speed is not None:
        trm, tf = inputs.speed[c.TRM_TS], inputs.speed[c.TRANSFORMER]
        ratio = trm["train_samples_per_s"] / tf["train_samples_per_s"]
        targets.append(
            Target(
                "TRM-TS training throughput at least that of the FreqAI transformer",
                f"{fmt_rate(trm['train_samples_per_s'])} vs {fmt_rate(tf['train_samples_per_s'])}"
                f" samples/s (ratio {ratio:.2f})",
                ratio >= 1.0,
            )
        )
        speedup = trm["inference_candles_per_s"] / trm["loop_candles_per_s"]
        targets.append(
            Target(
                f"TRM-TS batched prediction at least {BATCHED_SPEEDUP_TARGET:.0f} times faster "
                "than a loop over windows",
                f"{speedup:.1f} times ({fmt_rate(trm['inference_candles_per_s'])} vs "
                f"{fmt_rate(trm['loop_candles_per_s'])} candles/s)",
                speedup >= BATCHED_SPEEDUP_TARGET,
            )
        )
    else:
        for name in ("training throughput", "batched prediction speedup"):
            targets.append(Target(f"TRM-TS {name}", "not measured in this run", None))
    return targets


def _quality_section(inputs: PageInputs, img: Path, img_rel: str) -> list[str]:
    frame = inputs.predictions
    out = ["## Forecast quality", ""]
    out.append(
        "Target: the forward log return over 4 candles. Every metric is computed on the test "
        "rows of all folds, in raw log-return units; CRPS, MAE and RMSE are in basis points "
        "(1 bp = 0.0001). NLL is the Gaussian negative log-likelihood including its constant; "
        "lower is better for NLL, CRPS, MAE and RMSE. Directional accuracy is not defined for "
        "zero-mean forecasts (n/a)."
    )
    out.append("")

    out += ["### All pairs, pooled", ""]
    rows = []
    for key in MODELS:
        scores = score(frame, key)
        cells = [
            "n/a" if (m == "dir_acc" and key in c.ZERO_MEAN_MODELS) else fmt_metric(m, scores[m])
            for m in METRIC_LABELS
        ]
        rows.append([c.MODEL_LABELS[key], *cells])
    out += [md_table(["Model", *METRIC_LABELS.values()], rows), ""]

    per_pair_tables = (
        ("nll", "Test NLL per pair"),
        ("cov95", "95% coverage per pair"),
        ("mae", "MAE per pair (bp)"),
    )
    header = ["Pair", *(c.MODEL_LABELS[k] for k in MODELS)]
    for metric, title in per_pair_tables:
        table = per_pair(frame, MODELS, metric)
        body = [
            [pair, *(fmt_metric(metric, table.loc[pair, k]) for k in MODELS)]
            for pair in table.index
        ]
        out += [f"### {title}", "", md_table(header, body), ""]
        if metric == "nll":
            plot_nll_by_pair(table, img / "nll_by_pair.png")
            out.append(
                "The plot shows each model's test NLL minus that of the best classic baseline "
                "(EWMA, EWMA x hour-of-day, GARCH) on the same pair; below zero is better than "
                "all three."
            )
            out += ["", f"![Test NLL per pair against the best classic baseline]"
                    f"({img_rel}/nll_by_pair.png)", ""]

    out += ["### NLL per fold, mean over pairs", ""]
    fold_rows = []
    for fold, rows_f in frame.groupby("fold"):
        fold_rows.append(
            [str(fold), *(fmt_metric("nll", score(rows_f, k)["nll"]) for k in MODELS)]
        )
    out += [md_table(["Fold", *(c.MODEL_LABELS[k] for k in MODELS)], fold_rows), ""]

    out += ["### PIT histograms", ""]
    out.append(
        "The probability integral transform of each test target under the predicted Gaussian, "
        "pooled over pairs and folds. A calibrated forecast gives a flat histogram; a hump in "
        "the middle means intervals that are too wide, a U shape intervals that are too narrow."
    )
    out.append("")
    for key in MODELS:
        name = f"pit_{key}.png"
        plot_pit(frame, key, c.MODEL_LABELS[key], img / name)
        out.append(f"![PIT histogram of {c.MODEL_LABELS[key]}]({img_rel}/{name})")
    out.append("")
    return out


def _recursion_section(inputs: PageInputs, img: Path, img_rel: str) -> list[str]:
    frame = inputs.predictions
    steps = sorted(
        int(col.split("@")[1]) for col in frame.columns if col.startswith("mu:trm_ts@")
    )
    trained = int(inputs.fits.attrs.get("trained_steps", 4))
    _, best_nll = classic_best(frame)
    out = ["## TRM-TS recursion steps and deep supervision", ""]
    out.append(
        f"The same trained models (trained at {trained} recursion steps) predict the test rows "
        f"with 1 to {max(steps)} steps at inference. Pooled over all pairs and folds."
    )
    out.append("")
    rows, nll = [], []
    for s in steps:
        scores = score(frame, steps_key(s))
        nll.append(scores["nll"])
        rows.append(
            [str(s) + (" (trained)" if s == trained else "")]
            + [fmt_metric(m, scores[m]) for m in ("nll", "crps", "mae", "cov68", "cov95")]
        )
    out += [md_table(["Steps", "NLL", "CRPS (bp)", "MAE (bp)", "68% cov.", "95% cov."], rows), ""]
    plot_nll_vs_steps(steps, nll, trained, best_nll, img / "nll_vs_steps.png")
    out += [f"![TRM-TS test NLL against recursion steps]({img_rel}/nll_vs_steps.png)", ""]

    ablation = frame[frame[f"sigma:{NO_DEEP_SUPERVISION}"].notna()]
    out += ["### With and without deep supervision", ""]
    if ablation.empty:
        out += ["Not run in this mode.", ""]
        return out
    folds = ", ".join(str(int(f)) for f in sorted(ablation["fold"].unique()))
    out.append(
        "Two TRM-TS models per pair, identical except for deep supervision (loss on the head "
        f"after every recursion step, or on the last step only), on fold {folds} of every "
        f"pair: {len(ablation)} test rows."
    )
    out.append("")
    rows = []
    main_flag = bool(inputs.fits.attrs.get("deep_supervision", True))
    labels = {True: "with deep supervision", False: "without deep supervision"}
    for key, label in ((c.TRM_TS, labels[main_flag]), (NO_DEEP_SUPERVISION, labels[not main_flag])):
        scores = score(ablation, key)
        rows.append([label] + [fmt_metric(m, scores[m]) for m in METRIC_LABELS])
    out += [md_table(["TRM-TS", *METRIC_LABELS.values()], rows), ""]
    return out


def _fit_time_section(inputs: PageInputs) -> list[str]:
    fits = inputs.fits
    out = ["### Fit time per fold", ""]
    out.append(
        "Wall seconds to fit one pair's fold (mean over pairs and folds), and epochs run. "
        "Other jobs on the CPU lengthen these times (see the load average under Run)."
    )
    out.append("")
    rows = []
    for model, group in fits.groupby("model", sort=False):
        label = c.MODEL_LABELS.get(model, "TRM-TS, deep supervision flipped")
        if model == "classic":
            label = "EWMA, EWMA x hour and GARCH together"
        epochs = f"{group['epochs'].mean():.1f}" if group["epochs"].gt(0).any() else "-"
        rows.append([label, fmt_seconds(group["seconds"].mean()), epochs, str(len(group))])
    out += [md_table(["Model", "Mean fit time", "Mean epochs", "Fits"], rows), ""]
    return out


def _speed_section(inputs: PageInputs, img: Path, img_rel: str) -> list[str]:
    out = ["## Speed and size on CPU", ""]
    if inputs.speed is None:
        return out + ["Not measured in this run.", ""]
    trm, tf = inputs.speed[c.TRM_TS], inputs.speed[c.TRANSFORMER]
    out += [md_table(["Setting", "Value"], inputs.speed_rows), ""]

    peak = inputs.matmul_gflops

    def achieved(result: dict) -> float:
        return result["batched_flops_per_sample"] * result["inference_candles_per_s"] / 1e9

    rows = [
        ("Parameters", lambda r: f"{r['parameters']:,}", trm["parameters"] / tf["parameters"]),
        (
            "Training samples/s",
            lambda r: fmt_rate(r["train_samples_per_s"]),
            trm["train_samples_per_s"] / tf["train_samples_per_s"],
        ),
        (
            "Batched inference, candles/s",
            lambda r: fmt_rate(r["inference_candles_per_s"]),
            trm["inference_candles_per_s"] / tf["inference_candles_per_s"],
        ),
        (
            "Loop over windows, candles/s",
            lambda r: fmt_rate(r["loop_candles_per_s"]),
            trm["loop_candles_per_s"] / tf["loop_candles_per_s"],
        ),
        (
            "Batched / loop speedup",
            lambda r: f"{r['inference_candles_per_s'] / r['loop_candles_per_s']:.1f}x",
            None,
        ),
        (
            "Forward MFLOPs per window, one window alone",
            lambda r: f"{r['forward_flops_per_sample'] / 1e6:.2f}",
            trm["forward_flops_per_sample"] / tf["forward_flops_per_sample"],
        ),
        (
            "Forward MFLOPs per window in batched prediction",
            lambda r: f"{r['batched_flops_per_sample'] / 1e6:.2f}",
            trm["batched_flops_per_sample"] / tf["batched_flops_per_sample"],
        ),
        (
            "Training MFLOPs per window, one window alone (forward + backward)",
            lambda r: f"{r['train_flops_per_sample'] / 1e6:.2f}",
            trm["train_flops_per_sample"] / tf["train_flops_per_sample"],
        ),
        (
            "Batched inference GFLOP/s achieved",
            lambda r: f"{achieved(r):.2f}",
            achieved(trm) / achieved(tf),
        ),
        (
            f"Share of the measured matmul peak ({peak:.1f} GFLOP/s)",
            lambda r: f"{100 * achieved(r) / peak:.1f}%",
            None,
        ),
        (
            "Peak resident memory (MB)",
            lambda r: f"{r['peak_rss_mb']:,.0f}",
            trm["peak_rss_mb"] / tf["peak_rss_mb"],
        ),
        (
            "Peak memory above the process after setup (MB)",
            lambda r: f"{r['peak_rss_mb'] - r['base_rss_mb']:,.0f}",
            None,
        ),
    ]
    body = [
        [name, value(trm), value(tf), "-" if ratio is None else f"{ratio:.2f}"]
        for name, value, ratio in rows
    ]
    out += [md_table(["Measure", "TRM-TS", "FreqAI transformer", "TRM-TS / transformer"], body)]
    out.append("")
    plot_speed(inputs.speed, img / "speed.png")
    out += [f"![Throughput of both models]({img_rel}/speed.png)", ""]
    return out


def _backtest_section(inputs: PageInputs) -> list[str]:
    out = ["## Full FreqAI backtest wall time", ""]
    if inputs.backtest is None:
        return out + [inputs.backtest_note, ""]
    out += [inputs.backtest_note, ""]
    rows = [[k, v] for k, v in inputs.backtest["rows"]]
    out += [md_table(["Measure", "Value"], rows), ""]
    return out


def write_page(inputs: PageInputs, page: Path, img: Path) -> list[Target]:
    """Write the Markdown page and its PNG plots; return the evaluated targets."""
    img.mkdir(parents=True, exist_ok=True)
    page.parent.mkdir(parents=True, exist_ok=True)
    img_rel = Path(img).resolve().relative_to(Path(page).parent.resolve()).as_posix()

    targets = evaluate_targets(inputs)
    out = ["# TRM-TS benchmarks", ""]
    out.append(
        "Forecast quality on real Binance 15m candles (walk-forward), speed and size on CPU, "
        "against classic volatility baselines and FreqAI's own models. Every number on this "
        "page was measured by the run described below; rerun the command to regenerate it."
    )
    out += ["", "## Run", "", md_table(["Item", "Value"], inputs.run_rows), ""]
    out += ["## Targets", ""]
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    out.append(md_table(
        ["Target", "Measured", "Result"], [[t.name, t.measured, verdict[t.met]] for t in targets]
    ))
    out += ["", "## Setup", "", md_table(["Item", "Value"], inputs.setup_rows), ""]
    out += ["### Folds", ""]
    out += [md_table(["Fold", "Train (incl. validation)", "Test"], inputs.fold_rows), ""]
    out += ["### Contenders", ""]
    out += [f"- {line}" for line in inputs.notes]
    out.append("")
    out += _quality_section(inputs, img, img_rel)
    out += _recursion_section(inputs, img, img_rel)
    out += _fit_time_section(inputs)
    out += _speed_section(inputs, img, img_rel)
    out += _backtest_section(inputs)
    page.write_text("\n".join(out).rstrip() + "\n")
    logger.info("wrote %s and plots in %s", page, img)
    return targets
