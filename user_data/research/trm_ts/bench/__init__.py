"""Walk-forward forecast benchmark and CPU speed measurements behind ``docs/benchmarks.md``.

``scripts/benchmark_trm_ts.py`` is the entry point. The modules split the work by concept:

- ``folds``: walk-forward fold boundaries with the target purge between train and test.
- ``pairs``: candles, features, targets and windows of one pair.
- ``contenders``: every forecaster on one fold (TRM-TS, classic baselines, FreqAI models).
- ``speed``: training and inference throughput, peak memory, parameters and FLOPs.
- ``report``: tables and plots of the Markdown page.
"""
