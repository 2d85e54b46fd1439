"""Shared paths and fixtures. Real candles live beside the repository in ../shared/data/binance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BINANCE_DATA = REPO_ROOT.parent / "shared" / "data" / "binance"


def real_candles_path(pair: str = "BTC_USDT", timeframe: str = "15m") -> Path:
    """Return the path of a real candle file, failing loudly when the data folder is absent."""
    path = BINANCE_DATA / f"{pair}-{timeframe}.feather"
    if not path.is_file():
        pytest.fail(
            f"real candles not found at {path}; tests expect ../shared/data/binance beside the repo"
        )
    return path


@pytest.fixture(scope="session")
def btc_15m() -> pd.DataFrame:
    """The real BTC/USDT 15m candles, as freqtrade stores them."""
    return pd.read_feather(real_candles_path("BTC_USDT", "15m"))
