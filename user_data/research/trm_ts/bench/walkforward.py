"""Run every contender on the same walk-forward folds of every pair and collect predictions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from trm_ts import baselines
from trm_ts.bench import contenders as c
from trm_ts.bench.folds import Fold, walk_forward_folds
from trm_ts.bench.pairs import PairData, load_pair

logger = logging.getLogger(__name__)

CANDLES_PER_DAY = {"15m": 96, "1h": 24}
# Prediction columns are ``mu:<key>`` and ``sigma:<key>``. Besides the model names, this key
# marks TRM-TS trained with deep supervision flipped from its setting in ``trm_ts``.
NO_DEEP_SUPERVISION = "trm_ts_no_ds"


def steps_key(steps: int) -> str:
    """Return the prediction key of TRM-TS run with ``steps`` recursion steps at inference."""
    return f"trm_ts@{steps}"


@dataclass(frozen=True)
class WalkForwardSettings:
    """Data, fold layout and training budget of the forecast-quality part."""

    pairs: tuple[str, ...]
    n_folds: int
    train_days: float
    test_days: float
    trm: c.TRMSettings
    transformer_epochs: int
    # TRM-TS with deep supervision flipped trains on the last ``ablation_folds`` folds only.
    ablation_folds: int
    timeframe: str = "15m"
    horizon: int = 4
    valid_fraction: float = 0.2


@dataclass
class WalkForwardResult:
    """Test-row predictions of every contender plus fit bookkeeping."""

    predictions: pd.DataFrame
    fits: pd.DataFrame
    folds: dict[str, list[Fold]] = field(default_factory=dict)
    dates: dict[str, pd.DatetimeIndex] = field(default_factory=dict)


def _fold_frame(pair: PairData, fold: Fold) -> pd.DataFrame:
    test = slice(fold.test_start, fold.test_stop)
    return pd.DataFrame(
        {
            "pair": pair.pair,
            "fold": fold.index,
            "date": pair.dates[test],
            "hour": pair.hour[test],
            "y": pair.target[test],
        }
    )


def _put(frame: pd.DataFrame, key: str, forecast: c.Forecast) -> None:
    frame[f"mu:{key}"] = forecast.mean
    frame[f"sigma:{key}"] = forecast.sigma


def run_walk_forward(data_dir: Path, settings: WalkForwardSettings) -> WalkForwardResult:
    """Run every contender on every pair and fold; return test predictions in raw units."""
    per_day = CANDLES_PER_DAY.get(settings.timeframe)
    if per_day is None:
        raise ValueError(
            f"timeframe={settings.timeframe!r} is not supported; use one of {list(CANDLES_PER_DAY)}"
        )
    window = settings.trm.params.window
    transformer = c.TransformerSettings(window=window, epochs=settings.transformer_epochs)
    frames, fits = [], []
    result = WalkForwardResult(predictions=pd.DataFrame(), fits=pd.DataFrame())

    for pair_name in settings.pairs:
        pair = load_pair(data_dir, pair_name, settings.timeframe, settings.horizon)
        folds = walk_forward_folds(
            n_rows=pair.n_rows,
            n_folds=settings.n_folds,
            train_rows=round(settings.train_days * per_day),
            test_rows=round(settings.test_days * per_day),
            horizon=settings.horizon,
            valid_fraction=settings.valid_fraction,
            # Every window of every split must start on a row with finite features.
            first_usable_row=pair.first_finite_row + window - 1,
        )
        result.folds[pair_name] = folds
        result.dates[pair_name] = pair.dates
        design = c.freqai_design(pair)
        ewma_sigma = baselines.ewma_sigma_forecast(pair.returns, settings.horizon)

        for fold in folds:
            frame = _fold_frame(pair, fold)

            started = time.perf_counter()
            for key, forecast in c.classic_forecasts(pair, fold).items():
                _put(frame, key, forecast)
            fits.append((pair_name, fold.index, "classic", time.perf_counter() - started, 0))

            started = time.perf_counter()
            _put(frame, c.LIGHTGBM, c.lightgbm_forecast(pair, fold, design, ewma_sigma))
            fits.append((pair_name, fold.index, c.LIGHTGBM, time.perf_counter() - started, 0))

            forecast, seconds = c.transformer_forecast(pair, fold, design, ewma_sigma, transformer)
            _put(frame, c.TRANSFORMER, forecast)
            fits.append((pair_name, fold.index, c.TRANSFORMER, seconds, transformer.epochs))

            run = c.trm_forecast(pair, fold, settings.trm)
            _put(frame, c.TRM_TS, run.by_steps[run.trained_steps])
            for steps, forecast in run.by_steps.items():
                _put(frame, steps_key(steps), forecast)
            fits.append((pair_name, fold.index, c.TRM_TS, run.fit_seconds, run.epochs_run))

            if fold.index >= settings.n_folds - settings.ablation_folds:
                # The ablation flips deep supervision, whatever the config sets.
                no_ds = replace(
                    settings.trm,
                    deep_supervision=not settings.trm.deep_supervision,
                    max_inference_steps=run.trained_steps,
                )
                ablation = c.trm_forecast(pair, fold, no_ds)
                _put(frame, NO_DEEP_SUPERVISION, ablation.by_steps[ablation.trained_steps])
                row = (pair_name, fold.index, NO_DEEP_SUPERVISION, ablation.fit_seconds)
                fits.append((*row, ablation.epochs_run))
            else:
                frame[f"mu:{NO_DEEP_SUPERVISION}"] = np.nan
                frame[f"sigma:{NO_DEEP_SUPERVISION}"] = np.nan
            frames.append(frame)
            logger.info("%s fold %d done", pair_name, fold.index)

    result.predictions = pd.concat(frames, ignore_index=True)
    result.fits = pd.DataFrame(fits, columns=["pair", "fold", "model", "seconds", "epochs"])
    result.fits.attrs["deep_supervision"] = settings.trm.deep_supervision
    result.fits.attrs["trained_steps"] = settings.trm.params.recursive_steps
    return result
