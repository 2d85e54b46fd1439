"""The one training loop and batched prediction for TRM-TS, shared by the CLI and FreqAI.

Shapes follow the legend in ``trm_ts.model``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from trm_ts.data import WindowSet
from trm_ts.losses import gaussian_nll
from trm_ts.model import TRMTS

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the model is left unsaved."""


@dataclass
class TrainConfig:
    """Optimizer and loop settings; field names match the CLI options and FreqAI keys."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    # Epochs without a validation improvement before stopping; 0 disables early stopping.
    patience: int = 5
    # Smallest NLL decrease that counts as an improvement.
    min_delta: float = 1e-4
    # Supervise the head after every recursion step, not only the last one.
    deep_supervision: bool = True
    # Consecutive windows per sampling block. Windows in a block share candles, which the
    # model embeds once; 1 samples every window independently.
    block_len: int = 8
    device: str = "cpu"
    seed: int = 42

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("lr", self.lr > 0, "a positive float"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0"),
            ("grad_clip", self.grad_clip > 0, "a positive float"),
            ("patience", self.patience >= 0, "an integer >= 0"),
            ("block_len", self.block_len >= 1, "an integer >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid; it must be {allowed}")


@dataclass
class EpochLog:
    """One epoch's mean NLL on both splits, in training-target units."""

    epoch: int
    train_nll: float
    valid_nll: float
    is_best: bool
    seconds: float


@dataclass
class FitResult:
    """Outcome of ``fit``. The model already contains the best weights."""

    history: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_nll: float = math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``name``; CUDA without a GPU is an error, never a fallback."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device '{name}' was requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use device 'cpu'"
            )
        return torch.device(name)
    if name != "cpu":
        raise ValueError(f"device '{name}' is invalid; use 'cpu' or 'cuda' (optionally 'cuda:N')")
    return torch.device("cpu")


