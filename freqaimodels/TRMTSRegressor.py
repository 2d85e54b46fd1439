"""FreqAI regressor for the TRM-TS model: a thin shell around ``trm_ts.freqai``.

Usage, from the repository root: ``freqtrade backtesting -c configs/config_trm_ts.json
--datadir ../shared/data/binance --strategy TRMTSStrategy --freqaimodel TRMTSRegressor``.
The configs set ``strategy_path`` and ``freqaimodel_path`` relative to the working
directory. freqtrade 2026.9 takes the candle folder only from ``--datadir`` (a config
``datadir`` key is ignored, and the default is ``user_data/data/binance``), and resolves a
relative ``--datadir`` against the working directory. Hyperparameters live in
``freqai.model_training_parameters`` and are parsed by ``trm_ts.freqai.TRMTSParams``, which
rejects unknown keys.

Nothing defined in this file is pickled, because freqtrade imports it from a path and pickle
could not import it again. The persisted model is ``trm_ts.freqai.TRMTSFreqaiModel``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from datasieve.pipeline import Pipeline
from freqtrade.freqai.base_models.BaseRegressionModel import BaseRegressionModel
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
from pandas import DataFrame

from trm_ts.freqai import TRMTSAdapter, TRMTSFreqaiModel

logger = logging.getLogger(__name__)


class TRMTSRegressor(BaseRegressionModel):
    """Predicts mean and sigma of the forward log return for every candle.

    The strategy must declare the labels ``&-s_return`` and ``&-s_return_sigma``. The
    predicted mean is returned in the first and the predicted sigma in the second, both in
    raw log-return units.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = TRMTSAdapter(self.freqai_info, self.config["timeframe"])
        # Live, FreqAI predicts on the last CONV_WIDTH candles: one full window.
        self.CONV_WIDTH = self.adapter.params.window
        self._newest_prediction: tuple[DataFrame, npt.NDArray[np.int_]] | None = None

    def define_data_pipeline(self, threads: int = -1) -> Pipeline:
        return self.adapter.wrap_feature_pipeline(super().define_data_pipeline(threads))

    def define_label_pipeline(self, threads: int = -1) -> Pipeline:
        return self.adapter.label_pipeline()

    def train(
        self, unfiltered_df: DataFrame, pair: str, dk: FreqaiDataKitchen, **kwargs: Any
    ) -> TRMTSFreqaiModel:
        fit_label_statistics = (
            not self.freqai_info.get("fit_live_predictions_candles", 0) or not self.live
        )
        previous = self.dd.model_dictionary.get(pair) if self.continual_learning else None
        return self.adapter.train(
            unfiltered_df,
            pair,
            dk,
            feature_pipeline=self.define_data_pipeline(threads=dk.thread_count),
            label_pipeline=self.define_label_pipeline(threads=dk.thread_count),
            fit_label_statistics=fit_label_statistics,
            init_model=previous if isinstance(previous, TRMTSFreqaiModel) else None,
            tensorboard=self.activate_tensorboard,
        )

    def fit(self, data_dictionary: dict[str, Any], dk: FreqaiDataKitchen, **kwargs: Any) -> Any:
        # FreqAI calls fit only from the base train(), which this class replaces.
        raise NotImplementedError("TRMTSRegressor trains through train(); fit() is not used")

    def predict(
        self, unfiltered_df: DataFrame, dk: FreqaiDataKitchen, **kwargs: Any
    ) -> tuple[DataFrame, npt.NDArray[np.int_]]:
        pred, do_predict = self.adapter.predict(self.model, unfiltered_df, dk)
        # FreqAI adds bookkeeping columns to the frame it gets, so keep an unmodified copy.
        self._newest_prediction = (pred.copy(), do_predict.copy())
        return pred, do_predict

    def build_strategy_return_arrays(
        self, dataframe: DataFrame, dk: FreqaiDataKitchen, pair: str, trained_timestamp: int
    ) -> None:
        first_call = pair not in self.dd.model_return_values
        super().build_strategy_return_arrays(dataframe, dk, pair, trained_timestamp)
        if not first_call or self._newest_prediction is None:
            return
        # On the first live call (also after a restart) FreqAI records the whole frame with
        # do_predict=0 or zeros. The newest candle's prediction is a real out-of-sample one,
        # so it is written back with FreqAI's own append step, as on every later candle.
        pred, do_predict = self._newest_prediction
        self.dd.append_model_predictions(pair, pred, do_predict, dk, dataframe)
        dk.return_dataframe = self.dd.attach_return_values_to_return_dataframe(pair, dataframe)
