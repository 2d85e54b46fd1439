"""From candles to scaled, chronologically split window sets.

The pipeline: candles -> per-candle features, regime, calendar and target (``build_frame``)
-> window ends split in time with a purge gap (``chronological_split``) -> scalers fitted on
the training rows only and WindowSets per split (``make_splits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trm_ts.data import FEATURE_CLIP, StandardScaler, WindowSet, forward_log_return
from trm_ts.features import INDICATOR_COLUMNS, calendar_indices, indicator_features, regime_index

# Minimum windows per split for a meaningful fit and evaluation.
MIN_SPLIT_WINDOWS = 32


class NotEnoughDataError(ValueError):
    """Too few candles for the window, horizon and splits; the message gives the counts."""


@dataclass
class CandleFrame:
    """Per-candle model inputs before scaling: N rows, F features, H horizons."""

    features: np.ndarray  # (N, F) float64
    feature_names: list[str]
    target: np.ndarray  # (N, H) float64, NaN where the future is unknown
    horizons: tuple[int, ...]
    regime: np.ndarray  # (N,) int64; 0 where the regime is still warming up
    hour: np.ndarray | None  # (N,) int64
    day_of_week: np.ndarray | None  # (N,) int64
    row_ok: np.ndarray  # (N,) bool: every feature and the regime are finite
    dates: np.ndarray | None
    close: np.ndarray  # (N,) float64

    def __len__(self) -> int:
        return len(self.features)

    def window_ends(self, window: int, need_target: bool = True) -> np.ndarray:
        """Return the rows whose whole window is finite (and whose target is, if asked)."""
        bad = np.concatenate([[0], np.cumsum(~self.row_ok)])  # bad[i] = bad rows before i
        ends = np.arange(window - 1, len(self))
        ok = bad[ends + 1] - bad[ends + 1 - window] == 0
        if need_target:
            ok &= np.isfinite(self.target[ends]).all(axis=1)
        return ends[ok]


def build_frame(candles: pd.DataFrame, horizons: tuple[int, ...] = (1,)) -> CandleFrame:
    """Compute features, regime, calendar and forward log-return targets for every candle."""
    features = indicator_features(candles)
    regime = regime_index(candles)
    target = np.stack(
        [forward_log_return(candles["close"], h).to_numpy() for h in horizons], axis=1
    )
    values = features.to_numpy(np.float64)
    regime_values = regime.to_numpy(np.float64)
    row_ok = np.isfinite(values).all(axis=1) & np.isfinite(regime_values)
    hour = day_of_week = dates = None
    if "date" in candles.columns:
        hour, day_of_week = calendar_indices(candles["date"])
        dates = candles["date"].to_numpy()
    return CandleFrame(
        features=values,
        feature_names=list(INDICATOR_COLUMNS),
        target=target,
        horizons=tuple(horizons),
        regime=np.nan_to_num(regime_values, nan=0.0).astype(np.int64),
        hour=hour,
        day_of_week=day_of_week,
        row_ok=row_ok,
        dates=dates,
        close=candles["close"].to_numpy(np.float64),
    )


def chronological_split(
    ends: np.ndarray, valid_frac: float, test_frac: float, purge: int, source: str = "data"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split window ends into train, validation and test blocks, oldest first.

    ``purge`` windows are dropped before each boundary, so no training target (which looks
    ``purge`` candles ahead) overlaps the candles of the next block.
    """
    for name, frac in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0.0 < frac < 0.5:
            raise ValueError(f"{name}={frac!r} is invalid; it must lie in (0, 0.5)")
    n = len(ends)
    n_test = int(round(n * test_frac))
    n_valid = int(round(n * valid_frac))
    n_train = n - n_test - n_valid - 2 * purge
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    if min(counts.values()) < MIN_SPLIT_WINDOWS:
        needed = int(np.ceil(MIN_SPLIT_WINDOWS / min(valid_frac, test_frac))) + 2 * purge
        raise NotEnoughDataError(
            f"{source}: only {n} usable windows, giving {counts}; each split needs at least "
            f"{MIN_SPLIT_WINDOWS}, so at least {needed} usable windows are required"
        )
    train = ends[:n_train]
    valid = ends[n_train + purge : n_train + purge + n_valid]
    test = ends[n - n_test :]
    return train, valid, test


@dataclass
class PreparedData:
    """Scaled window sets for the three splits, plus what a checkpoint must remember."""

    train: WindowSet
    valid: WindowSet
    test: WindowSet
    feature_names: list[str]
    feature_scaler: StandardScaler
    target_scaler: StandardScaler
    frame: CandleFrame


def make_splits(
    frame: CandleFrame,
    window: int,
    valid_frac: float = 0.15,
    test_frac: float = 0.15,
    source: str = "data",
    scalers: tuple[StandardScaler, StandardScaler] | None = None,
) -> PreparedData:
    """Split chronologically, fit scalers on training rows only and build the WindowSets.

    ``scalers`` (feature, target) from a checkpoint replace the fitted ones, so inference
    scales exactly as training did.
    """
    if window < 1:
        raise ValueError(f"window={window} is invalid; it must be >= 1")
    ends = frame.window_ends(window)
    usable_rows = int(frame.row_ok.sum())
    if len(ends) == 0:
        raise NotEnoughDataError(
            f"{source}: {len(frame)} rows, {usable_rows} after the indicator warm-up, give no "
            f"complete window of {window} candles with a known target "
            f"(horizon {max(frame.horizons)}); use more rows or a smaller window"
        )
    train, valid, test = chronological_split(
        ends, valid_frac, test_frac, purge=max(frame.horizons), source=source
    )

    # Scalers see only rows inside training windows, so nothing from later blocks leaks in.
    train_rows = np.arange(train[0] - window + 1, train[-1] + 1)
    if scalers is None:
        feature_scaler = StandardScaler.fit(frame.features[train_rows])
        target_scaler = StandardScaler.fit(frame.target[train])
    else:
        feature_scaler, target_scaler = scalers
    scaled = WindowSet(
        features=scale_features(frame.features, feature_scaler),
        target=target_scaler.transform(frame.target).astype(np.float32),
        ends=ends[:0],
        window=window,
        regime=frame.regime,
        hour=frame.hour,
        day_of_week=frame.day_of_week,
        dates=frame.dates,
    )
    return PreparedData(
        train=scaled.subset(train),
        valid=scaled.subset(valid),
        test=scaled.subset(test),
        feature_names=frame.feature_names,
        feature_scaler=feature_scaler,
        target_scaler=target_scaler,
        frame=frame,
    )


def scale_features(values: np.ndarray, scaler: StandardScaler) -> np.ndarray:
    """Standardize, clip to +-FEATURE_CLIP and zero non-finite cells (warm-up rows)."""
    scaled = np.clip(scaler.transform(values), -FEATURE_CLIP, FEATURE_CLIP)
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


def to_raw_units(
    mean: np.ndarray, logvar: np.ndarray, target_scaler: StandardScaler
) -> tuple[np.ndarray, np.ndarray]:
    """Undo target scaling: mean back to returns, log-variance shifted by 2 ln(std)."""
    raw_mean = mean * target_scaler.std + target_scaler.mean
    raw_logvar = logvar + 2.0 * np.log(target_scaler.std)
    return raw_mean, raw_logvar
