"""Causal, scale-free candle features shared by TRMTSStrategy and the standalone CLI.

Every function here computes row t from rows ``<= t`` only, so cutting the candles at any row
leaves the earlier rows unchanged. Prices are divided out of every feature (ratios, log
returns, oscillators scaled to [0, 1]), so BTC and XRP features share one range.

Feature families:

- ``indicator_features``: TA-Lib oscillators, MACD, Bollinger bands, ATR, ADX, MFI, log rates
  of change, close-to-close and Parkinson realized volatility, volume z-score.
- ``regime_index``: trend state x volatility state as an integer 0..7.
- ``calendar_indices``: UTC hour and day of week.
- ``context_returns`` and ``pair_context``: cross-asset context (returns of a reference pair,
  rolling correlation and beta to it, relative strength), joined by date.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import talib

logger = logging.getLogger(__name__)

OHLCV = ("open", "high", "low", "close", "volume")

# Indicator periods, in candles of the timeframe the features are computed on.
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_PERIOD, BB_STDDEV = 20, 2.0
ATR_PERIOD = 14
ADX_PERIOD = 14
MFI_PERIOD = 14
ROC_PERIODS = (1, 4, 16, 96)
VOL_PERIOD = 24
VOLUME_Z_PERIOD = 96

# Regime: EMA crossover for the trend direction, ADX for its strength, short over long
# Parkinson volatility for the volatility state.
REGIME_EMA_FAST, REGIME_EMA_SLOW = 24, 96
REGIME_ADX_STRONG = 25.0
REGIME_VOL_SHORT, REGIME_VOL_LONG = 24, 96
N_REGIMES = 8

# Cross-asset context windows.
CONTEXT_CORR_PERIOD = 96
CONTEXT_RS_PERIOD = 16

# Rows dropped at the start of every series. Wilder (RSI, ATR, ADX) and EMA (MACD) recursions
# depend on their seed value, so the mask also gives them at least 60 candles past their own
# lookback to converge. With Wilder's alpha = 1/14 the seed's weight is (13/14)^n, about 1 %
# after 60 candles; callers that need less should drop more rows.
INDICATOR_WARMUP = max(
    max(ROC_PERIODS),
    VOLUME_Z_PERIOD,
    REGIME_EMA_SLOW,
    REGIME_VOL_LONG,
    CONTEXT_CORR_PERIOD,
    MACD_SLOW + MACD_SIGNAL,
    2 * ADX_PERIOD,
)

# Below this a standard deviation or price range counts as zero, so the ratio is replaced by
# its neutral value instead of dividing.
_EPS = 1e-12
_LN2 = float(np.log(2.0))

INDICATOR_COLUMNS = (
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_width",
    "bb_pctb",
    "natr",
    "adx",
    "mfi",
    *(f"roc_{n}" for n in ROC_PERIODS),
    "rv_close",
    "rv_parkinson",
    "volume_z",
)

REGIME_NAMES = (
    "strong downtrend, calm",
    "strong downtrend, volatile",
    "weak downtrend, calm",
    "weak downtrend, volatile",
    "weak uptrend, calm",
    "weak uptrend, volatile",
    "strong uptrend, calm",
    "strong uptrend, volatile",
)


def _check_candles(candles: pd.DataFrame, name: str = "candles") -> None:
    """Raise on missing OHLCV columns or non-positive prices."""
    if not isinstance(candles, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(candles).__name__}")
    missing = [c for c in OHLCV if c not in candles.columns]
    if missing:
        raise ValueError(
            f"{name} is missing the columns {missing}; expected {list(OHLCV)} (freqtrade format)"
        )
    prices = candles[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    bad = np.isfinite(prices) & (prices <= 0.0)
    if bad.any():
        row = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise ValueError(
            f"{name} has a non-positive price at row {row}; log returns need prices > 0, "
            "so clean the data first"
        )


def _column(candles: pd.DataFrame, name: str) -> np.ndarray:
    return candles[name].to_numpy(dtype=np.float64)


def _safe_ratio(num: np.ndarray, den: np.ndarray, neutral: float) -> np.ndarray:
    """Return ``num / den``, or ``neutral`` where ``|den|`` is below ``_EPS``; NaN stays NaN."""
    out = np.full_like(num, neutral, dtype=np.float64)
    ok = np.abs(den) > _EPS
    np.divide(num, den, out=out, where=ok)
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


def _rolling_zscore(x: np.ndarray, period: int) -> np.ndarray:
    """Return the z-score of x against its trailing window; 0 where the window is flat."""
    mean = talib.SMA(x, timeperiod=period)
    std = talib.STDDEV(x, timeperiod=period, nbdev=1.0)
    return _safe_ratio(x - mean, std, neutral=0.0)


def log_returns(close: np.ndarray) -> np.ndarray:
    """Return the one-candle log return ending at each candle, NaN at row 0."""
    out = np.full_like(close, np.nan, dtype=np.float64)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def parkinson_variance(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Return the per-candle Parkinson variance ``ln(high / low)^2 / (4 ln 2)``."""
    log_range = np.log(high / low)
    return log_range * log_range / (4.0 * _LN2)


