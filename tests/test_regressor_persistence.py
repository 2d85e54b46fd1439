"""Saving, reloading and live use of TRMTSRegressor models through FreqAI's data drawer.

Covers FreqAI's own save_data/load_data, a reload in a process that never imports the
freqaimodels file, torch's weights_only loading, continual learning with matching and
drifted features, and TensorBoard on. The live tests run the first prediction, the next
candle and a restart, where FreqAI's append_model_predictions needs statistics for every
output column.
"""

from __future__ import annotations

import io
import logging
import pickle
import subprocess
import sys

import cloudpickle
import numpy as np
import pytest
import torch
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
from regressor_support import (
    PAIR,
    REPO_ROOT,
    TINY_MODEL,
    make_config,
    new_kitchen,
    new_regressor,
    synthetic_frame,
    train,
)

from trm_ts import columns
from trm_ts.freqai import TRMTSFreqaiModel

TRAIN_ROWS = 96 * 5
LIVE_ROWS = 200
TIMESTAMP = 1_704_412_800  # 2024-01-05, the end of the training rows


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model trained and saved by FreqAI's data drawer; returns (config, frame, model, dk)."""
    config = make_config(tmp_path_factory.mktemp("user_data"), expiration_hours=0)
    regressor = new_regressor(config)
    frame = synthetic_frame(TRAIN_ROWS + LIVE_ROWS, seed=11)
    model, dk = train(regressor, frame.iloc[:TRAIN_ROWS], timestamp=TIMESTAMP)
    regressor.dd.set_pair_dict_info({"pair": PAIR})
    regressor.dd.pair_dict[PAIR]["trained_timestamp"] = TIMESTAMP
    regressor.dd.save_data(model, PAIR, dk)
    return config, frame, model, dk


def _chunk(frame):
    return frame.iloc[TRAIN_ROWS:].copy()


def _reload(config):
    """A fresh regressor (as after a restart) and the model FreqAI's drawer loads from disk."""
    regressor = new_regressor(config)
    dk = FreqaiDataKitchen(config, live=True, pair=PAIR)
    regressor.model = regressor.dd.load_data(PAIR, dk)
    return regressor, dk


def test_model_file_holds_trm_ts_class(saved):
    _, _, _, dk = saved
    with (dk.data_path / f"{dk.model_filename}_model.joblib").open("rb") as handle:
        loaded = cloudpickle.load(handle)
    assert type(loaded) is TRMTSFreqaiModel


@pytest.mark.parametrize("suffix", ["model.joblib", "feature_pipeline.pkl", "label_pipeline.pkl"])
def test_pickles_avoid_freqaimodels_file(saved, suffix):
    _, _, _, dk = saved
    blob = (dk.data_path / f"{dk.model_filename}_{suffix}").read_bytes()
    assert b"TRMTSRegressor" not in blob


