"""Typed hyperparameters of the FreqAI regressor, parsed from ``model_training_parameters``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

# Accepted ``device`` values: "cpu", "cuda", "cuda:N", or "auto" for CUDA when torch finds a
# GPU and the CPU otherwise.
DEVICE_PREFIXES = ("cpu", "cuda")


@dataclass(frozen=True)
class TRMTSParams:
    """Settings under ``freqai.model_training_parameters`` for ``TRMTSRegressor``.

    ``window`` is the number of candles per input window (T). The remaining fields map onto
    ``trm_ts.model.TRMTSConfig`` (network) and ``trm_ts.training.TrainConfig`` (training loop).
    """

    window: int = 64
    latent_dim: int = 32
    recursive_steps: int = 4
    multi_scales: tuple[int, ...] = (16, 64)
    n_regimes: int = 8
    attn_heads: int = 2
    dropout: float = 0.2
    learning_rate: float = 5e-5
    weight_decay: float = 0.05
    batch_size: int = 64
    epochs: int = 20
    patience: int = 5
    grad_clip: float = 1.0
    deep_supervision: bool = True
    device: str = "cpu"
    seed: int = 42
    # Windows per forward pass at prediction time; only memory use depends on it.
    predict_batch_size: int = 1024

    def __post_init__(self) -> None:
        checks = [
            ("window", self.window >= 2, "an integer >= 2"),
            ("latent_dim", self.latent_dim >= 2, "an integer >= 2"),
            ("recursive_steps", self.recursive_steps >= 1, "an integer >= 1"),
            ("n_regimes", self.n_regimes >= 1, "an integer >= 1"),
            ("attn_heads", self.attn_heads >= 1, "an integer >= 1"),
            ("dropout", 0.0 <= self.dropout < 1.0, "a float in [0, 1)"),
            ("learning_rate", self.learning_rate > 0.0, "a float > 0"),
            ("weight_decay", self.weight_decay >= 0.0, "a float >= 0"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("patience", self.patience >= 0, "an integer >= 0 (0 disables early stopping)"),
            ("grad_clip", self.grad_clip > 0.0, "a float > 0"),
            ("predict_batch_size", self.predict_batch_size >= 1, "an integer >= 1"),
            (
                "multi_scales",
                len(self.multi_scales) >= 1 and all(s >= 1 for s in self.multi_scales),
                "a non-empty list of integers >= 1",
            ),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(
                    f"freqai.model_training_parameters.{name}={getattr(self, name)!r} is "
                    f"invalid; it must be {allowed}"
                )
        if self.device != "auto" and not self.device.startswith(DEVICE_PREFIXES):
            raise ValueError(
                f"freqai.model_training_parameters.device={self.device!r} is invalid; use "
                f"'auto', 'cpu', 'cuda' or 'cuda:N'"
            )

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """Return the key names accepted in ``model_training_parameters``."""
        return sorted(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> TRMTSParams:
        """Parse ``model_training_parameters``; unknown keys and wrong types raise.

        freqtrade's own models read this dict with defaults, so a misspelled key there is
        silently ignored. Here it raises ``ValueError`` listing the accepted keys.
        """
        raw = dict(raw or {})
        accepted = cls.accepted_keys()
        unknown = sorted(set(raw) - set(accepted))
        if unknown:
            raise ValueError(
                f"freqai.model_training_parameters has unknown keys {unknown}; "
                f"accepted keys: {accepted}"
            )
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                continue
            values[f.name] = _coerce(f.name, raw[f.name], f.default)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as plain data (lists, not tuples)."""
        data = dataclasses.asdict(self)
        data["multi_scales"] = list(self.multi_scales)
        return data

    def resolve_device(self) -> str:
        """Return the torch device to run on; a CUDA request without a visible GPU raises."""
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"freqai.model_training_parameters.device={self.device!r} but torch "
                f"{torch.__version__} sees no CUDA device; set device to 'cpu' or 'auto'"
            )
        return self.device


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check one JSON value against the type of its default and convert ints to floats."""
    where = f"freqai.model_training_parameters.{name}"
    # bool is a subclass of int in Python, so it is checked first and on its own.
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{where}={value!r} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}={value!r} must be an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}={value!r} must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{where}={value!r} must be a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(f"{where}={value!r} must be a list of integers")
        return tuple(value)
    raise TypeError(f"{where} has an unsupported default type {type(default).__name__}")
