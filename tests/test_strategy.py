"""Tests of TRMTSStrategy's hooks through freqtrade's own resolver, DataProvider and FreqAI
data kitchen, on real Binance candles."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from freqtrade.data.dataprovider import DataProvider
from freqtrade.enums import CandleType, RunMode
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
from freqtrade.persistence import Trade
from freqtrade.resolvers import StrategyResolver

from trm_ts import columns
from trm_ts import features as F
from trm_ts.dataset import build_frame
from trm_ts.sizing import SKIP

REPO = Path(__file__).resolve().parents[1]
CANDLES = REPO.parent / "shared" / "data" / "binance"
CI_CONFIG = REPO / "configs" / "config_trm_ts_ci.json"
PAIR = "SOL/USDT"
ROWS = 1500
TIMEFRAMES = ["15m", "1h"]


def read_candles(pair: str, timeframe: str) -> pd.DataFrame:
    path = CANDLES / f"{pair.replace('/', '_')}-{timeframe}.feather"
    if not path.is_file():
        pytest.fail(f"real candles not found at {path}; tests expect ../shared/data/binance")
    return pd.read_feather(path)


def make_config(datadir: Path, **freqai_features) -> dict:
    """The CI config with a 15m + 1h feature set, loaded for freqtrade's backtest run mode."""
    config = json.loads(CI_CONFIG.read_text())
    config["freqai"]["feature_parameters"].update(
        {"include_timeframes": TIMEFRAMES, "include_shifted_candles": 1, **freqai_features}
    )
    config.update(
        {
            "runmode": RunMode.BACKTEST,
            "strategy_path": str(REPO / "strategies"),
            "user_data_dir": datadir.parent,
            "datadir": datadir,
            "candle_type_def": CandleType.SPOT,
        }
    )
    # Without a timerange the DataProvider serves every stored candle of the context pairs.
    config.pop("timerange", None)
    return config


def load_strategy(config: dict):
    strategy = StrategyResolver.load_strategy(config)
    strategy.dp = DataProvider(config, None)
    return strategy


@pytest.fixture
def config() -> dict:
    return make_config(CANDLES)


def base_frames(rows: int = ROWS, pair: str = PAIR) -> dict[str, pd.DataFrame]:
    """The traded pair's candles: the first ``rows`` 15m ones and the 1h ones up to them."""
    quarter = read_candles(pair, "15m").iloc[:rows].reset_index(drop=True)
    hourly = read_candles(pair, "1h")
    hourly = hourly[hourly["date"] <= quarter["date"].iloc[-1]].reset_index(drop=True)
    return {"15m": quarter, "1h": hourly}


def populate(config: dict, frames: dict[str, pd.DataFrame], corr: dict | None = None):
    """Run FreqAI's feature population (live path, so targets are set too)."""
    strategy = load_strategy(config)
    strategy.bot_start()
    kitchen = FreqaiDataKitchen(config, live=True, pair=PAIR)
    return kitchen.use_strategy_to_populate_indicators(
        strategy,
        corr_dataframes=corr or {},
        base_dataframes={tf: frame.copy() for tf, frame in frames.items()},
        pair=PAIR,
    )


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("%")]


@pytest.fixture(scope="module")
def populated() -> pd.DataFrame:
    config = make_config(CANDLES)
    return populate(config, base_frames())


# ---------------------------------------------------------------------------
# Loading and startup checks
# ---------------------------------------------------------------------------


def test_strategy_spot_is_long_only(config):
    strategy = load_strategy(config)
    assert strategy.INTERFACE_VERSION == 3
    assert strategy.can_short is False


def test_strategy_futures_allows_shorts(config):
    config.update({"trading_mode": "futures", "margin_mode": "isolated"})
    assert load_strategy(config).can_short is True


def test_bot_start_rejects_small_startup(config):
    config["startup_candle_count"] = 120
    strategy = load_strategy(config)
    with pytest.raises(ValueError, match=r"startup_candle_count=120 .* set startup_candle_count"):
        strategy.bot_start()


def test_bot_start_default_startup_enough(config):
    strategy = load_strategy(config)
    strategy.bot_start()
    needed = F.required_startup_candles("15m", TIMEFRAMES, 1)
    assert strategy.startup_candle_count >= needed


def test_bot_start_rejects_bad_sizing(config):
    config["trm_ts_stake_sizing"] = {"kelly": 0.5}
    with pytest.raises(ValueError, match="unknown stake sizing keys"):
        load_strategy(config).bot_start()