def test_reload_in_fresh_process(saved):
    # A process that imports neither freqtrade's resolver nor freqaimodels/ reads all files.
    _, _, _, dk = saved
    prefix = dk.data_path / dk.model_filename
    script = (
        "import sys, cloudpickle\n"
        "names = ['model.joblib', 'feature_pipeline.pkl', 'label_pipeline.pkl']\n"
        "objs = [cloudpickle.load(open(sys.argv[1] + '_' + n, 'rb')) for n in names]\n"
        "assert not any('freqaimodels' in str(m) for m in sys.modules), 'freqaimodels imported'\n"
        "print(type(objs[0]).__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(prefix)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "trm_ts.freqai.state"


def test_payload_loads_weights_only(saved):
    _, _, model, _ = saved
    state = model.__getstate__()
    payload = torch.load(io.BytesIO(state["payload"]), weights_only=True, map_location="cpu")
    assert payload["raw_feature_names"] == model.raw_feature_names


def test_payload_tensors_on_cpu(saved):
    _, _, model, _ = saved
    devices = {t.device.type for t in model.state_dict_cpu().values()}
    assert devices == {"cpu"}


def test_pickle_skips_module_cache(saved):
    _, frame, model, dk = saved
    model.module("cpu")  # build the cached nn.Module
    model.tb_logger = object()  # FreqAI's get_init_model attaches one to the old model
    state = model.__getstate__()
    assert sorted(state) == ["format_version", "payload"]


def test_wrong_format_version_raises(saved):
    _, _, model, _ = saved
    state = {**model.__getstate__(), "format_version": 99}
    with pytest.raises(ValueError, match="format_version=99"):
        TRMTSFreqaiModel.__new__(TRMTSFreqaiModel).__setstate__(state)


def test_reload_predicts_identically(saved):
    config, frame, model, dk = saved
    regressor = new_regressor(config)
    regressor.model = model
    before, before_do = regressor.predict(_chunk(frame), dk)
    reloaded, dk_live = _reload(config)
    after, after_do = reloaded.predict(_chunk(frame), dk_live)
    np.testing.assert_array_equal(after.to_numpy(), before.to_numpy())
    np.testing.assert_array_equal(after_do, before_do)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_loads_on_cpu(tmp_path):
    config = make_config(tmp_path, training={**TINY_MODEL, "device": "cuda"})
    regressor = new_regressor(config)
    model, _ = train(regressor, synthetic_frame(SHORT_ROWS, seed=2))
    restored = pickle.loads(pickle.dumps(model))
    devices = {t.device.type for t in restored.state_dict_cpu().values()}
    assert devices == {"cpu"}
    assert next(restored.module("cpu").parameters()).device.type == "cpu"


@pytest.mark.slow
def test_tensorboard_on_still_pickles(tmp_path):
    config = make_config(tmp_path, training={**TINY_MODEL, "epochs": 1}, activate_tensorboard=True)
    regressor = new_regressor(config)
    model, dk = train(regressor, synthetic_frame(SHORT_ROWS, seed=4))
    assert list((dk.data_path / "tensorboard").glob("events.out.tfevents.*"))
    assert type(pickle.loads(cloudpickle.dumps(model))) is TRMTSFreqaiModel


SHORT_ROWS = 96 * 2


@pytest.fixture(scope="module")
def first_model(tmp_path_factory):
    """A one-epoch model that continual-learning tests start from."""
    config = make_config(
        tmp_path_factory.mktemp("user_data"),
        training={**TINY_MODEL, "epochs": 1},
        continual_learning=True,
    )
    first, _ = train(new_regressor(config), synthetic_frame(SHORT_ROWS, seed=5))
    return config, first


def _next_frame():
    return synthetic_frame(SHORT_ROWS, seed=6, start="2024-01-04")


def _continual(first_model):
    config, first = first_model
    regressor = new_regressor(config)
    regressor.dd.model_dictionary[PAIR] = first
    return regressor, first


def test_continual_learning_reordered_warm_starts(first_model):
    # Reordered columns are matched by name: the old weights are reused, in the old order.
    regressor, first = _continual(first_model)
    frame = _next_frame()
    second, _ = train(regressor, frame[list(reversed(frame.columns))], timestamp=2)
    assert second.payload["fit"]["warm_start"] is True
    assert second.roles == first.roles


def test_continual_learning_drift_retrains(first_model, caplog):
    regressor, _ = _continual(first_model)
    frame = _next_frame().drop(columns=["%-noise"])
    with caplog.at_level(logging.WARNING, logger="trm_ts.freqai.adapter"):
        second, _ = train(regressor, frame.assign(**{"%-vol": 1.0 + frame["%-signal"]}), 2)
    assert second.payload["fit"]["warm_start"] is False
    assert "added ['%-vol'], removed ['%-noise']" in caplog.text


def test_continual_learning_constant_drop_retrains(first_model, caplog):
    # A feature that is constant in the new training slice is dropped by FreqAI's pipeline.
    regressor, _ = _continual(first_model)
    frame = _next_frame().assign(**{"%-noise": 0.0})
    with caplog.at_level(logging.WARNING, logger="trm_ts.freqai.adapter"):
        second, _ = train(regressor, frame, timestamp=2)
    assert second.payload["fit"]["warm_start"] is False
    assert "removed ['%-noise']" in caplog.text


def _live_round(regressor, dk, frame):
    """Run FreqAI's live return-array builder on ``frame`` as start_live does."""
    dk.find_labels(frame)
    regressor.dk = dk
    regressor.build_strategy_return_arrays(frame, dk, PAIR, TIMESTAMP)
    return dk.return_dataframe


@pytest.fixture(scope="module")
def live(saved):
    """A reloaded regressor after its first live prediction and one more candle."""
    config, frame, _, _ = saved
    regressor, dk = _reload(config)
    start = TRAIN_ROWS + 100
    first = _live_round(regressor, dk, frame.iloc[:start].copy())
    second = _live_round(regressor, dk, frame.iloc[: start + 1].copy())
    regressor.dd.save_historic_predictions_to_disk()
    return config, frame, first, second


def test_live_first_call_predicts_newest(live):
    _, _, first, _ = live
    last = first.iloc[-1]
    assert last["do_predict"] == 1
    assert last[columns.SIGMA] > 0


def test_live_first_call_values_finite(live):
    _, _, first, _ = live
    assert np.isfinite(first[[columns.TARGET, columns.SIGMA]].to_numpy(dtype=float)).all()


def test_live_next_candle_appended(live):
    _, _, _, second = live
    last = second.iloc[-1]
    assert last["do_predict"] == 1
    assert last[columns.SIGMA] > 0


def test_live_matches_backtest_prediction(live, saved):
    config, frame, _, second = live
    _, _, model, dk = saved
    regressor = new_regressor(config)
    regressor.model = model
    batch, _ = regressor.predict(frame.iloc[TRAIN_ROWS : TRAIN_ROWS + 101].copy(), dk)
    np.testing.assert_allclose(
        second[[columns.TARGET, columns.SIGMA]].iloc[-1].to_numpy(dtype=float),
        batch[[columns.TARGET, columns.SIGMA]].iloc[-1].to_numpy(dtype=float),
        rtol=1e-5,
    )


def test_live_label_statistics_present(live):
    _, _, _, second = live
    for name in (f"{columns.SIGMA}_mean", f"{columns.SIGMA}_std"):
        assert name in second.columns


def test_live_restart_continues(live):
    config, frame, _, second = live
    regressor, dk = _reload(config)
    start = TRAIN_ROWS + 101
    restarted = _live_round(regressor, dk, frame.iloc[: start + 1].copy())
    assert restarted.iloc[-1]["do_predict"] == 1
    assert restarted.iloc[-1][columns.SIGMA] > 0
    assert new_kitchen(config, frame).label_list == [columns.TARGET, columns.SIGMA]
