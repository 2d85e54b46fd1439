"""Training and prediction of TRM-TS inside FreqAI, behind ``freqaimodels/TRMTSRegressor.py``.

Design (freqtrade 2026.9):

Persistence. FreqAI's default model_save_type "joblib" cloudpickles whatever ``train``
returns and unpickles it in later backtests, after dry-run restarts and with
``continual_learning``. ``train`` returns a ``TRMTSFreqaiModel`` (``trm_ts.freqai.state``): a
small class from the installed package whose pickled state is a ``torch.save`` byte string of
plain data, read back with ``weights_only=True`` onto the CPU. Nothing from the
``freqaimodels/`` file is pickled: freqtrade imports that file from a path, so pickle could not
import it again. The "pytorch" save type is avoided because its loader unpickles a trainer
object with ``weights_only=False``.

Feature pipeline. FreqAI's default steps (constant-column removal, min-max scaling, optional
dissimilarity index and noise) are kept, each wrapped in ``PassthroughColumns`` so that
``%-regime``, ``%-hour`` and ``%-day_of_week`` bypass them and reach the embeddings as the
exact integers the strategy computed. PCA (renames columns) and SVM/DBSCAN (remove training
rows) are rejected, as are shuffling options that destroy candle order.

Label pipeline. ``TargetSigmaScaler`` standardizes ``&-s_return`` and maps ``&-s_return_sigma``
by the scale only. The network predicts mean and log-variance of the standardized target.
``predict`` writes the mean into ``&-s_return`` and ``sigma = exp(logvar / 2)`` into
``&-s_return_sigma``, so the label pipeline's inverse transform returns both in raw
log-return units. Both columns are declared ``&`` labels, so FreqAI's live path
(``append_model_predictions``) finds label statistics for each of them.

History. A window of T candles needs T - 1 candles before the newest one. The persisted
model keeps the raw features and dates of the last T - 1 training candles. In backtesting,
the training range ends where the predicted chunk begins (with
``buffer_train_data_candles`` 0), so these rows give the chunk's first candles their real
history. Rows are joined by date, and a window counts only if its candles are consecutive and
finite. Every other candle gets ``do_predict = 0`` and placeholder predictions of 0.
With ``buffer_train_data_candles`` above 0 the tail ends that many candles early, so the
chunk's first T - 1 candles get ``do_predict = 0``. Live, FreqAI passes the last
``CONV_WIDTH`` candles, and the regressor sets ``CONV_WIDTH`` to the window. FreqAI records
its first live call (also the first after a restart) with ``do_predict = 0``, so the regressor
writes the newest candle's prediction back with FreqAI's own ``append_model_predictions``.

Drift. Columns are selected by name everywhere. If the current data lacks a column the saved
model needs, prediction logs a warning naming it and returns ``do_predict = 0``. With
``continual_learning``, a previous model is reused only when its routed column sets equal the
new ones, and its column order is then adopted by name. Otherwise a warning names the
difference and training starts from scratch.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from datasieve.pipeline import Pipeline
from freqtrade.exchange import timeframe_to_seconds
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen

from trm_ts import columns
from trm_ts.checkpoint import checkpoint_payload
from trm_ts.data import WindowSet
from trm_ts.freqai.params import TRMTSParams
from trm_ts.freqai.pipeline import PassthroughColumns, TargetSigmaScaler
from trm_ts.freqai.state import TRMTSFreqaiModel
from trm_ts.freqai.windows import (
    ColumnRoles,
    categorical_arrays,
    dates_to_ns,
    prepend_history,
    window_end_mask,
)
from trm_ts.model import TRMTS, trm_ts
from trm_ts.training import EpochLog, TrainConfig, fit, predict

logger = logging.getLogger(__name__)

# FreqAI settings that cannot work with windowed, name-routed inputs:
# key in feature_parameters -> reason.
UNSUPPORTED_FEATURE_PARAMETERS = {
    "principal_component_analysis": "PCA replaces the named columns that route model inputs",
    "use_SVM_to_remove_outliers": "SVM outlier removal deletes training rows inside windows",
    "use_DBSCAN_to_remove_outliers": "DBSCAN outlier removal deletes training rows inside windows",
    "shuffle_after_split": "shuffling breaks the candle order that windows need",
}
# The network's learned position table must cover the window.
MIN_MAX_LEN = 256


class TRMTSAdapter:
    """TRM-TS training and prediction on FreqAI data kitchens, configured once per bot."""

    def __init__(self, freqai_info: dict[str, Any], timeframe: str) -> None:
        self.params = TRMTSParams.from_config(freqai_info.get("model_training_parameters"))
        self.device = self.params.resolve_device()
        self.timeframe_seconds = int(timeframe_to_seconds(timeframe))
        check_freqai_settings(freqai_info, self.params)

    # Pipelines ----------------------------------------------------------------------------

    def wrap_feature_pipeline(self, pipeline: Pipeline) -> Pipeline:
        """Return FreqAI's feature pipeline with every step routing categoricals around it."""
        steps = [
            (name, PassthroughColumns(step, columns.CATEGORICAL, name=name))
            for name, step in pipeline.steps
        ]
        return Pipeline(steps)

    @staticmethod
    def label_pipeline() -> Pipeline:
        """Return the label pipeline: standardized target, sigma scaled by the same factor."""
        return Pipeline([("scaler", TargetSigmaScaler(columns.TARGET, columns.SIGMA))])

    # Training -----------------------------------------------------------------------------

    def train(
        self,
        unfiltered_df: pd.DataFrame,
        pair: str,
        dk: FreqaiDataKitchen,
        *,
        feature_pipeline: Pipeline,
        label_pipeline: Pipeline,
        fit_label_statistics: bool,
        init_model: TRMTSFreqaiModel | None = None,
        tensorboard: bool = False,
    ) -> TRMTSFreqaiModel:
        """Train one model on FreqAI's training slice and return the object FreqAI persists.

        ``fit_label_statistics`` mirrors FreqAI's base models: label mean/std statistics
        come from the training labels unless ``fit_live_predictions_candles`` is set live.
        """
        started = time.perf_counter()
        check_labels(dk.label_list)
        raw_names = [str(n) for n in dk.training_features_list]
        ColumnRoles.from_columns(raw_names)  # fail early on a strategy without sequence features
        logger.info(
            "TRM-TS training start: pair=%s rows=%d features=%d window=%d epochs<=%d device=%s",
            pair,
            len(unfiltered_df),
            len(raw_names),
            self.params.window,
            self.params.epochs,
            self.device,
        )

        # FreqAI's row filter and chronological train/test split. Both keep the original
        # row labels, which map every row back to its candle date.
        features, labels = dk.filter_features(
            unfiltered_df, raw_names, dk.label_list, training_filter=True
        )
        dd = dk.make_train_test_datasets(features, labels)
        train_rows = dd["train_features"].index
        test_rows = dd["test_features"].index
        if len(test_rows) == 0:
            raise ValueError(
                f"{pair}: the test split is empty; set freqai.data_split_parameters.test_size "
                f"above 0 so early stopping has validation windows"
            )
        if fit_label_statistics:
            dk.fit_labels()

        # Pipelines: fit on training rows, apply to test rows without removing any.
        dk.feature_pipeline = feature_pipeline
        dk.label_pipeline = label_pipeline
        x_train, dd["train_labels"], dd["train_weights"] = feature_pipeline.fit_transform(
            dd["train_features"], dd["train_labels"], dd["train_weights"]
        )
        x_test, test_inlier, _ = feature_pipeline.transform(
            dd["test_features"], outlier_check=True
        )
        for split, rows, frame in (("train", train_rows, x_train), ("test", test_rows, x_test)):
            if len(frame) != len(rows):
                raise ValueError(
                    f"{pair}: the feature pipeline changed the {split} row count from "
                    f"{len(rows)} to {len(frame)}; disable row-removing outlier steps"
                )
        dd["train_features"], dd["test_features"] = x_train, x_test
        dd["train_labels"], _, _ = label_pipeline.fit_transform(dd["train_labels"])
        dd["test_labels"], _, _ = label_pipeline.transform(dd["test_labels"])

        # One date-sorted row table over both splits, so validation windows may reach back
        # into training candles for their history (features only, never labels).
        roles = ColumnRoles.from_columns(list(x_train.columns))
        roles, init_model = match_previous_model(roles, init_model, pair)
        frame = pd.concat([x_train, x_test], axis=0, ignore_index=True)
        target = np.concatenate(
            [
                dd["train_labels"][columns.TARGET].to_numpy(dtype=float),
                dd["test_labels"][columns.TARGET].to_numpy(dtype=float),
            ]
        )
        row_labels = np.concatenate([train_rows.to_numpy(), test_rows.to_numpy()])
        dates = dates_to_ns(unfiltered_df.loc[row_labels, "date"])
        is_train = np.concatenate([np.ones(len(x_train), bool), np.zeros(len(x_test), bool)])
        inlier = np.concatenate([np.ones(len(x_train), bool), np.asarray(test_inlier) == 1])
        order = np.argsort(dates, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        target, dates = target[order], dates[order]
        is_train, inlier = is_train[order], inlier[order]

        rows, row_ok = self.window_rows(
            frame, roles, target[:, None], self.params.window, self.params.n_regimes
        )
        end_ok = window_end_mask(dates, row_ok, self.params.window, self.step_ns)
        end_ok &= np.isfinite(target)
        train_ends = np.flatnonzero(end_ok & is_train)
        valid_ends = np.flatnonzero(end_ok & ~is_train & inlier)
        if len(train_ends) == 0 or len(valid_ends) == 0:
            raise ValueError(
                f"{pair}: {len(train_ends)} training and {len(valid_ends)} test windows of "
                f"{self.params.window} consecutive candles; lower "
                f"model_training_parameters.window or raise train_period_days/test_size"
            )
        train_set = rows.subset(train_ends)
        valid_set = rows.subset(valid_ends)

        # Network and the library's Gaussian NLL training loop.
        # Seed the weight initialization too, so a run does not depend on what used the
        # global torch generator before it. fit() seeds the training loop itself.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.params.seed)
            network = self._build_network(roles)
        if init_model is not None:
            previous_config = dict(init_model.payload["checkpoint"]["model_config"])
            if previous_config != network.config.to_dict():
                logger.warning(
                    "%s: continual learning: the network settings changed from %s to %s; "
                    "training from scratch",
                    pair,
                    previous_config,
                    network.config.to_dict(),
                )
                init_model = None
            else:
                network.load_state_dict(init_model.state_dict_cpu())
        writer = _tensorboard_writer(dk, tensorboard)
        try:
            result = fit(
                network,
                train_set,
                valid_set,
                self.train_config(),
                on_epoch=_epoch_logger(pair, self.params.epochs, writer),
            )
        finally:
            if writer is not None:
                writer.close()

        model = TRMTSFreqaiModel(
            {
                "checkpoint": checkpoint_payload(
                    network,
                    list(roles.sequence),
                    target_scaler={
                        "center": label_pipeline["scaler"].center,
                        "scale": label_pipeline["scaler"].scale,
                    },
                ),
                "params": self.params.to_dict(),
                "roles": roles.to_dict(),
                "raw_feature_names": raw_names,
                **self._history_tail(unfiltered_df, raw_names),
                "timeframe_seconds": self.timeframe_seconds,
                "fit": {
                    "epochs_run": result.epochs_run,
                    "best_epoch": result.best_epoch,
                    "best_valid_nll": result.best_valid_nll,
                    "stopped_early": result.stopped_early,
                    "train_windows": len(train_set),
                    "valid_windows": len(valid_set),
                    "warm_start": init_model is not None,
                },
            }
        )
        logger.info(
            "TRM-TS training end: pair=%s rows=%d (train windows %d, test windows %d) "
            "features=%d (sequence %d, context %d, categorical %d) epochs_run=%d "
            "best_epoch=%d best_test_nll=%.5f warm_start=%s seconds=%.1f",
            pair,
            len(frame),
            len(train_set),
            len(valid_set),
            len(roles.all_columns),
            len(roles.sequence),
            len(roles.context),
            len(roles.categorical),
            result.epochs_run,
            result.best_epoch,
            result.best_valid_nll,
            init_model is not None,
            time.perf_counter() - started,
        )
        return model

    def train_config(self) -> TrainConfig:
        """Return the library's training-loop settings for these hyperparameters."""
        p = self.params
        return TrainConfig(
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.learning_rate,
            weight_decay=p.weight_decay,
            grad_clip=p.grad_clip,
            patience=p.patience,
            deep_supervision=p.deep_supervision,
            device=self.device,
            seed=p.seed,
        )

    @property
    def step_ns(self) -> int:
        """Candle length in nanoseconds."""
        return self.timeframe_seconds * 1_000_000_000

    def _build_network(self, roles: ColumnRoles) -> TRMTS:
        p = self.params
        return trm_ts(
            n_features=len(roles.sequence),
            latent_dim=p.latent_dim,
            recursive_steps=p.recursive_steps,
            multi_scales=p.multi_scales,
            n_regimes=p.n_regimes,
            ctx_dim=len(roles.context),
            attn_heads=p.attn_heads,
            dropout=p.dropout,
            max_len=max(MIN_MAX_LEN, p.window),
        )

    @staticmethod
    def window_rows(
        frame: pd.DataFrame,
        roles: ColumnRoles,
        target: np.ndarray | None,
        window: int,
        n_regimes: int,
    ) -> tuple[WindowSet, np.ndarray]:
        """Return a WindowSet over all rows of ``frame`` (no ends yet) and the usable-row mask.

        A row is usable when its sequence and context features are finite and its
        categorical values are valid embedding indices.
        """
        seq = np.array(frame[list(roles.sequence)], dtype=np.float32)  # (N, F)
        ctx = np.array(frame[list(roles.context)], dtype=np.float32) if roles.context else None
        cats, row_ok = categorical_arrays(frame, roles, n_regimes)
        row_ok &= np.isfinite(seq).all(axis=1)
        if ctx is not None:
            row_ok &= np.isfinite(ctx).all(axis=1)
        # Unusable rows are zeroed so that no NaN reaches a tensor. window_end_mask excludes
        # every window that contains one, so the zeros never feed a prediction.
        seq[~row_ok] = 0.0
        if ctx is not None:
            ctx[~row_ok] = 0.0
        if target is None:
            target = np.full((len(frame), 1), np.nan, dtype=np.float32)
        rows = WindowSet(
            features=seq,
            target=target.astype(np.float32),
            ends=np.empty(0, dtype=np.int64),
            window=window,
            regime=cats.get("regime"),
            hour=cats.get("hour"),
            day_of_week=cats.get("day_of_week"),
            ctx=ctx,
        )
        return rows, row_ok

    def _history_tail(self, unfiltered_df: pd.DataFrame, raw_names: list[str]) -> dict:
        tail = unfiltered_df.tail(self.params.window - 1)
        values = tail[raw_names].to_numpy(dtype=np.float64)
        values = np.where(np.isfinite(values), values, np.nan)
        return {
            "history_dates": torch.as_tensor(dates_to_ns(tail["date"]), dtype=torch.int64),
            "history_values": torch.as_tensor(values, dtype=torch.float64),
        }

    # Prediction ---------------------------------------------------------------------------

    def predict(
        self, model: TRMTSFreqaiModel, unfiltered_df: pd.DataFrame, dk: FreqaiDataKitchen
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Predict mean and sigma for every candle of ``unfiltered_df`` in raw target units.

        Returns the prediction frame (columns ``dk.label_list``, one row per candle) and
        ``do_predict`` (1 where the candle got a real prediction, 0 elsewhere).
        """
        n_rows = len(unfiltered_df)
        label_list = [str(n) for n in dk.label_list]
        check_labels(label_list)
        raw_names = model.raw_feature_names
        if model.timeframe_seconds != self.timeframe_seconds:
            raise ValueError(
                f"{dk.pair}: the saved model was trained on {model.timeframe_seconds}s candles "
                f"but the config timeframe has {self.timeframe_seconds}s; retrain the model"
            )
        pipeline_names = [str(n) for n in dk.feature_pipeline.features_in]
        if pipeline_names != raw_names:
            raise ValueError(
                f"{dk.pair}: the saved feature pipeline was fit on {pipeline_names} but the "
                f"saved model on {raw_names}; the model folder is inconsistent, retrain it"
            )
        dk.training_features_list = raw_names

        if not self._features_present(unfiltered_df, raw_names, dk.pair):
            dk.DI_values = np.zeros(n_rows)
            return self._null_predictions(n_rows, label_list), np.zeros(n_rows, dtype=np.int_)

        # Raw features of the chunk, with the stored training tail in front as history.
        chunk = unfiltered_df[raw_names].astype(np.float64)
        chunk_dates = dates_to_ns(unfiltered_df["date"])
        history_dates, history_values = model.history()
        combined, dates, n_history = prepend_history(
            history_dates, history_values, raw_names, chunk, chunk_dates, model.window - 1
        )
        raw = combined.to_numpy(dtype=np.float64)
        finite = np.isfinite(raw).all(axis=1)
        n_bad = int((~finite[n_history:]).sum())
        if n_bad:
            logger.info(
                "%s: %d of %d candles have non-finite features; they and the windows that "
                "contain them get do_predict=0",
                dk.pair,
                n_bad,
                n_rows,
            )
        combined = combined.where(np.isfinite(raw), 0.0)

        # FreqAI's feature pipeline with its outlier check (dissimilarity index, if set).
        transformed, inlier, _ = dk.feature_pipeline.transform(combined, outlier_check=True)
        roles = model.roles
        missing = [n for n in roles.all_columns if n not in transformed.columns]
        if missing:
            raise ValueError(
                f"{dk.pair}: the feature pipeline output lacks model inputs {missing}; the "
                f"model folder is inconsistent, retrain it"
            )
        # Window length and embedding sizes come from the saved model, not the current config.
        trained = model.params
        rows, row_ok = self.window_rows(
            transformed, roles, None, trained.window, trained.n_regimes
        )
        row_ok &= finite
        step_ns = model.timeframe_seconds * 1_000_000_000
        end_ok = window_end_mask(dates, row_ok, trained.window, step_ns)
        end_ok[:n_history] = False
        ends = np.flatnonzero(end_ok)

        # All windows of the chunk in batched forward passes.
        mean_scaled = np.zeros(n_rows)
        sigma_scaled = np.zeros(n_rows)
        if len(ends):
            mean, logvar = predict(
                model.module(self.device),
                rows.subset(ends),
                batch_size=self.params.predict_batch_size,
                device=self.device,
            )
            mean_scaled[ends - n_history] = mean[:, 0]
            sigma_scaled[ends - n_history] = np.exp(0.5 * logvar[:, 0])

        pred = pd.DataFrame(
            {
                columns.TARGET: mean_scaled,
                columns.SIGMA: sigma_scaled,
            }
        )[label_list]
        pred, _, _ = dk.label_pipeline.inverse_transform(pred)

        do_predict = end_ok[n_history:] & (np.asarray(inlier)[n_history:] == 1)
        values_ok = np.isfinite(pred[columns.TARGET].to_numpy()) & np.isfinite(
            pred[columns.SIGMA].to_numpy()
        )
        if (do_predict & ~values_ok).any():
            logger.warning(
                "%s: %d predictions were non-finite after the label inverse transform; their "
                "do_predict is set to 0",
                dk.pair,
                int((do_predict & ~values_ok).sum()),
            )
        do_predict &= values_ok
        # Placeholders: every candle without a real prediction reports mean 0 and sigma 0.
        pred.loc[~do_predict, [columns.TARGET, columns.SIGMA]] = 0.0

        di_step = dk.feature_pipeline["di"] if "di" in dk.feature_pipeline else None
        if di_step is not None:
            dk.DI_values = np.asarray(di_step.di_values)[n_history:]
        else:
            dk.DI_values = np.zeros(n_rows)
        dk.do_predict = do_predict.astype(np.int_)
        return pred, dk.do_predict

    def _features_present(self, frame: pd.DataFrame, raw_names: list[str], pair: str) -> bool:
        # FreqAI's own rule for feature columns: every column name containing "%".
        current = [str(c) for c in frame.columns if "%" in str(c)]
        missing = [n for n in raw_names if n not in current]
        added = [n for n in current if n not in raw_names]
        if missing:
            logger.warning(
                "%s: feature drift: the saved model needs columns %s that the current data "
                "lacks (new columns: %s). Predictions are off (do_predict=0) until a model is "
                "trained on the current features; change freqai.identifier to retrain now.",
                pair,
                missing,
                added,
            )
            return False
        if added:
            logger.debug("%s: ignoring columns the saved model was not trained on: %s", pair, added)
        return True

    @staticmethod
    def _null_predictions(n_rows: int, label_list: list[str]) -> pd.DataFrame:
        return pd.DataFrame(np.zeros((n_rows, len(label_list))), columns=label_list)


def check_labels(label_list: list[str]) -> None:
    """Raise unless the labels are exactly ``&-s_return`` and ``&-s_return_sigma``."""
    expected = {columns.TARGET, columns.SIGMA}
    if set(label_list) != expected or len(label_list) != 2:
        raise ValueError(
            f"TRMTSRegressor needs exactly the labels {sorted(expected)} from "
            f"set_freqai_targets, got {list(label_list)}. The sigma label must be declared so "
            f"FreqAI keeps statistics for it on the live path."
        )


def check_freqai_settings(freqai_info: dict[str, Any], params: TRMTSParams) -> None:
    """Reject FreqAI settings that break windows or name routing, naming the key and fix."""
    feature_parameters = freqai_info.get("feature_parameters", {})
    for key, reason in UNSUPPORTED_FEATURE_PARAMETERS.items():
        if feature_parameters.get(key, False):
            raise ValueError(
                f"freqai.feature_parameters.{key} is not supported by TRMTSRegressor: "
                f"{reason}. Set it to false."
            )
    if feature_parameters.get("weight_factor", 0):
        raise ValueError(
            "freqai.feature_parameters.weight_factor is not supported by TRMTSRegressor: the "
            "training loop weights all windows equally. Set it to 0."
        )
    split = freqai_info.get("data_split_parameters", {})
    if split.get("shuffle", False):
        raise ValueError(
            "freqai.data_split_parameters.shuffle=true mixes future candles into training; "
            "set it to false"
        )
    if split.get("test_size", 0.1) == 0:
        raise ValueError(
            "freqai.data_split_parameters.test_size=0 leaves no validation windows for early "
            "stopping; set it above 0 (for example 0.1)"
        )
    # freqtrade's schema fills conv_width=1 when it is absent, so 1 means "not set".
    conv_width = freqai_info.get("conv_width", 1)
    if conv_width not in (1, params.window):
        raise ValueError(
            f"freqai.conv_width={conv_width} differs from model_training_parameters.window="
            f"{params.window}; remove conv_width (the regressor sets it to the window)"
        )


def match_previous_model(
    roles: ColumnRoles, previous: TRMTSFreqaiModel | None, pair: str
) -> tuple[ColumnRoles, TRMTSFreqaiModel | None]:
    """Return the roles ordered like ``previous`` and ``previous`` if its columns match.

    Columns are matched by name. When the sets of sequence, context or categorical columns
    differ, a warning names the difference and ``None`` is returned: train from scratch.
    """
    if previous is None:
        return roles, None
    old = previous.roles
    differences = []
    for kind, new_names, old_names in (
        ("sequence", roles.sequence, old.sequence),
        ("context", roles.context, old.context),
        ("categorical", tuple(roles.categorical.values()), tuple(old.categorical.values())),
    ):
        added = sorted(set(new_names) - set(old_names))
        removed = sorted(set(old_names) - set(new_names))
        if added or removed:
            differences.append(f"{kind}: added {added}, removed {removed}")
    if differences:
        logger.warning(
            "%s: continual learning: the features differ from the previous model (%s); "
            "training from scratch",
            pair,
            "; ".join(differences),
        )
        return roles, None
    # Same sets: adopt the previous order so each input weight keeps its column.
    return old, previous


def _tensorboard_writer(dk: FreqaiDataKitchen, active: bool):
    """Return freqtrade's TensorBoard logger under the model folder, or None when inactive."""
    if not active:
        return None
    from freqtrade.freqai.tensorboard.tensorboard import TensorboardLogger

    return TensorboardLogger(dk.data_path, activate=True)


def _epoch_logger(pair: str, epochs: int, writer):
    """Return an ``on_epoch`` callback: one log line per epoch, and TensorBoard scalars."""

    def log_epoch(log: EpochLog) -> None:
        logger.info(
            "TRM-TS %s epoch %d/%d: train_nll=%.5f test_nll=%.5f%s (%.1fs)",
            pair,
            log.epoch,
            epochs,
            log.train_nll,
            log.valid_nll,
            " best" if log.is_best else "",
            log.seconds,
        )
        if writer is not None:
            writer.log_scalar("train_nll", log.train_nll, log.epoch)
            if math.isfinite(log.valid_nll):
                writer.log_scalar("test_nll", log.valid_nll, log.epoch)

    return log_epoch
