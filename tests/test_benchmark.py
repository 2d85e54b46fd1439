"""Benchmark: baselines and fold layout on known values, and the --quick page end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trm_ts import baselines
from trm_ts.bench.contenders import gather_windows
from trm_ts.bench.folds import walk_forward_folds

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "benchmark_trm_ts.py"
# The quick run took 2 to 8 minutes on a 2-core CPU shared with other jobs; this leaves room.
QUICK_TIMEOUT_S = 1800
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODEL_KEYS = ("trm_ts", "ewma", "ewma_hour", "garch", "lightgbm", "transformer")
PAGE_HEADINGS = (
    "## Run",
    "## Targets",
    "## Setup",
    "### Folds",
    "## Forecast quality",
    "### All pairs, pooled",
    "### Test NLL per pair",
    "### 95% coverage per pair",
    "### MAE per pair (bp)",
    "### NLL per fold, mean over pairs",
    "### PIT histograms",
    "## TRM-TS recursion steps and deep supervision",
    "### With and without deep supervision",
    "### Fit time per fold",
    "## Speed and size on CPU",
    "## Full FreqAI backtest wall time",
)


def simulate_garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n)
    returns = np.empty(n)
    var = omega / (1.0 - alpha - beta)
    for t in range(n):
        returns[t] = np.sqrt(var) * shocks[t]
        var = omega + alpha * returns[t] ** 2 + beta * var
    return returns


# --- Baselines ------------------------------------------------------------------------------


def test_hour_factors_known_answer():
    hours = np.tile(np.arange(24), 10)
    sigma = np.full(len(hours), 0.01)
    expected = np.linspace(0.5, 2.0, 24)
    target = sigma * np.sqrt(expected[hours]) * np.where(np.arange(len(hours)) % 2, 1, -1)
    factors = baselines.fit_hour_of_day_factors(target, sigma, hours)
    np.testing.assert_allclose(factors, expected, rtol=1e-12)


def test_hour_factors_skip_nan_targets():
    hours = np.tile(np.arange(24), 2)
    sigma = np.ones(48)
    target = np.ones(48)
    target[:24] = np.nan
    factors = baselines.fit_hour_of_day_factors(target, sigma, hours)
    np.testing.assert_allclose(factors, np.ones(24))


def test_hour_factors_missing_hour_raises():
    hours = np.arange(23)
    with pytest.raises(ValueError, match=r"UTC hours \[23\]"):
        baselines.fit_hour_of_day_factors(np.ones(23), np.ones(23), hours)


def test_hourly_sigma_unit_factors_equal_ewma():
    returns = np.random.default_rng(0).normal(0, 0.01, 500)
    hours = np.arange(500) % 24
    hourly = baselines.ewma_hourly_sigma_forecast(returns, 4, hours, np.ones(24))
    np.testing.assert_allclose(hourly, baselines.ewma_sigma_forecast(returns, 4))


def test_hourly_sigma_bad_factors_raise():
    with pytest.raises(ValueError, match="factors has shape"):
        baselines.ewma_hourly_sigma_forecast(np.zeros(10), 4, np.zeros(10), np.ones(12))


def test_garch_fit_recovers_parameters():
    returns = simulate_garch(20_000, omega=0.05, alpha=0.10, beta=0.85, seed=1) * 0.002
    fit = baselines.fit_garch(returns)
    assert abs(fit.alpha - 0.10) < 0.03
    assert abs(fit.beta - 0.85) < 0.05


def test_garch_horizon_sums_step_variances():
    returns = simulate_garch(3_000, omega=0.05, alpha=0.10, beta=0.85, seed=2) * 0.002
    fit = baselines.fit_garch(returns)
    one = baselines.garch_sigma_forecast(returns, 1, fit) ** 2
    four = baselines.garch_sigma_forecast(returns, 4, fit) ** 2
    # E[var t+k] = V + p^(k-1) (var t+1 - V), V the unconditional variance, p the persistence.
    p = fit.persistence
    unconditional = fit.omega / (1.0 - p) / fit.scale**2
    expected = sum(unconditional + p**k * (one - unconditional) for k in range(4))
    np.testing.assert_allclose(four, expected, rtol=1e-6)


def test_garch_forecast_is_causal():
    returns = simulate_garch(2_000, omega=0.05, alpha=0.10, beta=0.85, seed=3) * 0.002
    fit = baselines.fit_garch(returns[:1_000])
    changed = returns.copy()
    changed[1_500:] *= 5.0
    before = baselines.garch_sigma_forecast(returns, 4, fit)
    after = baselines.garch_sigma_forecast(changed, 4, fit)
    np.testing.assert_array_equal(before[:1_500], after[:1_500])


def test_garch_too_few_returns_raise():
    with pytest.raises(ValueError, match="at least"):
        baselines.fit_garch(np.zeros(10))


# --- Folds and windows ----------------------------------------------------------------------


def test_folds_purge_target_horizon():
    folds = walk_forward_folds(
        n_rows=5_000, n_folds=3, train_rows=1_000, test_rows=500, horizon=4, valid_fraction=0.2
    )
    for fold in folds:
        assert fold.train_stop + 4 == fold.valid_start
        assert fold.valid_stop + 4 == fold.test_start


def test_folds_test_blocks_follow_each_other():
    folds = walk_forward_folds(
        n_rows=5_000, n_folds=3, train_rows=1_000, test_rows=500, horizon=4, valid_fraction=0.2
    )
    assert [f.test_start for f in folds[1:]] == [f.test_stop for f in folds[:-1]]
    assert folds[-1].test_stop == 5_000 - 4


def test_folds_train_before_test():
    folds = walk_forward_folds(
        n_rows=5_000, n_folds=3, train_rows=1_000, test_rows=500, horizon=4, valid_fraction=0.2
    )
    for fold in folds:
        # Row t's target reads close[t + 4]: the last training target ends before the test.
        assert fold.valid_stop - 1 + 4 < fold.test_start


def test_folds_too_few_rows_raise():
    with pytest.raises(ValueError, match="too few"):
        walk_forward_folds(
            n_rows=1_000, n_folds=3, train_rows=1_000, test_rows=500, horizon=4,
            valid_fraction=0.2,
        )


def test_gather_windows_end_on_row():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)  # row r contains [2r, 2r + 1]
    windows = gather_windows(values, np.array([3, 9]), window=3)
    assert windows.shape == (2, 3, 2)
    np.testing.assert_array_equal(windows[0, -1], values[3])
    np.testing.assert_array_equal(windows[1, 0], values[7])


# --- Quick run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable, str(SCRIPT), "--quick",
        "--out-dir", str(out_dir), "--work-dir", str(out_dir / "work"),
    ]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=QUICK_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out_dir


@pytest.mark.slow
def test_quick_page_has_every_section(quick_run):
    page = (quick_run / "benchmarks.md").read_text()
    missing = [h for h in PAGE_HEADINGS if f"\n{h}\n" not in page]
    assert not missing


@pytest.mark.slow
def test_quick_page_images_exist(quick_run):
    page = (quick_run / "benchmarks.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    expected = {f"img/pit_{key}.png" for key in MODEL_KEYS}
    expected |= {"img/nll_by_pair.png", "img/nll_vs_steps.png", "img/speed.png"}
    assert set(images) == expected
    for name in images:
        assert (quick_run / name).read_bytes()[:8] == PNG_MAGIC, name


@pytest.mark.slow
def test_quick_page_lists_run_details(quick_run):
    page = (quick_run / "benchmarks.md").read_text()
    items = (
        "| Command | `python scripts/benchmark_trm_ts.py --quick",
        "| Git commit at the start |",
        "| CPU |",
        "| torch |",
    )
    for item in items:
        assert item in page, item


@pytest.mark.slow
def test_quick_page_has_every_pair_and_step(quick_run):
    page = (quick_run / "benchmarks.md").read_text()
    nll_table = page.split("### Test NLL per pair")[1].split("###")[0]
    for pair in ("BTC/USDT", "ETH/USDT"):
        assert f"| {pair} |" in nll_table, pair
    steps_table = page.split("## TRM-TS recursion steps")[1].split("###")[0]
    for steps in range(1, 9):
        assert re.search(rf"\n\| {steps}( \(trained\))? \|", steps_table), steps


@pytest.mark.slow
def test_quick_page_backtest_measured(quick_run):
    page = (quick_run / "benchmarks.md").read_text()
    section = page.split("## Full FreqAI backtest wall time")[1]
    assert "| Wall-time ratio TRM-TS / transformer |" in section, section[:2000]


@pytest.mark.slow
def test_quick_json_speed_positive(quick_run):
    raw = json.loads((quick_run / "benchmarks.json").read_text())
    for model in ("trm_ts", "transformer"):
        for field in ("train_samples_per_s", "inference_candles_per_s", "loop_candles_per_s"):
            assert raw["speed"][model][field] > 0, (model, field)
