"""datasieve pipeline steps that FreqAI pickles with each TRM-TS model.

FreqAI runs every ``%`` column through its feature pipeline (constant-column removal, min-max
scaling, optional dissimilarity index and noise) and every ``&`` column through its label
pipeline. Two steps here adapt those pipelines to TRM-TS:

- ``PassthroughColumns`` wraps one feature step and hands the categorical columns
  (``trm_ts.columns.CATEGORICAL``) around it unchanged, so regime, hour and day of week stay
  exact integers and are never dropped as constant.
- ``TargetSigmaScaler`` standardizes the target and maps the sigma column by the scale only,
  so the label pipeline's inverse transform turns a predicted sigma in standardized units
  into a sigma in raw target units.

Both are defined in the installed ``trm_ts`` package, hold only numbers, strings and the
wrapped datasieve step, and can therefore be unpickled wherever ``trm_ts`` is importable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from datasieve.transforms.base_transform import BaseTransform

logger = logging.getLogger(__name__)


def _names(feature_list: Iterable[Any] | None, width: int, step: str) -> list[str]:
    if feature_list is None:
        raise ValueError(
            f"{step} needs column names; fit the FreqAI pipeline on a pandas DataFrame"
        )
    names = [str(n) for n in feature_list]
    if len(names) != width:
        raise ValueError(f"{step} got {width} columns but {len(names)} column names")
    return names


class PassthroughColumns(BaseTransform):
    """Apply ``inner`` to every column except ``columns``, which pass through unchanged.

    Output column order: the inner step's output columns, then the passed-through columns in
    their input order. Steps that remove rows (SVM, DBSCAN, the dissimilarity index without
    ``outlier_check``) raise ``ValueError``, because the passed-through columns would no
    longer line up.
    """

    def __init__(self, inner: BaseTransform, columns: Sequence[str], name: str = "") -> None:
        self.inner = inner
        self.columns = tuple(columns)
        self.name = name or type(inner).__name__
        self.names_in: list[str] = []
        self.inner_names_out: list[str] = []

    def _split(self, X: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        is_kept = np.array([n in self.columns for n in names], dtype=bool)
        inner_names = [n for n, kept in zip(names, is_kept) if not kept]
        return X[:, ~is_kept], inner_names, X[:, is_kept]

    def _join(
        self, X_inner: np.ndarray, X_kept: np.ndarray, inner_names: Iterable[Any], names: list[str]
    ) -> tuple[np.ndarray, list[str]]:
        if X_inner.shape[0] != X_kept.shape[0]:
            raise ValueError(
                f"pipeline step {self.name!r} changed the row count from {X_kept.shape[0]} to "
                f"{X_inner.shape[0]}; row-removing outlier steps are not supported by "
                f"TRMTSRegressor, disable them in freqai.feature_parameters"
            )
        kept_names = [n for n in names if n in self.columns]
        out = np.concatenate([np.asarray(X_inner, dtype=float), X_kept.astype(float)], axis=1)
        return out, [str(n) for n in inner_names] + kept_names

    def fit(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        names = _names(feature_list, X.shape[1], self.name)
        X_inner, inner_names, _ = self._split(X, names)
        self.inner.fit(X_inner, y, sample_weight=sample_weight, feature_list=inner_names)
        self.names_in = names
        return X, y, sample_weight, feature_list

    def fit_transform(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        names = _names(feature_list, X.shape[1], self.name)
        X_inner, inner_names, X_kept = self._split(X, names)
        X_inner, y, sample_weight, inner_out = self.inner.fit_transform(
            X_inner, y, sample_weight=sample_weight, feature_list=inner_names
        )
        self.names_in = names
        self.inner_names_out = [str(n) for n in inner_out]
        X_out, names_out = self._join(X_inner, X_kept, inner_out, names)
        return X_out, y, sample_weight, names_out

    def transform(
        self, X, y=None, sample_weight=None, feature_list=None, outlier_check=False, **kwargs
    ):
        names = _names(feature_list, X.shape[1], self.name)
        if names != self.names_in:
            raise ValueError(
                f"pipeline step {self.name!r} was fit on columns {self.names_in} but got {names}"
            )
        X_inner, inner_names, X_kept = self._split(X, names)
        X_inner, y, sample_weight, inner_out = self.inner.transform(
            X_inner,
            y,
            sample_weight=sample_weight,
            feature_list=inner_names,
            outlier_check=outlier_check,
        )
        X_out, names_out = self._join(X_inner, X_kept, inner_out, names)
        return X_out, y, sample_weight, names_out

    def inverse_transform(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        names = _names(feature_list, X.shape[1], self.name)
        X_inner, inner_names, X_kept = self._split(X, names)
        X_inner, y, sample_weight, inner_in = self.inner.inverse_transform(
            X_inner, y, sample_weight=sample_weight, feature_list=inner_names
        )
        X_out, names_out = self._join(X_inner, X_kept, inner_in, names)
        return X_out, y, sample_weight, names_out

    def __getattr__(self, attribute: str) -> Any:
        # FreqAI reads ``feature_pipeline["di"].di_values`` after a transform; forward reads of
        # unknown attributes to the wrapped step. "inner" is guarded so unpickling (which looks
        # up attributes before __dict__ is filled) cannot recurse.
        if attribute == "inner" or attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)


class TargetSigmaScaler(BaseTransform):
    """Standardize the target label; scale the sigma label by the same factor, with no shift.

    Forward: ``target -> (target - center) / scale`` and ``sigma -> sigma / scale``.
    Inverse: ``target -> target * scale + center`` and ``sigma -> sigma * scale``.
    ``center`` and ``scale`` are the mean and standard deviation of the target on the training
    rows. Any other label column passes through unchanged. In log-variance terms the inverse
    adds ``2 * ln(scale)``, which is why the regressor reports sigma and not log-variance.
    """

    def __init__(self, target: str, sigma: str) -> None:
        self.target = target
        self.sigma = sigma
        self.center = 0.0
        self.scale = 1.0
        self.names_in: list[str] = []

    def _indices(self, names: list[str]) -> tuple[int, int | None]:
        if self.target not in names:
            raise ValueError(f"label column {self.target!r} is missing; got labels {names}")
        sigma = names.index(self.sigma) if self.sigma in names else None
        return names.index(self.target), sigma

    def fit(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        names = _names(feature_list, X.shape[1], "TargetSigmaScaler")
        target_col, _ = self._indices(names)
        values = np.asarray(X[:, target_col], dtype=float)
        values = values[np.isfinite(values)]
        if values.size < 2:
            raise ValueError(
                f"label {self.target!r} has {values.size} finite training values; at least 2 "
                f"are needed to standardize it"
            )
        scale = float(values.std())
        if not scale > 0.0:
            raise ValueError(
                f"label {self.target!r} is constant on the training rows (std 0); it cannot "
                f"be standardized"
            )
        self.center = float(values.mean())
        self.scale = scale
        self.names_in = names
        return X, y, sample_weight, feature_list

    def _apply(self, X, feature_list, forward: bool) -> np.ndarray:
        names = _names(feature_list, X.shape[1], "TargetSigmaScaler")
        target_col, sigma_col = self._indices(names)
        out = np.array(X, dtype=float, copy=True)
        if forward:
            out[:, target_col] = (out[:, target_col] - self.center) / self.scale
        else:
            out[:, target_col] = out[:, target_col] * self.scale + self.center
        if sigma_col is not None:
            factor = 1.0 / self.scale if forward else self.scale
            out[:, sigma_col] = out[:, sigma_col] * factor
        return out

    def transform(
        self, X, y=None, sample_weight=None, feature_list=None, outlier_check=False, **kwargs
    ):
        return self._apply(X, feature_list, forward=True), y, sample_weight, feature_list

    def fit_transform(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        self.fit(X, y, sample_weight, feature_list)
        return self.transform(X, y, sample_weight, feature_list)

    def inverse_transform(self, X, y=None, sample_weight=None, feature_list=None, **kwargs):
        return self._apply(X, feature_list, forward=False), y, sample_weight, feature_list
