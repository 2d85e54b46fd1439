"""Candles, features and targets of one pair, computed once and shared by every contender."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trm_ts import features as feats
from trm_ts.data import forward_log_return, load_candles

logger = logging.getLogger(__name__)


@dataclass
class PairData:
    """Per-candle arrays of one pair; row t is the candle that opens at ``dates[t]``.

    features: (N, F) raw indicator features, NaN during the warmup. regime: (N,) int64, -1
    where undefined. target: (N,) forward log return over ``horizon`` candles, NaN at the end.
    returns: (N,) one-candle log return ending at each candle, NaN at row 0.
    """

    pair: str
    dates: pd.DatetimeIndex
    close: np.ndarray
    returns: np.ndarray
    target: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    regime: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    horizon: int
    # First row whose features and regime are finite.
    first_finite_row: int

    @property
    def n_rows(self) -> int:
        return len(self.close)


def candle_file(data_dir: Path, pair: str, timeframe: str) -> Path:
    """Return the freqtrade feather file of ``pair`` ("BTC/USDT") in ``data_dir``."""
    return data_dir / f"{pair.replace('/', '_')}-{timeframe}.feather"


def load_pair(data_dir: Path, pair: str, timeframe: str, horizon: int) -> PairData:
    """Load one pair's candles and compute features, regime, calendar and target."""
    path = candle_file(data_dir, pair, timeframe)
    if not path.is_file():
        raise FileNotFoundError(
            f"candle file {path} not found; download {pair} {timeframe} candles with "
            "freqtrade download-data or pass --data-dir"
        )
    candles, _ = load_candles(path)
    close = candles["close"].to_numpy(dtype=np.float64)
    indicators = feats.indicator_features(candles)
    regime = feats.regime_index(candles).to_numpy()
    hour, day_of_week = feats.calendar_indices(candles["date"])
    target = forward_log_return(candles["close"], horizon).to_numpy(dtype=np.float64)

    values = indicators.to_numpy(dtype=np.float64)
    finite = np.isfinite(values).all(axis=1) & np.isfinite(regime)
    if not finite.any():
        raise ValueError(f"{path}: no candle has finite features; the file is too short")
    first_finite = int(np.argmax(finite))
    if not finite[first_finite:].all():
        bad = first_finite + int(np.argmin(finite[first_finite:]))
        raise ValueError(
            f"{path}: features turn non-finite at row {bad} ({candles['date'].iloc[bad]}) "
            "after the warmup; the candles contain a gap or a NaN, so clean them first"
        )
    logger.info("%s: %d candles, %d features", pair, len(close), values.shape[1])
    return PairData(
        pair=pair,
        dates=pd.DatetimeIndex(candles["date"]),
        close=close,
        returns=feats.log_returns(close),
        target=target,
        features=values,
        feature_names=list(indicators.columns),
        regime=np.where(np.isfinite(regime), regime, -1).astype(np.int64),
        hour=hour,
        day_of_week=day_of_week,
        horizon=horizon,
        first_finite_row=first_finite,
    )
