"""Standalone train / infer command line: synthetic candles or an OHLCV file, no freqtrade needed.

Run as ``python user_data/research/train_infer_trm_ts.py --help`` (or the ``trm-ts`` entry
point). Exit codes: 0 success, 1 training failed (non-finite loss), 2 invalid input.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trm_ts.baselines import ewma_sigma_forecast
from trm_ts.checkpoint import (
    CheckpointError,
    checkpoint_payload,
    load_checkpoint,
    save_checkpoint,
)
from trm_ts.data import CandleDataError, StandardScaler, load_candles, synthetic_candles
from trm_ts.dataset import NotEnoughDataError, PreparedData, build_frame, make_splits, to_raw_units
from trm_ts.metrics import summarize
from trm_ts.model import TRMTS, count_parameters, trm_ts
from trm_ts.training import NonFiniteLossError, TrainConfig, fit, predict, resolve_device

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = "user_data/models/trm_ts_cli.pt"
DEFAULT_SYNTHETIC_ROWS = 12_000
DEFAULT_SEED = 42
# Inference step counts reported for the recursion-depth table.
REPORT_STEPS = range(1, 9)
METRIC_LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "nll": "NLL",
    "crps": "CRPS",
    "cov68": "68% coverage",
    "cov95": "95% coverage",
    "dir_acc": "Direction hit rate",
}


def parse_scales(text: str) -> tuple[int, ...]:
    try:
        scales = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales {text!r}: use integers like 8,32,128") from None
    if not scales or min(scales) < 1:
        raise argparse.ArgumentTypeError(f"--scales {text!r}: every scale must be >= 1")
    return scales


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_infer_trm_ts.py",
        description="Train TRM-TS on candles and report probabilistic forecast metrics on the "
        "held-out test split, beside a zero-mean EWMA-variance baseline.",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--csv",
        help="candle file: CSV with at least a 'close' column, or freqtrade .feather/.json. "
        "Without it, seeded synthetic candles are used",
    )
    data.add_argument("--rows", type=int, default=None, help="synthetic candles to generate "
                      f"(default {DEFAULT_SYNTHETIC_ROWS})")
    data.add_argument("--window", type=int, default=128, help="candles per input window")
    data.add_argument("--horizon", type=int, default=4,
                      help="forecast the log return over this many candles ahead")
    data.add_argument("--valid-frac", type=float, default=0.15, help="share of windows for "
                      "validation (early stopping)")
    data.add_argument("--test-frac", type=float, default=0.15, help="share of windows, the "
                      "newest, for the final test")

    model = parser.add_argument_group("model")
    model.add_argument("--latent_dim", type=int, default=32, help="latent width D")
    model.add_argument("--steps", type=int, default=4, help="recursion steps of the TRM core")
    model.add_argument("--heads", type=int, default=2, help="attention heads")
    model.add_argument("--dropout", type=float, default=0.2, help="dropout probability")
    model.add_argument("--scales", type=parse_scales, default=(8, 32, 128),
                       help="multi-scale encoder lengths in candles, comma-separated")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=20, help="maximum training epochs")
    train.add_argument("--batch", type=int, default=64, help="windows per batch")
    train.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate")
    train.add_argument("--weight_decay", type=float, default=0.05, help="AdamW weight decay")
    train.add_argument("--patience", type=int, default=5,
                       help="epochs without validation improvement before stopping (0: never)")
    train.add_argument("--no-deep-supervision", dest="deep_supervision", action="store_false",
                       help="supervise only the last recursion step")
    train.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    train.add_argument("--seed", type=int, default=None,
                       help=f"seed for the synthetic data and training (default {DEFAULT_SEED})")

    io = parser.add_argument_group("checkpoint")
    io.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                    help="save the trained model (default: save)")
    io.add_argument("--output", default=DEFAULT_OUTPUT, help="checkpoint path to write")
    io.add_argument("--load", help="checkpoint to load; skips training and runs inference on "
                    "the test split of the same data")
    return parser


class _Progress:
    """Single-line progress on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.enabled and (done == total or done % 10 == 0):
            width = 30
            filled = int(width * done / total)
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{done}/{total}")
            if done == total:
                sys.stderr.write("\r" + " " * (len(self.label) + width + 20) + "\r")
            sys.stderr.flush()


def _load_data(args: argparse.Namespace):
    if args.csv:
        candles, report = load_candles(args.csv)
        for line in report.lines():
            print(line)
        return candles, str(args.csv)
    rows = args.rows or DEFAULT_SYNTHETIC_ROWS
    print(f"No --csv given: generating {rows} synthetic 15m candles (seed {args.seed})")
    return synthetic_candles(rows, seed=args.seed), f"synthetic(rows={rows}, seed={args.seed})"


def _print_epoch(log) -> None:
    marker = " \u2605 (best)" if log.is_best else ""
    print(f"Epoch {log.epoch:03d} - Train: {log.train_nll:.4f}, Valid: {log.valid_nll:.4f}"
          f"{marker}  [{log.seconds:.1f}s]", flush=True)


