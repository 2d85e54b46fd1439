"""Column names shared by TRMTSStrategy and TRMTSRegressor.

FreqAI passes every ``%`` column through its feature pipeline. The regressor routes them by
name:

- ``%-regime``, ``%-hour`` and ``%-day_of_week`` are categorical indices. They come from
  ``feature_engineering_standard``, so FreqAI adds no pair or timeframe suffix. They bypass
  min-max scaling and reach the model's embeddings as exact integers.
- Any column whose name starts with ``%-ctx`` (after FreqAI's expansion, for example
  ``%-ctx_ret_BTC/USDT_15m``) is cross-asset context. The value at the newest candle of each
  window forms the context vector.
- Every other ``%`` column is a sequence feature.

Targets: ``&-s_return`` is the forward log return over ``label_period_candles``.
``&-s_return_sigma`` is declared as a second label only so that FreqAI keeps label statistics
for it on the live path. Its training values (the absolute forward return) are not used as a
target; the regressor writes the predicted sigma of ``&-s_return`` into it.
"""

from __future__ import annotations

TARGET = "&-s_return"
SIGMA = "&-s_return_sigma"
REGIME = "%-regime"
HOUR = "%-hour"
DAY_OF_WEEK = "%-day_of_week"
CATEGORICAL = (REGIME, HOUR, DAY_OF_WEEK)
CTX_PREFIX = "%-ctx"


def is_context(column: str) -> bool:
    """Return whether a feature column belongs to the cross-asset context vector."""
    return column.startswith(CTX_PREFIX)


def is_categorical(column: str) -> bool:
    """Return whether a feature column is one of the exact-integer embedding inputs."""
    return column in CATEGORICAL
