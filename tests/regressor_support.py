"""Shared setup for the TRMTSRegressor tests: configs, synthetic frames and FreqAI objects.

The synthetic frame mimics what TRMTSStrategy hands to FreqAI: sequence features, the
categorical ``%-regime``/``%-hour``/``%-day_of_week`` columns, a ``%-ctx`` column and the two
labels. Its target is ``TARGET_SLOPE`` times the context column at the same candle plus small noise.
The model reads context only at the newest candle of each window, so a prediction lined up
with the right candle correlates with the target, and one shifted by a candle does not.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from freqtrade.configuration.config_validation import validate_config_schema
from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
from freqtrade.resolvers.freqaimodel_resolver import FreqaiModelResolver

REPO_ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO_ROOT / "configs" / "config_trm_ts_ci.json"
MAIN_CONFIG = REPO_ROOT / "configs" / "config_trm_ts.json"
FREQAIMODELS = REPO_ROOT / "freqaimodels"
PAIR = "BTC/USDT"
CANDLE = pd.Timedelta("15min")
TARGET_SLOPE = 0.01
NOISE = 0.001
# A network small enough to train in about a second on one CPU core.
TINY_MODEL = {
    "window": 8,
    "latent_dim": 8,
    "recursive_steps": 1,
    "multi_scales": [4, 8],
    "attn_heads": 1,
    "dropout": 0.0,
    "learning_rate": 0.01,
    "weight_decay": 0.0,
    "batch_size": 64,
    "epochs": 3,
    "patience": 0,
    "device": "cpu",
    "seed": 7,
}


def make_config(
    user_data_dir: Path, training: dict[str, Any] | None = None, **freqai: Any
) -> dict[str, Any]:
    """Return the CI config for one pair, validated (defaults filled) by freqtrade's schema."""
    config = json.loads(CI_CONFIG.read_text())
    config["exchange"]["pair_whitelist"] = [PAIR]
    config["user_data_dir"] = Path(user_data_dir)
    config["config_files"] = [str(CI_CONFIG)]
    config["freqaimodel_path"] = str(FREQAIMODELS)
    config["timerange"] = "20240111-20240113"
    config["freqai"]["train_period_days"] = 10
    config["freqai"]["backtest_period_days"] = 2
    config["freqai"]["feature_parameters"]["include_corr_pairlist"] = []
    config["freqai"]["data_split_parameters"]["test_size"] = 0.2
    config["freqai"]["model_training_parameters"] = copy.deepcopy(training or TINY_MODEL)
    config["freqai"].update(freqai)
    return validate_config_schema(config)


def synthetic_frame(n_rows: int, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """Return candles with strategy-like ``%`` features and both ``&`` labels."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_rows, freq=CANDLE, tz="UTC")
    context = rng.normal(size=n_rows)
    frame = pd.DataFrame(
        {
            "date": dates,
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.0,
            "volume": 1.0,
            "%-signal": rng.normal(size=n_rows),
            "%-noise": rng.normal(size=n_rows),
            "%-regime": rng.integers(0, 8, n_rows),
            "%-hour": dates.hour.to_numpy(),
            "%-day_of_week": dates.day_of_week.to_numpy(),
            "%-ctx_ret_ETH/USDT_15m": context,
        }
    )
    frame["&-s_return"] = TARGET_SLOPE * context + NOISE * rng.normal(size=n_rows)
    frame["&-s_return_sigma"] = frame["&-s_return"].abs()
    return frame


def new_regressor(config: dict[str, Any]):
    """Load TRMTSRegressor from freqaimodels/ the way freqtrade does (from its file path)."""
    config = dict(config)
    config["freqaimodel"] = "TRMTSRegressor"
    return FreqaiModelResolver.load_freqaimodel(config)


def new_kitchen(
    config: dict[str, Any], frame: pd.DataFrame, timestamp: int = 1, live: bool = False
) -> FreqaiDataKitchen:
    """Return a data kitchen with features, labels and model paths set as FreqAI sets them."""
    dk = FreqaiDataKitchen(config, live=live, pair=PAIR)
    dk.find_features(frame)
    dk.find_labels(frame)
    dk.set_paths(PAIR, timestamp)
    dk.set_new_model_names(PAIR, timestamp)
    return dk


def train(regressor, frame: pd.DataFrame, timestamp: int = 1):
    """Train on ``frame`` and return (model, data kitchen); the model is set on the regressor."""
    dk = new_kitchen(regressor.config, frame, timestamp)
    model = regressor.train(frame, PAIR, dk)
    regressor.model = model
    return model, dk
