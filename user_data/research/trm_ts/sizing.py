"""Stake sizing from a forecast's mean and sigma: a capped fractional Kelly rule.

For a log return with mean m and standard deviation s, the growth-optimal (Kelly) fraction
of capital is about ``m / s**2``. Estimation error in m makes the full Kelly stake far too
large, so the rule scales it by ``kelly_fraction`` and caps it at ``max_fraction``. The
fraction multiplies the stake freqtrade proposes for one trade, and the result is clamped
into ``[min_stake, max_stake]``.

The function is pure: it reads one pair's forecast and the fixed sizing settings only, so a
pair's stake never depends on the whitelist or on other pairs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

SKIP = 0.0  # freqtrade skips an entry whose stake is 0


@dataclass(frozen=True)
class StakeSizingConfig:
    """Fixed settings of the capped fractional Kelly rule.

    kelly_fraction: share of the Kelly fraction ``edge / sigma**2`` to bet (0.25 = quarter
        Kelly, a common guard against an overestimated edge).
    max_fraction: cap on the fraction of the proposed stake.
    min_fraction: fractions below this skip the trade, because the edge is too small to pay
        for the risk of a minimum-size position.
    sigma_floor: lower bound applied to sigma, so a near-zero forecast sigma cannot blow the
        fraction up (1e-4 is a 0.01 % move, well under one 15m candle's typical range).
    round_trip_fee: fee ratio subtracted from the expected return before sizing (entry plus
        exit, e.g. 0.002 for 0.1 % per side).
    """

    kelly_fraction: float = 0.25
    max_fraction: float = 1.0
    min_fraction: float = 0.05
    sigma_floor: float = 1e-4
    round_trip_fee: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{field.name}={value!r} is invalid; it must be a number")
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{field.name}={value!r} is invalid; it must be finite and >= 0")
        if self.kelly_fraction <= 0.0:
            raise ValueError(f"kelly_fraction={self.kelly_fraction!r} is invalid; it must be > 0")
        if self.sigma_floor <= 0.0:
            raise ValueError(f"sigma_floor={self.sigma_floor!r} is invalid; it must be > 0")
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                f"min_fraction={self.min_fraction!r} exceeds max_fraction={self.max_fraction!r}; "
                "no trade could ever be sized"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> StakeSizingConfig:
        """Build the settings from a config section, rejecting unknown keys."""
        if not values:
            return cls()
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown stake sizing keys {unknown}; accepted keys are {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _finite(value: Any) -> float | None:
    """Return value as a float, or None when it is missing, non-numeric or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def kelly_fraction(mean: Any, sigma: Any, side: str, config: StakeSizingConfig) -> float:
    """Return the capped fractional Kelly fraction in ``[0, max_fraction]``.

    mean, sigma: forecast of the log return over the holding horizon. side: "long" or
    "short"; a short earns ``-mean``. Returns 0 for a missing or non-finite forecast, a
    negative sigma, or an edge that does not beat ``round_trip_fee``.
    """
    if side not in ("long", "short"):
        raise ValueError(f"side={side!r} is invalid; expected 'long' or 'short'")
    m = _finite(mean)
    s = _finite(sigma)
    if m is None or s is None or s < 0.0:
        return 0.0
    edge = (m if side == "long" else -m) - config.round_trip_fee
    if edge <= 0.0:
        return 0.0
    s = max(s, config.sigma_floor)
    fraction = config.kelly_fraction * edge / (s * s)
    return min(fraction, config.max_fraction)


def stake_amount(
    mean: Any,
    sigma: Any,
    side: str,
    proposed_stake: Any,
    min_stake: Any,
    max_stake: Any,
    config: StakeSizingConfig,
) -> float:
    """Size one entry: ``fraction * proposed_stake`` clamped into ``[min_stake, max_stake]``.

    Returns ``SKIP`` (0.0, which makes freqtrade skip the entry) when the fraction is below
    ``config.min_fraction``, when ``proposed_stake`` or ``max_stake`` is missing, non-finite
    or not positive, or when ``max_stake < min_stake``. Otherwise returns a finite stake
    within ``[min_stake, max_stake]``. A missing or invalid ``min_stake`` counts as 0. Bad
    numbers never raise. Only an invalid ``side`` raises ValueError.
    """
    fraction = kelly_fraction(mean, sigma, side, config)
    if fraction <= 0.0 or fraction < config.min_fraction:
        return SKIP

    proposed = _finite(proposed_stake)
    upper = _finite(max_stake)
    lower = _finite(min_stake)
    lower = lower if lower is not None and lower > 0.0 else 0.0
    if proposed is None or proposed <= 0.0 or upper is None or upper <= 0.0 or upper < lower:
        return SKIP

    stake = min(max(fraction * proposed, lower), upper)
    return stake if math.isfinite(stake) and stake > 0.0 else SKIP
