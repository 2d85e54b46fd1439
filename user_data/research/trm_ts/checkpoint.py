"""Checkpoints as plain data: state_dict, model config, feature list, scalers, format version.

They load with ``torch.load(..., weights_only=True)``, so no code is unpickled, and with an
explicit ``map_location``, so a model trained on a GPU loads on a CPU-only machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from trm_ts.model import TRMTS, TRMTSConfig

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_config", "state_dict", "feature_names")


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or of another format; the message names the file."""


def checkpoint_payload(
    model: TRMTS,
    feature_names: list[str],
    feature_scaler: dict | None = None,
    target_scaler: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Return the checkpoint as a plain dict with CPU tensors; raises on non-finite weights."""
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    bad = [name for name, tensor in state.items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"refusing to save a model with non-finite weights in {bad[:5]}")
    if len(feature_names) != model.config.n_features:
        raise ValueError(
            f"{len(feature_names)} feature names for a model with "
            f"n_features={model.config.n_features}"
        )
    return {
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": state,
        "feature_names": list(feature_names),
        "feature_scaler": feature_scaler,
        "target_scaler": target_scaler,
        "extra": extra or {},
    }


def model_from_payload(payload: dict, source: str = "checkpoint") -> TRMTS:
    """Rebuild the network from a payload and load its weights (strictly)."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{source}: not a TRM-TS checkpoint, keys {missing} are missing")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format version {version} is not supported; this trm_ts "
            f"reads version {FORMAT_VERSION}. Retrain the model with this version."
        )
    model = TRMTS(TRMTSConfig.from_dict(dict(payload["model_config"])))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not match the stored config: {err}") from None
    model.eval()
    return model


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write a payload from ``checkpoint_payload`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[TRMTS, dict]:
    """Load a checkpoint file; returns the model (eval mode, on ``map_location``) and payload."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    # torch.load raises whatever its parser trips on for foreign bytes (IndexError, KeyError,
    # UnpicklingError, ...), so every exception here means "not a readable checkpoint".
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(
            f"{path}: could not read the checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); the file is damaged "
            f"or not a TRM-TS checkpoint"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a TRM-TS checkpoint (found {type(payload).__name__})")
    model = model_from_payload(payload, source=str(path))
    return model.to(map_location), payload
