"""Candle loading, the synthetic generator, targets, scaling and window sets.

Shapes follow the legend in ``trm_ts.model``: N candles (rows), F features, T window length,
H forecast outputs, S windows (samples).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

OHLCV = ("open", "high", "low", "close", "volume")
# Header names accepted as the candle timestamp, compared case-insensitively.
DATE_COLUMNS = ("date", "datetime", "timestamp", "time", "open_time", "ts")
# Epoch magnitudes: below 1e11 the numbers are seconds (until year 5138), below 1e14
# milliseconds, below 1e17 microseconds, else nanoseconds.
EPOCH_UNIT_LIMITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
# Standardized features are clipped here, so one extreme candle cannot dominate a window.
FEATURE_CLIP = 10.0


class CandleDataError(ValueError):
    """Candle input that cannot be used; the message names the file and what to fix."""


@dataclass
class LoadReport:
    """Summary of the changes and findings of one load, for the CLI to print."""

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    sorted_rows: bool = False
    duplicates_dropped: int = 0
    gaps: int = 0
    missing_candles: int = 0
    timeframe: pd.Timedelta | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Return human-readable summary lines."""
        out = [f"{self.path}: {self.rows_read} rows read, {self.rows_kept} kept"]
        if self.timeframe is not None:
            out.append(f"candle interval: {self.timeframe}")
        if self.sorted_rows:
            out.append("rows were not in time order and have been sorted by date")
        if self.duplicates_dropped:
            out.append(
                f"{self.duplicates_dropped} duplicate timestamps dropped "
                f"(the last row of each timestamp is kept)"
            )
        if self.gaps:
            out.append(f"{self.gaps} gaps in the candle series, {self.missing_candles} candles missing")
        out.extend(self.notes)
        return out


def _read_table(path: Path) -> pd.DataFrame:
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".feather":
            return pd.read_feather(path)
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".json" or suffixes == ".json.gz":
            # freqtrade's JSON candle files: [[epoch_ms, open, high, low, close, volume], ...]
            raw = pd.read_json(path, orient="values", dtype=False)
            if raw.shape[1] != 6:
                raise CandleDataError(
                    f"{path}: expected freqtrade JSON candles with 6 values per row "
                    f"(date, open, high, low, close, volume), found {raw.shape[1]}"
                )
            raw.columns = ["date", *OHLCV]
            return raw
        return pd.read_csv(path)
    except CandleDataError:
        raise
    except FileNotFoundError:
        raise CandleDataError(f"{path}: file not found") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise CandleDataError(f"{path}: could not be read as candle data: {err}") from None


