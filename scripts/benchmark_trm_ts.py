"""Regenerate docs/benchmarks.md and its plots: forecast quality, speed and size of TRM-TS.

Usage (from the repository root):

    .venv/bin/python scripts/benchmark_trm_ts.py            # full run, under an hour on 2 cores
    .venv/bin/python scripts/benchmark_trm_ts.py --quick    # a few minutes, same page layout

The page, the PNG plots and a JSON file of the raw numbers go to ``--out-dir`` (default
``docs``): ``benchmarks.md``, ``img/*.png`` and ``benchmarks.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from trm_ts.bench import backtest as bt
from trm_ts.bench import contenders as c
from trm_ts.bench import report, speed
from trm_ts.bench.folds import Fold
from trm_ts.bench.pairs import load_pair
from trm_ts.bench.walkforward import WalkForwardSettings, run_walk_forward
from trm_ts.freqai.params import TRMTSParams

logger = logging.getLogger("benchmark_trm_ts")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "binance"
ALL_PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT")
# The speed part uses one pair's candles; its rows are identical for both models.
SPEED_PAIR = "BTC/USDT"


@dataclass(frozen=True)
class Mode:
    """Budget of one run mode."""

    name: str
    walk_forward: WalkForwardSettings
    speed: speed.SpeedSettings
    backtest: bt.BacktestSettings


def full_mode(trm: TRMTSParams, train_days: float) -> Mode:
    """Return the full run: every pair, three folds, the config's training period and epochs."""
    return Mode(
        name="full",
        walk_forward=WalkForwardSettings(
            pairs=ALL_PAIRS,
            n_folds=3,
            train_days=train_days,
            test_days=14,
            trm=c.TRMSettings(
                params=trm,
                epochs=trm.epochs,
                patience=trm.patience,
                deep_supervision=trm.deep_supervision,
            ),
            # The default n_epochs of freqtrade's PyTorchModelTrainer.
            transformer_epochs=10,
            ablation_folds=1,
        ),
        speed=speed.SpeedSettings(
            train_windows=1024,
            valid_windows=256,
            epochs=3,
            inference_windows=4096,
            loop_windows=128,
            batch_size=trm.batch_size,
        ),
        backtest=bt.BacktestSettings(
            pairs=("BTC/USDT", "ETH/USDT"),
            timerange="20260101-20260115",
            train_period_days=round(train_days),
            backtest_period_days=7,
            epochs=2,
        ),
    )


def quick_mode(trm: TRMTSParams) -> Mode:
    """Return the quick run: two pairs, two short folds, a couple of epochs everywhere."""
    return Mode(
        name="quick",
        walk_forward=WalkForwardSettings(
            pairs=("BTC/USDT", "ETH/USDT"),
            n_folds=2,
            train_days=6,
            test_days=2,
            trm=c.TRMSettings(
                params=trm, epochs=2, patience=2, deep_supervision=trm.deep_supervision
            ),
            transformer_epochs=1,
            ablation_folds=1,
        ),
        speed=speed.SpeedSettings(
            train_windows=256,
            valid_windows=64,
            epochs=1,
            inference_windows=512,
            loop_windows=32,
            batch_size=trm.batch_size,
        ),
        backtest=bt.BacktestSettings(
            pairs=("BTC/USDT",),
            timerange="20260108-20260110",
            # FreqAI holds out 15% of the training days; the transformer needs more rows
            # there than one window (64), so 5 days is the minimum.
            train_period_days=6,
            backtest_period_days=1,
            epochs=1,
        ),
    )


# --- Run description ----------------------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform string elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Return the checked-out commit, marked when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (with uncommitted changes)" if dirty else commit


