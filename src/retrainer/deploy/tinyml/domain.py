"""Which inputs a Python model refuses (NaN, infinity), and its per-row reference predictions.

scikit-learn refuses a whole ``predict`` call when one row holds a value it does not accept:
most estimators refuse NaN and infinity, trees and forests that learned where missing values go
accept NaN and refuse infinity, histogram gradient boosting accepts both. The exported C decides
per row and returns a "refused" code for exactly the rows Python refuses; the parity check needs
Python's answer per row, which :func:`python_reference` gives.

The device holds its features as float32: a float64 value beyond the float32 range is the
infinity of its sign there, and the reference sees it so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrainer.errors import DataError

F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class InputPolicy:
    """Whether the Python model refuses NaN and infinite inputs (a refused row has no prediction).

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> input_policy(GaussianNB().fit([[0.0], [1.0]], [0, 1]), 1)
    InputPolicy(refuses_nan=True, refuses_inf=True)
    """

    refuses_nan: bool
    refuses_inf: bool


def input_policy(model: Any, n_features: int) -> InputPolicy:
    """Ask ``model`` itself: predict one row with a NaN, then one with an infinity.

    A ``ValueError`` (scikit-learn's input check) or a :class:`DataError` means refused.
    """
    return InputPolicy(
        refuses_nan=_refuses(model, n_features, np.nan),
        refuses_inf=_refuses(model, n_features, np.inf),
    )


def _refuses(model: Any, n_features: int, value: float) -> bool:
    row = np.zeros((2, n_features))
    row[0, 0] = value
    row[1, 0] = -value
    try:
        _predict(model, row)
    except (ValueError, DataError):
        return True
    return False


def _predict(model: Any, values: np.ndarray) -> np.ndarray:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        values = pd.DataFrame(values, columns=list(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.predict(values))


def device_values(X: Any) -> np.ndarray:
    """``X`` as float64 with every value beyond the float32 range set to the infinity of its sign.

    Examples
    --------
    >>> device_values([[1e39, -1e39, 2.5]]).tolist()
    [[inf, -inf, 2.5]]
    """
    try:
        values = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"X cannot be read as numbers for the C model: {exc}") from exc
    with np.errstate(invalid="ignore"):
        values[values > F32_MAX] = np.inf
        values[values < -F32_MAX] = -np.inf
    return values


def python_reference(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """The model's prediction of every row of ``X``, and which rows it refuses.

    Rows of finite values, rows with NaN, with infinity, and with both form one group each,
    predicted together; a group scikit-learn refuses is predicted row by row, so that only the
    rows it refuses are (a finite value can be refused too: behind a scaler, a tree refuses a
    scaled value beyond the float32 range). A refused row's prediction is ``None`` (NaN for a
    regressor).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> predictions, refused = python_reference(model, [[0.0], [float("nan")], [1.0]])
    >>> predictions.tolist(), refused.tolist()
    ([0, None, 1], [False, True, False])
    """
    frame_columns = getattr(X, "columns", None)
    values = device_values(X)
    if values.ndim != 2:
        raise DataError(f"X has shape {values.shape}; expected rows of features")
    names = getattr(model, "feature_names_in_", None)
    if frame_columns is not None and names is not None:
        order = [list(map(str, frame_columns)).index(str(n)) for n in names]
        values = values[:, order]
    has_nan = np.isnan(values).any(axis=1)
    has_inf = np.isinf(values).any(axis=1)
    refused = np.zeros(len(values), dtype=bool)
    groups = [~has_nan & ~has_inf, has_nan & ~has_inf, ~has_nan & has_inf, has_nan & has_inf]
    found: dict[int, Any] = {}
    for group in groups:
        rows = np.flatnonzero(group)
        if rows.size == 0:
            continue
        try:
            predicted = _predict(model, values[rows])
        except (ValueError, DataError):
            for row in rows:
                try:
                    found[int(row)] = _predict(model, values[row : row + 1])[0]
                except (ValueError, DataError):
                    refused[row] = True
            continue
        for row, value in zip(rows, predicted, strict=True):
            found[int(row)] = value
    if getattr(model, "classes_", None) is None:
        predictions = np.full(len(values), np.nan)
    else:
        predictions = np.full(len(values), None, dtype=object)
    for row, value in found.items():
        predictions[row] = value.item() if isinstance(value, np.generic) else value
    return predictions, refused