class _DeviceWindows:
    """A WindowSet's arrays moved to the device once, sliced per batch without copies to host."""

    def __init__(self, windows: WindowSet, device: torch.device) -> None:
        def put(array, dtype):
            return None if array is None else torch.as_tensor(array, dtype=dtype, device=device)

        self.windows = windows
        self.rows = put(windows.features, torch.float32)  # (N, F)
        self.target = put(windows.target, torch.float32)  # (N, H)
        self.regime = put(windows.regime, torch.int64)
        self.hour = put(windows.hour, torch.int64)
        self.day_of_week = put(windows.day_of_week, torch.int64)
        self.ctx = put(windows.ctx, torch.float32)
        self.offsets = torch.arange(windows.window, device=device) - windows.window + 1
        self.device = device

    def forward(
        self, model: TRMTS, ends: np.ndarray, steps: int | None = None, return_steps: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        ends_t = torch.as_tensor(ends, dtype=torch.int64, device=self.device)  # (B,)
        index = ends_t[:, None] + self.offsets  # (B, T)

        def at_end(column):
            return None if column is None else column[ends_t]

        out = model.forward_windows(
            self.rows,
            index,
            regime=at_end(self.regime),
            hour=at_end(self.hour),
            day_of_week=at_end(self.day_of_week),
            ctx=at_end(self.ctx),
            steps=steps,
            return_steps=return_steps,
        )
        return out, at_end(self.target)


def _block_batches(n: int, batch_size: int, block_len: int, rng: np.random.Generator):
    """Yield index arrays: shuffled blocks of consecutive samples, grouped into batches."""
    offset = int(rng.integers(0, block_len)) if block_len > 1 else 0
    starts = np.arange(-offset, n, block_len)
    rng.shuffle(starts)
    order = (starts[:, None] + np.arange(block_len)).ravel()
    order = order[(order >= 0) & (order < n)]
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def evaluate_nll(
    model: TRMTS, windows: WindowSet, batch_size: int = 1024, device: str = "cpu"
) -> float:
    """Return the mean Gaussian NLL of the final step over ``windows``, in training units."""
    mean, logvar = predict(model, windows, batch_size=batch_size, device=device)
    target = windows.target[windows.ends]
    var = np.exp(logvar)
    nll = 0.5 * (math.log(2 * math.pi) + logvar + (target - mean) ** 2 / var)
    return float(np.mean(nll))


def fit(
    model: TRMTS,
    train: WindowSet,
    valid: WindowSet,
    config: TrainConfig,
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train with Gaussian NLL, AdamW and gradient clipping; keep the best validation weights.

    ``on_epoch`` receives each EpochLog, ``on_batch(done, total)`` reports progress inside an
    epoch. Raises NonFiniteLossError as soon as a batch loss is NaN or infinite.
    """
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(
            f"training needs windows in both splits, got train={len(train)}, valid={len(valid)}"
        )
    for name, split in (("train", train), ("valid", valid)):
        if split.target is None or not np.isfinite(split.target[split.ends]).all():
            raise ValueError(f"the {name} split has windows without a finite target")
    device = resolve_device(config.device)
    _seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device)
    train_rows = _DeviceWindows(train, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    stale_epochs = 0
    started = time.perf_counter()
    n_batches = math.ceil(len(train) / config.batch_size)

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, count = 0.0, 0

        # Training pass.
        for batch_number, batch in enumerate(
            _block_batches(len(train), config.batch_size, config.block_len, rng), start=1
        ):
            out, target = train_rows.forward(
                model, train.ends[batch], return_steps=config.deep_supervision
            )
            if config.deep_supervision:
                steps = out["step_mean"].shape[0]
                expanded = target.unsqueeze(0).expand(steps, -1, -1)  # (S, B, H)
                loss = gaussian_nll(out["step_mean"], out["step_logvar"], expanded)
                final = gaussian_nll(out["mean"], out["logvar"], target).detach()
            else:
                loss = gaussian_nll(out["mean"], out["logvar"], target)
                final = loss.detach()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} in epoch {epoch}, batch {batch_number}; "
                    f"lower the learning rate (lr={config.lr}) or check the features for "
                    f"extreme values. No model was saved."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += final.item() * len(batch)
            count += len(batch)
            if on_batch is not None:
                on_batch(batch_number, n_batches)

        # Validation pass and early stopping on the final-step NLL.
        valid_nll = evaluate_nll(model, valid, device=config.device)
        if not math.isfinite(valid_nll):
            raise NonFiniteLossError(
                f"validation NLL became {valid_nll} in epoch {epoch}; No model was saved."
            )
        is_best = valid_nll < result.best_valid_nll - config.min_delta
        if is_best:
            result.best_valid_nll = valid_nll
            result.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
            stale_epochs = 0
        else:
            stale_epochs += 1
        log = EpochLog(epoch, total / count, valid_nll, is_best, time.perf_counter() - epoch_start)
        result.history.append(log)
        result.epochs_run = epoch
        if on_epoch is not None:
            on_epoch(log)
        if config.patience and stale_epochs >= config.patience:
            result.stopped_early = True
            break

    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


@torch.no_grad()
def predict(
    model: TRMTS,
    windows: WindowSet,
    batch_size: int = 1024,
    steps: int | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Return mean (S, H) and logvar (S, H) for every window, in the model's target units.

    Windows are processed in chronological batches, so each candle of a batch is embedded
    once however many windows contain it.
    """
    torch_device = resolve_device(device)
    model.to(torch_device)
    model.eval()
    rows = _DeviceWindows(windows, torch_device)
    means, logvars = [], []
    for start in range(0, len(windows), batch_size):
        out, _ = rows.forward(model, windows.ends[start : start + batch_size], steps=steps)
        means.append(out["mean"].cpu().numpy())
        logvars.append(out["logvar"].cpu().numpy())
    horizon = model.config.forecast_horizon
    if not means:
        return np.empty((0, horizon), np.float32), np.empty((0, horizon), np.float32)
    return np.concatenate(means), np.concatenate(logvars)
