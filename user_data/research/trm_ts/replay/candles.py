"""Candle storage for the replay exchange.

Reads freqtrade's spot candle files (``<BASE>_<QUOTE>-<timeframe>.feather`` with the columns
date, open, high, low, close, volume) into int64/float64 arrays, resamples a missing timeframe
from a finer one, and writes candle frames back in the same format.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")

# Units of Binance interval strings, in milliseconds. Months ("1M") are irregular and not replayed.
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TIMEFRAME_RE = re.compile(r"^(\d+)([smhdw])$")
# Spot files only: futures files carry a settle currency ("BTC_USDT_USDT-1h-futures.feather").
_SPOT_FILE_RE = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<timeframe>\d+[smhdw])$")


def timeframe_to_ms(timeframe: str) -> int:
    """Convert a Binance interval such as ``"15m"`` or ``"1h"`` to milliseconds."""
    match = _TIMEFRAME_RE.match(timeframe)
    if match is None:
        raise ValueError(
            f"invalid timeframe {timeframe!r}: expected a count and one of the units "
            f"{', '.join(_UNIT_MS)} (for example '15m' or '1h')"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def pair_to_symbol(pair: str) -> str:
    """Convert a freqtrade spot pair (``"BTC/USDT"``) to a Binance symbol (``"BTCUSDT"``)."""
    base, quote = split_pair(pair)
    return base + quote


def split_pair(pair: str) -> tuple[str, str]:
    """Split a freqtrade spot pair into base and quote asset."""
    parts = pair.split("/")
    if len(parts) != 2 or not all(parts) or ":" in pair:
        raise ValueError(f"invalid spot pair {pair!r}: expected BASE/QUOTE such as 'BTC/USDT'")
    return parts[0], parts[1]


def candle_file(datadir: Path, pair: str, timeframe: str) -> Path:
    """Return the path of freqtrade's feather file for a spot pair and timeframe."""
    base, quote = split_pair(pair)
    return Path(datadir) / f"{base}_{quote}-{timeframe}.feather"


def discover_pairs(datadir: Path) -> dict[str, list[str]]:
    """List the spot pairs in a data folder, each with its timeframes sorted by length."""
    found: dict[str, list[str]] = {}
    for path in sorted(Path(datadir).glob("*.feather")):
        match = _SPOT_FILE_RE.match(path.stem)
        if match is None:
            logger.debug("Skipping %s: not a spot candle file", path.name)
            continue
        pair = f"{match['base']}/{match['quote']}"
        found.setdefault(pair, []).append(match["timeframe"])
    return {pair: sorted(tfs, key=timeframe_to_ms) for pair, tfs in found.items()}


