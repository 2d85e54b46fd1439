"""Tests of trm_ts.features on real Binance candles: causality, warm-up, guards, date joins."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from freqtrade.strategy import merge_informative_pair

from trm_ts import features as F

REPO = Path(__file__).resolve().parents[1]
CANDLES = REPO.parent / "shared" / "data" / "binance"
ROWS = 2000  # enough for warm-up plus a few thousand-row windows, fast to compute


def load(pair: str, timeframe: str = "15m", rows: int | None = ROWS) -> pd.DataFrame:
    path = CANDLES / f"{pair.replace('/', '_')}-{timeframe}.feather"
    if not path.is_file():
        pytest.fail(f"real candles not found at {path}; tests expect ../shared/data/binance")
    candles = pd.read_feather(path)
    return candles.iloc[:rows].reset_index(drop=True) if rows else candles


def all_features(candles: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Every feature family of the module side by side."""
    return pd.concat(
        [
            F.indicator_features(candles),
            F.context_returns(candles),
            F.pair_context(candles, reference),
            F.regime_index(candles).to_frame(),
        ],
        axis=1,
    )


# ---------------------------------------------------------------------------
# Causality and warm-up
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [F.INDICATOR_WARMUP + 1, 731, 1500, ROWS - 1])
def test_features_cut_rows_identical(cut):
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    full = all_features(candles, reference)
    part = all_features(candles.iloc[:cut], reference)
    pd.testing.assert_frame_equal(part, full.iloc[:cut], check_exact=True)


def test_features_future_reference_ignored():
    # Reference candles after the cut must not change any row: the join is by date.
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    cut = 1200
    cut_date = candles["date"].iloc[cut - 1]
    short_ref = F.pair_context(candles.iloc[:cut], reference[reference["date"] <= cut_date])
    long_ref = F.pair_context(candles.iloc[:cut], reference)
    pd.testing.assert_frame_equal(short_ref, long_ref, check_exact=True)


@pytest.mark.parametrize(("pair", "timeframe"), [("BTC/USDT", "15m"), ("XRP/USDT", "1h")])
def test_features_nan_only_in_warmup(pair, timeframe):
    candles, reference = load(pair, timeframe), load("ETH/USDT", timeframe)
    features = all_features(candles, reference)
    warm = features.iloc[: F.INDICATOR_WARMUP]
    after = features.iloc[F.INDICATOR_WARMUP :]
    assert warm.isna().all().all()
    assert not after.isna().any().any()
    assert np.isfinite(after.to_numpy()).all()


def test_indicator_columns_and_index():
    candles = load("BNB/USDT")
    candles.index = candles.index + 10_000
    features = F.indicator_features(candles)
    assert tuple(features.columns) == F.INDICATOR_COLUMNS
    assert features.index.equals(candles.index)
    assert all(dtype == np.float64 for dtype in features.dtypes)


def test_indicators_scale_free():
    # Multiplying every price by 1000 and volume by 7 leaves every feature (almost) unchanged.
    candles = load("ETH/USDT")
    scaled = candles.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    scaled["volume"] *= 7.0
    base = F.indicator_features(candles).iloc[F.INDICATOR_WARMUP :]
    other = F.indicator_features(scaled).iloc[F.INDICATOR_WARMUP :]
    volume_free = [c for c in F.INDICATOR_COLUMNS if c != "volume_z"]
    np.testing.assert_allclose(other[volume_free], base[volume_free], rtol=1e-6, atol=1e-9)


def test_indicator_warmup_covers_lookbacks():
    assert F.INDICATOR_WARMUP >= max(F.ROC_PERIODS)
    assert F.INDICATOR_WARMUP >= F.VOLUME_Z_PERIOD
    assert F.INDICATOR_WARMUP >= F.MACD_SLOW + F.MACD_SIGNAL
    assert F.INDICATOR_WARMUP >= F.CONTEXT_CORR_PERIOD


# ---------------------------------------------------------------------------
# Guards: flat candles, zero volume
# ---------------------------------------------------------------------------