def _mask_warmup(frame: pd.DataFrame | pd.Series, warmup: int) -> None:
    frame.iloc[:warmup] = np.nan


def indicator_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Compute the scale-free TA-Lib indicator features of ``candles``.

    candles: rows in time order with float columns open, high, low, close, volume (other
    columns are ignored). Returns a float64 DataFrame on ``candles.index`` with the columns
    ``INDICATOR_COLUMNS``:

    - ``rsi``, ``adx``, ``mfi``: RSI(14), ADX(14) and MFI(14) divided by 100.
    - ``macd``, ``macd_signal``, ``macd_hist``: MACD(12, 26, 9) lines divided by close.
    - ``bb_width``: Bollinger(20, 2) band width over the middle band; ``bb_pctb``: position of
      close inside the bands (0.5 when the bands collapse).
    - ``natr``: ATR(14) over close.
    - ``roc_n``: log return over n candles.
    - ``rv_close``: standard deviation of one-candle log returns over 24 candles;
      ``rv_parkinson``: Parkinson volatility from ln(high/low) over 24 candles.
    - ``volume_z``: z-score of log(1 + volume) over 96 candles (0 when volume is flat).

    The first ``INDICATOR_WARMUP`` rows are NaN. Later rows are finite when the candles are
    finite; a NaN candle makes the rows whose windows contain it NaN.
    """
    _check_candles(candles)
    open_, high, low, close, volume = (_column(candles, c) for c in OHLCV)
    del open_
    out: dict[str, np.ndarray] = {}

    out["rsi"] = talib.RSI(close, timeperiod=RSI_PERIOD) / 100.0

    macd, signal, hist = talib.MACD(
        close, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, signalperiod=MACD_SIGNAL
    )
    out["macd"] = macd / close
    out["macd_signal"] = signal / close
    out["macd_hist"] = hist / close

    upper, middle, lower = talib.BBANDS(
        close, timeperiod=BB_PERIOD, nbdevup=BB_STDDEV, nbdevdn=BB_STDDEV, matype=0
    )
    out["bb_width"] = _safe_ratio(upper - lower, middle, neutral=0.0)
    out["bb_pctb"] = _safe_ratio(close - lower, upper - lower, neutral=0.5)

    out["natr"] = talib.ATR(high, low, close, timeperiod=ATR_PERIOD) / close
    # NOTE: on flat candles (freqtrade fills missing candles with flat, zero-volume ones) TA-Lib
    # keeps ADX at its last reading instead of decaying it, so it stays finite but stale.
    out["adx"] = talib.ADX(high, low, close, timeperiod=ADX_PERIOD) / 100.0
    out["mfi"] = _money_flow_index(high, low, close, volume)

    for n in ROC_PERIODS:
        out[f"roc_{n}"] = np.log(talib.ROCR(close, timeperiod=n))

    ret = log_returns(close)
    out["rv_close"] = talib.STDDEV(ret, timeperiod=VOL_PERIOD, nbdev=1.0)
    # TA-Lib's running sum can leave -1e-20 on flat stretches; clip before the square root.
    pk_var = talib.SMA(parkinson_variance(high, low), timeperiod=VOL_PERIOD)
    out["rv_parkinson"] = np.sqrt(np.maximum(pk_var, 0.0))

    out["volume_z"] = _rolling_zscore(np.log1p(np.maximum(volume, 0.0)), VOLUME_Z_PERIOD)

    features = pd.DataFrame(out, index=candles.index, columns=list(INDICATOR_COLUMNS))
    _mask_warmup(features, INDICATOR_WARMUP)
    return features


def _money_flow_index(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> np.ndarray:
    """Return MFI(14) / 100, with 0.5 where the window has no money flow (zero volume)."""
    mfi = talib.MFI(high, low, close, volume, timeperiod=MFI_PERIOD) / 100.0
    # TA-Lib returns 0 when both flows are zero, which would read as maximum selling pressure.
    flow = talib.SUM(np.abs(volume), timeperiod=MFI_PERIOD + 1)
    mfi[np.isfinite(flow) & (flow <= _EPS)] = 0.5
    return mfi


def regime_index(candles: pd.DataFrame) -> pd.Series:
    """Classify each candle into one of 8 trend x volatility regimes.

    Trend direction: EMA(close, 24) above EMA(close, 96) is up, otherwise down. Trend
    strength: ADX(14) >= 25 is strong. Volatility: Parkinson volatility over 24 candles above
    the one over 96 candles is volatile, otherwise calm. The index is
    ``2 * trend + volatile`` with trend 0 = strong down, 1 = weak down, 2 = weak up,
    3 = strong up:

    ===== ==========================
    index meaning
    ===== ==========================
    0     strong downtrend, calm
    1     strong downtrend, volatile
    2     weak downtrend, calm
    3     weak downtrend, volatile
    4     weak uptrend, calm
    5     weak uptrend, volatile
    6     strong uptrend, calm
    7     strong uptrend, volatile
    ===== ==========================

    ``REGIME_NAMES[i]`` is the label of index i. Returns a float64 Series on ``candles.index``
    with integer values, NaN in the first ``INDICATOR_WARMUP`` rows and wherever an input in
    the windows is NaN.
    """
    _check_candles(candles)
    high, low, close = (_column(candles, c) for c in ("high", "low", "close"))

    ema_fast = talib.EMA(close, timeperiod=REGIME_EMA_FAST)
    ema_slow = talib.EMA(close, timeperiod=REGIME_EMA_SLOW)
    adx = talib.ADX(high, low, close, timeperiod=ADX_PERIOD)
    pk_var = parkinson_variance(high, low)
    vol_short = talib.SMA(pk_var, timeperiod=REGIME_VOL_SHORT)
    vol_long = talib.SMA(pk_var, timeperiod=REGIME_VOL_LONG)

    up = ema_fast > ema_slow
    strong = adx >= REGIME_ADX_STRONG
    # trend: 0 strong down, 1 weak down, 2 weak up, 3 strong up
    trend = np.where(up, np.where(strong, 3, 2), np.where(strong, 0, 1))
    volatile = vol_short > vol_long
    index = (2 * trend + volatile).astype(np.float64)

    undefined = np.isnan(ema_fast) | np.isnan(ema_slow) | np.isnan(adx)
    undefined |= np.isnan(vol_short) | np.isnan(vol_long)
    index[undefined] = np.nan
    regime = pd.Series(index, index=candles.index, name="regime")
    _mask_warmup(regime, INDICATOR_WARMUP)
    return regime


def calendar_indices(
    dates: Sequence | pd.Series | pd.DatetimeIndex,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the UTC hour (0-23) and day of week (0-6, Monday = 0) of each date.

    dates: candle open times. Timezone-aware values are converted to UTC, and naive values are
    taken as UTC (freqtrade stores candle dates in UTC). The host timezone never matters.
    Returns two int64 arrays of the same length as ``dates``.
    """
    index = pd.DatetimeIndex(pd.to_datetime(dates, utc=True))
    if index.hasnans:
        first = int(np.argmax(index.isna()))
        raise ValueError(
            f"dates has a missing value at position {first}; every candle needs a date"
        )
    hour = index.hour.to_numpy(dtype=np.int64)
    day_of_week = index.day_of_week.to_numpy(dtype=np.int64)
    return hour, day_of_week


