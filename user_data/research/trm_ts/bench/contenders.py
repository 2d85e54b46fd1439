"""Every forecaster of the benchmark, run on one walk-forward fold of one pair.

Each function returns a ``Forecast`` (mean and sigma of the forward log return, raw units)
for the fold's test rows. Fitted state (GARCH parameters, hour factors, scalers, weights)
comes from the fold's training rows only.

The two FreqAI contenders use the model classes that FreqAI's ``LightGBMRegressor`` and
``PyTorchTransformerRegressor`` wrap: ``lightgbm.LGBMRegressor``, and freqtrade's
``PyTorchTransformerModel`` trained by its ``PyTorchTransformerTrainer``. Both get the same
feature matrix. The transformer's copy is scaled the way FreqAI's default pipeline scales
it, min-max to [-1, 1] on training rows, label included. Their sigma is the zero-mean EWMA
sigma, so every contender yields a distribution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from trm_ts import baselines
from trm_ts.bench.folds import Fold
from trm_ts.bench.pairs import PairData
from trm_ts.data import FEATURE_CLIP, StandardScaler, WindowSet
from trm_ts.freqai.params import TRMTSParams
from trm_ts.model import trm_ts
from trm_ts.training import TrainConfig, fit, predict

logger = logging.getLogger(__name__)

TRM_TS = "trm_ts"
EWMA = "ewma"
EWMA_HOUR = "ewma_hour"
GARCH = "garch"
LIGHTGBM = "lightgbm"
TRANSFORMER = "transformer"
MODEL_LABELS = {
    TRM_TS: "TRM-TS",
    EWMA: "Zero mean + EWMA",
    EWMA_HOUR: "Zero mean + EWMA x hour-of-day",
    GARCH: "GARCH(1,1)",
    LIGHTGBM: "LightGBM mean + EWMA",
    TRANSFORMER: "PyTorch transformer mean + EWMA",
}
CLASSIC_MODELS = (EWMA, EWMA_HOUR, GARCH)
# Zero-mean models have no direction, so directional accuracy is not reported for them.
ZERO_MEAN_MODELS = CLASSIC_MODELS


@dataclass
class Forecast:
    """Gaussian forecast of the forward log return on a fold's test rows, raw units."""

    mean: np.ndarray
    sigma: np.ndarray


@dataclass(frozen=True)
class TransformerSettings:
    """Settings of the FreqAI transformer contender.

    hidden_dim, n_layer, dropout and learning_rate follow the example in the docstring of
    FreqAI's ``PyTorchTransformerRegressor`` (freqtrade 2026.9); nhead is the model class
    default.
    """

    window: int
    epochs: int
    batch_size: int = 64
    hidden_dim: int = 512
    n_layer: int = 1
    dropout: float = 0.2
    nhead: int = 8
    learning_rate: float = 3e-4
    seed: int = 42


# FreqAI's documented example sets only n_estimators; the rest are LightGBM defaults.
LIGHTGBM_PARAMS = {"n_estimators": 100, "verbosity": -1}


# --- Classic volatility baselines ----------------------------------------------------------


def classic_forecasts(pair: PairData, fold: Fold) -> dict[str, Forecast]:
    """Fit and run the zero-mean EWMA, EWMA x hour-of-day and GARCH(1,1) baselines."""
    h = pair.horizon
    test = slice(fold.test_start, fold.test_stop)
    # Classic models need no validation rows, so they fit on every row up to the test purge.
    fit_rows = slice(fold.train_start, fold.valid_stop)
    zeros = np.zeros(fold.test_stop - fold.test_start)

    ewma_sigma = baselines.ewma_sigma_forecast(pair.returns, h)
    factors = baselines.fit_hour_of_day_factors(
        pair.target[fit_rows], ewma_sigma[fit_rows], pair.hour[fit_rows]
    )
    hourly_sigma = ewma_sigma * np.sqrt(factors[pair.hour])
    garch_fit = baselines.fit_garch(pair.returns[fit_rows])
    garch_sigma = baselines.garch_sigma_forecast(pair.returns[: fold.test_stop], h, garch_fit)
    return {
        EWMA: Forecast(zeros, ewma_sigma[test]),
        EWMA_HOUR: Forecast(zeros, hourly_sigma[test]),
        GARCH: Forecast(zeros, garch_sigma[test]),
    }


