"""TRMTSRegressor train and predict through FreqAI's own classes, on tiny synthetic frames.

One model is trained per module on 6 days of 15m candles and shared by the tests. Each test
predicts on fresh frames and checks one behaviour: date alignment, history for a chunk's first
candles, non-finite inputs or feature drift.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from regressor_support import (
    CANDLE,
    PAIR,
    TINY_MODEL,
    make_config,
    new_kitchen,
    new_regressor,
    synthetic_frame,
    train,
)

from trm_ts import columns

WINDOW = TINY_MODEL["window"]
TRAIN_ROWS = 96 * 6
CHUNK_ROWS = 96 * 2


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def trained_with_log(tmp_path_factory):
    """A regressor trained on the first TRAIN_ROWS candles, the full frame, the kitchen and
    the adapter's log messages during training."""
    config = make_config(tmp_path_factory.mktemp("user_data"))
    regressor = new_regressor(config)
    frame = synthetic_frame(TRAIN_ROWS + CHUNK_ROWS, seed=3)
    collect = _Collect()
    adapter_logger = logging.getLogger("trm_ts.freqai.adapter")
    previous_level = adapter_logger.level
    adapter_logger.setLevel(logging.INFO)
    adapter_logger.addHandler(collect)
    try:
        _, dk = train(regressor, frame.iloc[:TRAIN_ROWS])
    finally:
        adapter_logger.removeHandler(collect)
        adapter_logger.setLevel(previous_level)
    return (regressor, frame, dk), collect.messages


@pytest.fixture(scope="module")
def trained(trained_with_log):
    return trained_with_log[0]


def _predict(trained, chunk):
    regressor, _, dk = trained
    return regressor.predict(chunk.copy(), dk)


def _chunk(trained):
    _, frame, _ = trained
    return frame.iloc[TRAIN_ROWS:]


def test_prediction_columns_are_labels(trained):
    pred, _ = _predict(trained, _chunk(trained))
    assert sorted(pred.columns) == sorted([columns.TARGET, columns.SIGMA])


def test_prediction_one_row_per_candle(trained):
    pred, do_predict = _predict(trained, _chunk(trained))
    assert len(pred) == CHUNK_ROWS
    assert len(do_predict) == CHUNK_ROWS


def test_predictions_align_by_date(trained):
    # The target is a function of the same candle's feature: lag 0 must correlate best.
    chunk = _chunk(trained)
    pred, do_predict = _predict(trained, chunk)
    mean = pred[columns.TARGET].where(do_predict == 1)
    target = chunk[columns.TARGET].reset_index(drop=True)
    corr = {lag: mean.corr(target.shift(lag)) for lag in (-1, 0, 1)}
    assert corr[0] > 0.5, corr
    assert corr[0] > corr[1] + 0.3, corr
    assert corr[0] > corr[-1] + 0.3, corr


def test_sigma_positive_raw_units(trained):
    pred, do_predict = _predict(trained, _chunk(trained))
    sigma = pred[columns.SIGMA][do_predict == 1]
    assert (sigma > 0).all()
    # Raw log-return units: the target's std is about TARGET_SLOPE, far below 1.
    assert sigma.median() < 0.1


def test_chunk_start_uses_training_tail(trained):
    # The chunk begins right after the training rows, so its first candles have history.
    _, do_predict = _predict(trained, _chunk(trained))
    assert do_predict.all()


def test_history_matches_longer_input(trained):
    # A prediction built from stored history equals one whose input contains those rows.
    _, frame, _ = trained
    chunk = _chunk(trained)
    longer = frame.iloc[TRAIN_ROWS - (WINDOW - 1) :]
    short_pred, _ = _predict(trained, chunk)
    long_pred, _ = _predict(trained, longer)
    np.testing.assert_allclose(
        short_pred[columns.TARGET].to_numpy(),
        long_pred[columns.TARGET].to_numpy()[WINDOW - 1 :],
        rtol=1e-5,
        atol=1e-9,
    )