def _evaluate(model: TRMTS, data: PreparedData, horizon: int, device: str) -> None:
    test = data.test
    mean, logvar = predict(model, test, device=device)
    raw_mean, raw_logvar = to_raw_units(mean[:, 0], logvar[:, 0], data.target_scaler)
    y = data.frame.target[test.ends, 0]
    trm = summarize(y, raw_mean, np.exp(0.5 * raw_logvar))

    # Baseline: zero mean, EWMA variance of one-candle log returns known at each window end.
    one_candle = np.diff(np.log(data.frame.close), prepend=np.log(data.frame.close[0]))
    sigma = ewma_sigma_forecast(one_candle, horizon)[test.ends]
    base = summarize(y, np.zeros_like(y), sigma)

    span = ""
    if data.frame.dates is not None:
        first, last = data.frame.dates[test.ends[0]], data.frame.dates[test.ends[-1]]
        span = f", {str(first)[:16]} .. {str(last)[:16]}"
    print(f"\nTest split: {len(test)} windows{span}, target = log return over {horizon} candles")
    print(f"{'metric':<20}{'TRM-TS':>12}{'EWMA baseline':>16}")
    for key, label in METRIC_LABELS.items():
        print(f"{label:<20}{trm[key]:>12.6f}{base[key]:>16.6f}")
    verdict = "below" if trm["nll"] < base["nll"] else "NOT below"
    print(f"TRM-TS test NLL is {verdict} the EWMA baseline ({trm['nll']:.4f} vs {base['nll']:.4f})")

    # Recursion depth at inference, with the training depth unchanged.
    print("\nTest NLL by recursion steps at inference "
          f"(trained with {model.config.recursive_steps}):")
    for steps in REPORT_STEPS:
        m, lv = predict(model, test, steps=steps, device=device)
        rm, rlv = to_raw_units(m[:, 0], lv[:, 0], data.target_scaler)
        nll = summarize(y, rm, np.exp(0.5 * rlv))["nll"]
        print(f"  steps {steps}: {nll:.4f}")


def run(args: argparse.Namespace) -> int:
    resolve_device(args.device)
    payload = None
    if args.load:
        model, payload = load_checkpoint(args.load, map_location="cpu")
        extra = payload["extra"]
        args.window, args.horizon = extra["window"], extra["horizon"]
        if args.seed is None:
            args.seed = extra.get("seed", DEFAULT_SEED)
        if args.rows is None and not args.csv:
            args.rows = extra.get("synthetic_rows")
        print(f"Loaded {args.load}: {count_parameters(model):,} parameters, trained on "
              f"{extra.get('data_source')}")
    if args.seed is None:
        args.seed = DEFAULT_SEED

    candles, source = _load_data(args)
    print(f"Computing features for {len(candles)} candles ...", flush=True)
    frame = build_frame(candles, horizons=(args.horizon,))
    scalers = None
    if payload is not None:
        if payload["feature_names"] != frame.feature_names:
            raise CheckpointError(
                f"{args.load}: trained on features {payload['feature_names']}, but this version "
                f"computes {frame.feature_names}; retrain the model"
            )
        scalers = (StandardScaler.from_dict(payload["feature_scaler"]),
                   StandardScaler.from_dict(payload["target_scaler"]))
    data = make_splits(frame, args.window, args.valid_frac, args.test_frac, source=source,
                       scalers=scalers)
    print(f"Windows: train {len(data.train)}, valid {len(data.valid)}, test {len(data.test)} "
          f"(window {args.window}, {len(frame.feature_names)} features)")

    if payload is None:
        torch.manual_seed(args.seed)
        model = trm_ts(
            n_features=len(data.feature_names),
            latent_dim=args.latent_dim,
            recursive_steps=args.steps,
            multi_scales=args.scales,
            attn_heads=args.heads,
            dropout=args.dropout,
            max_len=max(256, args.window),
            use_calendar=frame.hour is not None,
        )
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch,
            lr=args.lr,
            weight_decay=args.weight_decay,
            patience=args.patience,
            deep_supervision=args.deep_supervision,
            device=args.device,
            seed=args.seed,
        )
        print(f"Training TRM-TS ({count_parameters(model):,} parameters) on {args.device} "
              f"for up to {args.epochs} epochs", flush=True)
        result = fit(model, data.train, data.valid, config, on_epoch=_print_epoch,
                     on_batch=_Progress("training"))
        if result.stopped_early:
            print(f"Early stopping: no validation improvement for {args.patience} epochs; "
                  f"restored the weights of epoch {result.best_epoch}")
        print(f"Training took {result.seconds:.1f}s; best validation NLL "
              f"{result.best_valid_nll:.4f} at epoch {result.best_epoch}")
        if args.save:
            extra = {
                "window": args.window,
                "horizon": args.horizon,
                "seed": args.seed,
                "data_source": source,
                "synthetic_rows": None if args.csv else (args.rows or DEFAULT_SYNTHETIC_ROWS),
                "best_epoch": result.best_epoch,
                "best_valid_nll": result.best_valid_nll,
            }
            payload = checkpoint_payload(model, data.feature_names,
                                         data.feature_scaler.to_dict(),
                                         data.target_scaler.to_dict(), extra)
            path = save_checkpoint(args.output, payload)
            print(f"Saved checkpoint to {path}")

    _evaluate(model, data, args.horizon, args.device)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        code = run(args)
    except (CandleDataError, NotEnoughDataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: training failed: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        # Invalid option values (device, window, model sizes) raise ValueError with the value.
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Done in {time.perf_counter() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
