"""Dry-run end to end: the bot trades against the replay exchange and restarts from its model.

The bot runs on synthetic 1m candles so that a new candle, and with it FreqAI's first
prediction after training, arrives within a minute. It goes through the run script
(``scripts/run_trm_ts.sh dry-run --replay``) and is observed through freqtrade's REST API on
127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from replay_helpers import REPO_ROOT
from trm_ts.data import synthetic_candles
from trm_ts.replay.candles import write_candles

pytestmark = pytest.mark.slow

RUN_SCRIPT = REPO_ROOT / "scripts" / "run_trm_ts.sh"
CI_CONFIG = REPO_ROOT / "configs" / "config_trm_ts_ci.json"
PAIR = "BTC/USDT"
CONTEXT_PAIRS = ["BTC/USDT", "ETH/USDT"]
# Enough 1m history for the week-aligned replay clock (up to 7 days before the replay start),
# one training day and the strategy's startup candles, plus the default two days of headroom.
CANDLE_DAYS = 12
# freqtrade's main() returns 130 after a KeyboardInterrupt, once it has cleaned up (2026.9).
EXIT_AFTER_SIGINT = 130
API_USER = "trm"
API_PASSWORD = "dry-run-test"

PROBE_STRATEGY = '''\
from TRMTSStrategy import TRMTSStrategy


class TRMTSDryRunProbe(TRMTSStrategy):
    """TRMTSStrategy staking the proposed amount, so a forced entry does not depend on the
    sign of a freshly trained model's forecast (the Kelly sizing skips a non-positive edge)."""

    def custom_stake_amount(self, pair, current_time, current_rate, proposed_stake, min_stake,
                            max_stake, leverage, entry_tag, side, **kwargs):
        return proposed_stake
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FreqtradeAPI:
    """Minimal client of freqtrade's REST API with HTTP basic authentication."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        token = base64.b64encode(f"{API_USER}:{API_PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, path: str, body: dict | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=self.headers)
        with self.opener.open(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_until_up(self, process: subprocess.Popen, log: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the bot exited with {process.returncode}:\n{tail(log)}")
            try:
                self.call("/ping")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        pytest.fail(f"freqtrade's API did not come up within {timeout} s:\n{tail(log)}")

    def force_entry(self) -> str:
        """Force a long entry on PAIR; return "forced", or "open" if the strategy entered first."""
        try:
            self.call("/forceenter", {"pair": PAIR, "side": "long"})
        except urllib.error.HTTPError as err:
            if "already open" not in err.read().decode(errors="replace"):
                raise
            return "open"
        return "forced"

    def newest_forecast(self) -> dict | None:
        """Return the newest analyzed candle of PAIR if it has a mean and a positive sigma."""
        reply = self.call(f"/pair_candles?pair={PAIR}&timeframe=1m&limit=3")
        if not reply.get("data"):
            return None
        row = dict(zip(reply["columns"], reply["data"][-1], strict=True))
        mean, sigma = row.get("trm_mean"), row.get("trm_sigma")
        if mean is None or sigma is None or not sigma > 0:
            return None
        return row

    def wait_for_forecast(self, process: subprocess.Popen, log: Path, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the bot exited with {process.returncode}:\n{tail(log)}")
            row = self.newest_forecast()
            if row is not None:
                return row
            time.sleep(3)
        pytest.fail(f"no forecast for the newest {PAIR} candle within {timeout} s:\n{tail(log)}")


def to_utc(value: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dry run")
    candles = root / "replayed candles"
    for seed, pair in enumerate(CONTEXT_PAIRS):
        # NOTE: the price path comes from the 15m generator and is relabelled to 1m dates,
        # because synthetic_candles(timeframe="1m") diverges: its intraday volatility factor
        # feeds the GARCH recursion for 120 consecutive peak-hour candles.
        frame = synthetic_candles(n_rows=CANDLE_DAYS * 1440, seed=seed, timeframe="15m")
        frame["date"] = pd.date_range("2025-03-01", periods=len(frame), freq="1min", tz="UTC")
        write_candles(frame, candles, pair, "1m")
    probe_dir = root / "probe strategy"
    probe_dir.mkdir()
    (probe_dir / "TRMTSDryRunProbe.py").write_text(PROBE_STRATEGY)
    port = free_port()
    overlay = {
        "timeframe": "1m",
        "initial_state": "running",
        "stake_amount": 100,
        "force_entry_enable": True,
        "exchange": {"pair_whitelist": [PAIR]},
        "api_server": {
            "enabled": True,
            "listen_ip_address": "127.0.0.1",
            "listen_port": port,
            "username": API_USER,
            "password": API_PASSWORD,
            "jwt_secret_key": "dry-run-test-secret-0123456789abcdef",
            "ws_token": "dry-run-test-token",
            "CORS_origins": [],
            "verbosity": "error",
        },
        "freqai": {
            "identifier": "trm_ts_dry_run_test",
            "train_period_days": 1,
            "live_retrain_hours": 24,
            "expiration_hours": 48,
            "feature_parameters": {
                "include_timeframes": ["1m"],
                "include_corr_pairlist": CONTEXT_PAIRS,
            },
            "model_training_parameters": {"epochs": 1},
        },
        "internals": {"process_throttle_secs": 2, "heartbeat_interval": 60},
    }
    config = root / "dry run test.json"
    config.write_text(json.dumps(overlay, indent=2))
    return {
        "root": root,
        "candles": candles,
        "probe_dir": probe_dir,
        "config": config,
        "port": port,
        "userdir": root / "user data",
    }


def start_bot(setup: dict, log: Path) -> subprocess.Popen:
    command = [
        "bash",
        str(RUN_SCRIPT),
        "dry-run",
        "--replay",
        "--replay-datadir",
        str(setup["candles"]),
        "--userdir",
        str(setup["userdir"]),
        "--config",
        str(CI_CONFIG),
        "--config",
        str(setup["config"]),
        "--",
        "--strategy",
        "TRMTSDryRunProbe",
        "--strategy-path",
        str(setup["probe_dir"]),
    ]
    env = dict(os.environ)
    # The probe strategy imports TRMTSStrategy from the repository's strategies folder.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "strategies"), env.get("PYTHONPATH")])
    )
    with log.open("w") as handle:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            # Its own process group, so SIGINT reaches the runner and freqtrade as from a
            # terminal, and with SIGINT's default action even if the test runner ignores it.
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def interrupt(process: subprocess.Popen, timeout: float = 90) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"the bot did not stop within {timeout} s of SIGINT")


def model_folders(setup: dict) -> set[str]:
    models = setup["userdir"] / "models" / "trm_ts_dry_run_test"
    return {path.name for path in models.glob("sub-train-*")}


@pytest.fixture(scope="module")
def first_run(setup: dict) -> dict:
    log = setup["root"] / "first run.log"
    process = start_bot(setup, log)
    api = FreqtradeAPI(setup["port"])
    try:
        api.wait_until_up(process, log, timeout=180)
        forecast = api.wait_for_forecast(process, log, timeout=300)
        entry = api.force_entry()
        open_trades = api.call("/status")
    finally:
        returncode = interrupt(process)
    return {
        "forecast": forecast,
        "entry": entry,
        "open_trades": open_trades,
        "returncode": returncode,
        "log": log.read_text(errors="replace"),
        "models": model_folders(setup),
    }


@pytest.fixture(scope="module")
def second_run(setup: dict, first_run: dict) -> dict:
    log = setup["root"] / "second run.log"
    process = start_bot(setup, log)
    api = FreqtradeAPI(setup["port"])
    try:
        api.wait_until_up(process, log, timeout=180)
        forecast = api.wait_for_forecast(process, log, timeout=120)
    finally:
        returncode = interrupt(process)
    return {
        "forecast": forecast,
        "returncode": returncode,
        "log": log.read_text(errors="replace"),
        "models": model_folders(setup),
    }


def test_first_run_forecasts_newest_candle(first_run: dict) -> None:
    newest = to_utc(first_run["forecast"]["date"])
    now = pd.Timestamp.now(tz="UTC")
    # The newest closed 1m candle opened one to two minutes ago (plus polling delay).
    assert now - pd.Timedelta(minutes=3) <= newest <= now


def test_first_run_sigma_positive(first_run: dict) -> None:
    assert first_run["forecast"]["trm_sigma"] > 0


def test_first_run_opens_trade(first_run: dict) -> None:
    assert first_run["entry"] in ("forced", "open")
    assert [trade["pair"] for trade in first_run["open_trades"]] == [PAIR]


def test_first_run_saves_model(first_run: dict) -> None:
    assert len(first_run["models"]) == 1


def test_first_run_stops_on_sigint(first_run: dict) -> None:
    assert first_run["returncode"] == EXIT_AFTER_SIGINT
    assert "Cleaning up modules" in first_run["log"]
    assert "replay exchange stopped" in first_run["log"]


def test_first_run_no_traceback(first_run: dict) -> None:
    assert "Traceback" not in first_run["log"]


def test_first_run_replay_serves_all(first_run: dict) -> None:
    assert "unserved: none" in first_run["log"]


def test_restart_reuses_saved_model(first_run: dict, second_run: dict) -> None:
    assert second_run["models"] == first_run["models"]


def test_restart_forecasts_newest_candle(second_run: dict) -> None:
    newest = to_utc(second_run["forecast"]["date"])
    assert newest >= pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=3)


def test_restart_stops_on_sigint(second_run: dict) -> None:
    assert second_run["returncode"] == EXIT_AFTER_SIGINT
    assert "Traceback" not in second_run["log"]
