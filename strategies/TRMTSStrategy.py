"""TRMTSStrategy: trades the mean and uncertainty that TRMTSRegressor forecasts.

Features, regime and calendar math live in ``trm_ts.features`` so that the standalone CLI
computes the same values; stake sizing lives in ``trm_ts.sizing``. This file only wires
them into freqtrade's hooks.

Signals, with ``mean`` and ``sigma`` the forecast of the log return over
``label_period_candles`` and ``fee`` the round-trip fee ratio:

- enter long when ``do_predict == 1`` and ``mean > entry_sigma * sigma + fee``; enter short
  (futures only) when ``-mean > entry_sigma * sigma + fee``;
- exit a long when ``mean < exit_sigma * sigma`` and a short when ``-mean < exit_sigma * sigma``
  (with the default ``exit_sigma = 0`` this is the forecast turning against the trade);
- stop at ``stop_sigma`` forecast sigmas below the entry (above for shorts), within
  ``[STOP_MIN, -stoploss]``.

Missing forecasts (no model yet, ``do_predict != 1``, NaN) give neither entries nor exits.

Config keys read beside freqtrade's own:

- ``trm_ts_stake_sizing``: fields of ``trm_ts.sizing.StakeSizingConfig`` (unknown keys raise);
  ``round_trip_fee`` defaults to twice the config's ``fee``, else twice ``DEFAULT_FEE``.
- ``trm_ts_feature_audit``: true merges FreqAI's ``%`` feature columns back into the returned
  dataframe, so that ``freqtrade lookahead-analysis`` and ``recursive-analysis`` compare them.
  Meant for those analyses only (``trm_ts.analysis`` sets it).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from freqtrade.exchange import timeframe_to_minutes
from freqtrade.persistence import Trade
from freqtrade.strategy import DecimalParameter, IStrategy, stoploss_from_open

from trm_ts import columns, features, sizing
from trm_ts.data import forward_log_return

logger = logging.getLogger(__name__)

# Columns the strategy adds for signals and plots.
MEAN = "trm_mean"
SIGMA = "trm_sigma"
UPPER = "trm_upper"
LOWER = "trm_lower"
ENTRY_THRESHOLD = "trm_entry_threshold"
VALID = "trm_valid"

# Config key that returns FreqAI's % feature columns to the strategy's dataframe.
AUDIT_KEY = "trm_ts_feature_audit"


class TRMTSStrategy(IStrategy):
    """FreqAI strategy that enters on a forecast mean beating its sigma and the fees."""

    INTERFACE_VERSION = 3

    timeframe = "15m"
    can_short = False  # set from trading_mode in __init__
    process_only_new_candles = True
    # Covers INDICATOR_WARMUP (96) plus 3 shifted candles on a 1h informative timeframe;
    # bot_start checks it against the configured timeframes.
    startup_candle_count = 400

    # Exits come from the forecast and the sigma stop, so ROI is disabled.
    minimal_roi = {"0": 100.0}
    # Hard cap for custom_stoploss, which never widens the stop beyond it.
    stoploss = -0.10
    use_custom_stoploss = True
    use_exit_signal = True
    exit_profit_only = False

    # Binance spot fee per side (0.1 %), used when the config sets no "fee".
    DEFAULT_FEE = 0.001
    # Tightest stop distance; a smaller sigma-based stop would trip on candle noise.
    STOP_MIN = 0.005

    # entry_sigma 0.05: in one backtest of the CI config's week (2026-01-01 to 01-08, five
    # pairs, two epochs) the forecast met it on about 6 % of ETH/USDT candles and on no other
    # pair's. Larger multiples almost never trade, because the forecast mean is small next to
    # the 0.2 % round-trip fee. Hyperopt searches the ranges.
    entry_sigma = DecimalParameter(0.0, 1.0, default=0.05, decimals=2, space="buy")
    exit_sigma = DecimalParameter(-0.5, 0.5, default=0.0, decimals=2, space="sell")
    stop_sigma = DecimalParameter(1.0, 6.0, default=3.0, decimals=1, space="sell")

    plot_config = {
        "main_plot": {},
        "subplots": {
            "forecast": {
                UPPER: {
                    "color": "rgba(70, 130, 180, 0.4)",
                    "fill_to": LOWER,
                    "fill_label": "mean +/- sigma",
                    "fill_color": "rgba(70,130,180,0.15)",
                },
                LOWER: {"color": "rgba(70, 130, 180, 0.4)"},
                MEAN: {"color": "steelblue"},
                ENTRY_THRESHOLD: {"color": "green"},
            },
            "do_predict": {"do_predict": {"color": "gray"}},
        },
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.can_short = str(config.get("trading_mode", "spot")) == "futures"
        self._logged_gap_counts: dict[tuple, int] = {}
        # Feature audit (for lookahead-analysis and recursive-analysis): FreqAI strips the %
        # columns before returning the dataframe, so they are merged back by date.
        self._audit_features = bool(config.get(AUDIT_KEY, False))
        self._audit_kitchens: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------
    # Configuration
    # ----------------------------------------------------------------------------------

    @property
    def _feature_parameters(self) -> dict[str, Any]:
        return self.config.get("freqai", {}).get("feature_parameters", {})

    @cached_property
    def _reference_pair(self) -> str | None:
        """First pair of include_corr_pairlist; correlation and beta are measured against it."""
        pairs = self._feature_parameters.get("include_corr_pairlist", [])
        return pairs[0] if pairs else None

    @cached_property
    def _round_trip_fee(self) -> float:
        fee = self.config.get("fee")
        return 2.0 * float(fee if fee is not None else self.DEFAULT_FEE)

    @cached_property
    def _sizing(self) -> sizing.StakeSizingConfig:
        values = dict(self.config.get("trm_ts_stake_sizing", {}))
        values.setdefault("round_trip_fee", self._round_trip_fee)
        return sizing.StakeSizingConfig.from_dict(values)

    def bot_start(self, **kwargs) -> None:
        """Check the FreqAI settings the features rely on before any candle is processed."""
        params = self._feature_parameters
        if not self.config.get("freqai", {}).get("enabled", False):
            raise ValueError("TRMTSStrategy needs FreqAI: set freqai.enabled to true")
        timeframes = list(params.get("include_timeframes", [self.timeframe]))
        shifted = int(params.get("include_shifted_candles", 0))
        needed = features.required_startup_candles(self.timeframe, timeframes, shifted)
        if self.startup_candle_count < needed:
            raise ValueError(
                f"startup_candle_count={self.startup_candle_count} is too small for "
                f"include_timeframes={timeframes} with include_shifted_candles={shifted}: the "
                f"features need {needed} {self.timeframe} candles; set startup_candle_count "
                f">= {needed} in the config"
            )
        _ = self._sizing  # raises on an invalid trm_ts_stake_sizing section
        logger.info(
            "TRMTSStrategy: timeframes %s, context pairs %s, startup %d candles (needs %d), "
            "shorts %s",
            timeframes,
            params.get("include_corr_pairlist", []),
            self.startup_candle_count,
            needed,
            "on" if self.can_short else "off",
        )

    # ----------------------------------------------------------------------------------
    # FreqAI features and targets, in the order FreqAI calls them
    # ----------------------------------------------------------------------------------

    def feature_engineering_expand_all(
        self, dataframe: pd.DataFrame, period: int, metadata: dict, **kwargs
    ) -> pd.DataFrame:
        """Add no features: indicator periods are fixed in trm_ts.features.

        The standalone CLI computes the same columns without FreqAI's period expansion, so
        ``indicator_periods_candles`` only raises freqtrade's startup candle count here.
        """
        return dataframe

    def feature_engineering_expand_basic(
        self, dataframe: pd.DataFrame, metadata: dict, **kwargs
    ) -> pd.DataFrame:
        """Add indicator and context features for one pair and timeframe.

        FreqAI calls this for the traded pair and for every include_corr_pairlist pair, and
        suffixes the columns with ``_gen_<pair>_<tf>``.
        """
        pair, timeframe = metadata["pair"], metadata["tf"]
        if dataframe.empty:
            raise ValueError(
                f"no {timeframe} candles for {pair}; it is in the whitelist or in "
                "freqai.feature_parameters.include_corr_pairlist, so download its data for "
                "the same timerange or remove it from the config"
            )

        indicators = features.indicator_features(dataframe)
        for name in indicators.columns:
            dataframe[f"%-{name}"] = indicators[name]
        context = features.context_returns(dataframe)
        for name in context.columns:
            dataframe[f"%-{name}"] = context[name]
        self._log_context_gaps(pair, timeframe, "its own filled candles", context)

        reference = self._reference_pair
        if reference is not None and pair != reference:
            # NOTE: in dry/live runs FreqAI trains on its stored history, while the DataProvider
            # serves the exchange's candle cache, which may start later. Training rows before
            # its first candle then get NaN context, and FreqAI drops them.
            reference_candles = self.dp.get_pair_dataframe(pair=reference, timeframe=timeframe)
            if reference_candles.empty:
                raise ValueError(
                    f"no {timeframe} candles for the context pair {reference} (first entry of "
                    "include_corr_pairlist); download its data for the same timerange"
                )
            relation = features.pair_context(dataframe, reference_candles)
            for name in relation.columns:
                dataframe[f"%-{name}"] = relation[name]
            self._log_context_gaps(pair, timeframe, f"gaps in {pair} or {reference}", relation)

        # Carried through FreqAI's forward-filling merge so set_freqai_targets can spot gaps.
        dataframe[features.SOURCE_MINUTE] = features.epoch_minutes(dataframe["date"])
        return dataframe

    def _log_context_gaps(
        self, pair: str, timeframe: str, cause: str, context: pd.DataFrame
    ) -> None:
        """Log how many rows after warm-up lost context features, once per new count."""
        count = int(context.iloc[features.INDICATOR_WARMUP :].isna().any(axis=1).sum())
        key = (pair, timeframe, tuple(context.columns))
        if count == 0 or self._logged_gap_counts.get(key) == count:
            return
        self._logged_gap_counts[key] = count
        logger.warning(
            "%s %s: %d rows have NaN %s because of %s; FreqAI drops them in training and "
            "predicts with do_predict=0 on them",
            pair,
            timeframe,
            count,
            "/".join(context.columns),
            cause,
        )

    def feature_engineering_standard(
        self, dataframe: pd.DataFrame, metadata: dict, **kwargs
    ) -> pd.DataFrame:
        """Add the categorical regime, hour and day-of-week indices of the traded pair."""
        dataframe[columns.REGIME] = features.regime_index(dataframe)
        hour, day_of_week = features.calendar_indices(dataframe["date"])
        dataframe[columns.HOUR] = hour
        dataframe[columns.DAY_OF_WEEK] = day_of_week
        return dataframe

    def set_freqai_targets(self, dataframe: pd.DataFrame, metadata: dict, **kwargs) -> pd.DataFrame:
        """Add the forward log return target and blank context merged across data gaps.

        Blanking happens here because, in freqtrade 2026.9, this is the first hook to receive
        the context pairs' columns: FreqAI merges them after feature_engineering_standard.
        """
        horizon = int(self._feature_parameters["label_period_candles"])
        target = forward_log_return(dataframe["close"], horizon)
        dataframe[columns.TARGET] = target
        # Placeholder label so FreqAI keeps statistics for the column the regressor fills
        # with its sigma forecast.
        dataframe[columns.SIGMA] = target.abs()

        # NOTE: in dry/live runs FreqAI attaches cached context columns to every pair after the
        # first one of a candle only after this hook, so those columns are not checked here.
        base_minutes = timeframe_to_minutes(self.timeframe)
        for suffix, count in features.mask_stale_context(dataframe, base_minutes).items():
            logger.warning(
                "%s: %d rows merged %s features across a gap in its candles; they are set "
                "to NaN, so FreqAI drops them in training and sets do_predict=0 on them",
                metadata.get("pair"),
                count,
                suffix,
            )
        if self._audit_features and getattr(self, "freqai", None) is not None:
            # FreqAI's data kitchen ends up holding every row with its features; the dataframe
            # here stops before the last backtest window's end.
            self._audit_kitchens[metadata["pair"]] = self.freqai.dk
        return dataframe

    # ----------------------------------------------------------------------------------
    # Indicators and signals
    # ----------------------------------------------------------------------------------

    def populate_indicators(self, dataframe: pd.DataFrame, metadata: dict) -> pd.DataFrame:
        dataframe = self.freqai.start(dataframe, metadata, self)
        dataframe = self._merge_audit_features(dataframe, metadata["pair"])
        return self.add_forecast_columns(dataframe)

    def _merge_audit_features(self, dataframe: pd.DataFrame, pair: str) -> pd.DataFrame:
        """Merge FreqAI's % features back by date when the feature audit is on."""
        kitchen = self._audit_kitchens.pop(pair, None)
        populated = getattr(kitchen, "return_dataframe", None)
        if populated is None or populated.empty:
            return dataframe
        names = [c for c in populated.columns if c.startswith("%") and c not in dataframe]
        return dataframe.merge(populated[["date", *names]], on="date", how="left")

    def add_forecast_columns(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        """Copy FreqAI's forecast into the signal and plot columns, NaN where it is invalid."""
        mean = _numeric(dataframe, columns.TARGET)
        sigma = _numeric(dataframe, columns.SIGMA)
        do_predict = _numeric(dataframe, "do_predict")
        valid = (do_predict == 1) & np.isfinite(mean) & np.isfinite(sigma) & (sigma > 0)

        dataframe[VALID] = valid
        dataframe[MEAN] = mean.where(valid)
        dataframe[SIGMA] = sigma.where(valid)
        dataframe[UPPER] = dataframe[MEAN] + dataframe[SIGMA]
        dataframe[LOWER] = dataframe[MEAN] - dataframe[SIGMA]
        dataframe[ENTRY_THRESHOLD] = (
            self.entry_sigma.value * dataframe[SIGMA] + self._round_trip_fee
        )
        return dataframe

    def populate_entry_trend(self, dataframe: pd.DataFrame, metadata: dict) -> pd.DataFrame:
        valid = dataframe[VALID].astype(bool)
        threshold = dataframe[ENTRY_THRESHOLD]
        dataframe.loc[valid & (dataframe[MEAN] > threshold), ["enter_long", "enter_tag"]] = (
            1,
            "trm_long",
        )
        if self.can_short:
            dataframe.loc[valid & (-dataframe[MEAN] > threshold), ["enter_short", "enter_tag"]] = (
                1,
                "trm_short",
            )
        return dataframe

    def populate_exit_trend(self, dataframe: pd.DataFrame, metadata: dict) -> pd.DataFrame:
        valid = dataframe[VALID].astype(bool)
        floor = self.exit_sigma.value * dataframe[SIGMA]
        dataframe.loc[valid & (dataframe[MEAN] < floor), "exit_long"] = 1
        if self.can_short:
            dataframe.loc[valid & (-dataframe[MEAN] < floor), "exit_short"] = 1
        return dataframe

    # ----------------------------------------------------------------------------------
    # Sizing and stops
    # ----------------------------------------------------------------------------------

    def _latest_forecast(self, pair: str, before: datetime | None = None) -> tuple[float, float]:
        """Return (mean, sigma) of the newest valid candle, or NaNs when there is none.

        before: only candles that open before this time count (the entry's signal candle).
        """
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if dataframe is None or dataframe.empty or VALID not in dataframe.columns:
            return math.nan, math.nan
        if before is not None:
            dataframe = dataframe.loc[dataframe["date"] < before]
            if dataframe.empty:
                return math.nan, math.nan
        last = dataframe.iloc[-1]
        if not bool(last[VALID]):
            return math.nan, math.nan
        return float(last[MEAN]), float(last[SIGMA])

    def custom_stake_amount(
        self,
        pair: str,
        current_time: datetime,
        current_rate: float,
        proposed_stake: float,
        min_stake: float | None,
        max_stake: float,
        leverage: float,
        entry_tag: str | None,
        side: str,
        **kwargs,
    ) -> float:
        """Size the entry with a capped fractional Kelly rule on this pair's forecast.

        Returns 0 (skip) when the pair has no valid forecast or its edge is too small.
        """
        mean, sigma = self._latest_forecast(pair)
        return sizing.stake_amount(
            mean, sigma, side, proposed_stake, min_stake, max_stake, self._sizing
        )

    def custom_stoploss(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        after_fill: bool,
        **kwargs,
    ) -> float | None:
        """Stop ``stop_sigma`` forecast sigmas from the entry price, clamped to the hard cap.

        Uses the sigma of the entry's signal candle, or the newest one when that candle has
        left the analyzed window. Returns None (keep the current stop) without a forecast.
        """
        signal_time = trade.open_date_utc - timedelta(minutes=timeframe_to_minutes(self.timeframe))
        _, sigma = self._latest_forecast(pair, before=signal_time + timedelta(seconds=1))
        if not math.isfinite(sigma):
            _, sigma = self._latest_forecast(pair)
        if not math.isfinite(sigma):
            return None
        distance = min(max(self.stop_sigma.value * sigma, self.STOP_MIN), -self.stoploss)
        return (
            stoploss_from_open(
                -distance, current_profit, is_short=trade.is_short, leverage=trade.leverage
            )
            or None
        )


def _numeric(dataframe: pd.DataFrame, column: str) -> pd.Series:
    """Return a float column, or all-NaN when FreqAI has not produced it."""
    if column not in dataframe.columns:
        return pd.Series(np.nan, index=dataframe.index, dtype="float64")
    return pd.to_numeric(dataframe[column], errors="coerce").astype("float64")
