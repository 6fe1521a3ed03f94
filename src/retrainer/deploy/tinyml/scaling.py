"""Feature scaling in front of a model: read a Pipeline's scalers as elementwise operations."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from retrainer.errors import RetrainerError

SCALERS = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)
_OPERATIONS = {"sub": np.subtract, "div": np.divide, "mul": np.multiply, "add": np.add}


def split_pipeline(model: Any) -> tuple[list[Any], Any]:
    """The scaler steps and the final estimator of a ``Pipeline`` (no steps for a bare model).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.naive_bayes import GaussianNB
    >>> steps, model = split_pipeline(make_pipeline(StandardScaler(), GaussianNB()))
    >>> [type(s).__name__ for s in steps], type(model).__name__
    (['StandardScaler'], 'GaussianNB')
    """
    if not isinstance(model, Pipeline):
        return [], model
    steps = [step for _, step in model.steps if step not in (None, "passthrough")]
    if not steps:
        raise RetrainerError("cannot export a Pipeline without a final estimator")
    *scalers, estimator = steps
    for step in scalers:
        if not isinstance(step, SCALERS):
            allowed = ", ".join(s.__name__ for s in SCALERS)
            raise RetrainerError(
                f"cannot export Pipeline step {type(step).__name__} to C: only {allowed} may "
                "come before the model"
            )
    return scalers, estimator


def scaler_ops(step: Any, n_features: int) -> list[tuple[str, Any]]:
    """Elementwise operations of a fitted scaler, in the order scikit-learn applies them.

    Each is ``(kind, values)`` with kind ``sub``, ``div``, ``mul`` or ``add`` (per-feature values)
    or ``clip`` (``(low, high)``).

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> [kind for kind, _ in scaler_ops(StandardScaler().fit([[0.0], [2.0]]), 1)]
    ['sub', 'div']
    """
    ops: list[tuple[str, Any]] = []
    if isinstance(step, StandardScaler):
        if step.with_mean:
            ops.append(("sub", step.mean_))
        if step.with_std:
            ops.append(("div", step.scale_))
    elif isinstance(step, RobustScaler):
        if step.with_centering:
            ops.append(("sub", step.center_))
        if step.with_scaling:
            ops.append(("div", step.scale_))
    elif isinstance(step, MaxAbsScaler):
        ops.append(("div", step.scale_))
    else:
        ops += [("mul", step.scale_), ("add", step.min_)]
        if step.clip:
            ops.append(("clip", tuple(float(v) for v in step.feature_range)))
    for kind, values in ops:
        if kind != "clip" and np.shape(values) != (n_features,):
            raise RetrainerError(f"{type(step).__name__} is not fitted for {n_features} features")
        if kind in ("div", "mul") and not np.all(np.asarray(values) > 0):
            raise RetrainerError(
                f"{type(step).__name__} has a non-positive scale; cannot export it to C"
            )
    return ops


def apply_ops(
    ops: list[tuple[str, Any]], values: np.ndarray, features: np.ndarray, dtype: Any = np.float64
) -> np.ndarray:
    """Scale raw ``values`` of the given ``features`` as scikit-learn does (float64) or C does.

    ``features`` gives the feature index of each value (or of each column of a matrix); with
    ``dtype=np.float32`` every operation rounds to float32, as the generated C does.

    Examples
    --------
    >>> import numpy as np
    >>> apply_ops([("sub", [1.0]), ("div", [2.0])], np.array([5.0]), np.array([0]))
    array([2.])
    """
    v = np.asarray(values, dtype=dtype)
    for kind, params in ops:
        if kind == "clip":
            v = np.clip(v, *(dtype(p) for p in params))
        else:
            p = np.asarray(params, dtype=dtype)[features]
            v = _OPERATIONS[kind](v, p)
    return v
