"""Wall time of a full FreqAI backtest with TRMTSRegressor and with PyTorchTransformerRegressor.

Both runs use the same strategy (``TRMTSStrategy``), base config, pairs, timerange and
retrain cadence, with the exchange pointed at the replay exchange on 127.0.0.1 (started
here, fed by the same candle files). Only the FreqAI model and its training parameters
differ. Each ``freqtrade backtesting`` runs as a child process. Its wall time covers
startup, feature engineering, every retraining and the predictions. Its peak memory is the
child's VmHWM, polled every 0.2 s.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from trm_ts.bench.speed import peak_rss_mb

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[4]
STRATEGY = "TRMTSStrategy"
TRM_REGRESSOR = "TRMTSRegressor"
TRANSFORMER_REGRESSOR = "PyTorchTransformerRegressor"
# Base configs, first found wins: the shipped config, then the small CI config.
BASE_CONFIGS = ("configs/config_trm_ts.json", "configs/config_trm_ts_ci.json")
# One backtest may not run longer than this; a hung run would otherwise stall the benchmark.
RUN_TIMEOUT_S = 1200


@dataclass(frozen=True)
class BacktestSettings:
    """Pairs, timerange and retrain cadence shared by both backtests."""

    pairs: tuple[str, ...]
    timerange: str
    train_period_days: int
    backtest_period_days: int
    epochs: int


def missing_parts() -> list[str]:
    """Return the files or modules the backtest needs and cannot find."""
    missing = []
    for path in ("strategies/TRMTSStrategy.py", "freqaimodels/TRMTSRegressor.py"):
        if not (REPO_ROOT / path).is_file():
            missing.append(path)
    if not any((REPO_ROOT / path).is_file() for path in BASE_CONFIGS):
        missing.append(" or ".join(BASE_CONFIGS))
    try:
        import trm_ts.replay_exchange  # noqa: F401
    except ImportError as err:
        missing.append(f"trm_ts.replay_exchange ({err})")
    return missing


def base_config() -> Path:
    """Return the FreqAI config the benchmark takes TRM-TS parameters and features from."""
    for name in BASE_CONFIGS:
        if (REPO_ROOT / name).is_file():
            return REPO_ROOT / name
    raise FileNotFoundError(f"none of {list(BASE_CONFIGS)} exists under {REPO_ROOT}")


def write_config(work: Path, settings: BacktestSettings, model: str, window: int) -> Path:
    """Write the complete config of one backtest and return its path.

    It is the base config with pairs, cadence and the model's training parameters replaced.
    The file is complete rather than a layer on top of the base config because freqtrade
    merges config files key by key, which would leave TRM-TS keys in the transformer's
    ``model_training_parameters``.
    """
    from trm_ts.bench.contenders import TransformerSettings

    config = json.loads(base_config().read_text())
    config["exchange"]["pair_whitelist"] = list(settings.pairs)
    freqai = config["freqai"]
    freqai["identifier"] = f"bench_{model}"
    freqai["train_period_days"] = settings.train_period_days
    freqai["backtest_period_days"] = settings.backtest_period_days
    if model == TRM_REGRESSOR:
        freqai["model_training_parameters"]["epochs"] = settings.epochs
    else:
        tf = TransformerSettings(window=window, epochs=settings.epochs)
        freqai["conv_width"] = window
        freqai["model_training_parameters"] = {
            "learning_rate": tf.learning_rate,
            "trainer_kwargs": {"n_epochs": tf.epochs, "batch_size": tf.batch_size},
            "model_kwargs": {
                "hidden_dim": tf.hidden_dim,
                "n_layer": tf.n_layer,
                "dropout_percent": tf.dropout,
            },
        }
    path = work / f"config_{model}.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _run(command: list[str], log_path: Path, threads: int) -> tuple[int, float, float]:
    """Run ``command``; return exit code, wall seconds and the child's peak RSS in MB.

    The peak is the child's VmHWM, polled while it runs (see ``speed.peak_rss_mb``).
    """
    # torch and LightGBM size their thread pools from OMP_NUM_THREADS when they load.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        deadline = started + RUN_TIMEOUT_S
        peak = 0.0
        while True:
            peak = max(peak, peak_rss_mb(proc.pid) or 0.0)
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                logger.error("backtest timed out after %d s; killing it", RUN_TIMEOUT_S)
                proc.kill()
                pid, status = os.waitpid(proc.pid, 0)
                break
            time.sleep(0.2)
    seconds = time.perf_counter() - started
    return os.waitstatus_to_exitcode(status), seconds, peak


# FreqAI's message when a training raises: it logs it, skips the pair and carries on.
SKIPPED_TRAINING = "raised exception"


def _skipped_trainings(log_path: Path) -> str:
    """Return the first skipped-training message in a freqtrade log, or an empty string."""
    for line in log_path.read_text(errors="replace").splitlines():
        if SKIPPED_TRAINING in line:
            return line.split(" - ")[-1].strip()
    return ""


def _shown(path: Path) -> str:
    """Return ``path`` relative to the repository root when it lies inside it."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " / ".join(line.strip() for line in text[-lines:])


