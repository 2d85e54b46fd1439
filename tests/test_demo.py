"""The README's first command, ``scripts/run_trm_ts.sh demo``, runs offline from start to end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from replay_helpers import REPO_ROOT

pytestmark = pytest.mark.slow

RUN_SCRIPT = REPO_ROOT / "scripts" / "run_trm_ts.sh"
DEMO_TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    userdir = tmp_path_factory.mktemp("demo run") / "user data"
    result = subprocess.run(
        ["bash", str(RUN_SCRIPT), "demo", "--userdir", str(userdir)],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    return {"result": result, "userdir": userdir}


def test_demo_exit_code(demo: dict) -> None:
    result = demo["result"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_demo_writes_synthetic_candles(demo: dict) -> None:
    candles = pd.read_feather(demo["userdir"] / "data" / "demo" / "SOL_USDT-15m.feather")
    assert list(candles.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert len(candles) > 1000


def test_demo_reports_trades(demo: dict) -> None:
    match = re.search(r"backtest TRMTSStrategy: (\d+) trades, profit", demo["result"].stdout)
    assert match is not None, demo["result"].stdout[-4000:]


def test_demo_result_file(demo: dict) -> None:
    match = re.search(r"backtest result: (.+\.zip)", demo["result"].stdout)
    assert match is not None
    assert Path(match.group(1)).is_file()


def test_demo_retrains_weekly(demo: dict) -> None:
    models = demo["userdir"] / "models" / "trm_ts_demo"
    btc_trainings = list(models.glob("sub-train-BTC_*"))
    assert len(btc_trainings) == 2


def test_demo_replay_serves_every_request(demo: dict) -> None:
    assert "unserved: none" in demo["result"].stdout
