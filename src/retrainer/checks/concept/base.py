"""Base classes of the streaming concept-drift detectors (error or loss stream of a model).

Every detector reads one value with ``update(x)`` or a whole batch with ``update_many(xs)``; the
two give the same change points and the same state. A non-finite value (NaN, inf) is counted in
``n_nonfinite`` and skipped: it never reaches the detector's state. As in River, a detector that
signalled a drift resets itself when the next finite value arrives.

Example:
    >>> from retrainer.checks.concept import PageHinkley
    >>> detector = PageHinkley()
    >>> hits = detector.update_many([0.0] * 500 + [float("nan")] + [5.0] * 100)
    >>> hits.tolist(), detector.n_seen, detector.n_nonfinite
    ([511], 601, 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from retrainer.errors import DataError

MIN_CHUNK = 256
MAX_CHUNK = 1 << 16


def encode(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars made Python numbers, non-finite floats as strings.

    Example:
        >>> encode({"a": float("inf"), "b": (1, np.float64(0.5))})
        {'a': 'inf', 'b': [1, 0.5]}
    """
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [encode(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def decode(value: Any) -> Any:
    """Inverse of :func:`encode` (lists stay lists).

    Example:
        >>> decode({"a": "inf", "b": [1, "-inf"]})
        {'a': inf, 'b': [1, -inf]}
    """
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def whole(value: Any, name: str) -> int:
    """``value`` as an int when it is a whole number (``30`` or ``30.0``), else a ValueError.

    Example:
        >>> whole(30.0, "warm_start"), whole(7, "warm_start")
        (30, 7)
    """
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number of values; got {value!r}")
    return int(value)


def first_true(mask: np.ndarray) -> int:
    """Index of the first True in ``mask``, or -1.

    Example:
        >>> first_true(np.array([False, True, True])), first_true(np.zeros(3, bool))
        (1, -1)
    """
    k = int(np.argmax(mask)) if mask.size else 0
    return k if mask.size and mask[k] else -1


def last_index(mask: np.ndarray) -> np.ndarray:
    """For every position, the index of the latest True at or before it (-1 before the first).

    Example:
        >>> last_index(np.array([False, True, False, True])).tolist()
        [-1, 1, 1, 3]
    """
    return np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1))