# --- FreqAI contenders ----------------------------------------------------------------------


def freqai_design(pair: PairData) -> np.ndarray:
    """Return the (N, F + 3) feature matrix the FreqAI contenders see.

    Indicator features plus regime, hour and day of week as plain numeric columns, the way
    FreqAI passes every ``%`` column to its models.
    """
    extra = np.column_stack([pair.regime, pair.hour, pair.day_of_week]).astype(np.float64)
    return np.concatenate([pair.features, extra], axis=1)


def _minmax(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (low, span) of a min-max scaling to [-1, 1]; constant columns get span 1."""
    low = np.nanmin(train, axis=0)
    span = np.nanmax(train, axis=0) - low
    return low, np.where(span > 0, span, 1.0)


def _scale(x: np.ndarray, low: np.ndarray, span: np.ndarray) -> np.ndarray:
    return 2.0 * (x - low) / span - 1.0


def lightgbm_forecast(
    pair: PairData, fold: Fold, design: np.ndarray, sigma: np.ndarray
) -> Forecast:
    """Fit ``LGBMRegressor`` on the newest-candle features of the training rows."""
    from lightgbm import LGBMRegressor

    train = slice(fold.train_start, fold.train_stop)
    valid = slice(fold.valid_start, fold.valid_stop)
    test = slice(fold.test_start, fold.test_stop)
    model = LGBMRegressor(**LIGHTGBM_PARAMS, n_jobs=torch.get_num_threads(), random_state=42)
    # FreqAI hands its test split to LightGBM as an evaluation set; it does not stop early.
    model.fit(design[train], pair.target[train], eval_X=design[valid], eval_y=pair.target[valid])
    return Forecast(model.predict(design[test]), sigma[test])


def build_transformer(n_features: int, settings: TransformerSettings) -> torch.nn.Module:
    """Build freqtrade's ``PyTorchTransformerModel`` for one-output regression.

    The model sizes its sinusoidal position table by its model width, which is the feature
    count rounded down to a multiple of ``nhead``. A window longer than that table fails in
    the model's forward pass. In that case the table is rebuilt at the window length with
    freqtrade's own ``PositionalEncoding`` class, which leaves the encoding values unchanged.
    """
    from freqtrade.freqai.torch.PyTorchTransformerModel import (
        PositionalEncoding,
        PyTorchTransformerModel,
    )

    torch.manual_seed(settings.seed)
    model = PyTorchTransformerModel(
        input_dim=n_features,
        output_dim=1,
        hidden_dim=settings.hidden_dim,
        n_layer=settings.n_layer,
        dropout_percent=settings.dropout,
        time_window=settings.window,
        nhead=settings.nhead,
    )
    if model.dim_val < 1:
        raise ValueError(
            f"the FreqAI transformer needs at least nhead={settings.nhead} features, "
            f"got {n_features}"
        )
    if settings.window > model.dim_val:
        model.positional_encoding = PositionalEncoding(
            d_model=model.dim_val, max_len=settings.window
        )
    return model


def build_transformer_trainer(
    model: torch.nn.Module, settings: TransformerSettings
) -> torch.nn.Module:
    """Return freqtrade's ``PyTorchTransformerTrainer`` set up as the regressor sets it up."""
    from freqtrade.freqai.tensorboard.base_tensorboard import BaseTensorboardLogger
    from freqtrade.freqai.torch.PyTorchDataConvertor import DefaultPyTorchDataConvertor
    from freqtrade.freqai.torch.PyTorchModelTrainer import PyTorchTransformerTrainer

    return PyTorchTransformerTrainer(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=settings.learning_rate),
        criterion=torch.nn.MSELoss(),
        device="cpu",
        data_convertor=DefaultPyTorchDataConvertor(target_tensor_type=torch.float),
        window_size=settings.window,
        tb_logger=BaseTensorboardLogger(None, activate=False),
        n_epochs=settings.epochs,
        batch_size=settings.batch_size,
    )


