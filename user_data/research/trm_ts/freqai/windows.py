"""Column routing and batched window building for the FreqAI regressor.

Shapes: N candle rows, S windows, T = ``window`` candles per window, F sequence features,
C context features.

Routing follows ``trm_ts.columns``: ``%-regime``, ``%-hour`` and ``%-day_of_week`` are
embedding indices, columns starting with ``%-ctx`` form the context vector taken at each
window's newest candle, and every other ``%`` column is a sequence feature. Columns are always
selected by name, never by position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trm_ts import columns
from trm_ts.model import N_DAYS, N_HOURS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnRoles:
    """Feature columns after FreqAI's feature pipeline, grouped by the model input they feed."""

    sequence: tuple[str, ...]
    context: tuple[str, ...]
    regime: str | None
    hour: str | None
    day_of_week: str | None

    @classmethod
    def from_columns(cls, names: Sequence[str]) -> ColumnRoles:
        """Route feature columns by name; at least one sequence feature is required."""
        names = [str(n) for n in names]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature columns {duplicates} appear more than once")
        sequence = tuple(
            n for n in names if not columns.is_categorical(n) and not columns.is_context(n)
        )
        if not sequence:
            raise ValueError(
                f"no sequence features among {names}; the strategy must produce at least one "
                f"'%' column that is neither categorical {list(columns.CATEGORICAL)} nor "
                f"context ('{columns.CTX_PREFIX}*')"
            )
        return cls(
            sequence=sequence,
            context=tuple(n for n in names if columns.is_context(n)),
            regime=columns.REGIME if columns.REGIME in names else None,
            hour=columns.HOUR if columns.HOUR in names else None,
            day_of_week=columns.DAY_OF_WEEK if columns.DAY_OF_WEEK in names else None,
        )

    @property
    def categorical(self) -> dict[str, str]:
        """Present categorical inputs: WindowSet field name -> column name."""
        pairs = {"regime": self.regime, "hour": self.hour, "day_of_week": self.day_of_week}
        return {field: name for field, name in pairs.items() if name is not None}

    @property
    def all_columns(self) -> list[str]:
        """Every routed column: sequence, then context, then categorical."""
        return [*self.sequence, *self.context, *self.categorical.values()]

    def to_dict(self) -> dict[str, Any]:
        """Return the roles as plain data for the persisted model."""
        return {
            "sequence": list(self.sequence),
            "context": list(self.context),
            "regime": self.regime,
            "hour": self.hour,
            "day_of_week": self.day_of_week,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnRoles:
        """Rebuild roles from ``to_dict`` output."""
        return cls(
            sequence=tuple(data["sequence"]),
            context=tuple(data["context"]),
            regime=data["regime"],
            hour=data["hour"],
            day_of_week=data["day_of_week"],
        )


def categorical_sizes(n_regimes: int) -> dict[str, int]:
    """Return the embedding table size of each categorical input."""
    return {"regime": n_regimes, "hour": N_HOURS, "day_of_week": N_DAYS}


def categorical_arrays(
    frame: pd.DataFrame, roles: ColumnRoles, n_regimes: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Convert the categorical columns to int64 indices.

    Returns the arrays (N,) per WindowSet field and a row mask (N,) that is False where a value
    is non-finite, not an integer or outside its embedding table. Masked rows get index 0.
    """
    sizes = categorical_sizes(n_regimes)
    row_ok = np.ones(len(frame), dtype=bool)
    arrays: dict[str, np.ndarray] = {}
    for field, name in roles.categorical.items():
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values) & (values == np.round(values))
        ok &= (values >= 0) & (values < sizes[field])
        row_ok &= ok
        arrays[field] = np.where(ok, values, 0).astype(np.int64)
    return arrays, row_ok


def window_end_mask(
    dates: np.ndarray, row_ok: np.ndarray, window: int, step_ns: int
) -> np.ndarray:
    """Return (N,) True where a full window of ``window`` rows ends at that row.

    A window is full when its rows are consecutive candles (each date one timeframe after
    the previous) and every row in it is usable (``row_ok``). ``dates`` are int64 nanoseconds,
    sorted ascending.
    """
    n_rows = len(dates)
    if n_rows < window:
        return np.zeros(n_rows, dtype=bool)
    gap_ok = np.zeros(n_rows, dtype=bool)
    gap_ok[1:] = np.diff(dates) == step_ns
    # Prefix sums of failures: a window (i - window + 1 .. i) is full when it contains no bad
    # row and no broken gap between its first and last row.
    bad_rows = np.concatenate([[0], np.cumsum(~row_ok)])
    bad_gaps = np.concatenate([[0], np.cumsum(~gap_ok)])
    ends = np.arange(window - 1, n_rows)
    starts = ends - window + 1
    rows_clean = bad_rows[ends + 1] - bad_rows[starts] == 0
    gaps_clean = bad_gaps[ends + 1] - bad_gaps[starts + 1] == 0
    mask = np.zeros(n_rows, dtype=bool)
    mask[ends] = rows_clean & gaps_clean
    return mask


def dates_to_ns(dates: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Return candle dates as int64 nanoseconds since the epoch (UTC)."""
    index = pd.DatetimeIndex(pd.to_datetime(dates, utc=True))
    return index.as_unit("ns").asi8.astype(np.int64)


def prepend_history(
    history_dates: np.ndarray,
    history_values: np.ndarray,
    history_columns: Sequence[str],
    chunk: pd.DataFrame,
    chunk_dates: np.ndarray,
    max_rows: int,
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Put up to ``max_rows`` stored history rows older than the chunk in front of it.

    ``chunk`` contains the raw feature columns (``history_columns``, same order) and
    ``chunk_dates`` its int64 ns dates. Returns the combined frame (fresh RangeIndex), the
    combined dates and the number of history rows prepended. Whether the history is
    contiguous with the chunk is checked later, by ``window_end_mask``.
    """
    if max_rows <= 0 or len(history_dates) == 0 or len(chunk_dates) == 0:
        return chunk.reset_index(drop=True), chunk_dates, 0
    older = history_dates < chunk_dates[0]
    take = np.flatnonzero(older)[-max_rows:]
    if take.size == 0:
        return chunk.reset_index(drop=True), chunk_dates, 0
    head = pd.DataFrame(history_values[take], columns=list(history_columns))
    combined = pd.concat([head, chunk.reset_index(drop=True)], axis=0, ignore_index=True)
    return combined, np.concatenate([history_dates[take], chunk_dates]), int(take.size)
