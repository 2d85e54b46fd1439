"""The object FreqAI pickles for each trained TRM-TS model.

FreqAI (model_save_type "joblib", its default) writes the value returned by ``fit`` with
cloudpickle and reads it back with cloudpickle, in a later backtest, after a dry-run restart
or on another machine. ``TRMTSFreqaiModel`` is importable from the installed ``trm_ts``
package, so pickle stores it by reference. Its pickled state is one ``bytes`` field made by
``torch.save`` of plain data (tensors, lists, dicts, strings, numbers), which
``__setstate__`` reads with ``torch.load(weights_only=True, map_location="cpu")``. That keeps
arbitrary-object unpickling out of the checkpoint and lets a model trained on CUDA load on a
CPU-only machine. The built ``nn.Module`` is a cache, rebuilt after loading, never pickled.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import torch

from trm_ts.checkpoint import model_from_payload
from trm_ts.freqai.params import TRMTSParams
from trm_ts.freqai.windows import ColumnRoles

logger = logging.getLogger(__name__)


class TRMTSFreqaiModel:
    """A trained TRM-TS network plus what FreqAI-side prediction needs, as plain data.

    Payload keys:
        checkpoint: ``trm_ts.checkpoint.checkpoint_payload`` output (config, CPU state_dict,
            feature names)
        params: ``TRMTSParams.to_dict()`` of the training run
        roles: ``ColumnRoles.to_dict()``, column names after FreqAI's feature pipeline
        raw_feature_names: ``%`` columns the feature pipeline was fit on, in its order
        history_dates: (R,) int64 ns dates of the last training candles
        history_values: (R, len(raw_feature_names)) float64 raw features of those candles
        timeframe_seconds: candle length
        fit: summary of the training run (epochs_run, best_valid_nll, ...)
    """

    FORMAT_VERSION = 1
    PAYLOAD_KEYS = (
        "checkpoint",
        "params",
        "roles",
        "raw_feature_names",
        "history_dates",
        "history_values",
        "timeframe_seconds",
        "fit",
    )

    def __init__(self, payload: dict[str, Any]) -> None:
        missing = [k for k in self.PAYLOAD_KEYS if k not in payload]
        if missing:
            raise ValueError(f"TRMTSFreqaiModel payload is missing keys {missing}")
        self.payload = payload
        self._module: torch.nn.Module | None = None
        self._module_device: str | None = None

    # Persistence ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        torch.save(self.payload, buffer)
        return {"format_version": self.FORMAT_VERSION, "payload": buffer.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state.get("format_version")
        if version != self.FORMAT_VERSION:
            raise ValueError(
                f"saved TRM-TS FreqAI model has format_version={version!r}, this trm_ts reads "
                f"{self.FORMAT_VERSION}; retrain the model (delete its folder under "
                f"user_data/models/<identifier>)"
            )
        # NOTE: weights are stored as CPU tensors and mapped to the CPU here. The round trip
        # from a CUDA-trained model is tested only where CUDA exists.
        payload = torch.load(
            io.BytesIO(state["payload"]), map_location="cpu", weights_only=True
        )
        self.__init__(payload)

    # Accessors --------------------------------------------------------------------------

    @property
    def params(self) -> TRMTSParams:
        """Hyperparameters the model was trained with."""
        return TRMTSParams.from_config(self.payload["params"])

    @property
    def roles(self) -> ColumnRoles:
        """Routed column names after the feature pipeline."""
        return ColumnRoles.from_dict(self.payload["roles"])

    @property
    def raw_feature_names(self) -> list[str]:
        """``%`` columns before the feature pipeline, in the order it was fit on."""
        return list(self.payload["raw_feature_names"])

    @property
    def window(self) -> int:
        """Candles per input window."""
        return int(self.payload["params"]["window"])

    @property
    def timeframe_seconds(self) -> int:
        """Candle length in seconds."""
        return int(self.payload["timeframe_seconds"])

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the stored training tail: dates (R,) int64 ns, raw values (R, F_raw)."""
        dates = self.payload["history_dates"].cpu().numpy().astype(np.int64)
        values = self.payload["history_values"].cpu().numpy().astype(np.float64)
        return dates, values

    def module(self, device: str = "cpu") -> torch.nn.Module:
        """Return the network on ``device`` in eval mode, built once per device."""
        if self._module is None or self._module_device != device:
            network = model_from_payload(self.payload["checkpoint"])
            self._module = network.to(device).eval()
            self._module_device = device
        return self._module

    def state_dict_cpu(self) -> dict[str, torch.Tensor]:
        """Return the stored network weights (CPU tensors)."""
        return self.payload["checkpoint"]["state_dict"]