def test_gap_after_training_blanks_first_candles(trained):
    # A chunk that starts one candle late has no contiguous history for its first windows.
    chunk = _chunk(trained).iloc[1:]
    pred, do_predict = _predict(trained, chunk)
    assert not do_predict[: WINDOW - 1].any()
    assert do_predict[WINDOW - 1 :].all()
    assert (pred[columns.SIGMA].to_numpy()[: WINDOW - 1] == 0).all()


def test_missing_candle_blanks_following_windows(trained):
    chunk = _chunk(trained).drop(_chunk(trained).index[50])
    _, do_predict = _predict(trained, chunk)
    assert not do_predict[50 : 50 + WINDOW - 1].any()
    assert do_predict[50 + WINDOW - 1 :].all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_feature_blanks_windows(trained, caplog, bad):
    chunk = _chunk(trained).copy()
    chunk.iloc[40, chunk.columns.get_loc("%-noise")] = bad
    with caplog.at_level(logging.INFO, logger="trm_ts.freqai.adapter"):
        pred, do_predict = _predict(trained, chunk)
    assert not do_predict[40 : 40 + WINDOW].any()
    assert do_predict[40 + WINDOW :].all()
    assert np.isfinite(pred.to_numpy()).all()
    assert "1 of 192 candles have non-finite features" in caplog.text


def test_non_finite_categorical_blanks_windows(trained):
    chunk = _chunk(trained).copy()
    chunk.iloc[60, chunk.columns.get_loc(columns.REGIME)] = np.nan
    pred, do_predict = _predict(trained, chunk)
    assert not do_predict[60 : 60 + WINDOW].any()
    assert np.isfinite(pred.to_numpy()).all()


def test_reordered_columns_match_by_name(trained):
    chunk = _chunk(trained)
    reordered = chunk[list(reversed(chunk.columns))].assign(**{"%-extra": 1.0})
    base, _ = _predict(trained, chunk)
    moved, _ = _predict(trained, reordered)
    np.testing.assert_allclose(moved.to_numpy(), base.to_numpy())


def test_missing_feature_warns_and_blanks(trained, caplog):
    chunk = _chunk(trained).drop(columns=["%-noise"]).assign(**{"%-new": 0.0})
    with caplog.at_level(logging.WARNING, logger="trm_ts.freqai.adapter"):
        pred, do_predict = _predict(trained, chunk)
    assert not do_predict.any()
    assert "['%-noise']" in caplog.text
    assert "['%-new']" in caplog.text
    assert np.isfinite(pred.to_numpy()).all()


def test_training_log_start_line(trained_with_log):
    _, messages = trained_with_log
    start = [m for m in messages if "training start" in m]
    assert len(start) == 1
    for field in (f"pair={PAIR}", f"rows={TRAIN_ROWS}", "features=6"):
        assert field in start[0]


def test_training_log_end_line(trained_with_log):
    _, messages = trained_with_log
    end = [m for m in messages if "training end" in m]
    assert len(end) == 1
    epochs = TINY_MODEL["epochs"]
    for field in (f"pair={PAIR}", "features=6", f"epochs_run={epochs}", "best_test_nll="):
        assert field in end[0]
    assert "seconds=" in end[0]


def test_wrong_labels_raise(tmp_path):
    regressor = new_regressor(make_config(tmp_path))
    frame = synthetic_frame(96 * 4).drop(columns=[columns.SIGMA])
    with pytest.raises(ValueError, match="&-s_return_sigma"):
        train(regressor, frame)


def test_short_training_raises(tmp_path):
    regressor = new_regressor(make_config(tmp_path))
    with pytest.raises(ValueError, match="test windows"):
        train(regressor, synthetic_frame(WINDOW))


def test_prediction_dates_cover_chunk(trained):
    # Guards the alignment test's premise: the chunk is contiguous 15m candles.
    chunk = _chunk(trained)
    assert (chunk["date"].diff().dropna() == CANDLE).all()
    assert new_kitchen(trained[0].config, chunk).label_list == [columns.TARGET, columns.SIGMA]
