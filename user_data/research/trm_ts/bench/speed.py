"""CPU speed and size of TRM-TS against FreqAI's PyTorch transformer, measured in one run.

Both models see identical inputs: the same standardized (N, F) feature rows of one pair,
the same window ends, window length, batch size and epochs. TRM-TS also gets the regime,
hour and day-of-week indices of each window's newest candle, which its embeddings take.

Each model runs in its own freshly spawned process, so the peak resident memory (VmHWM)
of that process belongs to that model alone. Inside it, TRM-TS trains with
``trm_ts.training.fit`` and predicts with ``trm_ts.training.predict``, the functions
``TRMTSRegressor`` calls. The transformer trains with freqtrade's
``PyTorchTransformerTrainer``. Inference is measured twice: batched, and as a loop that
runs one window per forward pass, the way ``PyTorchTransformerRegressor.predict`` walks
its windows.

Every rate is the best of several repeats (epochs for training), because other jobs on a
shared CPU slow single repeats down at random.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from trm_ts.freqai.params import TRMTSParams

logger = logging.getLogger(__name__)

TRM_TS = "trm_ts"
TRANSFORMER = "transformer"
# Square float32 matrix size for the peak matmul rate; large enough to be compute-bound.
MATMUL_SIZE = 2048
# Repeats of each inference timing; the best one is reported.
INFERENCE_REPEATS = 3


@dataclass(frozen=True)
class SpeedSettings:
    """Sample counts and epochs of the speed measurements."""

    train_windows: int
    valid_windows: int
    epochs: int
    inference_windows: int
    loop_windows: int
    batch_size: int = 64
    predict_batch_size: int = 1024


@dataclass
class SpeedInputs:
    """Identical inputs for both models: standardized rows, indices, target and window ends."""

    features: np.ndarray  # (N, F) float32
    target: np.ndarray  # (N, 1) float32, standardized
    regime: np.ndarray  # (N,) int64
    hour: np.ndarray
    day_of_week: np.ndarray
    window: int
    # TRM-TS parameters; the transformer takes only the window from them.
    params: TRMTSParams
    train_ends: np.ndarray
    valid_ends: np.ndarray
    inference_ends: np.ndarray


@dataclass
class SpeedResult:
    """One model's measurements; rates are per wall-clock second on this CPU."""

    model: str
    parameters: int
    train_samples_per_s: float
    # Wall time of all training epochs together, validation passes included.
    train_seconds: float
    inference_candles_per_s: float
    loop_candles_per_s: float
    forward_flops_per_sample: float
    # Per window inside a batched prediction, where TRM-TS embeds shared candles once.
    batched_flops_per_sample: float
    train_flops_per_sample: float
    base_rss_mb: float
    peak_rss_mb: float
    threads: int


