"""Helpers for the replay exchange and run-script tests: candle folders, a settable clock, HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from trm_ts.replay.candles import write_candles

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"

RAMP_START = pd.Timestamp("2025-01-06 00:00", tz="UTC")  # a Monday
RAMP_TIMEFRAME_MS = 15 * 60_000


def ramp_candles(n_rows: int, base_price: float) -> pd.DataFrame:
    """Return 15m candles whose open is ``base_price + i`` and close ``base_price + i + 0.5``.

    Known values make the alignment checks exact: row i opens at RAMP_START + i * 15 min.
    """
    steps = np.arange(n_rows, dtype=np.float64)
    return pd.DataFrame(
        {
            "date": pd.date_range(RAMP_START, periods=n_rows, freq="15min"),
            "open": base_price + steps,
            "high": base_price + steps + 1.0,
            "low": base_price + steps - 1.0,
            "close": base_price + steps + 0.5,
            "volume": np.full(n_rows, 10.0),
        }
    )


def write_ramp_datadir(datadir: Path, n_rows: int = 2000) -> dict[str, pd.DataFrame]:
    """Write 15m ramp candles of BTC/USDT and ETH/USDT to ``datadir``; return them by pair."""
    frames = {"BTC/USDT": ramp_candles(n_rows, 1000.0), "ETH/USDT": ramp_candles(n_rows, 100.0)}
    for pair, frame in frames.items():
        write_candles(frame, datadir, pair, "15m")
    return frames


@dataclass
class SettableClock:
    """A wall clock that tests move by hand, in milliseconds since the epoch."""

    now: int

    def __call__(self) -> int:
        return self.now


def http_get(url: str) -> tuple[int, object]:
    """GET ``url`` without any proxy and return the status and the decoded JSON body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