# ---------------------------------------------------------------------------
# Cross-asset context
# ---------------------------------------------------------------------------

CONTEXT_COLUMNS = ("ctx_ret", f"ctx_ret_{CONTEXT_RS_PERIOD}", "ctx_rv")
PAIR_CONTEXT_COLUMNS = ("ctx_corr", "ctx_beta", "ctx_rs")


def filled_candles(candles: pd.DataFrame) -> np.ndarray:
    """Flag candles that stand in for missing data: zero volume and open = high = low = close.

    freqtrade fills gaps in stored and exchange candles with such flat candles at the previous
    close, so context features treat them as missing instead of as a zero return.
    """
    flat = (candles["high"] == candles["low"]) & (candles["open"] == candles["close"])
    flat &= candles["high"] == candles["close"]
    return (flat & (candles["volume"] == 0)).to_numpy()


def _context_close(candles: pd.DataFrame) -> pd.Series:
    """Return the close as float64 with NaN on filled candles."""
    close = candles["close"].astype("float64")
    return close.mask(filled_candles(candles))


def context_returns(candles: pd.DataFrame) -> pd.DataFrame:
    """Compute a pair's own context: its recent returns and volatility.

    Returns float64 columns ``CONTEXT_COLUMNS`` on ``candles.index``: the one-candle log
    return, the log return over ``CONTEXT_RS_PERIOD`` candles and the close-to-close
    volatility (population standard deviation) over ``VOL_PERIOD`` candles. Rows whose
    window contains a filled candle (see ``filled_candles``) are NaN, and so are the first
    ``INDICATOR_WARMUP`` rows.
    """
    _check_candles(candles)
    close = _context_close(candles)
    ret = np.log(close / close.shift(1))
    m = CONTEXT_RS_PERIOD
    out = pd.DataFrame(
        {
            "ctx_ret": ret,
            f"ctx_ret_{m}": np.log(close / close.shift(m)),
            # pandas instead of TA-Lib: TA-Lib's running sums keep a NaN forever.
            "ctx_rv": ret.rolling(VOL_PERIOD).std(ddof=0),
        },
        index=candles.index,
    )
    _mask_warmup(out, INDICATOR_WARMUP)
    return out


