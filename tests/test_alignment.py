"""Known-answer alignment on a ramp: window contents, target shift and prediction order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trm_ts import trm_ts
from trm_ts.data import WindowSet, forward_log_return
from trm_ts.dataset import chronological_split
from trm_ts.training import predict

N, T, H = 60, 5, 3


@pytest.fixture
def ramp() -> WindowSet:
    # Feature 0 of row i is i, feature 1 is -i: any misplaced row shows up as a wrong number.
    features = np.stack([np.arange(N), -np.arange(N)], axis=1).astype(np.float32)
    return WindowSet(features=features, target=None, ends=np.arange(T - 1, N), window=T)


def test_window_holds_rows_up_to_its_end(ramp):
    windows = ramp.gather()
    assert windows.shape == (N - T + 1, T, 2)
    np.testing.assert_array_equal(windows[0, :, 0], np.arange(T))
    np.testing.assert_array_equal(windows[-1, :, 0], np.arange(N - T, N))


def test_window_newest_row_is_its_end(ramp):
    np.testing.assert_array_equal(ramp.gather()[:, -1, 0], ramp.ends)


def test_target_is_forward_log_return():
    # close = exp(c * t^2) gives log(close[t+h] / close[t]) = c * (2th + h^2): distinct per row.
    c = 1e-4
    t = np.arange(N, dtype=np.float64)
    close = pd.Series(np.exp(c * t**2))
    target = forward_log_return(close, H).to_numpy()
    expected = c * (2 * t[:-H] * H + H**2)
    np.testing.assert_allclose(target[:-H], expected, rtol=1e-9)


def test_target_unknown_for_last_rows():
    target = forward_log_return(pd.Series(np.arange(1.0, N + 1.0)), H).to_numpy()
    assert np.isnan(target[-H:]).all()
    assert np.isfinite(target[:-H]).all()


def test_split_purges_overlapping_targets():
    ends = np.arange(T - 1, 1_000)
    train, valid, test = chronological_split(ends, 0.15, 0.15, purge=H)
    # A training target looks H rows ahead, so it must end before the first valid row.
    assert train[-1] + H < valid[0]
    assert valid[-1] + H < test[0]
    assert test[-1] == ends[-1]


def test_batched_prediction_keeps_window_order(ramp):
    torch.manual_seed(0)
    model = trm_ts(2, latent_dim=8, multi_scales=(2,), max_len=8).eval()
    mean, logvar = predict(model, ramp, batch_size=7)  # batches that do not divide the set
    for i in (0, 13, len(ramp) - 1):
        window = torch.from_numpy(ramp.gather(ramp.ends[i : i + 1]))
        with torch.no_grad():
            single = model(window)
        np.testing.assert_allclose(mean[i], single["mean"][0].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(logvar[i], single["logvar"][0].numpy(), rtol=0, atol=1e-6)
