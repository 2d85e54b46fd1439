"""Shape grid, parameter budget, input validation and numerical bounds of the TRM-TS network."""

from __future__ import annotations

import itertools

import pytest
import torch

from trm_ts import TRMTSConfig, count_parameters, trm_ts
from trm_ts.losses import gaussian_nll

SHAPE_GRID = list(
    itertools.product(
        [1, 3],  # B
        [1, 5, 24],  # T
        [1, 7],  # F
        [1, 3],  # H
        [1, 2],  # recursive steps
        [0, 4],  # ctx_dim
    )
)


@pytest.mark.parametrize("B,T,F,H,steps,ctx_dim", SHAPE_GRID)
def test_output_shapes_grid(B, T, F, H, steps, ctx_dim):
    torch.manual_seed(0)
    model = trm_ts(
        F, latent_dim=8, recursive_steps=steps, forecast_horizon=H, multi_scales=(2, 16),
        ctx_dim=ctx_dim, attn_heads=2, max_len=32,
    )
    ctx = torch.randn(B, ctx_dim) if ctx_dim else None
    out = model(
        torch.randn(B, T, F),
        regime=torch.zeros(B, dtype=torch.long),
        hour=torch.full((B,), 23),
        day_of_week=torch.full((B,), 6),
        ctx=ctx,
        return_steps=True,
    )
    assert out["mean"].shape == (B, H)
    assert out["logvar"].shape == (B, H)
    assert out["latent"].shape == (B, 8)
    assert out["step_mean"].shape == (steps, B, H)
    assert out["step_logvar"].shape == (steps, B, H)


def test_default_parameter_count_in_budget():
    n = count_parameters(trm_ts(20))
    assert 60_000 <= n <= 80_000, n


def test_forward_windows_matches_dense_forward():
    torch.manual_seed(1)
    model = trm_ts(5, latent_dim=8, multi_scales=(4, 8), max_len=16).eval()
    rows = torch.randn(40, 5)
    index = torch.arange(20, 30)[:, None] - 11 + torch.arange(12)  # (10, 12) overlapping windows
    dense = model(rows[index])
    shared = model.forward_windows(rows, index)
    torch.testing.assert_close(shared["mean"], dense["mean"], rtol=0, atol=1e-6)
    torch.testing.assert_close(shared["logvar"], dense["logvar"], rtol=0, atol=1e-6)


def test_last_step_equals_plain_output():
    torch.manual_seed(2)
    model = trm_ts(3, latent_dim=8, multi_scales=(4,), max_len=16).eval()
    x = torch.randn(4, 10, 3)
    with_steps = model(x, return_steps=True)
    plain = model(x)
    torch.testing.assert_close(with_steps["step_mean"][-1], plain["mean"])


def test_steps_changeable_at_inference():
    torch.manual_seed(3)
    model = trm_ts(3, latent_dim=8, recursive_steps=4, multi_scales=(4,), max_len=16).eval()
    x = torch.randn(2, 10, 3)
    eight = model(x, steps=8, return_steps=True)
    assert eight["step_mean"].shape[0] == 8
    torch.testing.assert_close(eight["step_mean"][3], model(x)["mean"])


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_sigma_positive_and_finite(scale):
    torch.manual_seed(4)
    model = trm_ts(4, latent_dim=8, multi_scales=(4,), max_len=16).eval()
    out = model(torch.randn(8, 12, 4) * scale)
    sigma = torch.exp(0.5 * out["logvar"])
    assert torch.isfinite(sigma).all()
    assert (sigma > 0).all()
    assert torch.isfinite(gaussian_nll(out["mean"], out["logvar"], torch.zeros(8, 1)))


def test_scale_longer_than_window_uses_whole_window():
    model = trm_ts(3, latent_dim=8, multi_scales=(64,), max_len=64).eval()
    out = model(torch.randn(2, 5, 3))
    assert out["mean"].shape == (2, 1)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"latent_dim": 30, "attn_heads": 4}, "latent_dim=30"),
        ({"recursive_steps": 0}, "recursive_steps=0"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"multi_scales": ()}, "multi_scales=()"),
        ({"n_regimes": 0}, "n_regimes=0"),
    ],
)
def test_invalid_config_names_argument(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("(", r"\(").replace(")", r"\)")):
        trm_ts(5, **kwargs)


def _small_model(**kwargs):
    return trm_ts(5, latent_dim=8, multi_scales=(4,), max_len=16, **kwargs).eval()


def test_wrong_input_width_raises():
    with pytest.raises(ValueError, match="n_features=5"):
        _small_model()(torch.randn(2, 8, 6))


@pytest.mark.parametrize(
    "field,value,allowed",
    [("regime", 8, "0..7"), ("regime", -1, "0..7"), ("hour", 24, "0..23"), ("day_of_week", 7, "0..6")],
)
def test_index_out_of_range_raises(field, value, allowed):
    model = _small_model()
    with pytest.raises(ValueError, match=rf"{field} index {value} is out of range.*{allowed}"):
        model(torch.randn(2, 8, 5), **{field: torch.tensor([0, value])})


def test_steps_below_one_at_inference_raises():
    with pytest.raises(ValueError, match="steps=0"):
        _small_model()(torch.randn(2, 8, 5), steps=0)


def test_window_longer_than_max_len_raises():
    with pytest.raises(ValueError, match="max_len=16"):
        _small_model()(torch.randn(1, 17, 5))


def test_missing_context_raises():
    with pytest.raises(ValueError, match="ctx_dim=3"):
        _small_model(ctx_dim=3)(torch.randn(2, 8, 5))


def test_config_roundtrip_and_unknown_key():
    config = TRMTSConfig(n_features=4, multi_scales=(2, 8))
    assert TRMTSConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="latnet_dim"):
        TRMTSConfig.from_dict({**config.to_dict(), "latnet_dim": 3})