def _parse_dates(column: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        dates = column
        if getattr(dates.dt, "tz", None) is None:
            dates = dates.dt.tz_localize("UTC")
        return dates.dt.tz_convert("UTC")
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        magnitude = float(numeric.abs().max())
        unit = next((u for limit, u in EPOCH_UNIT_LIMITS if magnitude < limit), "ns")
        return pd.to_datetime(numeric.astype("int64"), unit=unit, utc=True)
    try:
        return pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise CandleDataError(
            f"{path}: column '{name}' row {row + 1} has value {column.iloc[row]!r}, which is "
            f"neither an ISO 8601 date nor epoch seconds or milliseconds"
        ) from None


def load_candles(path: str | Path) -> tuple[pd.DataFrame, LoadReport]:
    """Read candles from CSV, parquet or freqtrade's feather/JSON files.

    Returns a frame with columns ``date`` (UTC, absent when the file has no date column) and
    open, high, low, close and volume as float64, sorted by date. Of duplicate timestamps the
    last row is kept, because a re-downloaded candle replaces the earlier partial one.
    Only ``close`` is required. A missing open becomes the previous close, missing high and
    low the max and min of open and close, and a missing volume a constant 1.0, which makes
    the volume features uninformative.
    """
    path = Path(path)
    frame = _read_table(path)
    report = LoadReport(path=str(path), rows_read=len(frame))
    frame = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    if "close" not in frame.columns:
        raise CandleDataError(
            f"{path}: required column 'close' is missing; found columns {list(frame.columns)}"
        )

    out = pd.DataFrame(index=frame.index)
    date_name = next((c for c in DATE_COLUMNS if c in frame.columns), None)
    if date_name is not None:
        out["date"] = _parse_dates(frame[date_name], date_name, path)

    # Numeric columns: every non-empty cell must parse, and close must never be empty.
    for name in OHLCV:
        if name not in frame.columns:
            continue
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() & frame[name].notna()
        if name == "close":
            bad |= frame[name].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CandleDataError(
                f"{path}: column '{name}' row {row + 1} has non-numeric or empty value "
                f"{frame[name].iloc[row]!r}; fix or remove that row"
            )
        out[name] = values.astype("float64")
    if (out["close"] <= 0).any():
        row = int(np.flatnonzero((out["close"] <= 0).to_numpy())[0])
        raise CandleDataError(
            f"{path}: column 'close' row {row + 1} is {out['close'].iloc[row]!r}; "
            f"prices must be positive for log returns"
        )

    # Order, duplicates and gaps.
    if "date" in out.columns:
        if not out["date"].is_monotonic_increasing:
            report.sorted_rows = True
            out = out.sort_values("date", kind="stable")
        duplicated = out["date"].duplicated(keep="last")
        report.duplicates_dropped = int(duplicated.sum())
        out = out.loc[~duplicated].reset_index(drop=True)
        steps = out["date"].diff().dropna()
        if len(steps):
            timeframe = steps.median()
            report.timeframe = timeframe
            gaps = steps[steps > timeframe]
            report.gaps = int(len(gaps))
            report.missing_candles = int((gaps / timeframe).sum() - len(gaps)) if len(gaps) else 0
    else:
        report.notes.append("no date column: rows are used in file order, calendar inputs are off")
        out = out.reset_index(drop=True)

    _fill_missing_ohlc(out, report)
    report.rows_kept = len(out)
    return out, report


def _fill_missing_ohlc(frame: pd.DataFrame, report: LoadReport) -> None:
    if "open" not in frame.columns:
        frame["open"] = frame["close"].shift(1).fillna(frame["close"])
        report.notes.append("no 'open' column: using the previous close")
    for name, pick in (("high", np.maximum), ("low", np.minimum)):
        if name not in frame.columns:
            frame[name] = pick(frame["open"], frame["close"])
            report.notes.append(f"no '{name}' column: using the {pick.__name__} of open and close")
        else:
            frame[name] = frame[name].fillna(pick(frame["open"], frame["close"]))
    if "volume" not in frame.columns:
        frame["volume"] = 1.0
        report.notes.append("no 'volume' column: volume set to 1.0, volume features carry nothing")
    frame["open"] = frame["open"].fillna(frame["close"])
    frame["volume"] = frame["volume"].fillna(0.0)


def synthetic_candles(
    n_rows: int = 12_000, seed: int = 0, timeframe: str = "15m", start: str = "2024-01-01"
) -> pd.DataFrame:
    """Generate seeded OHLCV candles with volatility clustering and regime switches.

    Returns follow a GARCH(1,1)-like variance recursion whose base level and drift switch
    between three Markov regimes (calm uptrend, choppy range, volatile downtrend), with an
    intraday volatility and volume pattern, so conditional variance is predictable from the past.
    """
    if n_rows < 2:
        raise ValueError(f"n_rows={n_rows} is invalid; it must be >= 2")
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_rows, freq=pd.Timedelta(timeframe), tz="UTC")

    # Regime chain: (drift per candle, base variance per candle), sticky transitions.
    drifts = np.array([2e-4, 0.0, -2e-4])
    base_var = np.array([0.002, 0.004, 0.008]) ** 2
    stay = 0.998
    regime = np.empty(n_rows, dtype=np.int64)
    regime[0] = 1
    switches = rng.random(n_rows)
    jumps = rng.integers(1, 3, size=n_rows)
    for t in range(1, n_rows):
        regime[t] = regime[t - 1] if switches[t] < stay else (regime[t - 1] + jumps[t]) % 3

    # Intraday pattern: volatility and volume peak around the US open (14:00-16:00 UTC).
    hour = dates.hour.to_numpy()
    intraday = 1.0 + 0.5 * np.exp(-0.5 * ((hour - 15) / 2.0) ** 2)

    # GARCH(1,1)-style clustering around the regime's base variance. The recursion reads the
    # de-seasonalized innovation: fed the intraday-scaled return, alpha * 1.5**2 + beta > 1
    # during a long peak (1m candles) and the variance explodes.
    alpha, beta = 0.08, 0.90
    shocks = rng.standard_t(df=5, size=n_rows) / np.sqrt(5 / 3)
    returns = np.empty(n_rows)
    var = base_var[regime[0]]
    innovation = 0.0
    for t in range(n_rows):
        omega = (1 - alpha - beta) * base_var[regime[t]]
        if t:
            var = omega + alpha * innovation**2 + beta * var
        innovation = np.sqrt(var) * shocks[t]
        returns[t] = drifts[regime[t]] + innovation * intraday[t]

    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 1.0, size=(2, n_rows))) * np.abs(returns) + 1e-4
    high = np.maximum(open_, close) * (1.0 + spread[0] * 0.5)
    low = np.minimum(open_, close) * (1.0 - spread[1] * 0.5)
    volume = 1_000.0 * intraday * (1.0 + 40.0 * np.abs(returns)) * rng.lognormal(0.0, 0.3, n_rows)
    return pd.DataFrame(
        {"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def forward_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """Return ``log(close[t + horizon] / close[t])``; the last ``horizon`` rows are NaN."""
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid; it must be an integer >= 1")
    close = close.astype("float64")
    return np.log(close.shift(-horizon) / close)


@dataclass
class StandardScaler:
    """Per-column mean and std fitted on training rows only; stored as plain lists."""

    mean: np.ndarray
    std: np.ndarray
    # A column whose training std is below this is constant: it is centred, not divided.
    MIN_STD = 1e-12

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        """Fit on (N, F) training values; NaN rows are ignored."""
        values = np.asarray(values, dtype=np.float64)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        std = np.where(std < cls.MIN_STD, 1.0, std)
        return cls(mean=mean, std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict) -> StandardScaler:
        return cls(mean=np.asarray(data["mean"], np.float64), std=np.asarray(data["std"], np.float64))


@dataclass
class WindowSet:
    """Per-candle arrays plus the row index of each window's newest candle.

    Windows are gathered on demand (``rows[ends - T + 1 : ends + 1]``), so overlapping
    windows share memory. features (N, F) float32, target (N, H) float32 (NaN where the
    future is unknown), regime / hour / day_of_week (N,) int64 or None, ctx (N, C) float32
    or None, ends (S,) int64, window = T.
    """

    features: np.ndarray
    target: np.ndarray | None
    ends: np.ndarray
    window: int
    regime: np.ndarray | None = None
    hour: np.ndarray | None = None
    day_of_week: np.ndarray | None = None
    ctx: np.ndarray | None = None
    dates: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_rows = len(self.features)
        if self.window < 1:
            raise ValueError(f"window={self.window} is invalid; it must be >= 1")
        self.ends = np.asarray(self.ends, dtype=np.int64)
        if len(self.ends) and (self.ends.min() < self.window - 1 or self.ends.max() >= n_rows):
            raise ValueError(
                f"window ends must lie in [{self.window - 1}, {n_rows - 1}] for window "
                f"{self.window} over {n_rows} rows, got [{self.ends.min()}, {self.ends.max()}]"
            )

    def __len__(self) -> int:
        return len(self.ends)

    def subset(self, ends: np.ndarray) -> WindowSet:
        """Return the same rows with another selection of window ends."""
        return WindowSet(
            features=self.features,
            target=self.target,
            ends=ends,
            window=self.window,
            regime=self.regime,
            hour=self.hour,
            day_of_week=self.day_of_week,
            ctx=self.ctx,
            dates=self.dates,
        )

    def window_rows(self, ends: np.ndarray | None = None) -> np.ndarray:
        """Return the (S, T) row numbers of the selected windows, oldest candle first."""
        ends = self.ends if ends is None else ends
        return ends[:, None] - self.window + 1 + np.arange(self.window)

    def gather(self, ends: np.ndarray | None = None) -> np.ndarray:
        """Return the dense (S, T, F) windows; use for small sets and tests."""
        return self.features[self.window_rows(ends)]
