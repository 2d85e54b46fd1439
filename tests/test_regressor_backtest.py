"""freqtrade backtesting with TRMTSStrategy and TRMTSRegressor on real 15m candles.

Each run is a real ``freqtrade backtesting`` process with ``configs/config_trm_ts_ci.json``,
pointed at the replay exchange on 127.0.0.1 (freqtrade loads Binance's market list even to
backtest) and at ``--datadir ../shared/data/binance``, which freqtrade resolves against the
working directory, the repository root. FreqAI writes the predictions it merges into the
strategy dataframe to ``backtesting_predictions``; the tests read them there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import BINANCE_DATA
from regressor_support import CI_CONFIG, REPO_ROOT

from trm_ts import columns
from trm_ts.replay import ReplayExchange

pytestmark = pytest.mark.slow

FREQTRADE = REPO_ROOT / ".venv" / "bin" / "freqtrade"
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
ONE_WEEK = "20260101-20260108"
TWO_WEEKS = "20260101-20260115"
# Generous for two shared CPU cores: one run trains three small models for two epochs.
RUN_TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """The replay exchange serving the real candles, and its freqtrade config overlay."""
    overlay = tmp_path_factory.mktemp("replay") / "replay.json"
    with ReplayExchange(BINANCE_DATA, pairs=PAIRS, timeframes=["15m"]) as exchange:
        exchange.write_config_overlay(overlay, pairs=PAIRS)
        yield overlay


def run_backtest(user_dir: Path, configs: list[Path], timerange: str) -> str:
    """Run freqtrade backtesting from the repository root; return its console output."""
    command = [str(FREQTRADE), "backtesting"]
    for config in configs:
        command += ["-c", str(config)]
    command += [
        "--userdir",
        str(user_dir),
        "--datadir",
        "../shared/data/binance",
        "--timerange",
        timerange,
        # The default cache reuses an identical earlier result without running FreqAI.
        "--cache",
        "none",
    ]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        # freqtrade's console log wraps long lines at the terminal width read from COLUMNS.
        env={**os.environ, "COLUMNS": "1000"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def predictions(user_dir: Path, identifier: str) -> dict[str, pd.DataFrame]:
    folder = user_dir / "models" / identifier / "backtesting_predictions"
    return {path.name: pd.read_feather(path) for path in sorted(folder.glob("*.feather"))}


@pytest.fixture(scope="module")
def first_run(replay, tmp_path_factory):
    """One backtest week on three pairs: trains and saves one model per pair."""
    user_dir = tmp_path_factory.mktemp("user_data")
    log = run_backtest(user_dir, [CI_CONFIG, replay], ONE_WEEK)
    return user_dir, log, predictions(user_dir, "trm_ts_ci")


def test_backtest_trains_each_pair(first_run):
    _, log, _ = first_run
    assert log.count("TRM-TS training end") == len(PAIRS)


def test_backtest_prediction_files(first_run):
    _, _, preds = first_run
    assert len(preds) == len(PAIRS)


def test_backtest_mean_sigma_finite(first_run):
    _, _, preds = first_run
    for name, frame in preds.items():
        valid = frame[frame["do_predict"] == 1]
        assert np.isfinite(valid[columns.TARGET]).all(), name
        assert np.isfinite(valid[columns.SIGMA]).all(), name
        assert (valid[columns.SIGMA] > 0).all(), name


def test_backtest_predicts_most_candles(first_run):
    # The chunk's first candles take their history from the training tail.
    _, _, preds = first_run
    for name, frame in preds.items():
        assert (frame["do_predict"] == 1).mean() > 0.95, name


def test_backtest_sigma_in_return_units(first_run):
    # 1h (4-candle) log returns of BTC, ETH and SOL move by well under 10 % per sigma.
    _, _, preds = first_run
    for name, frame in preds.items():
        sigma = frame.loc[frame["do_predict"] == 1, columns.SIGMA]
        assert 1e-4 < sigma.median() < 0.1, name


@pytest.fixture(scope="module")
def second_run(first_run, replay):
    """The same backtest again after deleting backtesting_predictions."""
    user_dir, _, first = first_run
    shutil.rmtree(user_dir / "models" / "trm_ts_ci" / "backtesting_predictions")
    log = run_backtest(user_dir, [CI_CONFIG, replay], ONE_WEEK)
    return log, first, predictions(user_dir, "trm_ts_ci")


def test_rerun_loads_saved_models(second_run):
    log, _, _ = second_run
    assert log.count("Found model at") == len(PAIRS)
    assert "TRM-TS training start" not in log


def test_rerun_reproduces_predictions(second_run):
    _, first, second = second_run
    assert sorted(second) == sorted(first)
    for name in first:
        pd.testing.assert_frame_equal(second[name], first[name])


@pytest.fixture(scope="module")
def continual_run(replay, tmp_path_factory):
    """Two weekly trainings of BTC/USDT with continual learning and TensorBoard on."""
    user_dir = tmp_path_factory.mktemp("user_data")
    overlay = user_dir / "continual.json"
    overlay.write_text(
        json.dumps(
            {
                "exchange": {"pair_whitelist": ["BTC/USDT"]},
                "freqai": {
                    "identifier": "trm_ts_ci_continual",
                    "continual_learning": True,
                    "activate_tensorboard": True,
                },
            }
        )
    )
    log = run_backtest(user_dir, [CI_CONFIG, replay, overlay], TWO_WEEKS)
    return user_dir, overlay, log


def test_continual_second_training_warm(continual_run):
    _, _, log = continual_run
    ends = [line for line in log.splitlines() if "warm_start=" in line]
    assert [line.split("warm_start=")[1].split()[0] for line in ends] == ["False", "True"]


def test_continual_tensorboard_written(continual_run):
    user_dir, _, _ = continual_run
    events = list((user_dir / "models" / "trm_ts_ci_continual").glob("sub-train-*/tensorboard/*"))
    assert len(events) == 2


def test_continual_models_reload(continual_run, replay):
    user_dir, overlay, _ = continual_run
    shutil.rmtree(user_dir / "models" / "trm_ts_ci_continual" / "backtesting_predictions")
    log = run_backtest(user_dir, [CI_CONFIG, replay, overlay], TWO_WEEKS)
    assert log.count("Found model at") == 2
    assert "TRM-TS training start" not in log
