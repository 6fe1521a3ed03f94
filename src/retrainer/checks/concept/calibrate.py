"""The error stream a detector reads, and false-alarm control of its drift threshold.

A classifier's stream is 0/1 (1 = wrong), a regressor's its absolute or squared error. The drift
threshold of a detector can be calibrated so that, on a stream resampled (bootstrap) from the
model's held-out errors, false alarms come ``arl`` values apart on average: the average run
length between false alarms of a renewal process, since every detector resets after a drift.

Example:
    >>> import numpy as np
    >>> errors = (np.random.default_rng(0).random(400) < 0.2).astype(float)
    >>> cal = calibrate_detector("PageHinkley", {}, errors, arl=2000, length=40_000)
    >>> cal.arl >= 2000, cal.params["threshold"] < 50.0
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from retrainer.checks.concept import DETECTORS
from retrainer.errors import DataError

# detector -> (its drift threshold, True when a larger value means fewer alarms, search range)
THRESHOLDS: dict[str, tuple[str, bool, float, float]] = {
    "DDM": ("drift_threshold", True, 0.5, 50.0),
    "EDDM": ("beta", False, 0.05, 0.949),
    "HDDMA": ("drift_confidence", False, 1e-15, 0.2),
    "HDDMW": ("drift_confidence", False, 1e-15, 0.2),
    "ADWIN": ("delta", False, 1e-15, 0.5),
    "PageHinkley": ("threshold", True, 1e-3, 1e5),
    "KSWIN": ("alpha", False, 1e-15, 0.5),
    "CUSUM": ("threshold", True, 1e-2, 1e4),
}
# detectors whose threshold is in the stream's own units (a regressor's error in dollars or in
# logs): their search range is scaled by the reference errors' spread
_IN_STREAM_UNITS = {"PageHinkley"}
# warning levels that must stay on their side of the drift threshold
_WARNING = {"DDM": ("warning_threshold", min), "EDDM": ("alpha", max)}
_WARNING |= {name: ("warning_confidence", max) for name in ("HDDMA", "HDDMW")}


def error_stream(task: str, loss: str, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """The values a detector reads: 0/1 errors of a classifier, absolute or squared errors of a
    regressor.

    Example:
        >>> error_stream("classification", "absolute", ["a", "b"], ["a", "a"]).tolist()
        [0.0, 1.0]
        >>> error_stream("regression", "squared", [1.0, 2.0], [1.5, 2.0]).tolist()
        [0.25, 0.0]
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if task == "classification":
        return (y_true != y_pred).astype(float)
    error = y_true.astype(float) - y_pred.astype(float)
    return np.abs(error) if loss == "absolute" else error**2


@dataclass(frozen=True)
class Calibration:
    """A detector's parameters with the drift threshold calibrated to a false-alarm run length."""

    detector: str
    params: dict
    threshold: str
    arl_target: int
    arl: float  # measured on the bootstrap stream (a lower bound when no alarm was raised)
    n_reference: int
    n_bootstrap: int

    @property
    def false_alarm_rate(self) -> float:
        """False alarms per value read on a stream like the reference."""
        return 1.0 / self.arl

    def per_batch(self, rows: int) -> float:
        """Chance of at least one false alarm in a batch of ``rows`` values."""
        return 1.0 - (1.0 - self.false_alarm_rate) ** rows

    def to_dict(self) -> dict:
        return asdict(self) | {"false_alarm_rate": self.false_alarm_rate}


def _run_length(name: str, params: dict, stream: np.ndarray) -> float:
    hits = DETECTORS[name](**params).update_many(stream)
    return stream.size / len(hits) if len(hits) else math.inf


def calibrate_detector(
    name: str,
    params: dict,
    reference: ArrayLike,
    *,
    arl: int = 1000,
    length: int | None = None,
    seed: int = 0,
    steps: int = 24,
) -> Calibration:
    """Set ``name``'s drift threshold so false alarms come at least ``arl`` values apart.

    Parameters:
        name: a detector of ``DETECTORS``.
        params: its other parameters (kept).
        reference: the model's error stream on held-out rows it did not train on.
        arl: the wanted average run length between false alarms (values).
        length: values of the bootstrap stream (default ``max(20 * arl, 20000)``).
        seed: seed of the bootstrap.
        steps: bisection steps.
    """
    if name not in THRESHOLDS:
        raise DataError(f"no calibration for detector {name!r}; known: {sorted(THRESHOLDS)}")
    values = np.asarray(reference, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 10:
        raise DataError(f"calibrating {name}: {values.size} finite reference errors (need >= 10)")
    key, larger_is_calmer, low, high = THRESHOLDS[name]
    spread = float(values.std())
    if name in _IN_STREAM_UNITS and spread > 0:
        low, high = low * spread, high * spread
    n = length or max(20 * arl, 20_000)
    stream = np.random.default_rng(seed).choice(values, size=n, replace=True)

    def params_at(value: float) -> dict:
        out = dict(params, **{key: value})
        if name in _WARNING:
            warning, side = _WARNING[name]
            default = getattr(DETECTORS[name](), warning)
            out[warning] = side(out.get(warning, default), value)
        return out

    def calm(value: float) -> bool:
        return _run_length(name, params_at(value), stream) >= arl

    log = low > 0 and high / low > 100
    lo, hi = (math.log(low), math.log(high)) if log else (low, high)
    for _ in range(steps):  # find the boundary between noisy and calm thresholds
        mid = (lo + hi) / 2
        value = math.exp(mid) if log else mid
        if calm(value) == larger_is_calmer:
            hi = mid
        else:
            lo = mid
    chosen = hi if larger_is_calmer else lo
    value = math.exp(chosen) if log else chosen
    found = params_at(value)
    return Calibration(name, found, key, arl, _run_length(name, found, stream), int(values.size), n)