def run_rows(
    argv: list[str], started: datetime, seconds: float, mode: Mode, loads: list, commit: str
) -> list:
    command = "python scripts/benchmark_trm_ts.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    return [
        ("Command", f"`{command}`"),
        ("Mode", mode.name),
        ("Git commit at the start", commit),
        ("Started (UTC)", started.strftime("%Y-%m-%d %H:%M")),
        ("Wall time", report.fmt_seconds(seconds)),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} logical cores"),
        ("torch", f"{torch.__version__}, threads: {torch.get_num_threads()}"),
        (
            "Other packages",
            f"Python {platform.python_version()}, freqtrade {version('freqtrade')}, "
            f"lightgbm {version('lightgbm')}, arch {version('arch')}, numpy {np.__version__}",
        ),
        (
            "Load average (1 min)",
            ", ".join(f"{value:.1f} {when}" for when, value in loads)
            + f" (on {os.cpu_count()} cores; other jobs on the CPU slow every rate down)",
        ),
    ]


def setup_rows(mode: Mode, trm: TRMTSParams, data_dir: Path, config_name: str) -> list:
    wf = mode.walk_forward
    tf = c.TransformerSettings(window=trm.window, epochs=wf.transformer_epochs)
    return [
        ("Candles", f"{', '.join(wf.pairs)}; {wf.timeframe}; from `{data_dir.name}` data"),
        ("Target", f"forward log return over {wf.horizon} candles"),
        (
            "Walk-forward",
            f"{wf.n_folds} folds; each trains on the {wf.train_days:g} days before its "
            f"{wf.test_days:g}-day test block, the last {wf.valid_fraction:.0%} of them for "
            f"validation; {wf.horizon} candles purged before validation and before test",
        ),
        (
            "TRM-TS",
            f"`model_training_parameters` of `{config_name}`: window {trm.window}, latent "
            f"{trm.latent_dim}, "
            f"{trm.recursive_steps} recursion steps, scales {list(trm.multi_scales)}, dropout "
            f"{trm.dropout}, lr {trm.learning_rate:g}, weight decay {trm.weight_decay:g}, batch "
            f"{trm.batch_size}, deep supervision {trm.deep_supervision}; at most "
            f"{wf.trm.epochs} epochs, early-stopping patience {wf.trm.patience}",
        ),
        (
            "FreqAI transformer",
            f"window {tf.window}, hidden {tf.hidden_dim}, {tf.n_layer} layer, {tf.nhead} heads, "
            f"dropout {tf.dropout}, lr {tf.learning_rate:g}, batch {tf.batch_size}, "
            f"{tf.epochs} epochs",
        ),
        ("LightGBM", ", ".join(f"{k}={v}" for k, v in c.LIGHTGBM_PARAMS.items())),
    ]


def display_path(path: Path) -> str:
    """Return ``path`` relative to the repository root when it lies inside it."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def fold_rows(folds: dict[str, list[Fold]], dates: dict) -> list:
    """Return one row per fold, or per pair and fold when the pairs' candle dates differ."""

    def rows(pair: str) -> list[tuple[str, str, str]]:
        def day(row: int) -> str:
            return dates[pair][row].strftime("%Y-%m-%d %H:%M")

        return [
            (
                str(f.index),
                f"{day(f.train_start)} to {day(f.valid_stop - 1)}",
                f"{day(f.test_start)} to {day(f.test_stop - 1)}",
            )
            for f in folds[pair]
        ]

    per_pair = {pair: rows(pair) for pair in folds}
    first = next(iter(per_pair.values()))
    if all(r == first for r in per_pair.values()):
        return first
    return [(f"{pair} {r[0]}", *r[1:]) for pair, pair_rows in per_pair.items() for r in pair_rows]


