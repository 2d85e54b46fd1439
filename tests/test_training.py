"""The training loop: reproducibility, non-finite loss, early stopping and learning on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trm_ts import trm_ts
from trm_ts.checkpoint import checkpoint_payload
from trm_ts.data import synthetic_candles
from trm_ts.dataset import build_frame, make_splits, to_raw_units
from trm_ts.metrics import gaussian_nll
from trm_ts.training import (
    NonFiniteLossError,
    TrainConfig,
    evaluate_nll,
    fit,
    predict,
    resolve_device,
)

WINDOW = 32


@pytest.fixture(scope="module")
def synthetic_data():
    candles = synthetic_candles(6_000, seed=3)
    return make_splits(build_frame(candles, horizons=(4,)), WINDOW)


def _model(data, seed=0, **kwargs):
    torch.manual_seed(seed)
    return trm_ts(len(data.feature_names), latent_dim=16, multi_scales=(8, 32), max_len=WINDOW,
                  **kwargs)


def test_training_reproducible_on_cpu(synthetic_data):
    config = TrainConfig(epochs=1, batch_size=64, lr=1e-3, seed=5)
    small = synthetic_data.train.subset(synthetic_data.train.ends[:128])
    valid = synthetic_data.valid.subset(synthetic_data.valid.ends[:64])
    first = _model(synthetic_data)
    fit(first, small, valid, config)
    second = _model(synthetic_data)
    fit(second, small, valid, config)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_training_beats_constant_variance(synthetic_data):
    model = _model(synthetic_data, dropout=0.1)
    config = TrainConfig(epochs=4, batch_size=64, lr=2e-3, weight_decay=0.01, seed=1)
    fit(model, synthetic_data.train, synthetic_data.valid, config)

    test = synthetic_data.test
    y = synthetic_data.frame.target[test.ends, 0]
    mean, logvar = predict(model, test)
    raw_mean, raw_logvar = to_raw_units(mean[:, 0], logvar[:, 0], synthetic_data.target_scaler)
    model_nll = gaussian_nll(y, raw_mean, np.exp(0.5 * raw_logvar))

    # Constant-variance baseline: the training targets' mean and standard deviation.
    train_y = synthetic_data.frame.target[synthetic_data.train.ends, 0]
    constant_nll = gaussian_nll(y, np.full_like(y, train_y.mean()), np.full_like(y, train_y.std()))
    assert model_nll < constant_nll, (model_nll, constant_nll)


def test_non_finite_target_rejected(synthetic_data):
    model = _model(synthetic_data)
    train = synthetic_data.train
    target = train.target.copy()
    target[train.ends[5]] = np.inf
    train = type(train)(features=train.features, target=target, ends=train.ends[:8],
                        window=WINDOW)
    with pytest.raises(ValueError, match="train split has windows without a finite target"):
        fit(model, train, synthetic_data.valid, TrainConfig(epochs=1))


def test_exploding_lr_raises_and_refuses_to_save(synthetic_data):
    model = _model(synthetic_data)
    train = synthetic_data.train.subset(synthetic_data.train.ends[:256])
    # Features scaled to 1e30 overflow the first matmul to inf, so the loss is NaN at once.
    huge = type(train)(features=train.features * np.float32(1e30), target=train.target,
                       ends=train.ends, window=WINDOW)
    with pytest.raises(NonFiniteLossError, match="No model was saved"):
        fit(model, huge, synthetic_data.valid, TrainConfig(epochs=1))


def test_checkpoint_refuses_nan_weights(synthetic_data):
    model = _model(synthetic_data)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite weights"):
        checkpoint_payload(model, synthetic_data.feature_names)


def test_early_stopping_restores_best(synthetic_data):
    model = _model(synthetic_data)
    # With min_delta this large only the first epoch counts as an improvement, so training
    # must stop after `patience` more epochs and return the first epoch's weights.
    config = TrainConfig(epochs=5, lr=1e-3, patience=2, min_delta=1e9, seed=2)
    small = synthetic_data.train.subset(synthetic_data.train.ends[:128])
    valid = synthetic_data.valid.subset(synthetic_data.valid.ends[:64])
    result = fit(model, small, valid, config)
    assert result.stopped_early
    assert result.epochs_run == 3
    assert result.best_epoch == 1
    assert evaluate_nll(model, valid) == pytest.approx(result.history[0].valid_nll, abs=1e-6)


def test_flat_close_gives_finite_nll():
    dates = pd.date_range("2025-01-01", periods=1_500, freq="15min", tz="UTC")
    candles = pd.DataFrame({"date": dates, "open": 5.0, "high": 5.0, "low": 5.0, "close": 5.0,
                            "volume": 0.0})
    data = make_splits(build_frame(candles, horizons=(1,)), 16)
    model = _model(data)
    result = fit(model, data.train, data.valid, TrainConfig(epochs=1, lr=1e-3))
    assert np.isfinite(result.best_valid_nll)


def test_cuda_without_gpu_is_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
