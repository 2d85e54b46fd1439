"""Plain-data checkpoints: exact round trip, weights_only loading and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trm_ts import trm_ts
from trm_ts.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_payload,
    load_checkpoint,
    save_checkpoint,
)
from trm_ts.data import WindowSet
from trm_ts.training import predict

FEATURES = ["a", "b", "c"]


def _windows() -> WindowSet:
    rng = np.random.default_rng(0)
    return WindowSet(features=rng.normal(size=(50, 3)).astype(np.float32), target=None,
                     ends=np.arange(15, 50), window=16,
                     regime=rng.integers(0, 8, 50), hour=rng.integers(0, 24, 50),
                     day_of_week=rng.integers(0, 7, 50))


def _saved(tmp_path):
    torch.manual_seed(0)
    model = trm_ts(3, latent_dim=8, multi_scales=(4, 16), max_len=16).eval()
    payload = checkpoint_payload(model, FEATURES, {"mean": [0.0] * 3, "std": [1.0] * 3},
                                 {"mean": [0.0], "std": [0.01]}, {"window": 16})
    return model, save_checkpoint(tmp_path / "m.pt", payload)


def test_save_load_reproduces_predictions_exactly(tmp_path):
    model, path = _saved(tmp_path)
    loaded, payload = load_checkpoint(path)
    before = predict(model, _windows())
    after = predict(loaded, _windows())
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_payload_holds_plain_data(tmp_path):
    _, path = _saved(tmp_path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["feature_names"] == FEATURES
    assert payload["model_config"]["multi_scales"] == [4, 16]
    assert payload["target_scaler"] == {"mean": [0.0], "std": [0.01]}


def test_missing_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_corrupt_checkpoint_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(CheckpointError, match="damaged or not a TRM-TS checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint_error(tmp_path):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path)


def test_foreign_pickle_rejected_by_weights_only(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"format_version": 1, "hook": CheckpointError}, path)  # a class is not plain data
    with pytest.raises(CheckpointError, match="could not read the checkpoint"):
        load_checkpoint(path)


def test_other_format_version_rejected(tmp_path):
    _, path = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        load_checkpoint(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_checkpoint_loads_on_cpu(tmp_path):
    torch.manual_seed(0)
    model = trm_ts(3, latent_dim=8, multi_scales=(4,), max_len=16).to("cuda")
    path = save_checkpoint(tmp_path / "gpu.pt", checkpoint_payload(model, FEATURES))
    loaded, _ = load_checkpoint(path, map_location="cpu")
    assert next(loaded.parameters()).device.type == "cpu"