# ---------------------------------------------------------------------------
# Features through FreqAI's data kitchen
# ---------------------------------------------------------------------------


def test_categorical_columns_integer(populated):
    warm = F.required_startup_candles("15m", TIMEFRAMES, 1)
    for column, upper in ((columns.REGIME, 7), (columns.HOUR, 23), (columns.DAY_OF_WEEK, 6)):
        values = populated[column].iloc[warm:]
        assert values.notna().all(), column
        assert (values == values.round()).all(), column
        assert values.min() >= 0, column
        assert values.max() <= upper, column


def test_context_columns_present(populated):
    names = set(populated.columns)
    for pair in ("BTC/USDT", "ETH/USDT"):
        for timeframe in TIMEFRAMES:
            assert f"%-ctx_ret_gen_{pair}_{timeframe}" in names
    assert f"%-ctx_corr_gen_{PAIR}_15m" in names
    assert f"%-ctx_beta_gen_{PAIR}_1h" in names
    assert "%-ctx_rs_gen_ETH/USDT_15m" in names  # ETH against BTC
    assert "%-ctx_corr_gen_BTC/USDT_15m" not in names  # no self-correlation


def test_features_finite_after_warmup(populated):
    warm = F.required_startup_candles("15m", TIMEFRAMES, 1)
    values = populated[feature_columns(populated)].to_numpy(dtype=np.float64)
    assert not np.isinf(values).any()
    assert not np.isnan(values[warm:]).any()


def test_targets_forward_log_return(populated):
    horizon = 4  # label_period_candles of the CI config
    close = populated["close"].to_numpy()
    expected = np.log(close[horizon:] / close[:-horizon])
    np.testing.assert_allclose(populated[columns.TARGET].to_numpy()[:-horizon], expected)
    assert populated[columns.TARGET].iloc[-horizon:].isna().all()
    np.testing.assert_array_equal(
        populated[columns.SIGMA].to_numpy(), np.abs(populated[columns.TARGET].to_numpy())
    )


def test_only_targets_look_forward(populated):
    forward = [c for c in populated.columns if c.startswith("&")]
    assert sorted(forward) == sorted([columns.TARGET, columns.SIGMA])


def test_features_match_standalone_cli(populated):
    frame = build_frame(base_frames()["15m"], horizons=(4,))
    warm = F.required_startup_candles("15m", TIMEFRAMES, 1)
    np.testing.assert_array_equal(populated[columns.HOUR].to_numpy(), frame.hour)
    np.testing.assert_array_equal(populated[columns.DAY_OF_WEEK].to_numpy(), frame.day_of_week)
    np.testing.assert_array_equal(populated[columns.REGIME].to_numpy()[warm:], frame.regime[warm:])
    for index, name in enumerate(frame.feature_names):
        column = populated[f"%-{name}_gen_{PAIR}_15m"].to_numpy()
        np.testing.assert_array_equal(column[warm:], frame.features[warm:, index], err_msg=name)


@pytest.mark.parametrize("cut", [700, 1111])
def test_features_cut_rows_identical(populated, cut):
    """Every % feature computed on candles cut at row t equals the full run up to t."""
    config = make_config(CANDLES)
    part = populate(config, base_frames(rows=cut))
    names = feature_columns(populated)
    assert feature_columns(part) == names
    pd.testing.assert_frame_equal(
        part[names], populated[names].iloc[:cut], check_exact=True, check_dtype=False
    )


def test_missing_context_pair_raises(config):
    config["freqai"]["feature_parameters"]["include_corr_pairlist"] = ["BTC/USDT", "DOGE/USDT"]
    with pytest.raises(ValueError, match="DOGE/USDT"):
        populate(config, base_frames(rows=500))


def test_missing_reference_pair_raises(config):
    config["freqai"]["feature_parameters"]["include_corr_pairlist"] = ["PEPE/USDT"]
    with pytest.raises(ValueError, match="PEPE/USDT"):
        populate(config, base_frames(rows=500))


def copy_datadir(target: Path, drop: dict[str, list[int]] | None = None) -> Path:
    """Copy the candle files of the test pairs to ``target``, dropping rows where asked."""
    target.mkdir(parents=True, exist_ok=True)
    for pair in ("BTC/USDT", "ETH/USDT", PAIR):
        for timeframe in TIMEFRAMES:
            name = f"{pair.replace('/', '_')}-{timeframe}.feather"
            rows = (drop or {}).get(f"{pair} {timeframe}")
            if rows is None:
                shutil.copy(CANDLES / name, target / name)
            else:
                frame = read_candles(pair, timeframe).drop(index=rows).reset_index(drop=True)
                frame.to_feather(target / name)
    return target