def align_by_date(dates: pd.Series, other: pd.DataFrame, name: str = "other") -> pd.DataFrame:
    """Return the rows of ``other`` whose ``date`` equals each entry of ``dates``.

    The result has one row per entry of ``dates`` (same index) and NaN where ``other`` has
    no candle at that date, so a gap never shifts later rows. Raises ValueError when
    ``other`` is empty, lacks a ``date`` column or repeats a date.
    """
    if "date" not in other.columns:
        raise ValueError(f"{name} has no 'date' column; cross-asset data is joined by date")
    if other.empty:
        raise ValueError(f"{name} has no candles; download its data for the same timerange")
    if other["date"].duplicated().any():
        duplicate = other.loc[other["date"].duplicated(), "date"].iloc[0]
        raise ValueError(f"{name} has more than one candle dated {duplicate}; deduplicate it")
    keyed = other.set_index(pd.DatetimeIndex(pd.to_datetime(other["date"], utc=True)))
    keys = pd.DatetimeIndex(pd.to_datetime(dates, utc=True))
    aligned = keyed.drop(columns="date").reindex(keys)
    aligned.index = dates.index
    return aligned


def pair_context(candles: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Compute a pair's correlation, beta and relative strength against a reference pair.

    candles, reference: freqtrade candles of the same timeframe with a ``date`` column. The
    reference is joined by date, never by position. Returns float64 columns
    ``PAIR_CONTEXT_COLUMNS`` on ``candles.index``:

    - ``ctx_corr``: rolling correlation of one-candle log returns over
      ``CONTEXT_CORR_PERIOD`` candles (0 when either series is flat).
    - ``ctx_beta``: rolling covariance over the reference's variance (0 when it is flat).
    - ``ctx_rs``: log return of the pair minus log return of the reference over
      ``CONTEXT_RS_PERIOD`` candles.

    A date that the reference lacks, or where either pair has a filled candle (see
    ``filled_candles``), makes NaN of every row whose window contains it, and nowhere else.
    The first ``INDICATOR_WARMUP`` rows are NaN.
    """
    _check_candles(candles)
    if "date" not in candles.columns:
        raise ValueError("candles has no 'date' column; cross-asset data is joined by date")
    _check_candles(reference, name="reference")
    close = _context_close(candles)
    ref_aligned = align_by_date(candles["date"], reference, name="reference")
    ref_close = _context_close(ref_aligned.assign(close=ref_aligned["close"].astype("float64")))

    ret = np.log(close / close.shift(1))
    ref_ret = np.log(ref_close / ref_close.shift(1))
    n = CONTEXT_CORR_PERIOD
    cov = ret.rolling(n).cov(ref_ret).to_numpy()
    var = ret.rolling(n).var().clip(lower=0.0).to_numpy()
    ref_var = ref_ret.rolling(n).var().clip(lower=0.0).to_numpy()

    # Both variances share the degrees-of-freedom correction, so it cancels in the ratios.
    corr = np.clip(_safe_ratio(cov, np.sqrt(var * ref_var), neutral=0.0), -1.0, 1.0)
    beta = _safe_ratio(cov, ref_var, neutral=0.0)
    m = CONTEXT_RS_PERIOD
    rs = np.log(close / close.shift(m)) - np.log(ref_close / ref_close.shift(m))

    out = pd.DataFrame(
        {"ctx_corr": corr, "ctx_beta": beta, "ctx_rs": rs.to_numpy()}, index=candles.index
    )
    _mask_warmup(out, INDICATOR_WARMUP)
    return out


def stale_rows(
    row_dates: pd.Series, source_minutes: pd.Series, base_minutes: int, source_tf_minutes: int
) -> np.ndarray:
    """Flag rows whose merged informative candle is older than a forward fill allows.

    freqtrade's ``merge_informative_pair`` forward-fills: a candle of a ``source_tf_minutes``
    timeframe opening at s is first merged into the base candle opening at
    ``s + source_tf - base_tf`` and stays until the next source candle arrives. Without gaps
    the lag between a row's open time and its source candle's open time therefore stays
    within ``2 * (source_tf - base_tf)`` minutes (0 when both timeframes are equal).

    row_dates: base candle open times. source_minutes: open time of the merged source candle,
    in minutes since the Unix epoch (NaN where nothing was merged). Returns a bool array, True
    where the source data has a gap or has not started yet.
    """
    if source_tf_minutes < base_minutes:
        raise ValueError(
            f"source timeframe {source_tf_minutes}m is shorter than the base timeframe "
            f"{base_minutes}m; freqtrade cannot merge a faster timeframe into a slower one"
        )
    row_minutes = epoch_minutes(row_dates).astype(np.float64)
    lag = row_minutes - source_minutes.to_numpy(dtype=np.float64)
    allowed = 2 * (source_tf_minutes - base_minutes)
    return ~(np.isfinite(lag) & (lag >= 0.0) & (lag <= allowed))


def epoch_minutes(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Return each date as whole minutes since 1970-01-01 UTC (int64)."""
    index = pd.DatetimeIndex(pd.to_datetime(dates, utc=True))
    seconds = (index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.int64) // 60


# Non-feature column that carries each informative candle's open time through FreqAI's merges.
# FreqAI appends "_gen_<pair>_<tf>" to it, as it does to the features beside it.
SOURCE_MINUTE = "trm_source_minute"
_SOURCE_PATTERN = re.compile(rf"^{SOURCE_MINUTE}_gen_(?P<pair>.+)_(?P<tf>\d+[mhdwM])$")


def mask_stale_context(dataframe: pd.DataFrame, base_tf_minutes: int) -> dict[str, int]:
    """Set to NaN the ``%`` features merged from a candle that a forward fill carried over a gap.

    dataframe: FreqAI's merged feature frame with a ``date`` column and one
    ``trm_source_minute_gen_<pair>_<tf>`` column per pair and timeframe. Every ``%`` column
    ending in ``_<pair>_<tf>`` is blanked on the rows that ``stale_rows`` flags, in place.
    Returns the number of flagged rows per ``<pair>_<tf>`` suffix (only those above 0).
    """
    counts: dict[str, int] = {}
    for column in dataframe.columns:
        match = _SOURCE_PATTERN.match(str(column))
        if match is None:
            continue
        suffix = f"{match['pair']}_{match['tf']}"
        source_tf_minutes = _timeframe_minutes(match["tf"])
        stale = stale_rows(dataframe["date"], dataframe[column], base_tf_minutes, source_tf_minutes)
        if not stale.any():
            continue
        targets = [c for c in dataframe.columns if c.startswith("%") and c.endswith(f"_{suffix}")]
        dataframe.loc[stale, targets] = np.nan
        counts[suffix] = int(stale.sum())
    return counts


def _timeframe_minutes(timeframe: str) -> int:
    units = {"m": 1, "h": 60, "d": 1440, "w": 10080}
    unit = timeframe[-1]
    if unit not in units or not timeframe[:-1].isdigit():
        raise ValueError(
            f"timeframe={timeframe!r} is not supported; use minutes, hours, days or weeks"
        )
    return int(timeframe[:-1]) * units[unit]


def required_startup_candles(
    base_timeframe: str, timeframes: Sequence[str], shifted_candles: int = 0
) -> int:
    """Return the startup candles (base timeframe) that every feature needs before row 0.

    Each timeframe needs ``INDICATOR_WARMUP + shifted_candles`` of its own candles plus the one
    still open, converted to base candles. The count assumes the informative candles start
    where the base candles start, so it is an upper bound.
    """
    if shifted_candles < 0:
        raise ValueError(f"shifted_candles={shifted_candles!r} is invalid; it must be >= 0")
    base = _timeframe_minutes(base_timeframe)
    needed = 0
    for timeframe in (base_timeframe, *timeframes):
        ratio = -(-_timeframe_minutes(timeframe) // base)  # ceil division
        needed = max(needed, (INDICATOR_WARMUP + shifted_candles + 1) * ratio)
    return needed
