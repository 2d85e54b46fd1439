"""Replay exchange: clock, klines paging, prices, error replies, overlay, ccxt and the CLI."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import ccxt
import ccxt.pro
import numpy as np
import pandas as pd
import pytest
from replay_helpers import (
    RAMP_START,
    RAMP_TIMEFRAME_MS,
    REPO_ROOT,
    SettableClock,
    http_get,
    write_ramp_datadir,
)
from trm_ts import replay_exchange
from trm_ts.replay import CandleStore, ReplayClock, ReplayExchange, build_config_overlay
from trm_ts.replay.candles import CandleSeries, resample_series
from trm_ts.replay.market import WEEK_MS

N_ROWS = 2000
SPOT = "/api.binance.com/api/v3"


@pytest.fixture(scope="module")
def ramp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datadir = tmp_path_factory.mktemp("ramp")
    write_ramp_datadir(datadir, N_ROWS)
    return datadir


def ramp_open_ms(row: int) -> int:
    return RAMP_START.value // 1_000_000 + row * RAMP_TIMEFRAME_MS


@pytest.fixture()
def clock() -> SettableClock:
    # A wall clock 60 weeks after the ramp starts, 5 minutes into a 15m candle.
    return SettableClock(ramp_open_ms(0) + 60 * WEEK_MS + 123 * RAMP_TIMEFRAME_MS + 5 * 60_000)


@pytest.fixture()
def exchange(ramp_dir: Path, clock: SettableClock):
    # Replay start 1500 candles into the ramp: the clock maps to row 1500 minus whole weeks.
    with ReplayExchange(ramp_dir, replay_start=ramp_open_ms(1500), now_ms=clock) as server:
        yield server


def data_row_now(exchange: ReplayExchange) -> int:
    """Row of the open candle at the current data time."""
    return int((exchange.market.clock.data_now_ms() - ramp_open_ms(0)) // RAMP_TIMEFRAME_MS)


# Construction and binding.


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "192.168.1.10", ""])
def test_non_loopback_host_rejected(ramp_dir: Path, host: str) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        ReplayExchange(ramp_dir, host=host)


def test_missing_pair_file_rejected(ramp_dir: Path) -> None:
    with pytest.raises(ValueError, match="SOL_USDT"):
        ReplayExchange(ramp_dir, pairs=["SOL/USDT"], timeframes=["15m"])


def test_port_zero_picks_free_port(exchange: ReplayExchange) -> None:
    assert exchange.port > 0


def test_server_binds_loopback(exchange: ReplayExchange) -> None:
    assert exchange.url.startswith("http://127.0.0.1:")


# Clock.


def test_clock_offset_whole_weeks(exchange: ReplayExchange) -> None:
    assert exchange.market.clock.offset_ms % WEEK_MS == 0


def test_clock_starts_within_week_before_start(exchange: ReplayExchange) -> None:
    data_now = exchange.market.clock.data_now_ms()
    assert ramp_open_ms(1500) - WEEK_MS < data_now <= ramp_open_ms(1500)


def test_clock_keeps_hour_and_weekday(clock: SettableClock) -> None:
    replay = ReplayClock.starting_at(ramp_open_ms(1500), now_ms=clock)
    wall = pd.Timestamp(clock.now, unit="ms", tz="UTC")
    data = pd.Timestamp(replay.data_now_ms(), unit="ms", tz="UTC")
    assert (data.day_of_week, data.hour, data.minute) == (wall.day_of_week, wall.hour, wall.minute)


def test_clock_rejects_future_start(clock: SettableClock) -> None:
    with pytest.raises(ValueError, match="future"):
        ReplayClock.starting_at(clock.now + 1, now_ms=clock)


# Market list.


def test_exchange_info_lists_pairs(exchange: ReplayExchange) -> None:
    status, body = http_get(exchange.url + SPOT + "/exchangeInfo")
    assert status == 200
    assert sorted(item["symbol"] for item in body["symbols"]) == ["BTCUSDT", "ETHUSDT"]


def test_exchange_info_price_filter(exchange: ReplayExchange) -> None:
    _, body = http_get(exchange.url + SPOT + '/exchangeInfo?symbols=["ETHUSDT"]')
    filters = {item["filterType"]: item for item in body["symbols"][0]["filters"]}
    # Median ETH ramp price is about 1100, so seven significant digits give a 0.001 tick.
    assert filters["PRICE_FILTER"]["tickSize"] == "0.001"


@pytest.mark.parametrize(
    "path", ["/fapi.binance.com/fapi/v1/exchangeInfo", "/dapi.binance.com/dapi/v1/exchangeInfo"]
)
def test_futures_exchange_info_empty(exchange: ReplayExchange, path: str) -> None:
    status, body = http_get(exchange.url + path)
    assert status == 200
    assert body["symbols"] == []


# Klines.


def test_klines_newest_is_open_candle(exchange: ReplayExchange) -> None:
    _, rows = http_get(exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=15m&limit=5")
    newest_open = rows[-1][0] - exchange.market.clock.offset_ms
    assert newest_open == ramp_open_ms(data_row_now(exchange))


def test_klines_open_candle_partly_formed(exchange: ReplayExchange) -> None:
    # The clock sits 5 of 15 minutes into the open candle, so its close has moved a third
    # of the way from the open (1000 + row) to the recorded close (1000 + row + 0.5).
    _, rows = http_get(exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=15m&limit=1")
    row = data_row_now(exchange)
    assert float(rows[-1][4]) == pytest.approx(1000.0 + row + 0.5 / 3, abs=0.1)


def test_klines_shifted_open_times(exchange: ReplayExchange) -> None:
    _, rows = http_get(exchange.url + SPOT + "/klines?symbol=ETHUSDT&interval=15m&limit=3")
    offset = exchange.market.clock.offset_ms
    row = (rows[0][0] - offset - ramp_open_ms(0)) // RAMP_TIMEFRAME_MS
    assert float(rows[0][1]) == pytest.approx(100.0 + row)


def test_klines_paging_contiguous(exchange: ReplayExchange) -> None:
    """Pages requested the way freqtrade downloads history join without gaps or repeats."""
    offset = exchange.market.clock.offset_ms
    since = ramp_open_ms(100) + offset
    opens: list[int] = []
    while True:
        url = f"{exchange.url}{SPOT}/klines?symbol=BTCUSDT&interval=15m&startTime={since}&limit=300"
        _, rows = http_get(url)
        if not rows:
            break
        opens.extend(row[0] for row in rows)
        since = rows[-1][0] + RAMP_TIMEFRAME_MS
    assert np.all(np.diff(opens) == RAMP_TIMEFRAME_MS)
    assert opens[0] == ramp_open_ms(100) + offset
    assert opens[-1] == ramp_open_ms(data_row_now(exchange)) + offset


def test_klines_end_time_only(exchange: ReplayExchange) -> None:
    end = ramp_open_ms(700) + exchange.market.clock.offset_ms
    url = f"{exchange.url}{SPOT}/klines?symbol=BTCUSDT&interval=15m&endTime={end}&limit=10"
    _, rows = http_get(url)
    assert len(rows) == 10
    assert rows[-1][0] == end


def test_klines_new_candle_as_clock_advances(
    exchange: ReplayExchange, clock: SettableClock
) -> None:
    url = exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=15m&limit=1000"
    _, before = http_get(url)
    clock.now += RAMP_TIMEFRAME_MS
    _, after = http_get(url)
    assert after[-1][0] == before[-1][0] + RAMP_TIMEFRAME_MS


def test_klines_resampled_hour(exchange: ReplayExchange) -> None:
    _, rows = http_get(exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=1h&limit=3")
    assert rows[1][0] - rows[0][0] == 4 * RAMP_TIMEFRAME_MS


def test_klines_limit_over_max_rejected(exchange: ReplayExchange) -> None:
    status, body = http_get(exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=15m&limit=1001")
    assert status == 400
    assert body["code"] == -1130


def test_klines_unknown_interval_rejected(exchange: ReplayExchange) -> None:
    status, body = http_get(exchange.url + SPOT + "/klines?symbol=BTCUSDT&interval=7m")
    assert status == 400
    assert body["code"] == -1120


def test_replay_end_warns_once(
    ramp_dir: Path, clock: SettableClock, caplog: pytest.LogCaptureFixture
) -> None:
    with ReplayExchange(ramp_dir, replay_start=ramp_open_ms(N_ROWS - 2), now_ms=clock) as server:
        clock.now += 2 * WEEK_MS
        with caplog.at_level(logging.WARNING, logger="trm_ts.replay.market"):
            for _ in range(3):
                http_get(server.url + SPOT + "/ticker/price?symbol=BTCUSDT")
    ends = [r for r in caplog.records if "reached the end" in r.getMessage()]
    assert len(ends) == 1


# Prices.


def test_ticker_last_price_from_open_candle(exchange: ReplayExchange) -> None:
    _, ticker = http_get(exchange.url + SPOT + "/ticker/24hr?symbol=BTCUSDT")
    row = data_row_now(exchange)
    assert float(ticker["lastPrice"]) == pytest.approx(1000.0 + row + 0.5 / 3, abs=0.1)


def test_ticker_all_symbols_list(exchange: ReplayExchange) -> None:
    _, tickers = http_get(exchange.url + SPOT + "/ticker/24hr")
    assert [item["symbol"] for item in tickers] == ["BTCUSDT", "ETHUSDT"]


def test_book_ticker_bid_below_ask(exchange: ReplayExchange) -> None:
    _, book = http_get(exchange.url + SPOT + "/ticker/bookTicker?symbol=ETHUSDT")
    assert float(book["bidPrice"]) < float(book["askPrice"])


def test_depth_levels_ordered(exchange: ReplayExchange) -> None:
    _, book = http_get(exchange.url + SPOT + "/depth?symbol=BTCUSDT&limit=20")
    bids = [float(price) for price, _ in book["bids"]]
    asks = [float(price) for price, _ in book["asks"]]
    assert len(bids) == 20
    assert np.all(np.diff(bids) < 0)
    assert np.all(np.diff(asks) > 0)
    assert bids[0] < asks[0]


def test_server_time_is_wall_clock(exchange: ReplayExchange, clock: SettableClock) -> None:
    _, body = http_get(exchange.url + SPOT + "/time")
    assert body["serverTime"] == clock.now


# Errors.


def test_unserved_endpoint_reply(exchange: ReplayExchange) -> None:
    status, body = http_get(exchange.url + SPOT + "/account")
    assert status == 404
    assert body["code"] == -1020
    assert "GET api.binance.com/api/v3/account" in body["msg"]


def test_unserved_endpoint_warning(
    exchange: ReplayExchange, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trm_ts.replay.server"):
        http_get(exchange.url + "/fapi.binance.com/fapi/v1/premiumIndex")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("GET fapi.binance.com/fapi/v1/premiumIndex" in m for m in messages)


def test_unserved_endpoint_counted(exchange: ReplayExchange) -> None:
    http_get(exchange.url + SPOT + "/myTrades")
    assert exchange.unserved_counts["GET api.binance.com/api/v3/myTrades"] == 1


def test_unknown_symbol_rejected(exchange: ReplayExchange) -> None:
    status, body = http_get(exchange.url + SPOT + "/depth?symbol=DOGEUSDT")
    assert status == 400
    assert body["code"] == -1121


def test_every_request_logged(exchange: ReplayExchange, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trm_ts.replay.server"):
        http_get(exchange.url + SPOT + "/ping")
    assert any("GET api.binance.com/api/v3/ping" in r.getMessage() for r in caplog.records)


# Candles.


def test_resample_matches_aggregate() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2025-01-01", periods=8, freq="15min", tz="UTC"),
            "open": np.arange(8.0),
            "high": np.arange(8.0) + 2,
            "low": np.arange(8.0) - 2,
            "close": np.arange(8.0) + 1,
            "volume": np.ones(8),
        }
    )
    hourly = resample_series(CandleSeries.from_frame("BTC/USDT", "15m", frame), "1h")
    np.testing.assert_allclose(hourly.ohlcv, [[0, 5, -2, 4, 4], [4, 9, 2, 8, 4]])


def test_resample_drops_incomplete_hour() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2025-01-01", periods=6, freq="15min", tz="UTC"),
            "open": np.ones(6),
            "high": np.ones(6),
            "low": np.ones(6),
            "close": np.ones(6),
            "volume": np.ones(6),
        }
    )
    hourly = resample_series(CandleSeries.from_frame("BTC/USDT", "15m", frame), "1h")
    assert len(hourly.open_ms) == 1


def test_real_candles_resample_to_shipped_hour(tmp_path: Path) -> None:
    """15m files resampled to 1h agree with the shipped 1h files where both exist."""
    datadir = REPO_ROOT.parent / "shared" / "data" / "binance"
    if not (datadir / "BTC_USDT-15m.feather").is_file():
        pytest.fail(f"real candles not found in {datadir}; expected ../shared beside the repo")
    store = CandleStore.from_datadir(datadir, ["BTC/USDT"], ["15m"])
    resampled = store.get("BTC/USDT", "1h")
    shipped = CandleStore.from_datadir(datadir, ["BTC/USDT"], ["1h"]).get("BTC/USDT", "1h")
    common, left, right = np.intersect1d(resampled.open_ms, shipped.open_ms, return_indices=True)
    assert len(common) > 1000
    np.testing.assert_allclose(resampled.ohlcv[left, :4], shipped.ohlcv[right, :4], rtol=1e-9)


# Overlay and ccxt.


def _leaf_urls(tree: dict | str) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    return [url for value in tree.values() for url in _leaf_urls(value)]


def test_overlay_points_every_url_at_loopback() -> None:
    """Every ccxt Binance URL, websockets included, is rewritten to the loopback server."""
    overlay = build_config_overlay("http://127.0.0.1:5555")
    urls = _leaf_urls(overlay["exchange"]["ccxt_config"]["urls"]["api"])
    assert {url.split("/")[2] for url in urls} == {"127.0.0.1:5555"}


def test_overlay_covers_ccxt_url_groups() -> None:
    overlay = build_config_overlay("http://127.0.0.1:5555")
    assert set(overlay["exchange"]["ccxt_config"]["urls"]["api"]) == set(
        ccxt.pro.binance().urls["api"]
    )


def test_overlay_websockets_off() -> None:
    overlay = build_config_overlay("http://127.0.0.1:5555")
    assert overlay["exchange"]["enable_ws"] is False


def test_overlay_disables_fiat_conversion() -> None:
    overlay = build_config_overlay("http://127.0.0.1:5555")
    assert overlay["fiat_display_currency"] == ""


def test_overlay_rejects_remote_url() -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        build_config_overlay("http://10.0.0.1:5555")


def test_ccxt_client_reads_replay(exchange: ReplayExchange) -> None:
    """ccxt's own binance client, configured by the overlay, loads markets and prices."""
    overlay = build_config_overlay(exchange.url)
    client = ccxt.binance(overlay["exchange"]["ccxt_config"])
    markets = client.load_markets()
    candles = client.fetch_ohlcv("BTC/USDT", "15m", limit=10)
    ticker = client.fetch_ticker("BTC/USDT")
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
    assert len(candles) == 10
    assert ticker["last"] == pytest.approx(candles[-1][4], abs=0.1)
    assert exchange.unserved_counts == {}


# Command line.


@pytest.mark.slow
def test_cli_serves_until_sigint(ramp_dir: Path, tmp_path: Path) -> None:
    overlay_path = tmp_path / "overlay.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trm_ts.replay_exchange",
            "--datadir",
            str(ramp_dir),
            "--write-config",
            str(overlay_path),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        # The child must see SIGINT even when the test runner ignores it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        status, _ = http_get(url + SPOT + "/time")
        overlay = json.loads(overlay_path.read_text())
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=20)
    assert url.startswith("http://127.0.0.1:")
    assert status == 200
    assert overlay["exchange"]["ccxt_config"]["urls"]["api"]["public"] == url + SPOT
    assert returncode == 0


def test_cli_rejects_other_host(ramp_dir: Path, capsys: pytest.CaptureFixture) -> None:
    returncode = replay_exchange.main(["--datadir", str(ramp_dir), "--host", "0.0.0.0"])
    assert returncode == 2
    assert "127.0.0.1" in capsys.readouterr().err
