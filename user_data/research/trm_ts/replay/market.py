"""Binance spot market data built from replayed candles.

The replay clock maps wall-clock time to data time by a fixed offset of whole weeks, so every
replayed candle keeps its hour and weekday. The candle that contains the current data time is
the exchange's open candle. It is served partly formed, with a close that moves linearly from
the candle's open to its recorded close as the candle's time passes. The ticker, book ticker
and order book take their prices from it. freqtrade drops this open candle as it drops
Binance's.

All payloads follow the field names and string/number types of Binance's spot REST API, because
ccxt parses them unchanged.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trm_ts.replay.candles import CandleSeries, CandleStore, pair_to_symbol, split_pair

logger = logging.getLogger(__name__)

WEEK_MS = 7 * 86_400_000
DAY_MS = 86_400_000


def wall_clock_ms() -> int:
    """Return the current wall-clock time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class ReplayError(ValueError):
    """A request the replay cannot serve, carrying Binance's error code and message."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ReplayClock:
    """Map wall-clock time to data time.

    offset_ms: a whole number of weeks; data time = wall-clock time - offset_ms.
    now_ms: the wall-clock source, injectable for tests.
    """

    offset_ms: int
    now_ms: Callable[[], int] = wall_clock_ms

    @classmethod
    def starting_at(
        cls, replay_start_ms: int, now_ms: Callable[[], int] = wall_clock_ms
    ) -> ReplayClock:
        """Build a clock whose data time is within the week up to ``replay_start_ms`` now.

        The offset is rounded up to whole weeks, so the replay starts at the same hour and
        weekday as the wall clock, at most one week before ``replay_start_ms``.
        """
        behind_ms = now_ms() - replay_start_ms
        if behind_ms < 0:
            raise ValueError(
                f"replay start {replay_start_ms} ms lies in the future; pick a date in the data"
            )
        offset_ms = -(-behind_ms // WEEK_MS) * WEEK_MS
        return cls(offset_ms=offset_ms, now_ms=now_ms)

    def data_now_ms(self) -> int:
        """Return the current data time in milliseconds."""
        return self.now_ms() - self.offset_ms


@dataclass(frozen=True)
class SymbolRules:
    """Trading rules of one replayed symbol, derived from its median price."""

    pair: str
    symbol: str
    base: str
    quote: str
    tick_size: float
    step_size: float

    @property
    def price_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.tick_size)))

    @property
    def amount_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.step_size)))


def derive_rules(series: CandleSeries) -> SymbolRules:
    """Derive tick and lot sizes that give about seven significant price digits."""
    base, quote = split_pair(series.pair)
    price = float(np.median(series.ohlcv[:, 3]))
    if not price > 0:
        raise ValueError(f"candles of {series.pair} have a non-positive median close {price}")
    tick = 10.0 ** (math.floor(math.log10(price)) - 6)
    step = min(1.0, 10.0 ** math.floor(math.log10(1.0 / price)))
    return SymbolRules(series.pair, pair_to_symbol(series.pair), base, quote, tick, step)


@dataclass(frozen=True)
class Snapshot:
    """The open candle of a pair at one data time, in data time."""

    index: int  # row of the open candle in the finest series
    open_ms: int
    open: float
    high: float
    low: float
    price: float
    volume: float
    fraction: float  # share of the candle's duration that has passed, in [0, 1]


class MarketReplay:
    """Build Binance spot payloads from a candle store and a replay clock."""

    # Spot limits that Binance states for its klines and depth endpoints.
    KLINES_DEFAULT_LIMIT = 500
    KLINES_MAX_LIMIT = 1000
    DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
    DEPTH_DEFAULT_LIMIT = 100
    MIN_NOTIONAL = 5.0
    # Each order-book level offers a twentieth of the open candle's volume, but at least this
    # much quote currency, so dry-run market orders fill close to the replayed price.
    BOOK_LEVEL_VOLUME_SHARE = 0.05
    BOOK_LEVEL_MIN_QUOTE = 50_000.0

    def __init__(self, store: CandleStore, clock: ReplayClock) -> None:
        self.store = store
        self.clock = clock
        self.rules = {pair: derive_rules(store.finest(pair)) for pair in store.pairs}
        self._pair_by_symbol = {rules.symbol: pair for pair, rules in self.rules.items()}
        self._exhausted_logged: set[str] = set()
        self._lock = threading.Lock()
        for pair in store.pairs:
            finest = store.finest(pair)
            if self.clock.data_now_ms() < finest.first_open_ms:
                raise ValueError(
                    f"the replay starts before the first candle of {pair} "
                    f"({finest.first_open_ms} ms); pick a later replay start"
                )

    # Helpers shared by the endpoints.

    def shifted(self, data_ms: int | np.ndarray) -> int | np.ndarray:
        """Convert data time to the wall-clock time the exchange reports."""
        return data_ms + self.clock.offset_ms

    def pair_for(self, symbol: str | None) -> str:
        if not symbol:
            raise ReplayError(-1102, "Mandatory parameter 'symbol' was not sent.")
        pair = self._pair_by_symbol.get(symbol)
        if pair is None:
            raise ReplayError(
                -1121,
                f"Invalid symbol {symbol!r}: the replay serves {sorted(self._pair_by_symbol)}.",
            )
        return pair

    def symbols_for(self, symbol: str | None, symbols: list[str] | None) -> list[str] | None:
        """Resolve the ``symbol``/``symbols`` filter; None means every pair."""
        if symbol:
            return [self.pair_for(symbol)]
        if symbols is not None:
            return [self.pair_for(item) for item in symbols]
        return None

    def snapshot(self, pair: str) -> Snapshot:
        """Return the open candle of ``pair`` at the current data time."""
        series = self.store.finest(pair)
        data_now = self.clock.data_now_ms()
        index = int(np.searchsorted(series.open_ms, data_now, side="right")) - 1
        if index < 0:
            raise ReplayError(-1121, f"{pair} has no candle before the replay time yet.")
        open_ms = int(series.open_ms[index])
        fraction = min(1.0, (data_now - open_ms) / series.timeframe_ms)
        if index == len(series.open_ms) - 1 and fraction >= 1.0:
            self._log_exhausted(pair, series)
        open_price, _, _, close_price, volume = series.ohlcv[index]
        price = open_price + fraction * (close_price - open_price)
        return Snapshot(
            index=index,
            open_ms=open_ms,
            open=open_price,
            high=max(open_price, price),
            low=min(open_price, price),
            price=price,
            volume=fraction * volume,
            fraction=fraction,
        )

    def _log_exhausted(self, pair: str, series: CandleSeries) -> None:
        with self._lock:
            if pair in self._exhausted_logged:
                return
            self._exhausted_logged.add(pair)
        logger.warning(
            "Replay of %s reached the end of its candles (last %s candle opened at data time "
            "%d ms): no new candles will appear and prices stay at the last close. Restart the "
            "replay exchange with an earlier --replay-start.",
            pair,
            series.timeframe,
            series.last_open_ms,
        )

    def _format_price(self, pair: str, value: float) -> str:
        return f"{value:.{self.rules[pair].price_decimals}f}"

    def _format_amount(self, pair: str, value: float) -> str:
        return f"{value:.{self.rules[pair].amount_decimals}f}"

    def _book(self, pair: str) -> tuple[float, float, float]:
        """Return the best bid, best ask and level quantity around the replayed price."""
        rules = self.rules[pair]
        snap = self.snapshot(pair)
        bid = math.floor(snap.price / rules.tick_size) * rules.tick_size
        ask = bid + rules.tick_size
        candle_volume = self.store.finest(pair).ohlcv[snap.index, 4]
        quantity = max(
            candle_volume * self.BOOK_LEVEL_VOLUME_SHARE, self.BOOK_LEVEL_MIN_QUOTE / snap.price
        )
        quantity = math.ceil(quantity / rules.step_size) * rules.step_size
        return bid, ask, quantity

    # Endpoints.

    def server_time(self) -> dict:
        return {"serverTime": self.clock.now_ms()}

    def exchange_info(self, symbol: str | None = None, symbols: list[str] | None = None) -> dict:
        pairs = self.symbols_for(symbol, symbols) or self.store.pairs
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(pair) for pair in pairs],
        }

    def _symbol_info(self, pair: str) -> dict:
        rules = self.rules[pair]
        tick = self._format_price(pair, rules.tick_size)
        step = self._format_amount(pair, rules.step_size)
        return {
            "symbol": rules.symbol,
            "status": "TRADING",
            "baseAsset": rules.base,
            "baseAssetPrecision": 8,
            "quoteAsset": rules.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": tick,
                    "maxPrice": "1000000.00000000",
                    "tickSize": tick,
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": step,
                    "maxQty": "9000000.00000000",
                    "stepSize": step,
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "9000000.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": f"{self.MIN_NOTIONAL:.8f}",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def empty_exchange_info(self) -> dict:
        """Return the futures exchange info: the replay lists no futures markets."""
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [],
            "symbols": [],
        }

    def klines(
        self,
        symbol: str | None,
        interval: str | None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> list[list]:
        """Return candles the way Binance's ``GET /api/v3/klines`` does.

        Times are wall-clock milliseconds. With ``start_time`` the first ``limit`` candles that
        open at or after it are returned, otherwise the last ``limit`` candles that open at or
        before ``end_time`` (default: now). The newest candle may be the open one.
        """
        pair = self.pair_for(symbol)
        if not interval:
            raise ReplayError(-1102, "Mandatory parameter 'interval' was not sent.")
        try:
            series = self.store.get(pair, interval)
        except ValueError as err:
            raise ReplayError(-1120, f"Invalid interval {interval!r}: {err}") from err
        if limit is None:
            limit = self.KLINES_DEFAULT_LIMIT
        if not 1 <= limit <= self.KLINES_MAX_LIMIT:
            raise ReplayError(
                -1130, f"Invalid limit {limit}: must be between 1 and {self.KLINES_MAX_LIMIT}."
            )

        # Select rows in data time: never past the open candle, never past end_time.
        offset = self.clock.offset_ms
        data_now = self.clock.data_now_ms()
        newest = data_now if end_time is None else min(data_now, end_time - offset)
        stop = int(np.searchsorted(series.open_ms, newest, side="right"))
        if start_time is not None:
            start = int(np.searchsorted(series.open_ms, start_time - offset, side="left"))
            stop = min(stop, start + limit)
        else:
            start = max(0, stop - limit)
        if start >= stop:
            return []

        open_ms = series.open_ms[start:stop]
        ohlcv = series.ohlcv[start:stop].copy()  # (N, 5)
        self._form_open_candle(series, open_ms, ohlcv, data_now)
        return self._kline_rows(pair, series.timeframe_ms, open_ms + offset, ohlcv)

    def _form_open_candle(
        self, series: CandleSeries, open_ms: np.ndarray, ohlcv: np.ndarray, data_now: int
    ) -> None:
        """Replace the last row by its partly formed state if it is still open."""
        fraction = (data_now - int(open_ms[-1])) / series.timeframe_ms
        if fraction >= 1.0:
            return
        o, _, _, c, v = ohlcv[-1]
        price = o + fraction * (c - o)
        ohlcv[-1] = (o, max(o, price), min(o, price), price, fraction * v)

    def _kline_rows(
        self, pair: str, timeframe_ms: int, open_ms: np.ndarray, ohlcv: np.ndarray
    ) -> list[list]:
        decimals = self.rules[pair].price_decimals
        prices = np.char.mod(f"%.{decimals}f", ohlcv[:, :4])  # (N, 4) strings
        volumes = np.char.mod("%.8f", ohlcv[:, 4])
        quote_volumes = np.char.mod("%.8f", ohlcv[:, 4] * ohlcv[:, 3])
        close_ms = open_ms + timeframe_ms - 1
        rows = zip(
            open_ms.tolist(),
            prices.tolist(),
            volumes.tolist(),
            close_ms.tolist(),
            quote_volumes.tolist(),
            strict=True,
        )
        # Binance's row: open time, OHLC, volume, close time, quote volume, trades,
        # taker buy base volume, taker buy quote volume, an unused field.
        return [[o_ms, *p, v, c_ms, qv, 0, "0", "0", "0"] for o_ms, p, v, c_ms, qv in rows]

    def ticker_24hr(self, pair: str) -> dict:
        """Return Binance's rolling 24 h ticker of ``pair`` at the current data time."""
        series = self.store.finest(pair)
        snap = self.snapshot(pair)

        # Aggregate the closed candles of the last 24 hours with the open one.
        first = int(np.searchsorted(series.open_ms, snap.open_ms - DAY_MS, side="right"))
        closed = series.ohlcv[first : snap.index]  # (N, 5) the closed candles of the window
        open_price = closed[0, 0] if len(closed) else snap.open
        high = max(snap.high, float(closed[:, 1].max()) if len(closed) else snap.high)
        low = min(snap.low, float(closed[:, 2].min()) if len(closed) else snap.low)
        volume = float(closed[:, 4].sum()) + snap.volume
        quote_volume = float((closed[:, 4] * closed[:, 3]).sum()) + snap.volume * snap.price

        bid, ask, quantity = self._book(pair)
        now = self.clock.now_ms()
        change = snap.price - open_price
        fmt = self._format_price
        return {
            "symbol": self.rules[pair].symbol,
            "priceChange": fmt(pair, change),
            "priceChangePercent": f"{100.0 * change / open_price:.3f}",
            "weightedAvgPrice": fmt(pair, quote_volume / volume if volume > 0 else snap.price),
            "prevClosePrice": fmt(pair, open_price),
            "lastPrice": fmt(pair, snap.price),
            "lastQty": self._format_amount(pair, self.rules[pair].step_size),
            "bidPrice": fmt(pair, bid),
            "bidQty": self._format_amount(pair, quantity),
            "askPrice": fmt(pair, ask),
            "askQty": self._format_amount(pair, quantity),
            "openPrice": fmt(pair, open_price),
            "highPrice": fmt(pair, high),
            "lowPrice": fmt(pair, low),
            "volume": f"{volume:.8f}",
            "quoteVolume": f"{quote_volume:.8f}",
            "openTime": now - DAY_MS,
            "closeTime": now,
            "firstId": 0,
            "lastId": 0,
            "count": int(snap.index - first + 1),
        }

    def book_ticker(self, pair: str) -> dict:
        bid, ask, quantity = self._book(pair)
        amount = self._format_amount(pair, quantity)
        return {
            "symbol": self.rules[pair].symbol,
            "bidPrice": self._format_price(pair, bid),
            "bidQty": amount,
            "askPrice": self._format_price(pair, ask),
            "askQty": amount,
        }

    def price_ticker(self, pair: str) -> dict:
        return {
            "symbol": self.rules[pair].symbol,
            "price": self._format_price(pair, self.snapshot(pair).price),
        }

    def depth(self, symbol: str | None, limit: int | None = None) -> dict:
        """Return an order book of ``limit`` levels a side, one tick apart, around the price."""
        pair = self.pair_for(symbol)
        if limit is None:
            limit = self.DEPTH_DEFAULT_LIMIT
        if not 1 <= limit <= self.DEPTH_LIMITS[-1]:
            raise ReplayError(
                -1130, f"Invalid limit {limit}: must be between 1 and {self.DEPTH_LIMITS[-1]}."
            )
        bid, ask, quantity = self._book(pair)
        tick = self.rules[pair].tick_size
        steps = np.arange(limit) * tick
        decimals = self.rules[pair].price_decimals
        amount = self._format_amount(pair, quantity)
        bid_prices = bid - steps
        bids = np.char.mod(f"%.{decimals}f", bid_prices[bid_prices > 0]).tolist()
        asks = np.char.mod(f"%.{decimals}f", ask + steps).tolist()
        return {
            "lastUpdateId": self.clock.now_ms(),
            "bids": [[price, amount] for price in bids],
            "asks": [[price, amount] for price in asks],
        }
