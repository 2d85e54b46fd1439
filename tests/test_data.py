"""Candle loading: formats, dates, ordering, duplicates, gaps and the bad-input table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import real_candles_path
from trm_ts.data import CandleDataError, load_candles, synthetic_candles

BASE = pd.Timestamp("2025-03-01 00:00", tz="UTC")


def _write(tmp_path, text: str, name: str = "candles.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _csv_frame(n: int = 6, step: str = "15min") -> pd.DataFrame:
    dates = pd.date_range(BASE, periods=n, freq=step)
    close = 100.0 + np.arange(n)
    return pd.DataFrame(
        {"Date": dates.strftime("%Y-%m-%dT%H:%M:%SZ"), "Open": close - 0.5, "High": close + 1,
         "Low": close - 1, "Close": close, "Volume": 10.0 + np.arange(n)}
    )


def test_header_case_ignored(tmp_path):
    path = tmp_path / "c.csv"
    _csv_frame().to_csv(path, index=False)
    candles, _ = load_candles(path)
    assert list(candles.columns) == ["date", "open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_dates_parsed_to_utc(tmp_path, scale):
    seconds = BASE.value // 10**9 + 900 * np.arange(4)
    frame = pd.DataFrame({"timestamp": seconds * scale, "close": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "epoch.csv"
    frame.to_csv(path, index=False)
    candles, _ = load_candles(path)
    assert candles["date"].iloc[0] == BASE
    assert str(candles["date"].dt.tz) == "UTC"


def test_iso_dates_with_offset_converted_to_utc(tmp_path):
    path = _write(tmp_path, "date,close\n2025-03-01T02:00:00+02:00,1\n2025-03-01T02:15:00+02:00,2\n")
    candles, _ = load_candles(path)
    assert candles["date"].iloc[0] == BASE


def test_unsorted_rows_sorted(tmp_path):
    frame = _csv_frame().iloc[[3, 0, 5, 1, 4, 2]]
    path = tmp_path / "unsorted.csv"
    frame.to_csv(path, index=False)
    candles, report = load_candles(path)
    assert candles["date"].is_monotonic_increasing
    assert report.sorted_rows


def test_duplicate_timestamps_keep_last_row(tmp_path):
    frame = _csv_frame()
    dup = frame.iloc[[2]].assign(Close=999.0)
    path = tmp_path / "dup.csv"
    pd.concat([frame, dup]).to_csv(path, index=False)
    candles, report = load_candles(path)
    assert report.duplicates_dropped == 1
    assert candles.loc[candles["date"] == BASE + pd.Timedelta("30min"), "close"].item() == 999.0


def test_gaps_counted(tmp_path):
    frame = _csv_frame(10).drop(index=[3, 4, 7])
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    _, report = load_candles(path)
    assert report.gaps == 2
    assert report.missing_candles == 3


def test_close_only_fills_ohlv(tmp_path):
    candles, report = load_candles(_write(tmp_path, "close\n10\n11\n9\n"))
    assert candles["high"].tolist() == [10.0, 11.0, 11.0]
    assert candles["low"].tolist() == [10.0, 10.0, 9.0]
    assert (candles["volume"] == 1.0).all()
    assert any("volume" in note for note in report.notes)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("date,open\n2025-01-01,1\n", "required column 'close' is missing"),
        ("date,close\n2025-01-01,1\n2025-01-02,abc\n", "column 'close' row 2 has non-numeric"),
        ("date,close,volume\n2025-01-01,1,x\n", "column 'volume' row 1 has non-numeric"),
        ("date,close\n2025-01-01,1\n2025-01-02,\n", "column 'close' row 2"),
        ("date,close\nyesterday,1\n", "column 'date' row 1 has value 'yesterday'"),
        ("date,close\n2025-01-01,-5\n", "prices must be positive"),
    ],
)
def test_bad_csv_error_names_file_and_column(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(CandleDataError, match=expected) as info:
        load_candles(path)
    assert str(path) in str(info.value)


def test_missing_file_error(tmp_path):
    with pytest.raises(CandleDataError, match="file not found"):
        load_candles(tmp_path / "absent.csv")


def test_freqtrade_json_candles(tmp_path):
    ms = BASE.value // 10**6
    rows = [[ms + 900_000 * i, 1.0, 2.0, 0.5, 1.5 + i, 10.0] for i in range(3)]
    path = _write(tmp_path, json.dumps(rows), name="BTC_USDT-15m.json")
    candles, _ = load_candles(path)
    assert candles["date"].iloc[0] == BASE
    assert candles["close"].tolist() == [1.5, 2.5, 3.5]


def test_real_feather_file_loads_without_gaps():
    candles, report = load_candles(real_candles_path("ETH_USDT", "1h"))
    assert report.gaps == 0
    assert report.timeframe == pd.Timedelta("1h")
    assert candles["date"].iloc[0] == pd.Timestamp("2024-09-14", tz="UTC")


def test_synthetic_candles_seeded_and_valid():
    first = synthetic_candles(2_000, seed=7)
    second = synthetic_candles(2_000, seed=7)
    pd.testing.assert_frame_equal(first, second)
    assert (first["high"] >= first[["open", "close"]].max(axis=1)).all()
    assert (first["low"] <= first[["open", "close"]].min(axis=1)).all()
    assert (first["close"] > 0).all()


def test_synthetic_candles_cluster_volatility():
    candles = synthetic_candles(20_000, seed=1)
    r2 = np.diff(np.log(candles["close"].to_numpy())) ** 2
    lag1 = np.corrcoef(r2[:-1], r2[1:])[0, 1]
    assert lag1 > 0.05, lag1


@pytest.mark.parametrize("timeframe", ["1m", "15m", "1h"])
def test_synthetic_candles_stay_bounded(timeframe):
    # A long intraday peak (120 one-minute candles) must not drive the variance recursion.
    candles = synthetic_candles(20_000, seed=0, timeframe=timeframe)
    assert candles["close"].between(1.0, 1e4).all()
    assert (candles["low"] > 0).all()