class DriftDetector:
    """A streaming detector of a change in the mean (or distribution) of a numeric stream.

    Subclasses implement ``_step`` (one finite value), ``_scan`` (a run of finite values, stopping
    at the first drift) and ``_reset``, and list their parameters and state attributes.
    """

    _params: ClassVar[tuple[str, ...]] = ()
    _state: ClassVar[tuple[str, ...]] = ()
    _binary: ClassVar[bool] = False

    def __init__(self) -> None:
        self.n_seen = 0
        self.n_nonfinite = 0
        self.n_detections = 0
        self._reset()

    def _reset(self) -> None:
        self.drift_detected = False  # whether the last finite value made it signal a drift

    def update(self, x: float) -> None:
        """Read one value; a NaN or inf is counted in ``n_nonfinite`` and skipped.

        Lean on purpose (a streaming caller pays it once per prediction): plain float
        arithmetic, no array is built for one value.
        """
        value = float(x)
        if value - value != 0.0 or (self._binary and value != 0.0 and value != 1.0):
            self._refuse_or_skip(value)
            return
        self.n_seen += 1
        if self.drift_detected:
            self._reset()
        self._step(value)
        if self.drift_detected:
            self.n_detections += 1

    def _refuse_or_skip(self, value: float) -> None:
        """Count a non-finite value, or raise for a value the method is not defined for."""
        if math.isfinite(value):
            self._check(np.array([value]), None, self.n_seen)
        self.n_seen += 1
        self.n_nonfinite += 1

    def update_many(self, xs: ArrayLike) -> np.ndarray:
        """Read a batch (vectorised); return the positions in ``xs`` where a drift was signalled.

        The state afterwards equals the state after ``update`` on each value in turn.
        """
        values = np.asarray(xs, dtype=float).reshape(-1)
        finite = np.isfinite(values)
        positions = None if finite.all() else np.flatnonzero(finite)
        kept = values if positions is None else values[positions]
        self._check(kept, positions, self.n_seen)
        hits = []
        start, size = 0, MIN_CHUNK
        scan = getattr(self, "_native_scan", None) or self._scan  # the C loop, when built
        while start < kept.size:
            if self.drift_detected:
                self._reset()
            chunk = kept[start : start + size]
            k = scan(chunk)
            if k < 0:
                start += chunk.size
                size = min(2 * size, MAX_CHUNK)
            else:
                hits.append(start + k)
                start += k + 1
                size = MIN_CHUNK
        self.n_seen += values.size
        self.n_nonfinite += values.size - kept.size
        self.n_detections += len(hits)
        found = np.asarray(hits, dtype=np.intp)
        return found if positions is None else positions[found]

    def _check(self, values: np.ndarray, positions: np.ndarray | None, offset: int) -> None:
        """Refuse values the method is not defined for (only binary detectors check)."""

    def _step(self, x: float) -> None:
        raise NotImplementedError

    def _scan(self, xs: np.ndarray) -> int:
        """Read ``xs`` up to and including the first drift; return its index or -1."""
        raise NotImplementedError

    def _get_state(self) -> dict:
        return {name: getattr(self, name) for name in self._state}

    def _set_state(self, state: dict) -> None:
        for name in self._state:
            setattr(self, name, state[name])

    def state_dict(self) -> dict:
        """Parameters, counters and state as plain JSON (to persist the detector between cycles).

        Example:
            >>> import json
            >>> from retrainer.checks.concept import DDM
            >>> ddm = DDM()
            >>> ddm.update_many([0, 1] * 50).tolist()
            []
            >>> again = DDM.from_state(json.loads(json.dumps(ddm.state_dict())))
            >>> again.state_dict() == ddm.state_dict()
            True
        """
        return encode(
            {
                "detector": type(self).__name__,
                "params": {name: getattr(self, name) for name in self._params},
                "counters": {
                    "n_seen": self.n_seen,
                    "n_nonfinite": self.n_nonfinite,
                    "n_detections": self.n_detections,
                },
                "state": {"_drift_detected": self.drift_detected, **self._get_state()},
            }
        )

    @classmethod
    def from_state(cls, d: dict) -> Self:
        """Rebuild a detector from :meth:`state_dict` output (after a JSON round trip too)."""
        if d.get("detector") != cls.__name__:
            raise DataError(
                f"state of detector {d.get('detector')!r} cannot be loaded into {cls.__name__}"
            )
        try:
            detector = cls(**d["params"])
            for name, value in d["counters"].items():
                setattr(detector, name, int(value))
            state = decode(d["state"])
            detector.drift_detected = bool(state["_drift_detected"])
            detector._set_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{cls.__name__} state is incomplete or malformed: {exc!r}") from exc
        return detector

    def __reduce__(self) -> tuple:
        """Pickle and copy through :meth:`state_dict`: a compiled step keeps its state in C
        fields, outside ``__dict__``."""
        return type(self).from_state, (self.state_dict(),)

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._params)
        return f"{type(self).__name__}({params})"


class WarningMixin:
    """A detector with a warning level below its drift level."""

    _warning_detected: bool

    @property
    def warning_detected(self) -> bool:
        """Whether the last finite value put the detector in its warning zone."""
        return self._warning_detected


class BinaryDriftDetector(DriftDetector):
    """A detector for a 0/1 stream (1 = the model erred on this row)."""

    _binary: ClassVar[bool] = True

    def _check(self, values: np.ndarray, positions: np.ndarray | None, offset: int) -> None:
        bad = (values != 0.0) & (values != 1.0)
        if bad.any():
            k = int(np.argmax(bad))
            where = offset + (k if positions is None else int(positions[k]))
            got = float(values[k])
            raise DataError(
                f"{type(self).__name__} reads a 0/1 error stream (1 = error); got {got!r} "
                f"at position {where} of the stream"
            )