def flat_stretch(candles: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    """Replace rows [start, stop) with freqtrade-style filled candles at the previous close."""
    out = candles.copy()
    price = out["close"].iloc[start - 1]
    out.loc[start : stop - 1, ["open", "high", "low", "close"]] = price
    out.loc[start : stop - 1, "volume"] = 0.0
    return out


def test_features_finite_on_flat_candles():
    candles = flat_stretch(load("XRP/USDT"), 300, 600)  # longer than every window
    features = pd.concat([F.indicator_features(candles), F.regime_index(candles)], axis=1)
    after = features.iloc[F.INDICATOR_WARMUP :].to_numpy()
    assert not np.isnan(after).any()
    assert np.isfinite(after).all()


def test_flat_candles_neutral_values():
    candles = flat_stretch(load("XRP/USDT"), 300, 600)
    row = F.indicator_features(candles).iloc[599]
    assert row["bb_width"] == 0.0
    assert row["bb_pctb"] == 0.5
    assert row["mfi"] == 0.5
    assert row["volume_z"] == 0.0
    assert row["roc_96"] == 0.0
    assert row["rv_close"] == 0.0


def test_filled_candles_flagged():
    candles = flat_stretch(load("XRP/USDT"), 300, 303)
    flags = F.filled_candles(candles)
    assert flags[300:303].all()
    assert flags.sum() == 3


# ---------------------------------------------------------------------------
# Regime
# ---------------------------------------------------------------------------


def test_regime_values_integer_0_to_7():
    regime = F.regime_index(load("BTC/USDT", rows=None))
    values = regime.iloc[F.INDICATOR_WARMUP :]
    assert regime.dtype == np.float64
    assert values.notna().all()
    assert (values == values.round()).all()
    assert set(values.astype(int)) == set(range(F.N_REGIMES))


def test_regime_follows_documented_rules():
    candles = load("SOL/USDT")
    regime = F.regime_index(candles).iloc[F.INDICATOR_WARMUP :].astype(int)
    close, high, low = (candles[c].to_numpy() for c in ("close", "high", "low"))
    import talib

    up = talib.EMA(close, 24) > talib.EMA(close, 96)
    strong = talib.ADX(high, low, close, 14) >= 25.0
    pk = F.parkinson_variance(high, low)
    volatile = talib.SMA(pk, 24) > talib.SMA(pk, 96)
    trend = np.where(up, np.where(strong, 3, 2), np.where(strong, 0, 1))
    expected = (2 * trend + volatile)[F.INDICATOR_WARMUP :]
    np.testing.assert_array_equal(regime.to_numpy(), expected)
    assert len(F.REGIME_NAMES) == F.N_REGIMES


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


def test_calendar_known_dates():
    dates = pd.Series(pd.to_datetime(["2025-01-06 00:00", "2025-01-05 23:45"], utc=True))
    hour, day_of_week = F.calendar_indices(dates)
    assert hour.tolist() == [0, 23]
    assert day_of_week.tolist() == [0, 6]  # Monday, Sunday
    assert hour.dtype == np.int64


def test_calendar_tz_aware_converted_to_utc():
    utc = pd.Series(pd.date_range("2025-03-01", periods=200, freq="15min", tz="UTC"))
    tokyo = utc.dt.tz_convert("Asia/Tokyo")
    for left, right in zip(F.calendar_indices(utc), F.calendar_indices(tokyo), strict=True):
        np.testing.assert_array_equal(left, right)


@pytest.fixture
def host_timezone(monkeypatch):
    """Switch the process timezone (TZ plus tzset) and restore it afterwards."""

    def switch(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield switch
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
def test_calendar_same_on_any_host_timezone(host_timezone, zone):
    dates = load("BTC/USDT")["date"]
    host_timezone("UTC")
    expected = F.calendar_indices(dates)
    naive_expected = F.calendar_indices(dates.dt.tz_localize(None))
    host_timezone(zone)
    assert time.localtime(0).tm_gmtoff != 0
    for ours, reference in zip(F.calendar_indices(dates), expected, strict=True):
        np.testing.assert_array_equal(ours, reference)
    for ours, reference in zip(
        F.calendar_indices(dates.dt.tz_localize(None)), naive_expected, strict=True
    ):
        np.testing.assert_array_equal(ours, reference)


def test_calendar_rejects_missing_date():
    with pytest.raises(ValueError, match="position 1"):
        F.calendar_indices(pd.Series([pd.Timestamp("2025-01-01", tz="UTC"), pd.NaT]))


# ---------------------------------------------------------------------------
# Cross-asset joins by date and gaps
# ---------------------------------------------------------------------------


def test_pair_context_gap_nan_only_touched_rows():
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    gap = [1000, 1001, 1002]
    full = F.pair_context(candles, reference)
    gapped = F.pair_context(candles, reference.drop(index=gap))

    # pandas' online rolling sums leave ~1e-15 differences after a NaN; those are not changes.
    changed = ~np.isclose(full.to_numpy(), gapped.to_numpy(), equal_nan=True, rtol=1e-8)
    rows = np.flatnonzero(changed.any(axis=1))
    # The correlation window (96 returns) is the longest: the last touched row is the first
    # whose window starts after the return that spans the gap.
    assert rows.min() == gap[0]
    assert rows.max() == gap[-1] + F.CONTEXT_CORR_PERIOD
    assert gapped.iloc[rows].isna().any(axis=1).all()
    untouched = np.setdiff1d(np.arange(F.INDICATOR_WARMUP, len(candles)), rows)
    assert not gapped.iloc[untouched].isna().any().any()


def test_pair_context_filled_candles_like_gap():
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    dropped = F.pair_context(candles, reference.drop(index=[1000, 1001, 1002]))
    filled = F.pair_context(candles, flat_stretch(reference, 1000, 1003))
    pd.testing.assert_frame_equal(dropped, filled)


def test_pair_context_ignores_row_order():
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    shuffled = reference.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(
        F.pair_context(candles, reference), F.pair_context(candles, shuffled)
    )


def test_pair_context_offset_reference_start():
    # A reference that starts 500 candles later yields NaN up to its own warm-up only.
    candles, reference = load("SOL/USDT"), load("BTC/USDT")
    late = reference.iloc[500:]
    context = F.pair_context(candles, late)
    assert context.iloc[: 500 + F.CONTEXT_CORR_PERIOD].isna().any(axis=1).all()
    assert not context.iloc[500 + F.CONTEXT_CORR_PERIOD + 1 :].isna().any().any()


def test_pair_context_known_answer():
    # A pair that is the reference to the power 2 has correlation 1 and beta 2.
    reference = load("BTC/USDT")
    squared = reference.copy()
    for column in ("open", "high", "low", "close"):
        squared[column] = (reference[column] / 1000.0) ** 2
    context = F.pair_context(squared, reference).iloc[F.INDICATOR_WARMUP :]
    np.testing.assert_allclose(context["ctx_corr"], 1.0, atol=1e-9)
    np.testing.assert_allclose(context["ctx_beta"], 2.0, atol=1e-6)


def test_pair_context_rejects_empty_reference():
    candles = load("SOL/USDT")
    with pytest.raises(ValueError, match="reference has no candles"):
        F.pair_context(candles, load("BTC/USDT").iloc[:0])


def test_align_rejects_duplicate_dates():
    reference = load("BTC/USDT")
    with pytest.raises(ValueError, match="more than one candle"):
        F.align_by_date(reference["date"], pd.concat([reference, reference.iloc[[5]]]))


def test_stale_rows_with_freqtrade_merge():
    """freqtrade's forward-filling merge over a gap is flagged on exactly the gap's rows."""
    base = load("SOL/USDT")
    hourly = load("BTC/USDT", "1h", rows=None)
    hourly = hourly[hourly["date"] <= base["date"].iloc[-1]].copy()
    for frame, timeframe, gap_dates in (
        (load("BTC/USDT"), "15m", base["date"].iloc[[800, 801]]),
        (hourly, "1h", pd.Series(pd.to_datetime(["2025-01-10 05:00"], utc=True))),
    ):
        frame = frame.copy()
        frame["source"] = F.epoch_minutes(frame["date"])
        frame = frame[~frame["date"].isin(gap_dates)]
        merged = merge_informative_pair(base, frame, "15m", timeframe, ffill=True)
        tf_minutes = 15 if timeframe == "15m" else 60
        stale = F.stale_rows(merged["date"], merged[f"source_{timeframe}"], 15, tf_minutes)
        expected = np.zeros(len(base), dtype=bool)
        for gap in gap_dates:
            # rows that would have merged the missing candle
            first = gap + pd.Timedelta(minutes=tf_minutes - 15)
            last = first + pd.Timedelta(minutes=tf_minutes - 15)
            expected |= ((base["date"] >= first) & (base["date"] <= last)).to_numpy()
        np.testing.assert_array_equal(stale, expected)


def test_mask_stale_context_blanks_suffix_columns():
    dates = pd.Series(pd.date_range("2025-01-01", periods=6, freq="15min", tz="UTC"))
    minutes = F.epoch_minutes(dates).astype(float)
    stale_source = minutes.copy()
    stale_source[3:5] = stale_source[2]  # forward-filled over a two-candle gap
    frame = pd.DataFrame(
        {
            "date": dates,
            "%-ctx_ret_gen_BTC/USDT_15m": 1.0,
            "%-ctx_ret_gen_shift-1_BTC/USDT_15m": 1.0,
            "%-rsi_gen_SOL/USDT_15m": 1.0,
            "trm_source_minute_gen_BTC/USDT_15m": stale_source,
            "trm_source_minute_gen_SOL/USDT_15m": minutes,
        }
    )
    counts = F.mask_stale_context(frame, 15)
    assert counts == {"BTC/USDT_15m": 2}
    assert frame["%-ctx_ret_gen_BTC/USDT_15m"].isna().tolist() == [0, 0, 0, 1, 1, 0]
    assert frame["%-ctx_ret_gen_shift-1_BTC/USDT_15m"].isna().sum() == 2
    assert frame["%-rsi_gen_SOL/USDT_15m"].notna().all()


def test_required_startup_candles():
    assert F.required_startup_candles("15m", ["15m"], 0) == F.INDICATOR_WARMUP + 1
    assert F.required_startup_candles("15m", ["15m", "1h"], 3) == (F.INDICATOR_WARMUP + 4) * 4
    with pytest.raises(ValueError, match="shifted_candles"):
        F.required_startup_candles("15m", ["1h"], -1)


# ---------------------------------------------------------------------------
# Input checks and speed
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.drop(columns="volume"), "missing the columns"),
        (lambda c: c.assign(close=c["close"].where(c.index != 7, 0.0)), "row 7"),
        (lambda c: c.to_numpy(), "DataFrame"),
    ],
)
def test_features_reject_bad_candles(mutate, message):
    with pytest.raises((ValueError, TypeError), match=message):
        F.indicator_features(mutate(load("BTC/USDT")))


def test_features_fast_on_year_of_candles():
    candles, reference = load("SOL/USDT", rows=None), load("BTC/USDT", rows=None)
    start = time.perf_counter()
    all_features(candles, reference)
    assert time.perf_counter() - start < 5.0
