"""Typed hyperparameters and FreqAI settings of TRMTSRegressor, and both configs' validity."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from freqtrade.configuration import Configuration
from freqtrade.configuration.config_validation import (
    validate_config_consistency,
    validate_config_schema,
)
from freqtrade.enums import RunMode
from conftest import BINANCE_DATA
from regressor_support import (
    CI_CONFIG,
    MAIN_CONFIG,
    REPO_ROOT,
    TINY_MODEL,
    make_config,
    new_regressor,
)

from trm_ts.freqai import TRMTSAdapter, TRMTSParams


def test_params_parse_all_keys():
    params = TRMTSParams.from_config(TINY_MODEL)
    assert params.window == TINY_MODEL["window"]
    assert params.multi_scales == tuple(TINY_MODEL["multi_scales"])
    assert params.learning_rate == TINY_MODEL["learning_rate"]


def test_params_int_becomes_float():
    params = TRMTSParams.from_config({"learning_rate": 1, "dropout": 0})
    assert isinstance(params.learning_rate, float)
    assert isinstance(params.dropout, float)


def test_params_misspelled_key_lists_accepted():
    with pytest.raises(ValueError, match="unknown keys \\['learnig_rate'\\]") as info:
        TRMTSParams.from_config({"learnig_rate": 0.001})
    assert "learning_rate" in str(info.value)
    assert "window" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", "64"),
        ("window", 64.0),
        ("epochs", True),
        ("deep_supervision", 1),
        ("multi_scales", [16, "64"]),
        ("device", 0),
    ],
)
def test_params_wrong_type_raises(key, value):
    with pytest.raises(TypeError, match=f"model_training_parameters.{key}"):
        TRMTSParams.from_config({key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", 1),
        ("dropout", 1.0),
        ("learning_rate", 0.0),
        ("batch_size", 0),
        ("multi_scales", []),
        ("device", "tpu"),
    ],
)
def test_params_invalid_value_raises(key, value):
    with pytest.raises(ValueError, match=f"model_training_parameters.{key}"):
        TRMTSParams.from_config({key: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_params_cuda_without_gpu_raises():
    with pytest.raises(ValueError, match="sees no CUDA device"):
        TRMTSParams.from_config({"device": "cuda"}).resolve_device()


def test_params_auto_device_resolves():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TRMTSParams.from_config({"device": "auto"}).resolve_device() == expected


def test_regressor_rejects_typo_at_load(tmp_path):
    config = make_config(tmp_path, training={**TINY_MODEL, "epoch": 3})
    with pytest.raises(ValueError, match="unknown keys \\['epoch'\\]"):
        new_regressor(config)


def test_regressor_sets_conv_width_to_window(tmp_path):
    regressor = new_regressor(make_config(tmp_path))
    assert regressor.CONV_WIDTH == TINY_MODEL["window"]


@pytest.mark.parametrize(
    "key",
    [
        "principal_component_analysis",
        "use_SVM_to_remove_outliers",
        "use_DBSCAN_to_remove_outliers",
        "shuffle_after_split",
    ],
)
def test_adapter_rejects_unsupported_feature_step(tmp_path, key):
    config = make_config(tmp_path)
    config["freqai"]["feature_parameters"][key] = True
    with pytest.raises(ValueError, match=f"feature_parameters.{key}"):
        TRMTSAdapter(config["freqai"], config["timeframe"])


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("data_split_parameters", "shuffle", True),
        ("data_split_parameters", "test_size", 0),
        ("feature_parameters", "weight_factor", 0.9),
    ],
)
def test_adapter_rejects_order_breaking_split(tmp_path, section, key, value):
    config = make_config(tmp_path)
    config["freqai"][section][key] = value
    with pytest.raises(ValueError, match=key):
        TRMTSAdapter(config["freqai"], config["timeframe"])


def test_adapter_rejects_conflicting_conv_width(tmp_path):
    config = make_config(tmp_path, conv_width=5)
    with pytest.raises(ValueError, match="conv_width=5"):
        TRMTSAdapter(config["freqai"], config["timeframe"])


@pytest.mark.parametrize("path", [MAIN_CONFIG, CI_CONFIG], ids=["main", "ci"])
@pytest.mark.parametrize("runmode", [RunMode.BACKTEST, RunMode.DRY_RUN])
def test_config_passes_freqtrade_schema(path, runmode):
    config = json.loads(path.read_text())
    config["runmode"] = runmode
    validate_config_consistency(config)
    assert validate_config_schema(config) is config


@pytest.mark.parametrize("path", [MAIN_CONFIG, CI_CONFIG], ids=["main", "ci"])
def test_config_loads_with_freqtrade(path):
    config = Configuration.from_files([str(path)])
    assert config["freqai"]["enabled"] is True
    assert config["timeframe"] == "15m"


@pytest.mark.parametrize("path", [MAIN_CONFIG, CI_CONFIG], ids=["main", "ci"])
def test_config_training_parameters_parse(path):
    config = json.loads(path.read_text())
    adapter = TRMTSAdapter(copy.deepcopy(config["freqai"]), config["timeframe"])
    assert adapter.params.window >= 2


def test_main_config_context_pairs():
    config = json.loads(MAIN_CONFIG.read_text())
    assert config["freqai"]["feature_parameters"]["include_corr_pairlist"] == [
        "BTC/USDT",
        "ETH/USDT",
    ]


def test_relative_datadir_resolves_from_repo(tmp_path, monkeypatch):
    # freqtrade resolves a relative --datadir against the working directory.
    monkeypatch.chdir(REPO_ROOT)
    args = {
        "config": [str(CI_CONFIG)],
        "datadir": "../shared/data/binance",
        "user_data_dir": str(tmp_path),
    }
    config = Configuration(args, RunMode.BACKTEST).get_config()
    assert Path(config["datadir"]).resolve() == BINANCE_DATA.resolve()
    assert (Path(config["datadir"]) / "BTC_USDT-15m.feather").is_file()
