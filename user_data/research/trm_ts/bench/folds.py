"""Walk-forward folds over one candle series: train on the past, test on the following block.

Row t carries the forward target ``log(close[t + h] / close[t])``, which needs candles up to
t + h. A training row may therefore only end ``h`` rows before the block that follows it
(validation or test). Those ``h`` rows are purged, so no close price of a later block enters
a training target. Features are causal, so a test window may read candles of the training
period as input.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    """Row ranges of one fold, half-open ``[start, stop)`` in the pair's candle index."""

    index: int
    train_start: int
    train_stop: int
    valid_start: int
    valid_stop: int
    test_start: int
    test_stop: int

    @property
    def train_rows(self) -> range:
        return range(self.train_start, self.train_stop)

    @property
    def valid_rows(self) -> range:
        return range(self.valid_start, self.valid_stop)

    @property
    def test_rows(self) -> range:
        return range(self.test_start, self.test_stop)


def walk_forward_folds(
    n_rows: int,
    n_folds: int,
    train_rows: int,
    test_rows: int,
    horizon: int,
    valid_fraction: float,
    first_usable_row: int = 0,
) -> list[Fold]:
    """Place ``n_folds`` consecutive test blocks at the end of the series.

    Each fold trains on the ``train_rows`` candles before its test block (a sliding window),
    of which the last ``valid_fraction`` is the validation part for early stopping. ``horizon``
    rows are purged before the validation part and before the test block. The last test block
    ends ``horizon`` rows before the series ends, where the target is still known.
    ``first_usable_row`` is the first row with finite features (after the indicator warmup).
    """
    for name, value in (("n_folds", n_folds), ("train_rows", train_rows), ("test_rows", test_rows)):
        if value < 1:
            raise ValueError(f"{name}={value!r} is invalid; it must be an integer >= 1")
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid; it must be an integer >= 1")
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction={valid_fraction!r} is invalid; use a value in (0, 1)")

    last_test_stop = n_rows - horizon
    first_test_start = last_test_stop - n_folds * test_rows
    first_train_start = first_test_start - horizon - train_rows
    if first_train_start < first_usable_row:
        needed = first_usable_row + n_folds * test_rows + train_rows + 2 * horizon
        raise ValueError(
            f"{n_rows} candles are too few for {n_folds} folds of {test_rows} test rows after "
            f"{train_rows} training rows; need at least {needed}, so shorten the periods"
        )

    valid_rows = max(1, round(train_rows * valid_fraction))
    folds = []
    for k in range(n_folds):
        test_start = first_test_start + k * test_rows
        valid_stop = test_start - horizon
        valid_start = valid_stop - valid_rows
        train_stop = valid_start - horizon
        train_start = valid_stop - train_rows
        if train_stop - train_start < 1:
            raise ValueError(
                f"valid_fraction={valid_fraction} leaves no training rows in fold {k}; lower it"
            )
        folds.append(
            Fold(
                index=k,
                train_start=train_start,
                train_stop=train_stop,
                valid_start=valid_start,
                valid_stop=valid_stop,
                test_start=test_start,
                test_stop=test_start + test_rows,
            )
        )
    return folds
