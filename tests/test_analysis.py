"""Tests of trm_ts.analysis: parsing freqtrade's own analysis output, then reduced real runs
of lookahead-analysis and recursive-analysis on real candles (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from freqtrade.optimize.analysis.lookahead_helpers import LookaheadAnalysisSubFunctions
from freqtrade.optimize.analysis.recursive_helpers import RecursiveAnalysisSubFunctions

from trm_ts import analysis
from trm_ts.analysis import parse_lookahead_csv, parse_recursive_output

REPO = Path(__file__).resolve().parents[1]
CANDLES = REPO.parent / "shared" / "data" / "binance"
CI_CONFIG = REPO / "configs" / "config_trm_ts_ci.json"

LONG_NAME = "%-ctx_corr_gen_shift-1_SOL/USDT_15m"


# ---------------------------------------------------------------------------
# Parsing, on output written by freqtrade's own table and CSV writers
# ---------------------------------------------------------------------------


def recursive_table(capsys, dict_recursive: dict, startups=(199, 400, 800), scc=400) -> str:
    instance = SimpleNamespace(
        _startup_candle=list(startups), _strat_scc=scc, dict_recursive=dict_recursive
    )
    RecursiveAnalysisSubFunctions.text_table_recursive_analysis_instances([instance])
    return capsys.readouterr().out


def test_recursive_table_parsed(capsys):
    text = recursive_table(
        capsys,
        {
            "%-rsi_gen_SOL/USDT_15m": {199: 0.02, 400: 0.0, 800: 1e-5},
            LONG_NAME: {199: -0.5, 800: float("nan")},
            "&-s_return": {199: 0.3, 400: 0.0, 800: 0.2},
        },
    )
    result = parse_recursive_output(text)
    assert result.startup_candles == [199, 400, 800]
    assert result.strategy_startup == 400
    assert result.variance["%-rsi_gen_SOL/USDT_15m"][199] == pytest.approx(0.02)
    assert result.variance["%-rsi_gen_SOL/USDT_15m"][800] == pytest.approx(0.0, abs=1e-5)
    assert result.variance[LONG_NAME][400] == 0.0  # printed as "-": no change
    assert math.isnan(result.variance[LONG_NAME][800])
    assert result.variance["&-s_return"][800] == pytest.approx(0.2)


def test_recursive_unstable_only_above_strategy_startup(capsys):
    text = recursive_table(
        capsys,
        {
            "%-stable_after_warmup": {199: 0.4, 400: 0.0, 800: 0.0},
            "%-still_moving": {199: 0.4, 400: 0.0, 800: 0.01},
            "&-s_return": {199: 0.3, 400: 0.0, 800: 0.2},  # predictions retrain: not checked
        },
    )
    result = parse_recursive_output(text)
    assert result.unstable_features(tolerance=1e-3) == {"%-still_moving": pytest.approx(0.01)}
    assert result.passed(tolerance=0.05)
    assert not result.passed(tolerance=1e-3)


def test_recursive_no_variance_passes():
    text = "INFO - No variance on indicator(s) found due to recursive formula.\n"
    text += "INFO - Calculating indicators using startup candle of 800.\n"
    result = parse_recursive_output(text)
    assert result.variance == {}
    assert result.startup_candles == [800]
    assert result.unstable_features(startup=400) == {}


def write_lookahead_csv(path: Path, signals: int, indicators: list[str]) -> None:
    current = SimpleNamespace(
        total_signals=signals,
        has_bias=bool(indicators),
        false_entry_signals=1,
        false_exit_signals=0,
        false_indicators=indicators,
    )
    instance = SimpleNamespace(
        current_analysis=current,
        failed_bias_check=False,
        strategy_obj={
            "location": REPO / "strategies" / "TRMTSStrategy.py",
            "name": "TRMTSStrategy",
        },
    )
    config = {"lookahead_analysis_exportfilename": str(path), "minimum_trade_amount": 1}
    LookaheadAnalysisSubFunctions.export_to_csv(config, [instance])


def test_lookahead_csv_parsed(tmp_path):
    path = tmp_path / "lookahead.csv"
    write_lookahead_csv(path, 4, ["&-s_return", "trm_mean", "%-rsi_gen_SOL/USDT_15m"])
    result = parse_lookahead_csv(path, 0, tmp_path / "log")
    assert result.total_signals == 4
    assert result.biased_entry_signals == 1
    assert result.biased_features == ["%-rsi_gen_SOL/USDT_15m"]
    assert result.biased_targets == ["&-s_return"]
    assert not result.passed


def test_lookahead_only_targets_biased_passes(tmp_path):
    path = tmp_path / "lookahead.csv"
    write_lookahead_csv(path, 3, ["&-s_return", "do_predict"])
    assert parse_lookahead_csv(path, 0, tmp_path / "log").passed


def test_lookahead_too_few_trades_fails(tmp_path):
    path = tmp_path / "lookahead.csv"
    write_lookahead_csv(path, 1, [])  # freqtrade writes no row for <= minimum_trade_amount
    result = parse_lookahead_csv(path, 0, tmp_path / "log")
    assert result.total_signals == 0
    assert not result.passed


def test_recursive_requires_startup_list(tmp_path):
    with pytest.raises(ValueError, match="startup_candles is empty"):
        analysis.run_recursive([CI_CONFIG], tmp_path, "20260101-20260102", [])


# ---------------------------------------------------------------------------
# Reduced real runs (slow): one pair, one or two weeks, one training epoch
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysis_configs(tmp_path_factory):
    """The CI config, a faster training overlay and the replay exchange overlay."""
    if not CANDLES.is_dir():
        pytest.fail(f"real candles not found at {CANDLES}; tests expect ../shared/data/binance")
    from trm_ts.replay import ReplayExchange

    folder = tmp_path_factory.mktemp("analysis_configs")
    fast = folder / "fast.json"
    fast.write_text(
        json.dumps(
            {
                "freqai": {
                    "train_period_days": 7,
                    "backtest_period_days": 7,
                    "model_training_parameters": {"epochs": 1},
                }
            }
        )
    )
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    with ReplayExchange(CANDLES, pairs=pairs, timeframes=["15m"]) as exchange:
        overlay = exchange.write_config_overlay(folder / "replay.json", pairs=pairs)
        yield [CI_CONFIG, fast, overlay]


@pytest.mark.slow
def test_lookahead_no_feature_biased(analysis_configs, tmp_path):
    result = analysis.run_lookahead(
        analysis_configs,
        tmp_path / "lookahead",
        "20260101-20260115",
        datadir=CANDLES,
        userdir=tmp_path / "user_data",
        minimum_trades=1,
        targeted_trades=2,
        identifier="trm_ts_test_lookahead",
        timeout=1500,
    )
    assert result.returncode == 0, result.summary()
    assert result.total_signals >= 2, result.summary()
    assert result.biased_features == [], result.summary()


@pytest.mark.slow
def test_recursive_features_stable(analysis_configs, tmp_path):
    result = analysis.run_recursive(
        analysis_configs,
        tmp_path / "recursive",
        "20260101-20260108",
        [800],
        pair="SOL/USDT",
        datadir=CANDLES,
        userdir=tmp_path / "user_data",
        identifier="trm_ts_test_recursive",
        timeout=1500,
    )
    assert result.returncode == 0, result.summary()
    assert result.strategy_startup == 400, result.summary()
    assert result.unstable_features() == {}, result.summary()
