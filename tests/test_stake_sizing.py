"""Table tests of the capped fractional Kelly stake rule over extreme forecasts and limits."""

from __future__ import annotations

import math

import pytest

from trm_ts.sizing import SKIP, StakeSizingConfig, kelly_fraction, stake_amount

CONFIG = StakeSizingConfig(
    kelly_fraction=0.25, max_fraction=1.0, min_fraction=0.05, sigma_floor=1e-4
)
PROPOSED, MIN_STAKE, MAX_STAKE = 100.0, 10.0, 500.0
NAN, INF = math.nan, math.inf

# (mean, sigma, side): every combination must give SKIP or a stake in [MIN_STAKE, MAX_STAKE].
EXTREME_FORECASTS = [
    (mean, sigma, side)
    for mean in (0.01, 1e-6, 0.0, -0.01, 1e6, -1e6, NAN, INF, -INF, None)
    for sigma in (0.01, 1e-12, 0.0, -0.01, 1e6, NAN, INF, None)
    for side in ("long", "short")
]


@pytest.mark.parametrize(("mean", "sigma", "side"), EXTREME_FORECASTS)
def test_stake_finite_within_limits(mean, sigma, side):
    stake = stake_amount(mean, sigma, side, PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    assert isinstance(stake, float)
    assert math.isfinite(stake)
    assert stake == SKIP or MIN_STAKE <= stake <= MAX_STAKE


@pytest.mark.parametrize(
    ("mean", "sigma", "side"),
    [
        (-0.01, 0.01, "long"),  # negative mean on a long
        (0.01, 0.01, "short"),  # positive mean on a short
        (0.0, 0.01, "long"),
        (NAN, 0.01, "long"),
        (0.01, NAN, "long"),
        (INF, 0.01, "long"),
        (0.01, -0.01, "long"),  # a negative sigma is not a forecast
        (None, None, "long"),
        (1e-6, 1e6, "long"),  # huge sigma: fraction far below min_fraction
    ],
)
def test_stake_skips_without_edge(mean, sigma, side):
    assert stake_amount(mean, sigma, side, PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG) == SKIP


@pytest.mark.parametrize("sigma", [0.0, 1e-12, 1e-300])
def test_stake_near_zero_sigma_capped(sigma):
    stake = stake_amount(0.01, sigma, "long", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    assert stake == pytest.approx(CONFIG.max_fraction * PROPOSED)


def test_stake_short_mirrors_long():
    long = stake_amount(0.002, 0.02, "long", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    short = stake_amount(-0.002, 0.02, "short", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    assert long == short


def test_stake_known_kelly_value():
    # quarter Kelly: 0.25 * 0.002 / 0.02**2 = 1.25, capped at 1.0; 0.0005 gives 0.3125
    assert kelly_fraction(0.002, 0.02, "long", CONFIG) == pytest.approx(1.0)
    assert kelly_fraction(0.0005, 0.02, "long", CONFIG) == pytest.approx(0.3125)
    stake = stake_amount(0.0005, 0.02, "long", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    assert stake == pytest.approx(31.25)


def test_stake_raised_to_min_stake():
    # fraction 0.0625 of 100 is 6.25, under the 10.0 exchange minimum
    stake = stake_amount(0.0001, 0.02, "long", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)
    assert stake == MIN_STAKE


def test_stake_cut_to_max_stake():
    stake = stake_amount(0.01, 0.01, "long", 10_000.0, MIN_STAKE, MAX_STAKE, CONFIG)
    assert stake == MAX_STAKE


def test_stake_fee_removes_small_edge():
    with_fee = StakeSizingConfig(round_trip_fee=0.002)
    assert stake_amount(0.0015, 0.01, "long", PROPOSED, MIN_STAKE, MAX_STAKE, with_fee) == SKIP
    assert stake_amount(0.0015, 0.01, "long", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG) > 0.0


@pytest.mark.parametrize(
    ("proposed", "min_stake", "max_stake"),
    [
        (NAN, MIN_STAKE, MAX_STAKE),
        (-100.0, MIN_STAKE, MAX_STAKE),
        (0.0, MIN_STAKE, MAX_STAKE),
        (INF, MIN_STAKE, MAX_STAKE),
        (PROPOSED, MIN_STAKE, NAN),
        (PROPOSED, MIN_STAKE, 0.0),
        (PROPOSED, MIN_STAKE, 5.0),  # max below min: the exchange minimum cannot be met
        (PROPOSED, MIN_STAKE, -1.0),
    ],
)
def test_stake_skips_invalid_limits(proposed, min_stake, max_stake):
    assert stake_amount(0.01, 0.01, "long", proposed, min_stake, max_stake, CONFIG) == SKIP


@pytest.mark.parametrize("min_stake", [None, NAN, -5.0, 0.0])
def test_stake_missing_min_stake(min_stake):
    stake = stake_amount(0.0005, 0.02, "long", PROPOSED, min_stake, MAX_STAKE, CONFIG)
    assert stake == pytest.approx(31.25)


def test_stake_invalid_side_raises():
    with pytest.raises(ValueError, match="side"):
        stake_amount(0.01, 0.01, "sideways", PROPOSED, MIN_STAKE, MAX_STAKE, CONFIG)


@pytest.mark.parametrize(
    "values",
    [
        {"kelly_fraction": 0.0},
        {"kelly_fraction": -1.0},
        {"max_fraction": NAN},
        {"sigma_floor": 0.0},
        {"min_fraction": 0.5, "max_fraction": 0.1},
        {"round_trip_fee": INF},
        {"kelly_fraction": "0.25"},
    ],
)
def test_sizing_config_rejects_bad_values(values):
    with pytest.raises((ValueError, TypeError)):
        StakeSizingConfig.from_dict(values)


def test_sizing_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="kelly_fractoin"):
        StakeSizingConfig.from_dict({"kelly_fractoin": 0.5})


def test_sizing_config_round_trip():
    config = StakeSizingConfig(kelly_fraction=0.5, round_trip_fee=0.002)
    assert StakeSizingConfig.from_dict(config.to_dict()) == config