@dataclass(frozen=True)
class CandleSeries:
    """Candles of one pair and timeframe, sorted by open time.

    open_ms: (N,) int64 open times in milliseconds since the epoch (data time, not shifted).
    ohlcv: (N, 5) float64 columns open, high, low, close, volume.
    """

    pair: str
    timeframe: str
    open_ms: np.ndarray
    ohlcv: np.ndarray

    @property
    def timeframe_ms(self) -> int:
        return timeframe_to_ms(self.timeframe)

    @property
    def first_open_ms(self) -> int:
        return int(self.open_ms[0])

    @property
    def last_open_ms(self) -> int:
        return int(self.open_ms[-1])

    @classmethod
    def from_frame(cls, pair: str, timeframe: str, frame: pd.DataFrame) -> CandleSeries:
        """Build a series from a frame with freqtrade's candle columns."""
        missing = [column for column in CANDLE_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(
                f"candles of {pair} {timeframe} lack the columns {missing}; "
                f"expected {list(CANDLE_COLUMNS)}"
            )
        if frame.empty:
            raise ValueError(f"candles of {pair} {timeframe} are empty")
        dates = pd.to_datetime(frame["date"], utc=True)
        open_ms = dates.astype("datetime64[ms, UTC]").astype("int64").to_numpy()
        order = np.argsort(open_ms, kind="stable")
        open_ms = open_ms[order]
        if np.any(np.diff(open_ms) <= 0):
            raise ValueError(f"candles of {pair} {timeframe} contain duplicate dates")
        ohlcv = frame[list(CANDLE_COLUMNS[1:])].to_numpy(dtype=np.float64)[order]
        return cls(pair=pair, timeframe=timeframe, open_ms=open_ms, ohlcv=ohlcv)

    def to_frame(self) -> pd.DataFrame:
        """Return the candles as a frame in freqtrade's column layout."""
        frame = pd.DataFrame(self.ohlcv, columns=list(CANDLE_COLUMNS[1:]))
        frame.insert(0, "date", pd.to_datetime(self.open_ms, unit="ms", utc=True))
        return frame


def resample_series(series: CandleSeries, timeframe: str) -> CandleSeries:
    """Aggregate a series to a longer timeframe that is a whole multiple of its own.

    Only complete groups are kept, so a coarse candle never mixes in missing fine candles.
    """
    source_ms = series.timeframe_ms
    target_ms = timeframe_to_ms(timeframe)
    if target_ms % source_ms != 0 or target_ms <= source_ms:
        raise ValueError(
            f"cannot resample {series.pair} from {series.timeframe} to {timeframe}: "
            "the target must be a whole multiple of the source timeframe"
        )
    bucket = series.open_ms - series.open_ms % target_ms
    frame = pd.DataFrame(series.ohlcv, columns=["open", "high", "low", "close", "volume"])
    frame["bucket"] = bucket
    grouped = frame.groupby("bucket", sort=True)
    coarse = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        count=("open", "size"),
    )
    coarse = coarse[coarse["count"] == target_ms // source_ms]
    return CandleSeries(
        pair=series.pair,
        timeframe=timeframe,
        open_ms=coarse.index.to_numpy(dtype=np.int64),
        ohlcv=coarse[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64),
    )


class CandleStore:
    """Candle series of several pairs, loaded from a freqtrade data folder.

    A timeframe that has no file is built on first request by resampling the finest loaded
    timeframe of that pair, when the finer one divides it.
    """

    def __init__(self, series: list[CandleSeries]) -> None:
        if not series:
            raise ValueError("a candle store needs at least one candle series")
        self._series: dict[tuple[str, str], CandleSeries] = {}
        for item in series:
            self._series[(item.pair, item.timeframe)] = item
        self._lock = threading.Lock()

    @classmethod
    def from_datadir(
        cls,
        datadir: Path | str,
        pairs: list[str] | None = None,
        timeframes: list[str] | None = None,
    ) -> CandleStore:
        """Load the feather files of ``pairs`` (default: every spot pair found) from ``datadir``.

        ``timeframes`` limits which files are read. Each pair needs at least one file.
        """
        datadir = Path(datadir)
        if not datadir.is_dir():
            raise ValueError(f"candle folder {datadir} does not exist; pass --datadir")
        available = discover_pairs(datadir)
        requested = pairs if pairs else sorted(available)
        if not requested:
            raise ValueError(
                f"no spot candle files (BASE_QUOTE-<timeframe>.feather) in {datadir}; "
                "run the download action or pass another --datadir"
            )
        series = []
        for pair in requested:
            split_pair(pair)
            pair_timeframes = available.get(pair, [])
            if timeframes is not None:
                pair_timeframes = [tf for tf in pair_timeframes if tf in timeframes]
            if not pair_timeframes:
                raise ValueError(
                    f"no candle file for {pair} in {datadir} (looked for "
                    f"{candle_file(datadir, pair, (timeframes or ['<timeframe>'])[0]).name}); "
                    "download it or drop the pair"
                )
            for timeframe in pair_timeframes:
                path = candle_file(datadir, pair, timeframe)
                frame = pd.read_feather(path)
                series.append(CandleSeries.from_frame(pair, timeframe, frame))
                logger.info("Loaded %d candles of %s %s from %s", len(frame), pair, timeframe, path)
        return cls(series)

    @property
    def pairs(self) -> list[str]:
        return sorted({pair for pair, _ in self._series})

    def timeframes(self, pair: str) -> list[str]:
        """Timeframes of ``pair`` loaded or resampled so far, shortest first."""
        return sorted((tf for p, tf in self._series if p == pair), key=timeframe_to_ms)

    def finest(self, pair: str) -> CandleSeries:
        """Return the shortest-timeframe series of ``pair``, the one prices are taken from."""
        timeframes = self.timeframes(pair)
        if not timeframes:
            raise KeyError(pair)
        return self._series[(pair, timeframes[0])]

    def has_pair(self, pair: str) -> bool:
        return any(p == pair for p, _ in self._series)

    def get(self, pair: str, timeframe: str) -> CandleSeries:
        """Return the series of ``pair`` at ``timeframe``, resampling a finer one if needed.

        Raises KeyError for an unknown pair and ValueError for a timeframe that can be neither
        loaded nor resampled.
        """
        key = (pair, timeframe)
        with self._lock:
            if key in self._series:
                return self._series[key]
            finest = self.finest(pair)
            target_ms = timeframe_to_ms(timeframe)
            if target_ms <= finest.timeframe_ms or target_ms % finest.timeframe_ms != 0:
                raise ValueError(
                    f"no {timeframe} candles for {pair}: the finest loaded timeframe is "
                    f"{finest.timeframe}, which does not divide {timeframe}"
                )
            resampled = resample_series(finest, timeframe)
            logger.info(
                "Resampled %s from %s to %s (%d candles)",
                pair,
                finest.timeframe,
                timeframe,
                len(resampled.open_ms),
            )
            self._series[key] = resampled
            return resampled


def write_candles(frame: pd.DataFrame, datadir: Path | str, pair: str, timeframe: str) -> Path:
    """Write a candle frame as freqtrade's feather file and return its path."""
    path = candle_file(Path(datadir), pair, timeframe)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    frame.to_feather(path, compression_level=9, compression="lz4")
    return path