def measure(
    settings: BacktestSettings, data_dir: Path, log_dir: Path, threads: int
) -> tuple[dict | None, str]:
    """Run both backtests; return (measurements, note) or (None, why nothing was measured)."""
    missing = missing_parts()
    if missing:
        note = "Not measured: this checkout lacks " + ", ".join(missing) + "."
        logger.warning(note)
        return None, note

    from trm_ts.freqai.params import TRMTSParams
    from trm_ts.replay_exchange import ReplayExchange

    config = json.loads(base_config().read_text())
    window = TRMTSParams.from_config(config["freqai"]["model_training_parameters"]).window
    results = {}
    with tempfile.TemporaryDirectory(prefix="trm_bench_bt_") as tmp:
        work = Path(tmp)
        with ReplayExchange(data_dir, list(settings.pairs)) as exchange:
            overlay = exchange.write_config_overlay(work / "replay.json", list(settings.pairs))
            for model in (TRM_REGRESSOR, TRANSFORMER_REGRESSOR):
                userdir = work / f"user_data_{model}"
                userdir.mkdir()
                command = [
                    sys.executable, "-m", "freqtrade", "backtesting",
                    "-c", str(write_config(work, settings, model, window)),
                    "-c", str(overlay),
                    "--userdir", str(userdir),
                    "--datadir", str(data_dir),
                    "--strategy", STRATEGY,
                    "--strategy-path", str(REPO_ROOT / "strategies"),
                    "--freqaimodel", model,
                    "--freqaimodel-path", str(REPO_ROOT / "freqaimodels"),
                    "--timerange", settings.timerange,
                    "--cache", "none",
                ]
                log_path = log_dir / f"backtest_{model}.log"
                log_dir.mkdir(parents=True, exist_ok=True)
                logger.info("backtest %s: %s", model, " ".join(command))
                code, seconds, peak_mb = _run(command, log_path, threads)
                logger.info("backtest %s: exit %d after %.0f s", model, code, seconds)
                results[model] = {"exit": code, "seconds": seconds, "peak_rss_mb": peak_mb}
                if code != 0:
                    timed_out = seconds >= RUN_TIMEOUT_S
                    results[model]["error"] = (
                        f"timed out after {RUN_TIMEOUT_S} s" if timed_out else _tail(log_path)
                    )
                skipped = _skipped_trainings(log_path)
                if skipped:
                    # FreqAI logs a failed training and goes on, so the exit code stays 0.
                    results[model]["exit"] = code or -1
                    results[model]["error"] = skipped

    failed = {m: r for m, r in results.items() if r["exit"] != 0}
    if failed:
        reasons = "; ".join(f"{m}: {r['error']}" for m, r in failed.items())
        note = f"Not measured: a backtest failed. {reasons}"
        logger.warning(note)
        return None, note

    trm, tf = results[TRM_REGRESSOR], results[TRANSFORMER_REGRESSOR]
    rows = [
        ("Pairs", ", ".join(settings.pairs)),
        ("Timerange", settings.timerange),
        (
            "Retrain cadence",
            f"train on {settings.train_period_days} days, retrain every "
            f"{settings.backtest_period_days} days",
        ),
        ("Epochs per training", f"{settings.epochs} for both models"),
        (
            "Model settings",
            "TRM-TS as in the config; the transformer as in the walk-forward part above",
        ),
        ("Window", f"{window} candles for both models (`conv_width` for the transformer)"),
        ("Threads", f"OMP_NUM_THREADS={threads} for both runs"),
        ("TRMTSRegressor wall time", f"{trm['seconds']:.0f} s"),
        ("PyTorchTransformerRegressor wall time", f"{tf['seconds']:.0f} s"),
        ("Wall-time ratio TRM-TS / transformer", f"{trm['seconds'] / tf['seconds']:.2f}"),
        ("TRMTSRegressor peak memory", f"{trm['peak_rss_mb']:,.0f} MB"),
        ("PyTorchTransformerRegressor peak memory", f"{tf['peak_rss_mb']:,.0f} MB"),
    ]
    note = (
        f"`freqtrade backtesting` with `{STRATEGY}` and a copy of "
        f"`{base_config().relative_to(REPO_ROOT)}` whose pairs, cadence and epochs are "
        "replaced by those below, through the "
        f"replay exchange on 127.0.0.1. freqtrade's output is kept in `{_shown(log_dir)}`."
    )
    return {"rows": rows, "runs": results}, note