def window_frame(values: np.ndarray, rows: range, window: int, label: bool) -> pd.DataFrame:
    """Return the rows a ``WindowDataset`` needs so its windows end on ``rows``.

    FreqAI's ``WindowDataset`` labels each window with its newest row and never uses the
    frame's last row, so the frame runs one row past ``rows``. That extra row is the first
    purged row. Its label would need a later block's close, so a label frame gets NaN there:
    were it ever read, the loss would turn NaN instead of leaking.
    """
    frame = values[rows.start - window + 1 : rows.stop + 1].copy()
    if label:
        frame[-1] = np.nan
    return pd.DataFrame(frame)


def gather_windows(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Return (S, T, F) windows of ``values`` (N, F) whose newest rows are ``ends``."""
    view = sliding_window_view(values, window, axis=0)  # (N - T + 1, F, T)
    return np.ascontiguousarray(view[ends - window + 1].transpose(0, 2, 1))  # (S, T, F)


@torch.no_grad()
def transformer_predict(
    model: torch.nn.Module, windows: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """Return the model output for each of the (S, T, F) windows, batched."""
    model.eval()
    out = []
    for start in range(0, len(windows), batch_size):
        xb = torch.from_numpy(windows[start : start + batch_size]).float()
        out.append(model(xb).reshape(-1))  # (B, 1, 1) -> (B,)
    return torch.cat(out).numpy().astype(np.float64)


def transformer_forecast(
    pair: PairData,
    fold: Fold,
    design: np.ndarray,
    sigma: np.ndarray,
    settings: TransformerSettings,
) -> tuple[Forecast, float]:
    """Train the FreqAI transformer with freqtrade's trainer; return the forecast and seconds."""
    import time

    train_rows = np.r_[fold.train_start : fold.train_stop]
    low, span = _minmax(design[train_rows])
    scaled = _scale(design, low, span).astype(np.float32)
    label_low, label_span = _minmax(pair.target[train_rows, None])
    labels = _scale(pair.target[:, None], label_low, label_span)

    data = {
        "train_features": window_frame(scaled, fold.train_rows, settings.window, label=False),
        "train_labels": window_frame(labels, fold.train_rows, settings.window, label=True),
        "test_features": window_frame(scaled, fold.valid_rows, settings.window, label=False),
        "test_labels": window_frame(labels, fold.valid_rows, settings.window, label=True),
    }
    model = build_transformer(design.shape[1], settings)
    trainer = build_transformer_trainer(model, settings)
    started = time.perf_counter()
    trainer.fit(data, ["train", "test"])
    seconds = time.perf_counter() - started

    windows = gather_windows(scaled, np.r_[fold.test_start : fold.test_stop], settings.window)
    scaled_mean = transformer_predict(model, windows)
    mean = (scaled_mean + 1.0) / 2.0 * label_span[0] + label_low[0]
    return Forecast(mean, sigma[fold.test_start : fold.test_stop]), seconds


# --- TRM-TS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TRMSettings:
    """TRM-TS settings of the benchmark.

    ``params`` are the FreqAI regressor's parameters (``TRMTSParams``), read from the shipped
    FreqAI config, so the benchmark measures the model a user gets. The run mode may lower
    ``epochs`` and ``patience`` to fit its time budget.
    """

    params: TRMTSParams
    epochs: int
    patience: int
    deep_supervision: bool = True
    max_inference_steps: int = 8


@dataclass
class TRMRun:
    """TRM-TS result on one fold: the forecast at each inference step count, and the fit."""

    by_steps: dict[int, Forecast]
    fit_seconds: float
    epochs_run: int
    best_epoch: int
    trained_steps: int


def trm_windows(
    pair: PairData, fold: Fold, window: int
) -> tuple[WindowSet, WindowSet, WindowSet, StandardScaler]:
    """Build the train, valid and test window sets of one fold, scaled on training rows only.

    Features are standardized and clipped at ``FEATURE_CLIP``, the target standardized, both
    with statistics of the training rows. Each split's target array is NaN outside its own
    rows, and the test split carries no target at all.
    """
    train = np.r_[fold.train_start : fold.train_stop]
    scaler = StandardScaler.fit(pair.features[train])
    scaled = np.clip(scaler.transform(pair.features), -FEATURE_CLIP, FEATURE_CLIP)
    # Warmup rows are NaN; no window of any split reaches them (see ``walk_forward_folds``).
    scaled = np.nan_to_num(scaled, nan=0.0).astype(np.float32)  # (N, F)
    target_scaler = StandardScaler.fit(pair.target[train, None])
    target = target_scaler.transform(pair.target[:, None]).astype(np.float32)  # (N, 1)

    def split(rows: range, with_target: bool) -> WindowSet:
        own = None
        if with_target:
            own = np.full_like(target, np.nan)
            own[rows.start : rows.stop] = target[rows.start : rows.stop]
        return WindowSet(
            features=scaled,
            target=own,
            ends=np.arange(rows.start, rows.stop),
            window=window,
            regime=pair.regime,
            hour=pair.hour,
            day_of_week=pair.day_of_week,
        )

    return (
        split(fold.train_rows, True),
        split(fold.valid_rows, True),
        split(fold.test_rows, False),
        target_scaler,
    )


def trm_forecast(pair: PairData, fold: Fold, settings: TRMSettings) -> TRMRun:
    """Train TRM-TS with ``trm_ts.training.fit`` and predict the test rows at 1..8 steps."""
    params = settings.params
    train, valid, test, target_scaler = trm_windows(pair, fold, params.window)
    torch.manual_seed(params.seed)
    model = trm_ts(
        n_features=pair.features.shape[1],
        latent_dim=params.latent_dim,
        recursive_steps=params.recursive_steps,
        multi_scales=params.multi_scales,
        n_regimes=params.n_regimes,
        attn_heads=params.attn_heads,
        dropout=params.dropout,
    )
    config = TrainConfig(
        epochs=settings.epochs,
        batch_size=params.batch_size,
        lr=params.learning_rate,
        weight_decay=params.weight_decay,
        grad_clip=params.grad_clip,
        patience=settings.patience,
        deep_supervision=settings.deep_supervision,
        seed=params.seed,
    )
    result = fit(model, train, valid, config)
    logger.info(
        "%s fold %d: TRM-TS (deep supervision %s) %d epochs, best %d, valid NLL %.4f, %.0f s",
        pair.pair,
        fold.index,
        settings.deep_supervision,
        result.epochs_run,
        result.best_epoch,
        result.best_valid_nll,
        result.seconds,
    )

    mean_t, std_t = float(target_scaler.mean[0]), float(target_scaler.std[0])
    by_steps = {}
    for steps in range(1, settings.max_inference_steps + 1):
        mean, logvar = predict(model, test, batch_size=params.predict_batch_size, steps=steps)
        by_steps[steps] = Forecast(
            mean=mean[:, 0].astype(np.float64) * std_t + mean_t,
            sigma=np.exp(0.5 * logvar[:, 0].astype(np.float64)) * std_t,
        )
    return TRMRun(
        by_steps=by_steps,
        fit_seconds=result.seconds,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        trained_steps=params.recursive_steps,
    )
