"""Classic volatility baselines that TRM-TS must beat, computed causally from past returns."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from arch import arch_model

logger = logging.getLogger(__name__)

# RiskMetrics (J.P. Morgan, 1996) decay for daily data; the candle-level default here.
EWMA_LAMBDA = 0.94
# NOTE: a guessed floor (about five days of 15m candles); fewer returns leave alpha and beta
# poorly identified.
GARCH_MIN_ROWS = 500


def ewma_variance(
    returns: np.ndarray, lam: float = EWMA_LAMBDA, init: float | None = None
) -> np.ndarray:
    """Return the EWMA variance known at the close of each candle.

    returns: (N,) one-candle log returns, ``returns[t]`` ending at candle t. Entry t of the
    result uses ``returns[: t + 1]`` only. NaN returns are treated as zero.
    """
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam={lam!r} is invalid; it must lie strictly between 0 and 1")
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    var = np.empty_like(r)
    seed = float(np.mean(r[: min(len(r), 100)] ** 2)) if init is None else float(init)
    prev = max(seed, 1e-12)
    for t, rt in enumerate(r):
        prev = lam * prev + (1.0 - lam) * rt * rt
        var[t] = prev
    return var


def ewma_sigma_forecast(
    returns: np.ndarray, horizon: int, lam: float = EWMA_LAMBDA, init: float | None = None
) -> np.ndarray:
    """Return the zero-mean EWMA sigma of the forward ``horizon``-candle log return.

    Under the random-walk assumption the variance of a sum of ``horizon`` returns is
    ``horizon`` times the one-candle variance.
    """
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid; it must be >= 1")
    return np.sqrt(horizon * np.maximum(ewma_variance(returns, lam, init), 1e-18))


# --- Hour-of-day scaled EWMA --------------------------------------------------------------

HOURS_PER_DAY = 24


def fit_hour_of_day_factors(
    target: np.ndarray, sigma: np.ndarray, hours: np.ndarray
) -> np.ndarray:
    """Fit one variance multiplier per UTC hour from training rows.

    target: (N,) realized forward returns, NaN where unknown (those rows are skipped).
    sigma: (N,) zero-mean forecast sigma of the same target, for example from
    ``ewma_sigma_forecast``. hours: (N,) UTC hour of each row's newest candle, 0..23.

    Returns (24,) factors ``mean(target**2 / sigma**2)`` per hour, the Gaussian maximum
    likelihood estimate of a variance multiplier. Multiply a variance forecast by
    ``factors[hour]`` (or its sigma by the square root) to apply it. The factors also absorb
    any overall level bias of the EWMA forecast on the training rows.
    """
    target = np.asarray(target, dtype=np.float64).ravel()
    sigma = np.asarray(sigma, dtype=np.float64).ravel()
    hours = np.asarray(hours).ravel()
    if not (len(target) == len(sigma) == len(hours)):
        raise ValueError(
            f"length mismatch: target={len(target)}, sigma={len(sigma)}, hours={len(hours)}"
        )
    if len(hours) and (hours.min() < 0 or hours.max() >= HOURS_PER_DAY):
        raise ValueError(f"hours must lie in 0..23, got {hours.min()}..{hours.max()}")
    known = np.isfinite(target) & np.isfinite(sigma) & (sigma > 0)
    ratio = (target[known] / sigma[known]) ** 2
    hour_known = hours[known].astype(np.int64)
    counts = np.bincount(hour_known, minlength=HOURS_PER_DAY)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f"no training rows with a known target for UTC hours {missing.tolist()}; "
            "train on at least one full day of candles"
        )
    sums = np.bincount(hour_known, weights=ratio, minlength=HOURS_PER_DAY)
    return sums / counts


def ewma_hourly_sigma_forecast(
    returns: np.ndarray,
    horizon: int,
    hours: np.ndarray,
    factors: np.ndarray,
    lam: float = EWMA_LAMBDA,
    init: float | None = None,
) -> np.ndarray:
    """Return the EWMA sigma of the forward return scaled by a fitted hour-of-day factor.

    hours: (N,) UTC hour of each candle. factors: (24,) from ``fit_hour_of_day_factors``
    fitted on the training rows only.
    """
    factors = np.asarray(factors, dtype=np.float64)
    if factors.shape != (HOURS_PER_DAY,):
        raise ValueError(f"factors has shape {factors.shape}; expected ({HOURS_PER_DAY},)")
    if not np.all(factors > 0):
        raise ValueError(f"factors must be > 0, got min {factors.min()!r}")
    hours = np.asarray(hours).astype(np.int64).ravel()
    if len(hours) != len(returns):
        raise ValueError(f"length mismatch: returns={len(returns)}, hours={len(hours)}")
    return ewma_sigma_forecast(returns, horizon, lam, init) * np.sqrt(factors[hours])


# --- GARCH(1,1) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GarchFit:
    """Zero-mean GARCH(1,1) parameters fitted on training returns.

    The parameters are in units of ``returns * scale``, where ``scale`` is one over the
    standard deviation of the training returns: the optimizer in ``arch`` converges more
    reliably on data of unit scale.
    """

    omega: float
    alpha: float
    beta: float
    scale: float

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta


def fit_garch(returns: np.ndarray) -> GarchFit:
    """Fit a zero-mean Gaussian GARCH(1,1) to one-candle log returns with the ``arch`` package.

    returns: (N,) training returns only. NaN entries (the first candle) are dropped.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if len(r) < GARCH_MIN_ROWS:
        raise ValueError(
            f"GARCH(1,1) needs at least {GARCH_MIN_ROWS} training returns, got {len(r)}"
        )
    std = float(np.std(r))
    if std <= 0:
        raise ValueError("training returns are constant; GARCH(1,1) cannot be fitted")
    scale = 1.0 / std
    model = arch_model(r * scale, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    result = model.fit(disp="off")
    if result.convergence_flag != 0:
        logger.warning(
            "GARCH(1,1) optimizer did not converge (flag %d) on %d returns; "
            "the fitted parameters are used anyway",
            result.convergence_flag,
            len(r),
        )
    params = result.params
    return GarchFit(
        omega=float(params["omega"]),
        alpha=float(params["alpha[1]"]),
        beta=float(params["beta[1]"]),
        scale=scale,
    )


def garch_sigma_forecast(returns: np.ndarray, horizon: int, fit: GarchFit) -> np.ndarray:
    """Return the GARCH(1,1) sigma of the forward ``horizon``-candle log return at each candle.

    returns: (N,) one-candle log returns over the whole series, NaN treated as zero. Entry t
    uses ``returns[: t + 1]`` and the fixed parameters only, so test returns are filtered
    through the model but never refit. The variance of the sum is the sum of the analytic
    1..horizon step variance forecasts, since the zero-mean returns are uncorrelated.
    """
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid; it must be >= 1")
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64).ravel(), nan=0.0)
    model = arch_model(
        r * fit.scale, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False
    )
    fixed = model.fix(np.array([fit.omega, fit.alpha, fit.beta]))
    forecast = fixed.forecast(horizon=horizon, start=0, reindex=False)
    variance = forecast.variance.to_numpy().sum(axis=1) / fit.scale**2  # (N,)
    return np.sqrt(np.maximum(variance, 1e-18))