CONTENDER_NOTES = [
    "**TRM-TS**: trained per pair and fold with `trm_ts.training.fit`, predicted with "
    "`trm_ts.training.predict`; features from `trm_ts.features` standardized on the training "
    "rows, target standardized on the training rows, early stopping on the validation part.",
    "**Zero mean + EWMA**: RiskMetrics EWMA of one-candle squared returns (lambda 0.94), "
    "times the horizon. Nothing is fitted.",
    "**Zero mean + EWMA x hour-of-day**: the EWMA variance times one factor per UTC hour, "
    "each the mean of target^2 / EWMA variance over that hour's training rows.",
    "**GARCH(1,1)**: zero-mean Gaussian GARCH(1,1) from the `arch` package, fitted on the "
    "training returns; the test rows are filtered with the fixed parameters, and the 4-candle "
    "variance is the sum of the 1..4-step analytic forecasts.",
    "**LightGBM mean + EWMA**: `lightgbm.LGBMRegressor`, the model FreqAI's "
    "`LightGBMRegressor` wraps, on the newest candle's features plus regime, hour and day of "
    "week as numeric columns; the sigma is the zero-mean EWMA sigma.",
    "**PyTorch transformer mean + EWMA**: freqtrade's `PyTorchTransformerModel`, trained with "
    "MSE by freqtrade's `PyTorchTransformerTrainer` as `PyTorchTransformerRegressor` does. Its "
    "input is windows of the same features, min-max scaled to [-1, 1] on the training rows "
    "like FreqAI's default pipeline does (label included). The sigma is the zero-mean EWMA "
    "sigma. Freqtrade sizes the position table by the model width (the feature count rounded "
    "down to a multiple of 8 heads). Where that is shorter than the window, the table is "
    "rebuilt at the window length with freqtrade's own `PositionalEncoding`.",
    "The FreqAI models run outside FreqAI's data kitchen so that all contenders share the same "
    "rows, folds and purge.",
]


# --- Parts ----------------------------------------------------------------------------------


def speed_inputs(data_dir: Path, mode: Mode, trm: TRMTSParams) -> speed.SpeedInputs:
    """Build identical speed inputs from the newest candles of ``SPEED_PAIR``."""
    pair = load_pair(data_dir, SPEED_PAIR, mode.walk_forward.timeframe, mode.walk_forward.horizon)
    s = mode.speed
    n_needed = s.train_windows + s.valid_windows + s.inference_windows + 2 * pair.horizon
    stop = pair.n_rows - pair.horizon
    first = stop - n_needed
    if first - trm.window + 1 < pair.first_finite_row:
        raise ValueError(f"{SPEED_PAIR} has too few candles for the speed settings {s}")
    train_ends = np.arange(first, first + s.train_windows)
    valid_start = train_ends[-1] + 1 + pair.horizon
    valid_ends = np.arange(valid_start, valid_start + s.valid_windows)
    infer_start = valid_ends[-1] + 1 + pair.horizon
    inference_ends = np.arange(infer_start, infer_start + s.inference_windows)

    scaler = c.StandardScaler.fit(pair.features[train_ends])
    features = np.clip(scaler.transform(pair.features), -c.FEATURE_CLIP, c.FEATURE_CLIP)
    target_scaler = c.StandardScaler.fit(pair.target[train_ends, None])
    return speed.SpeedInputs(
        features=np.nan_to_num(features, nan=0.0).astype(np.float32),
        target=np.nan_to_num(target_scaler.transform(pair.target[:, None])).astype(np.float32),
        regime=pair.regime,
        hour=pair.hour,
        day_of_week=pair.day_of_week,
        window=trm.window,
        params=trm,
        train_ends=train_ends,
        valid_ends=valid_ends,
        inference_ends=inference_ends,
    )