def test_context_gap_nan_only_touched_rows(tmp_path, populated, caplog):
    """A gap in the BTC file gives NaN on the rows whose windows contain it, with a log line."""
    gap = list(range(900, 904))
    datadir = copy_datadir(tmp_path / "data", {"BTC/USDT 15m": gap})
    with caplog.at_level(logging.WARNING):
        gapped = populate(make_config(datadir), base_frames())

    names = feature_columns(populated)
    assert feature_columns(gapped) == names
    nan_rows = np.flatnonzero(gapped[names].isna().any(axis=1).to_numpy())
    warm = F.required_startup_candles("15m", TIMEFRAMES, 1)
    nan_rows = nan_rows[nan_rows >= warm]
    assert nan_rows.min() == gap[0]
    # The correlation window (96 candles) plus one shifted candle bounds the affected rows.
    assert nan_rows.max() == gap[-1] + F.CONTEXT_CORR_PERIOD + 1
    touched = [c for c in names if gapped[c].iloc[gap[0] :].isna().any()]
    assert all("ctx" in c for c in touched)
    assert any(
        "rows have NaN" in r.getMessage() and "BTC/USDT" in r.getMessage() for r in caplog.records
    )


def test_unfilled_gap_masked_after_merge(caplog):
    """Context candles missing from FreqAI's corr data (no fill-up) are blanked, not ffilled."""
    btc = read_candles("BTC/USDT", "15m").iloc[: ROWS + 10]
    gap_dates = btc["date"].iloc[1000:1003]
    corr = {
        "BTC/USDT": {
            "15m": btc[~btc["date"].isin(gap_dates)].reset_index(drop=True),
            "1h": read_candles("BTC/USDT", "1h"),
        }
    }
    with caplog.at_level(logging.WARNING):
        frame = populate(make_config(CANDLES), base_frames(), corr=corr)
    btc_columns = [c for c in feature_columns(frame) if c.endswith("_BTC/USDT_15m")]
    blank = frame[btc_columns].isna().all(axis=1).to_numpy()
    assert blank[1000:1003].all()
    assert any("across a gap" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# Signals and missing predictions
# ---------------------------------------------------------------------------


def forecast_frame(mean, sigma, do_predict) -> pd.DataFrame:
    n = len(mean)
    return pd.DataFrame(
        {
            "date": pd.date_range("2026-01-01", periods=n, freq="15min", tz="UTC"),
            "close": 100.0,
            columns.TARGET: mean,
            columns.SIGMA: sigma,
            "do_predict": do_predict,
        }
    )


def signals(strategy, frame: pd.DataFrame) -> pd.DataFrame:
    frame = strategy.add_forecast_columns(frame)
    frame = strategy.populate_entry_trend(frame, {"pair": PAIR})
    return strategy.populate_exit_trend(frame, {"pair": PAIR})


def test_signals_entry_needs_edge_over_fees(config):
    strategy = load_strategy(config)
    fee = strategy._round_trip_fee
    sigma = 0.01
    threshold = strategy.entry_sigma.value * sigma + fee
    frame = signals(strategy, forecast_frame([threshold + 1e-4, threshold - 1e-4, -0.01], sigma, 1))
    assert frame["enter_long"].fillna(0).tolist() == [1, 0, 0]
    assert frame["exit_long"].fillna(0).tolist() == [0, 0, 1]
    assert "enter_short" not in frame or frame["enter_short"].fillna(0).sum() == 0


@pytest.mark.parametrize(
    ("mean", "sigma", "do_predict"),
    [
        (0.05, 0.01, 0),
        (0.05, 0.01, 2),
        (np.nan, 0.01, 1),
        (0.05, np.nan, 1),
        (0.05, 0.0, 1),
        (0.05, -0.01, 1),
        (np.inf, 0.01, 1),
    ],
)
def test_signals_missing_prediction_no_entry(config, mean, sigma, do_predict):
    frame = signals(load_strategy(config), forecast_frame([mean] * 3, sigma, do_predict))
    assert frame.get("enter_long", pd.Series(0)).fillna(0).sum() == 0
    assert frame.get("exit_long", pd.Series(0)).fillna(0).sum() == 0


def test_signals_no_model_columns(config):
    strategy = load_strategy(config)
    frame = forecast_frame([0.05] * 3, 0.01, 1).drop(
        columns=[columns.TARGET, columns.SIGMA, "do_predict"]
    )
    frame = signals(strategy, frame)
    assert frame.get("enter_long", pd.Series(0)).fillna(0).sum() == 0


def test_signals_short_in_futures(config):
    config.update({"trading_mode": "futures", "margin_mode": "isolated"})
    frame = signals(load_strategy(config), forecast_frame([-0.05, 0.05], 0.01, 1))
    assert frame["enter_short"].fillna(0).tolist() == [1, 0]
    assert frame["exit_short"].fillna(0).tolist() == [0, 1]


def test_plot_config_columns_exist(config):
    strategy = load_strategy(config)
    frame = signals(strategy, forecast_frame([0.01], 0.01, 1))
    for plot in strategy.plot_config["subplots"].values():
        for column, style in plot.items():
            assert column in frame.columns
            assert style.get("fill_to", column) in frame.columns


# ---------------------------------------------------------------------------
# Sizing and stops through the strategy
# ---------------------------------------------------------------------------


def analyzed(strategy, mean, sigma, do_predict) -> None:
    frame = strategy.add_forecast_columns(forecast_frame(mean, sigma, do_predict))
    strategy.dp._set_cached_df(PAIR, strategy.timeframe, frame, CandleType.SPOT)
    # Backtesting exposes the analyzed rows up to the current candle, here all of them.
    strategy.dp._set_dataframe_max_index(PAIR, len(frame))


def stake(strategy, side: str = "long") -> float:
    return strategy.custom_stake_amount(
        pair=PAIR,
        current_time=datetime(2026, 1, 2, tzinfo=UTC),
        current_rate=100.0,
        proposed_stake=300.0,
        min_stake=10.0,
        max_stake=900.0,
        leverage=1.0,
        entry_tag="trm_long",
        side=side,
    )


def test_custom_stake_from_pair_forecast(config):
    strategy = load_strategy(config)
    analyzed(strategy, [0.01, 0.004], 0.02, 1)
    amount = stake(strategy)
    # quarter Kelly on the net edge of the newest candle: 0.25 * (0.004 - fee) / 0.02**2
    fraction = 0.25 * (0.004 - strategy._round_trip_fee) / 0.02**2
    assert amount == pytest.approx(min(fraction, 1.0) * 300.0)


@pytest.mark.parametrize(
    ("mean", "sigma", "do_predict"),
    [(0.01, 0.02, 0), (np.nan, 0.02, 1), (0.01, np.nan, 1), (-0.01, 0.02, 1)],
)
def test_custom_stake_skips_without_forecast(config, mean, sigma, do_predict):
    strategy = load_strategy(config)
    analyzed(strategy, [mean], sigma, do_predict)
    assert stake(strategy) == SKIP


def test_custom_stake_without_analyzed_frame(config):
    assert stake(load_strategy(config)) == SKIP


def open_trade(open_date: datetime) -> Trade:
    return Trade(
        pair=PAIR,
        open_rate=100.0,
        open_date=open_date,
        amount=1.0,
        stake_amount=100.0,
        fee_open=0.001,
        fee_close=0.001,
        exchange="binance",
        is_short=False,
        leverage=1.0,
    )


def test_custom_stoploss_from_entry_sigma(config):
    strategy = load_strategy(config)
    analyzed(strategy, [0.01, 0.01, 0.01], [0.004, 0.02, 0.5], 1)
    dates = pd.date_range("2026-01-01", periods=3, freq="15min", tz="UTC")
    trade = open_trade((dates[1] + timedelta(minutes=15)).to_pydatetime())
    stop = strategy.custom_stoploss(PAIR, trade, trade.open_date_utc, 100.0, 0.0, True)
    # signal candle sigma 0.02 times stop_sigma 3.0, relative to the entry at zero profit
    assert stop == pytest.approx(strategy.stop_sigma.value * 0.02)


def test_custom_stoploss_clamped(config):
    strategy = load_strategy(config)
    analyzed(strategy, [0.01, 0.01], [1e-6, 0.5], 1)
    dates = pd.date_range("2026-01-01", periods=2, freq="15min", tz="UTC")
    tight = strategy.custom_stoploss(
        PAIR,
        open_trade((dates[0] + timedelta(minutes=15)).to_pydatetime()),
        dates[1].to_pydatetime(),
        100.0,
        0.0,
        True,
    )
    wide = strategy.custom_stoploss(
        PAIR,
        open_trade((dates[1] + timedelta(minutes=15)).to_pydatetime()),
        dates[1].to_pydatetime(),
        100.0,
        0.0,
        True,
    )
    assert tight == pytest.approx(strategy.STOP_MIN)
    assert wide == pytest.approx(-strategy.stoploss)


def test_custom_stoploss_without_forecast(config):
    strategy = load_strategy(config)
    analyzed(strategy, [np.nan], 0.01, 0)
    trade = open_trade(datetime(2026, 1, 1, 0, 15, tzinfo=UTC))
    assert strategy.custom_stoploss(PAIR, trade, trade.open_date_utc, 100.0, 0.0, True) is None


# ---------------------------------------------------------------------------
# Real backtest (slow): TRMTSStrategy with TRMTSRegressor on real 15m candles
# ---------------------------------------------------------------------------

BACKTEST_PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


@pytest.fixture(scope="module")
def backtest_run(tmp_path_factory):
    """Two weeks on three pairs with one-week training windows and one epoch."""
    if not CANDLES.is_dir():
        pytest.fail(f"real candles not found at {CANDLES}; tests expect ../shared/data/binance")
    import subprocess
    import sys

    from freqtrade.configuration.directory_operations import create_userdata_dir
    from freqtrade.data.btanalysis import load_backtest_data

    from trm_ts.replay import ReplayExchange

    folder = tmp_path_factory.mktemp("backtest")
    userdir = folder / "user_data"
    create_userdata_dir(str(userdir), create_dir=True)
    fast = folder / "fast.json"
    fast.write_text(
        json.dumps(
            {
                "freqai": {
                    "identifier": "trm_ts_strategy_test",
                    "train_period_days": 7,
                    "backtest_period_days": 7,
                    "model_training_parameters": {"epochs": 1},
                }
            }
        )
    )
    with ReplayExchange(CANDLES, pairs=BACKTEST_PAIRS, timeframes=["15m"]) as exchange:
        overlay = exchange.write_config_overlay(folder / "replay.json", pairs=BACKTEST_PAIRS)
        command = [sys.executable, "-m", "freqtrade", "backtesting"]
        for path in (CI_CONFIG, fast, overlay):
            command += ["--config", str(path)]
        command += ["--userdir", str(userdir), "--datadir", str(CANDLES)]
        command += ["--timerange", "20260101-20260115", "--export", "trades"]
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=1500, check=False
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trades = load_backtest_data(userdir / "backtest_results")
    folder_predictions = userdir / "models" / "trm_ts_strategy_test" / "backtesting_predictions"
    predictions = pd.concat(
        [
            pd.read_feather(path).assign(pair_key=path.name.split("_")[1])
            for path in sorted(folder_predictions.glob("*.feather"))
        ]
    )
    return {"trades": trades, "predictions": predictions}


@pytest.mark.slow
def test_backtest_makes_trades(backtest_run):
    trades = backtest_run["trades"]
    assert len(trades) >= 1
    assert set(trades["pair"]) <= set(BACKTEST_PAIRS)
    assert (trades["is_short"] == False).all()  # noqa: E712 - spot is long-only


@pytest.mark.slow
def test_backtest_entries_follow_rule(backtest_run):
    """Every entry's signal candle had do_predict 1 and mean above entry_sigma*sigma+fees."""
    trades, predictions = backtest_run["trades"], backtest_run["predictions"]
    strategy = load_strategy(make_config(CANDLES))
    for trade in trades.itertuples():
        signal_date = trade.open_date - pd.Timedelta(minutes=15)
        key = trade.pair.split("/")[0].lower()
        rows = predictions[(predictions["pair_key"] == key) & (predictions["date"] == signal_date)]
        assert len(rows) == 1, (trade.pair, signal_date)
        row = rows.iloc[0]
        threshold = strategy.entry_sigma.value * row[columns.SIGMA] + strategy._round_trip_fee
        assert row["do_predict"] == 1
        assert row[columns.TARGET] > threshold


@pytest.mark.slow
def test_backtest_stakes_within_wallet(backtest_run):
    trades = backtest_run["trades"]
    assert (trades["stake_amount"] > 0).all()
    assert np.isfinite(trades["stake_amount"]).all()
    assert (trades["stake_amount"] <= 1000.0).all()  # dry_run_wallet of the CI config
