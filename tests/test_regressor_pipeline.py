"""Exact values of the regressor's pipelines, column routing and window bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from regressor_support import make_config, new_regressor, synthetic_frame

from trm_ts import columns
from trm_ts.freqai import ColumnRoles, TRMTSAdapter
from trm_ts.freqai.windows import categorical_arrays, prepend_history, window_end_mask

STEP = 900 * 10**9  # one 15m candle in nanoseconds


def _labels(target, sigma):
    return pd.DataFrame({columns.TARGET: target, columns.SIGMA: sigma})


def test_label_scaler_standardizes_target():
    target = np.array([0.01, -0.02, 0.03, 0.0])
    pipeline = TRMTSAdapter.label_pipeline()
    scaled, _, _ = pipeline.fit_transform(_labels(target, np.abs(target)))
    expected = (target - target.mean()) / target.std()
    np.testing.assert_allclose(scaled[columns.TARGET], expected)


def test_label_scaler_sigma_scale_only():
    target = np.array([0.01, -0.02, 0.03, 0.0])
    pipeline = TRMTSAdapter.label_pipeline()
    pipeline.fit_transform(_labels(target, np.abs(target)))
    predicted = _labels([0.0, 1.0], [1.0, 0.5])
    raw, _, _ = pipeline.inverse_transform(predicted)
    np.testing.assert_allclose(raw[columns.SIGMA], [target.std(), 0.5 * target.std()])


def test_label_scaler_mean_shift_and_scale():
    target = np.array([0.01, -0.02, 0.03, 0.0])
    pipeline = TRMTSAdapter.label_pipeline()
    pipeline.fit_transform(_labels(target, np.abs(target)))
    raw, _, _ = pipeline.inverse_transform(_labels([0.0, 1.0], [1.0, 1.0]))
    np.testing.assert_allclose(raw[columns.TARGET], [target.mean(), target.mean() + target.std()])


def test_label_scaler_logvar_shift():
    # A log-variance in scaled units maps to raw units by adding 2 * ln(scale).
    target = np.array([0.5, -1.5, 2.5, 0.25])
    scale = target.std()
    pipeline = TRMTSAdapter.label_pipeline()
    pipeline.fit_transform(_labels(target, np.abs(target)))
    logvar_scaled = -0.7
    raw, _, _ = pipeline.inverse_transform(_labels([0.0], [math.exp(0.5 * logvar_scaled)]))
    logvar_raw = 2.0 * math.log(raw[columns.SIGMA].iloc[0])
    assert logvar_raw == pytest.approx(logvar_scaled + 2.0 * math.log(scale))


def test_label_scaler_label_order_free():
    target = np.array([0.01, -0.02, 0.03, 0.0])
    pipeline = TRMTSAdapter.label_pipeline()
    swapped = _labels(target, np.abs(target))[[columns.SIGMA, columns.TARGET]]
    pipeline.fit_transform(swapped)
    predicted = pd.DataFrame({columns.SIGMA: [2.0], columns.TARGET: [0.0]})
    raw, _, _ = pipeline.inverse_transform(predicted)
    assert raw[columns.SIGMA].iloc[0] == pytest.approx(2.0 * target.std())


def test_label_scaler_constant_target_raises():
    pipeline = TRMTSAdapter.label_pipeline()
    with pytest.raises(ValueError, match="constant"):
        pipeline.fit_transform(_labels([0.01, 0.01, 0.01], [0.01, 0.01, 0.01]))


@pytest.fixture
def feature_pipeline(tmp_path):
    regressor = new_regressor(make_config(tmp_path))
    return regressor.define_data_pipeline(threads=1)


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith("%")]]


def test_feature_pipeline_keeps_categoricals_exact(feature_pipeline):
    frame = _features(synthetic_frame(200))
    out, _, _ = feature_pipeline.fit_transform(frame)
    for name in columns.CATEGORICAL:
        np.testing.assert_array_equal(out[name].to_numpy(), frame[name].to_numpy(dtype=float))


def test_feature_pipeline_scales_sequence(feature_pipeline):
    frame = _features(synthetic_frame(200))
    out, _, _ = feature_pipeline.fit_transform(frame)
    assert out["%-signal"].min() == pytest.approx(-1.0)
    assert out["%-signal"].max() == pytest.approx(1.0)


def test_feature_pipeline_keeps_constant_categorical(feature_pipeline):
    frame = _features(synthetic_frame(200)).assign(**{columns.REGIME: 3})
    out, _, _ = feature_pipeline.fit_transform(frame)
    assert (out[columns.REGIME] == 3).all()


def test_feature_pipeline_drops_constant_sequence(feature_pipeline):
    frame = _features(synthetic_frame(200)).assign(**{"%-flat": 1.0})
    out, _, _ = feature_pipeline.fit_transform(frame)
    assert "%-flat" not in out.columns


def test_feature_pipeline_prediction_unscaled_categoricals(feature_pipeline):
    frame = _features(synthetic_frame(300))
    feature_pipeline.fit_transform(frame.iloc[:200])
    out, _, _ = feature_pipeline.transform(frame.iloc[200:], outlier_check=True)
    np.testing.assert_array_equal(
        out[columns.HOUR].to_numpy(), frame[columns.HOUR].iloc[200:].to_numpy(dtype=float)
    )


def test_routing_by_name():
    names = [
        "%-rsi_BTC/USDT_15m",
        "%-ctx_ret_BTC/USDT_15m",
        "%-regime",
        "%-ctx_corr_ETH/USDT_1h",
        "%-hour",
        "%-day_of_week",
        "%-macd_ETH/USDT_15m",
    ]
    roles = ColumnRoles.from_columns(names)
    assert roles.sequence == ("%-rsi_BTC/USDT_15m", "%-macd_ETH/USDT_15m")
    assert roles.context == ("%-ctx_ret_BTC/USDT_15m", "%-ctx_corr_ETH/USDT_1h")
    assert roles.categorical == {
        "regime": "%-regime",
        "hour": "%-hour",
        "day_of_week": "%-day_of_week",
    }


def test_routing_optional_categoricals():
    roles = ColumnRoles.from_columns(["%-rsi", "%-hour"])
    assert roles.categorical == {"hour": "%-hour"}


def test_routing_without_sequence_raises():
    with pytest.raises(ValueError, match="no sequence features"):
        ColumnRoles.from_columns(["%-ctx_ret", "%-hour"])


def test_routing_round_trip():
    roles = ColumnRoles.from_columns(["%-rsi", "%-ctx_a", "%-regime"])
    assert ColumnRoles.from_dict(roles.to_dict()) == roles


def test_categoricals_reach_model_as_integers():
    frame = synthetic_frame(50)
    roles = ColumnRoles.from_columns([c for c in frame.columns if c.startswith("%")])
    rows, row_ok = TRMTSAdapter.window_rows(frame, roles, None, window=8, n_regimes=8)
    np.testing.assert_array_equal(rows.regime, frame[columns.REGIME].to_numpy())
    np.testing.assert_array_equal(rows.hour, frame[columns.HOUR].to_numpy())
    np.testing.assert_array_equal(rows.day_of_week, frame[columns.DAY_OF_WEEK].to_numpy())
    assert rows.regime.dtype == np.int64
    assert row_ok.all()


def test_context_reaches_ctx_input():
    frame = synthetic_frame(50)
    roles = ColumnRoles.from_columns([c for c in frame.columns if c.startswith("%")])
    rows, _ = TRMTSAdapter.window_rows(frame, roles, None, window=8, n_regimes=8)
    np.testing.assert_allclose(
        rows.ctx[:, 0], frame["%-ctx_ret_ETH/USDT_15m"].to_numpy(dtype=np.float32)
    )
    assert rows.features.shape == (50, 2)


@pytest.mark.parametrize("bad", [np.nan, 2.5, -1.0, 24.0])
def test_invalid_categorical_masks_row(bad):
    frame = pd.DataFrame({"%-x": [0.0, 0.0, 0.0], columns.HOUR: [1.0, bad, 3.0]})
    roles = ColumnRoles.from_columns(list(frame.columns))
    arrays, row_ok = categorical_arrays(frame, roles, n_regimes=8)
    np.testing.assert_array_equal(row_ok, [True, False, True])
    assert arrays["hour"][1] == 0


def test_window_mask_full_windows():
    dates = np.arange(6) * STEP
    mask = window_end_mask(dates, np.ones(6, bool), window=3, step_ns=STEP)
    np.testing.assert_array_equal(mask, [False, False, True, True, True, True])


def test_window_mask_gap_breaks_windows():
    dates = np.array([0, 1, 2, 4, 5, 6]) * STEP  # candle 3 is missing
    mask = window_end_mask(dates, np.ones(6, bool), window=3, step_ns=STEP)
    np.testing.assert_array_equal(mask, [False, False, True, False, False, True])


def test_window_mask_bad_row_poisons_windows():
    dates = np.arange(7) * STEP
    row_ok = np.array([True, True, True, False, True, True, True])
    mask = window_end_mask(dates, row_ok, window=3, step_ns=STEP)
    np.testing.assert_array_equal(mask, [False, False, True, False, False, False, True])


def test_window_mask_short_input():
    mask = window_end_mask(np.arange(2) * STEP, np.ones(2, bool), window=3, step_ns=STEP)
    assert not mask.any()


def test_history_prepends_older_rows_only():
    history_dates = np.arange(5) * STEP
    history_values = np.arange(5, dtype=float)[:, None]
    chunk = pd.DataFrame({"%-x": [10.0, 11.0]})
    chunk_dates = np.array([4, 5]) * STEP  # overlaps the last history row
    combined, dates, n_history = prepend_history(
        history_dates, history_values, ["%-x"], chunk, chunk_dates, max_rows=3
    )
    assert n_history == 3
    np.testing.assert_array_equal(combined["%-x"], [1.0, 2.0, 3.0, 10.0, 11.0])
    np.testing.assert_array_equal(dates, np.array([1, 2, 3, 4, 5]) * STEP)


def test_history_none_when_chunk_older():
    chunk = pd.DataFrame({"%-x": [1.0]})
    _, _, n_history = prepend_history(
        np.array([5 * STEP]), np.zeros((1, 1)), ["%-x"], chunk, np.array([0]), max_rows=3
    )
    assert n_history == 0
