"""Loopback replay of Binance's spot REST API from local candle files, for offline freqtrade.

freqtrade loads the market list even for a backtest, so every run needs an exchange to talk to.
"""

from trm_ts.replay.candles import CandleSeries, CandleStore, write_candles
from trm_ts.replay.market import MarketReplay, ReplayClock, ReplayError
from trm_ts.replay.overlay import build_config_overlay, write_config_overlay
from trm_ts.replay.server import ReplayExchange

__all__ = [
    "CandleSeries",
    "CandleStore",
    "MarketReplay",
    "ReplayClock",
    "ReplayError",
    "ReplayExchange",
    "build_config_overlay",
    "write_candles",
    "write_config_overlay",
]
