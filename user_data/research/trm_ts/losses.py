"""The Gaussian negative log-likelihood, the one loss every TRM-TS training path uses."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Compute the full Gaussian NLL, constant included, so values compare across models.

    mean, logvar, target: (B, H). ``reduction`` is "mean" (a scalar) or "none" (B, H).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction={reduction!r} is invalid; use 'mean' or 'none'")
    nll = 0.5 * (LOG_2PI + logvar + (target - mean) ** 2 * torch.exp(-logvar))
    return nll.mean() if reduction == "mean" else nll