def matmul_peak_gflops(size: int = MATMUL_SIZE, repeats: int = 10) -> float:
    """Return the best float32 matrix-multiply rate of this CPU in GFLOP/s (2 n^3 per matmul)."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up: thread pool start and first-touch page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best / 1e9


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Return the peak resident memory of a process in MB, None when it cannot be read.

    Reads VmHWM from /proc, the peak of the process's current address space. ``ru_maxrss``
    is no substitute in a child started by fork and exec: Linux carries the parent's peak at
    the fork over into it.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # the value is in kB
    except (OSError, ValueError):
        return None
    return None


def _rss_mb() -> float:
    peak = peak_rss_mb()
    # Without /proc (not Linux), fall back to ru_maxrss, in kB on Linux and bytes on macOS.
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best_rate(items: int, run) -> float:
    """Return ``items`` per second of the fastest of ``INFERENCE_REPEATS`` calls of ``run``."""
    best = float("inf")
    for _ in range(INFERENCE_REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return items / best


def _count_flops(run) -> float:
    """Return the FLOPs torch's ``FlopCounterMode`` counts while ``run()`` executes.

    The counter covers matrix multiplications, attention and convolutions, not elementwise
    operations, so the count is a lower bound dominated by the matmuls. The fused inference
    kernels of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (their "fast
    path") are invisible to the counter, so they are switched off while it counts. The slow
    path computes the same products.
    """
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            run()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return float(counter.get_total_flops())


def _trm_worker(inputs: SpeedInputs, settings: SpeedSettings, threads: int) -> SpeedResult:
    from trm_ts.data import WindowSet
    from trm_ts.losses import gaussian_nll
    from trm_ts.model import count_parameters, trm_ts
    from trm_ts.training import TrainConfig, fit, predict

    torch.set_num_threads(threads)
    params = inputs.params

    def windows(ends: np.ndarray, with_target: bool) -> WindowSet:
        return WindowSet(
            features=inputs.features,
            target=inputs.target if with_target else None,
            ends=ends,
            window=inputs.window,
            regime=inputs.regime,
            hour=inputs.hour,
            day_of_week=inputs.day_of_week,
        )

    train = windows(inputs.train_ends, True)
    valid = windows(inputs.valid_ends, True)
    test = windows(inputs.inference_ends, False)
    torch.manual_seed(params.seed)
    model = trm_ts(
        n_features=inputs.features.shape[1],
        latent_dim=params.latent_dim,
        recursive_steps=params.recursive_steps,
        multi_scales=params.multi_scales,
        n_regimes=params.n_regimes,
        attn_heads=params.attn_heads,
        dropout=params.dropout,
    )
    base_rss = _rss_mb()

    # Training throughput of the best epoch; patience 0 runs every epoch. Epoch times include
    # the validation pass, as the transformer's do.
    config = TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=params.learning_rate,
        weight_decay=params.weight_decay,
        patience=0,
        deep_supervision=params.deep_supervision,
    )
    fitted = fit(model, train, valid, config)
    train_rate = len(train) / min(epoch.seconds for epoch in fitted.history)

    # Batched inference, then a loop of one-window forward passes.
    predict(model, test.subset(inputs.inference_ends[:64]))  # warm-up
    batched_rate = _best_rate(
        len(test), lambda: predict(model, test, batch_size=settings.predict_batch_size)
    )
    loop_rate = max(
        _trm_loop_rate(model, test, settings.loop_windows) for _ in range(INFERENCE_REPEATS)
    )

    # FLOPs of one window.
    x = torch.from_numpy(test.gather(inputs.inference_ends[:1]))  # (1, T, F)
    end = inputs.inference_ends[:1]
    kwargs = {
        "regime": torch.from_numpy(inputs.regime[end]),
        "hour": torch.from_numpy(inputs.hour[end]),
        "day_of_week": torch.from_numpy(inputs.day_of_week[end]),
    }
    model.eval()
    forward_flops = _count_flops(lambda: model(x, **kwargs))
    model.train()
    y = torch.zeros(1, 1)

    def train_step() -> None:
        out = model(x, return_steps=True, **kwargs)
        target = y.unsqueeze(0).expand(out["step_mean"].shape[0], -1, -1)  # (S, 1, H)
        gaussian_nll(out["step_mean"], out["step_logvar"], target).backward()

    train_flops = _count_flops(train_step)
    model.eval()
    batch = test.subset(inputs.inference_ends[: settings.predict_batch_size])
    batched_flops = _count_flops(
        lambda: predict(model, batch, batch_size=settings.predict_batch_size)
    )
    return SpeedResult(
        model=TRM_TS,
        parameters=count_parameters(model),
        train_samples_per_s=train_rate,
        train_seconds=fitted.seconds,
        inference_candles_per_s=batched_rate,
        loop_candles_per_s=loop_rate,
        forward_flops_per_sample=forward_flops,
        batched_flops_per_sample=batched_flops / len(batch),
        train_flops_per_sample=train_flops,
        base_rss_mb=base_rss,
        peak_rss_mb=_rss_mb(),
        threads=torch.get_num_threads(),
    )


@torch.no_grad()
def _trm_loop_rate(model, windows, n: int) -> float:
    model.eval()
    ends = windows.ends[:n]
    x = torch.from_numpy(windows.gather(ends))  # (n, T, F)
    regime = torch.from_numpy(windows.regime[ends])
    hour = torch.from_numpy(windows.hour[ends])
    day = torch.from_numpy(windows.day_of_week[ends])
    started = time.perf_counter()
    for i in range(n):
        one = slice(i, i + 1)
        model(x[one], regime=regime[one], hour=hour[one], day_of_week=day[one])
    return n / (time.perf_counter() - started)


def _transformer_worker(
    inputs: SpeedInputs, settings: SpeedSettings, threads: int
) -> SpeedResult:
    import pandas as pd

    from trm_ts.bench.contenders import (
        TransformerSettings,
        build_transformer,
        build_transformer_trainer,
        gather_windows,
        transformer_predict,
    )

    torch.set_num_threads(threads)
    # One epoch per fit call, repeated, so each epoch is timed on its own.
    tf = TransformerSettings(window=inputs.window, epochs=1)
    model = build_transformer(inputs.features.shape[1], tf)
    trainer = build_transformer_trainer(model, tf)
    base_rss = _rss_mb()

    def frame(ends: np.ndarray, values: np.ndarray) -> pd.DataFrame:
        # Contiguous ends: a WindowDataset over these rows yields exactly these windows,
        # plus the one row past the end that it never reads.
        return pd.DataFrame(values[ends[0] - inputs.window + 1 : ends[-1] + 2])

    data = {
        "train_features": frame(inputs.train_ends, inputs.features),
        "train_labels": frame(inputs.train_ends, inputs.target),
        "test_features": frame(inputs.valid_ends, inputs.features),
        "test_labels": frame(inputs.valid_ends, inputs.target),
    }
    epoch_seconds = []
    for _ in range(settings.epochs):
        started = time.perf_counter()
        trainer.fit(data, ["train", "test"])
        epoch_seconds.append(time.perf_counter() - started)
    # drop_last=True: the trainer receives only whole batches.
    seen = len(inputs.train_ends) // settings.batch_size * settings.batch_size
    train_rate = seen / min(epoch_seconds)

    windows = gather_windows(inputs.features, inputs.inference_ends, inputs.window)
    transformer_predict(model, windows[:64])  # warm-up
    batched_rate = _best_rate(
        len(windows),
        lambda: transformer_predict(model, windows, batch_size=settings.predict_batch_size),
    )
    loop_windows = windows[: settings.loop_windows]
    loop_rate = max(_transformer_loop_rate(model, loop_windows) for _ in range(INFERENCE_REPEATS))

    x = torch.from_numpy(windows[:1])
    model.eval()
    forward_flops = _count_flops(lambda: model(x))
    model.train()
    y = torch.zeros(1, 1, 1)
    train_flops = _count_flops(lambda: torch.nn.functional.mse_loss(model(x), y).backward())
    batch = windows[: settings.predict_batch_size]
    batched_flops = _count_flops(
        lambda: transformer_predict(model, batch, batch_size=settings.predict_batch_size)
    )
    return SpeedResult(
        model=TRANSFORMER,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        train_samples_per_s=train_rate,
        train_seconds=sum(epoch_seconds),
        inference_candles_per_s=batched_rate,
        loop_candles_per_s=loop_rate,
        forward_flops_per_sample=forward_flops,
        batched_flops_per_sample=batched_flops / len(batch),
        train_flops_per_sample=train_flops,
        base_rss_mb=base_rss,
        peak_rss_mb=_rss_mb(),
        threads=torch.get_num_threads(),
    )


@torch.no_grad()
def _transformer_loop_rate(model, windows: np.ndarray) -> float:
    """Time one forward pass per window, as ``PyTorchTransformerRegressor.predict`` does."""
    model.eval()
    x = torch.from_numpy(windows)
    outputs = []
    started = time.perf_counter()
    for i in range(len(x)):
        outputs.append(model(x[i : i + 1]))
    torch.cat(outputs, dim=1)
    return len(x) / (time.perf_counter() - started)


def run_isolated(kind: str, inputs: SpeedInputs, settings: SpeedSettings, threads: int) -> dict:
    """Measure one model in a fresh spawned process and return its ``SpeedResult`` as a dict."""
    worker = {TRM_TS: _trm_worker, TRANSFORMER: _transformer_worker}.get(kind)
    if worker is None:
        raise ValueError(f"model kind {kind!r} is invalid; use {TRM_TS!r} or {TRANSFORMER!r}")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(worker, inputs, settings, threads).result()
    logger.info("speed %s: %s", kind, result)
    return asdict(result)
