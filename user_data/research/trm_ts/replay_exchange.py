"""Replay exchange: a loopback Binance spot REST API fed by freqtrade candle files.

The implementation lives in the ``trm_ts.replay`` package; this module re-exports it and is the
command-line entry::

    python -m trm_ts.replay_exchange --datadir ../shared/data/binance \\
        --pairs BTC/USDT ETH/USDT --write-config /tmp/replay.json

It prints the URL it listens on, writes the config overlay if asked, and serves until
interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from trm_ts.replay import (
    CandleStore,
    ReplayExchange,
    build_config_overlay,
    write_config_overlay,
)

__all__ = ["CandleStore", "ReplayExchange", "build_config_overlay", "main", "write_config_overlay"]

logger = logging.getLogger(__name__)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trm_ts.replay_exchange",
        description="Serve Binance's spot REST API on 127.0.0.1 from freqtrade candle files.",
    )
    parser.add_argument(
        "--datadir",
        type=Path,
        required=True,
        help="folder with freqtrade's BASE_QUOTE-<timeframe>.feather files",
    )
    parser.add_argument(
        "--pairs",
        nargs="+",
        default=None,
        help="pairs to list, such as BTC/USDT (default: every file in --datadir)",
    )
    parser.add_argument(
        "--timeframes",
        nargs="+",
        default=None,
        help="timeframes to load (default: all); longer ones are resampled",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind; only 127.0.0.1 is accepted"
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free port)")
    parser.add_argument(
        "--replay-start",
        default=None,
        help="data date the replay starts at, such as 2026-02-01 (default: two "
        "days before the newest candle shared by all pairs)",
    )
    parser.add_argument(
        "--write-config",
        type=Path,
        default=None,
        help="write the freqtrade config overlay to this JSON file",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the replay exchange until SIGINT or SIGTERM; return the exit code."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        exchange = ReplayExchange(
            args.datadir,
            args.pairs,
            args.timeframes,
            host=args.host,
            port=args.port,
            replay_start=args.replay_start,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    with exchange:
        if args.write_config is not None:
            exchange.write_config_overlay(args.write_config, pairs=args.pairs)
        # One line on stdout for scripts that start the CLI and need the port.
        print(f"replay exchange listening on {exchange.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
