"""Loopback HTTP server that speaks the part of Binance's spot REST API that freqtrade uses.

Requests arrive as ``/<binance host>/<binance path>``: the config overlay rewrites every ccxt
API URL of Binance, for example ``https://api.binance.com/api/v3`` to
``http://127.0.0.1:<port>/api.binance.com/api/v3``, so the host that ccxt meant to reach shows
up in the log. Every request is logged. An endpoint the replay does not serve gets a WARNING
naming method and path and a 404 reply in Binance's error shape, so a ccxt change that needs a
new endpoint shows up at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from trm_ts.replay.candles import CandleStore
from trm_ts.replay.market import DAY_MS, MarketReplay, ReplayClock, ReplayError, wall_clock_ms
from trm_ts.replay.overlay import write_config_overlay

logger = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"
SPOT_HOST = "api.binance.com"

# Binance error code for an operation it does not support; ccxt maps it to NotSupported.
UNSERVED_CODE = -1020


def _int_param(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as err:
        message = f"Illegal characters found in parameter '{name}': {value!r}."
        raise ReplayError(-1100, message) from err


def _symbols_param(params: dict[str, str]) -> list[str] | None:
    value = params.get("symbols")
    if value is None:
        return None
    try:
        symbols = json.loads(value)
    except json.JSONDecodeError as err:
        message = f"Illegal characters found in parameter 'symbols': {value!r}."
        raise ReplayError(-1100, message) from err
    if not isinstance(symbols, list) or not all(isinstance(item, str) for item in symbols):
        raise ReplayError(-1100, f"Parameter 'symbols' must be a JSON list of strings: {value!r}.")
    return symbols


def _per_symbol(
    market: MarketReplay, params: dict[str, str], build: Callable[[str], dict]
) -> dict | list[dict]:
    """Build a ticker reply: one object for ``symbol``, else a list of objects."""
    symbol = params.get("symbol")
    pairs = market.symbols_for(symbol, _symbols_param(params))
    if symbol:
        return build(pairs[0])
    return [build(pair) for pair in (pairs or market.store.pairs)]


def _build_routes(market: MarketReplay) -> dict[tuple[str, str, str], Callable[[dict], object]]:
    """Map (method, Binance host, path) to a function of the query parameters."""

    def klines(p: dict[str, str]) -> object:
        return market.klines(
            p.get("symbol"),
            p.get("interval"),
            start_time=_int_param(p, "startTime"),
            end_time=_int_param(p, "endTime"),
            limit=_int_param(p, "limit"),
        )

    spot = {
        "/api/v3/ping": lambda p: {},
        "/api/v3/time": lambda p: market.server_time(),
        "/api/v3/exchangeInfo": lambda p: market.exchange_info(p.get("symbol"), _symbols_param(p)),
        "/api/v3/klines": klines,
        "/api/v3/uiKlines": klines,
        "/api/v3/ticker/24hr": lambda p: _per_symbol(market, p, market.ticker_24hr),
        "/api/v3/ticker/bookTicker": lambda p: _per_symbol(market, p, market.book_ticker),
        "/api/v3/ticker/price": lambda p: _per_symbol(market, p, market.price_ticker),
        "/api/v3/depth": lambda p: market.depth(p.get("symbol"), _int_param(p, "limit")),
    }
    routes = {("GET", SPOT_HOST, path): handler for path, handler in spot.items()}
    # ccxt's binance loads linear and inverse futures markets next to spot by default.
    routes[("GET", "fapi.binance.com", "/fapi/v1/exchangeInfo")] = lambda p: (
        market.empty_exchange_info()
    )
    routes[("GET", "dapi.binance.com", "/dapi/v1/exchangeInfo")] = lambda p: (
        market.empty_exchange_info()
    )
    return routes


class _ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exchange: ReplayExchange) -> None:
        self.exchange = exchange
        super().__init__(address, _ReplayRequestHandler)


class _ReplayRequestHandler(BaseHTTPRequestHandler):
    server: _ReplayHTTPServer
    server_version = "trm-ts-replay"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        split = urlsplit(self.path)
        host, _, path = split.path.lstrip("/").partition("/")
        path = "/" + path
        params = {key: values[-1] for key, values in parse_qs(split.query).items()}
        exchange = self.server.exchange
        exchange.count_request(self.command, host, path)

        handler = exchange.routes.get((self.command, host, path))
        if handler is None:
            exchange.count_unserved(self.command, host, path)
            logger.warning(
                "Replay exchange does not serve %s %s%s (query %r); replied 404. Add the "
                "endpoint to trm_ts.replay.server if freqtrade needs it.",
                self.command,
                host,
                path,
                split.query,
            )
            self._reply(
                HTTPStatus.NOT_FOUND,
                {
                    "code": UNSERVED_CODE,
                    "msg": f"The replay exchange does not serve {self.command} {host}{path}.",
                },
            )
            return
        try:
            body = handler(params)
            status = HTTPStatus.OK
        except ReplayError as err:
            logger.warning(
                "Rejected %s %s%s?%s: %s", self.command, host, path, split.query, err.message
            )
            body = {"code": err.code, "msg": err.message}
            status = HTTPStatus(err.status)
        self._reply(status, body)
        logger.info(
            "%s %s%s?%s -> %d in %.1f ms",
            self.command,
            host,
            path,
            split.query,
            status,
            1000.0 * (time.perf_counter() - started),
        )

    def _reply(self, status: HTTPStatus, body: object) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # Requests are logged in _dispatch; this only catches http.server's own error lines.
        logger.debug("http.server: " + format, *args)


def _to_ms(value: str | int | pd.Timestamp) -> int:
    if isinstance(value, int):
        return value
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1_000_000)


class ReplayExchange:
    """Replay exchange on 127.0.0.1, usable as a context manager.

    ``replay_start`` (a date, or ms since the epoch) is the data time the replay begins at, at
    most one week earlier so that hours and weekdays stay aligned. It defaults to
    ``DEFAULT_HEADROOM_MS`` before the newest candle that all pairs share, which leaves that
    much data to reveal as the clock advances.
    """

    DEFAULT_HEADROOM_MS = 2 * DAY_MS
    # How often the serving thread checks for a stop request; stop() waits up to this long.
    POLL_INTERVAL_S = 0.05

    def __init__(
        self,
        datadir: Path | str | None = None,
        pairs: list[str] | None = None,
        timeframes: list[str] | None = None,
        *,
        store: CandleStore | None = None,
        host: str = LOOPBACK_HOST,
        port: int = 0,
        replay_start: str | int | pd.Timestamp | None = None,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if host != LOOPBACK_HOST:
            raise ValueError(
                f"the replay exchange binds to {LOOPBACK_HOST} only, got host {host!r}"
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535 (0 picks a free port), got {port}")
        if store is None:
            if datadir is None:
                raise TypeError("ReplayExchange needs either datadir or store")
            store = CandleStore.from_datadir(datadir, pairs, timeframes)
        if replay_start is None:
            newest_shared = min(store.finest(pair).last_open_ms for pair in store.pairs)
            start_ms = newest_shared - self.DEFAULT_HEADROOM_MS
        else:
            start_ms = _to_ms(replay_start)
        self.market = MarketReplay(store, ReplayClock.starting_at(start_ms, now_ms))
        self.routes = _build_routes(self.market)
        self.host = host
        self._requested_port = port
        self._server: _ReplayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counts_lock = threading.Lock()
        self.request_counts: Counter[str] = Counter()
        self.unserved_counts: Counter[str] = Counter()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the replay exchange is not running; call start() first")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def count_request(self, method: str, host: str, path: str) -> None:
        with self._counts_lock:
            self.request_counts[f"{method} {host}{path}"] += 1

    def count_unserved(self, method: str, host: str, path: str) -> None:
        with self._counts_lock:
            self.unserved_counts[f"{method} {host}{path}"] += 1

    def start(self) -> ReplayExchange:
        """Bind the socket and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the replay exchange is already running")
        self._server = _ReplayHTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.POLL_INTERVAL_S},
            name="replay-exchange",
            daemon=True,
        )
        self._thread.start()
        clock = self.market.clock
        logger.info(
            "Replay exchange listening on %s for %s; data time now %s (offset %d days)",
            self.url,
            ", ".join(self.market.store.pairs),
            pd.Timestamp(clock.data_now_ms(), unit="ms", tz="UTC"),
            clock.offset_ms // DAY_MS,
        )
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; a no-op when not running."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        logger.info(
            "Replay exchange stopped after %d requests (%d unserved)",
            sum(self.request_counts.values()),
            sum(self.unserved_counts.values()),
        )

    def __enter__(self) -> ReplayExchange:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def write_config_overlay(self, path: Path | str, pairs: list[str] | None = None) -> Path:
        """Write the freqtrade config overlay that points ccxt at this server."""
        return write_config_overlay(path, self.url, pairs=pairs)
