"""Forecast metrics for Gaussian predictions, computed with numpy on raw return units.

Every function takes 1-D arrays of equal length: ``y`` the realized target, ``mu`` the
predicted mean and ``sigma`` the predicted standard deviation (> 0).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

LOG_2PI = math.log(2.0 * math.pi)
# Two-sided standard normal quantiles for the reported central intervals.
Z_68 = 0.994457883209753
Z_95 = 1.959963984540054


def _as_arrays(y, mu, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mu, sigma = (np.asarray(a, dtype=np.float64).ravel() for a in (y, mu, sigma))
    if not (len(y) == len(mu) == len(sigma)):
        raise ValueError(f"length mismatch: y={len(y)}, mu={len(mu)}, sigma={len(sigma)}")
    if len(y) and not np.all(sigma > 0):
        raise ValueError(f"sigma must be > 0 everywhere, got min {np.min(sigma)!r}")
    return y, mu, sigma


def gaussian_nll(y, mu, sigma) -> float:
    """Return the mean Gaussian negative log-likelihood, constant included."""
    y, mu, sigma = _as_arrays(y, mu, sigma)
    z = (y - mu) / sigma
    return float(np.mean(0.5 * LOG_2PI + np.log(sigma) + 0.5 * z**2))


def crps_gaussian(y, mu, sigma) -> float:
    """Return the mean closed-form CRPS of a Gaussian forecast (Gneiting and Raftery, 2007)."""
    y, mu, sigma = _as_arrays(y, mu, sigma)
    z = (y - mu) / sigma
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
    return float(np.mean(sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))))


def coverage(y, mu, sigma, z: float) -> float:
    """Return the share of targets inside the central interval ``mu ± z * sigma``."""
    y, mu, sigma = _as_arrays(y, mu, sigma)
    return float(np.mean(np.abs(y - mu) <= z * sigma))


def pit(y, mu, sigma) -> np.ndarray:
    """Return the probability integral transform values; uniform on [0, 1] when calibrated."""
    y, mu, sigma = _as_arrays(y, mu, sigma)
    return 0.5 * (1.0 + erf((y - mu) / (sigma * math.sqrt(2.0))))


def directional_accuracy(y, mu) -> float:
    """Return the share of nonzero targets whose sign the mean forecast gets right.

    NaN when the forecast is zero everywhere (a zero-mean model makes no directional call).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    mu = np.asarray(mu, dtype=np.float64).ravel()
    moved = y != 0
    if not moved.any() or not np.any(mu != 0):
        return float("nan")
    return float(np.mean(np.sign(y[moved]) == np.sign(mu[moved])))


def summarize(y, mu, sigma) -> dict[str, float]:
    """Return every reported metric in one dict, keys in table order."""
    y, mu, sigma = _as_arrays(y, mu, sigma)
    return {
        "mae": float(np.mean(np.abs(y - mu))),
        "rmse": float(np.sqrt(np.mean((y - mu) ** 2))),
        "nll": gaussian_nll(y, mu, sigma),
        "crps": crps_gaussian(y, mu, sigma),
        "cov68": coverage(y, mu, sigma, Z_68),
        "cov95": coverage(y, mu, sigma, Z_95),
        "dir_acc": directional_accuracy(y, mu),
    }
