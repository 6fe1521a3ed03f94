"""DDM: the Drift Detection Method of Gama et al. (2004) on a 0/1 error stream."""

from __future__ import annotations

import math

import numpy as np

from retrainer.checks.concept.base import (
    BinaryDriftDetector,
    WarningMixin,
    first_true,
    last_index,
    whole,
)
from retrainer.checks.concept.native import native


class DDM(native("DDMStep"), WarningMixin, BinaryDriftDetector):
    """Drift Detection Method: the error rate rises above its best level by too many deviations.

    With ``p`` the error rate since the last reset and ``s = sqrt(p (1 - p) / n)``, the detector
    remembers ``p_min`` and ``s_min`` where ``p + s`` was lowest and signals a warning when
    ``p + s > p_min + warning_threshold * s_min`` and a drift when
    ``p + s > p_min + drift_threshold * s_min``, after ``warm_start`` values. Same parameters,
    defaults and reset rule as ``river.drift.binary.DDM``; the error rate is computed as
    errors / n instead of a running mean, so it can differ from River's in the last bit only.

    Parameters:
        warm_start: values to read after a reset before anything is signalled.
        warning_threshold: deviations above the best level that make a warning (95 %).
        drift_threshold: deviations above the best level that make a drift (99 %).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> stream = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4]
        >>> ddm = DDM()
        >>> ddm.update_many(stream).tolist()
        [2008]

    References:
        Gama, Medas, Castillo, Rodrigues (2004). Learning with drift detection. SBIA, 286-295.
    """

    _params = ("warm_start", "warning_threshold", "drift_threshold")
    _state = ("_warning_detected", "_n", "_errors", "_p_min", "_s_min", "_ps_min")

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        if warm_start < 0 or not 0 < warning_threshold <= drift_threshold:
            raise ValueError(
                "DDM needs warm_start >= 0 and 0 < warning_threshold <= drift_threshold; got "
                f"{warm_start}, {warning_threshold}, {drift_threshold}"
            )
        self.warm_start = whole(warm_start, "warm_start")
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False
        self._n = 0
        self._errors = 0
        self._p_min = math.nan
        self._s_min = math.nan
        self._ps_min = math.inf

    def _step(self, x: float) -> None:
        n = self._n + 1
        errors = self._errors + (x == 1.0)
        self._n, self._errors = n, errors
        if n <= self.warm_start:
            return
        p = errors / n
        s = math.sqrt(p * (1.0 - p) / n)
        level = p + s
        if level <= self._ps_min:
            self._p_min, self._s_min, self._ps_min = p, s, level
        if level > self._p_min + self.drift_threshold * self._s_min:
            self.drift_detected = True
            self._warning_detected = False
        else:
            self._warning_detected = level > self._p_min + self.warning_threshold * self._s_min

    def _scan(self, xs: np.ndarray) -> int:
        n = self._n + np.arange(1, xs.size + 1)
        errors = self._errors + np.cumsum(xs.astype(np.int64))
        skip = int(np.clip(self.warm_start - self._n, 0, xs.size))
        if skip == xs.size:
            self._n, self._errors = int(n[-1]), int(errors[-1])
            return -1
        n, errors = n[skip:], errors[skip:]
        p = errors / n
        s = np.sqrt(p * (1.0 - p) / n)
        level = p + s
        best = np.minimum.accumulate(np.r_[self._ps_min, level])
        new = level <= best[:-1]
        at = last_index(new)
        p_min = np.where(at >= 0, p[at], self._p_min)
        s_min = np.where(at >= 0, s[at], self._s_min)
        drift = level > p_min + self.drift_threshold * s_min
        k = first_true(drift)
        end = level.size - 1 if k < 0 else k
        self._n, self._errors = int(n[end]), int(errors[end])
        self._p_min, self._s_min, self._ps_min = float(p_min[end]), float(s_min[end]), best[end + 1]
        self._ps_min = float(self._ps_min)
        self.drift_detected = k >= 0
        self._warning_detected = (not self.drift_detected) and bool(
            level[end] > p_min[end] + self.warning_threshold * s_min[end]
        )
        return -1 if k < 0 else skip + k