def speed_rows(mode: Mode, trm: TRMTSParams, threads: int) -> list:
    s = mode.speed
    return [
        ("Input", f"{SPEED_PAIR} 15m candles, the same standardized feature rows for both"),
        (
            "Window, batch",
            f"{trm.window} candles, {s.batch_size} windows per training batch (the TRM-TS "
            "config's batch size, for both)",
        ),
        (
            "Training",
            f"{s.train_windows} windows, the fastest of {s.epochs} epoch(s); {s.valid_windows} "
            "validation windows evaluated after every epoch (included in the time)",
        ),
        (
            "Inference",
            f"{s.inference_windows} windows in batches of {s.predict_batch_size}; the loop runs "
            f"{s.loop_windows} windows, one forward pass each; best of "
            f"{speed.INFERENCE_REPEATS} repeats",
        ),
        ("Threads", f"torch threads: {threads}; each model runs in its own fresh process"),
        (
            "FLOPs",
            "torch.utils.flop_counter.FlopCounterMode (matmuls and attention, not elementwise "
            "operations) on one window, and on one batch of batched prediction, where TRM-TS "
            "embeds each candle once for all the windows that contain it",
        ),
        (
            "Matmul peak",
            f"best of 10 float32 {speed.MATMUL_SIZE}x{speed.MATMUL_SIZE} torch.mm in this run",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run the few-minute variant")
    parser.add_argument(
        "--out-dir", type=Path, default=REPO_ROOT / "docs",
        help="folder for benchmarks.md, benchmarks.json and img/ (default: docs)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
        help="folder with freqtrade feather candles (default: ../shared/data/binance)",
    )
    parser.add_argument(
        "--config", type=Path, default=None,
        help="FreqAI config whose TRM-TS parameters and train_period_days the benchmark uses "
        "(default: configs/config_trm_ts.json, else configs/config_trm_ts_ci.json)",
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch, LightGBM and OpenMP threads for every model (default 1: on a CPU that "
        "other jobs share, 2-thread OpenMP regions of these small models ran up to 10x slower)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=REPO_ROOT / "build" / "benchmark",
        help="folder for the backtest logs (default: build/benchmark, ignored by git)",
    )
    parser.add_argument(
        "--skip-backtest", action="store_true",
        help="leave out the full FreqAI backtest timing; the page says it was not measured",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.threads < 1:
        parser.error(f"--threads={args.threads} is invalid; it must be >= 1")
    if args.config is None:
        args.config = bt.base_config()
    if not args.config.is_file():
        parser.error(f"--config {args.config} not found; pass a FreqAI config file")
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    # Taken now: the code and config are read now, and others may commit during the run.
    commit = git_commit()
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    config_path = args.config
    config = json.loads(config_path.read_text())
    trm = TRMTSParams.from_config(config["freqai"]["model_training_parameters"])
    train_days = float(config["freqai"]["train_period_days"])
    mode = quick_mode(trm) if args.quick else full_mode(trm, train_days)
    logger.info("benchmark mode %s, %d torch threads, data %s", mode.name, threads, args.data_dir)

    # Speed first: it is the part most sensitive to a busy CPU, and it is short.
    loads = [("at the start", os.getloadavg()[0])]
    peak = speed.matmul_peak_gflops()
    inputs = speed_inputs(args.data_dir, mode, trm)
    speed_results = {
        kind: speed.run_isolated(kind, inputs, mode.speed, threads)
        for kind in (speed.TRM_TS, speed.TRANSFORMER)
    }

    loads.append(("after the speed part", os.getloadavg()[0]))
    quality = run_walk_forward(args.data_dir, mode.walk_forward)
    loads.append(("after the walk-forward part", os.getloadavg()[0]))

    if args.skip_backtest:
        backtest, backtest_note = None, "Not measured: the run was started with --skip-backtest."
    else:
        backtest, backtest_note = bt.measure(mode.backtest, args.data_dir, args.work_dir, threads)

    page_inputs = report.PageInputs(
        run_rows=[],
        setup_rows=setup_rows(mode, trm, args.data_dir, display_path(args.config)),
        fold_rows=fold_rows(quality.folds, quality.dates),
        predictions=quality.predictions,
        fits=quality.fits,
        speed=speed_results,
        matmul_gflops=peak,
        speed_rows=speed_rows(mode, trm, threads),
        backtest=backtest,
        backtest_note=backtest_note,
        notes=CONTENDER_NOTES,
    )
    loads.append(("at the end", os.getloadavg()[0]))
    seconds = time.perf_counter() - started
    page_inputs.run_rows = run_rows(argv, started_at, seconds, mode, loads, commit)
    out_dir = args.out_dir
    targets = report.write_page(page_inputs, out_dir / "benchmarks.md", out_dir / "img")
    raw = {
        "mode": mode.name,
        "speed": speed_results,
        "matmul_gflops": peak,
        "backtest": backtest,
        "targets": [asdict(t) for t in targets],
        "fits": quality.fits.to_dict(orient="records"),
    }
    (out_dir / "benchmarks.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    for t in targets:
        logger.info("target %s: %s (%s)", "met" if t.met else "MISSED", t.name, t.measured)
    logger.info("done in %s", report.fmt_seconds(time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
