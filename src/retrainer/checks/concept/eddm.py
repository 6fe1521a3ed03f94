"""EDDM: the Early Drift Detection Method of Baena-Garcia et al. (2006) on a 0/1 error stream."""

from __future__ import annotations

import math

import numpy as np

from retrainer.checks.concept.base import BinaryDriftDetector, WarningMixin, first_true, whole
from retrainer.checks.concept.native import native


class EDDM(native("EDDMStep"), WarningMixin, BinaryDriftDetector):
    """Early Drift Detection Method: the distance between errors shrinks below its best level.

    With ``p'`` and ``s'`` the mean and standard deviation of the distance between consecutive
    errors, the detector keeps the maximum of ``p' + 2 s'`` and signals a warning when the ratio
    of the current value to that maximum falls below ``alpha`` and a drift below ``beta``
    (after ``warm_start`` values and ``warm_start`` errors). Same parameters, defaults and reset
    rule as ``river.drift.binary.EDDM``; the variance is computed from exact integer sums of
    distances instead of Welford's update, so values can differ from River's in the last bits.

    Parameters:
        warm_start: values (and errors) to read after a reset before anything is signalled.
        alpha: ratio below which a warning is signalled.
        beta: ratio below which a drift is signalled (``beta <= alpha``).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> stream = np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.4]
        >>> EDDM(alpha=0.8, beta=0.75).update_many(stream).tolist()
        [3144]

    References:
        Baena-Garcia, del Campo-Avila, Fidalgo, Bifet, Gavalda, Morales-Bueno (2006). Early drift
        detection method. 4th Int. Workshop on Knowledge Discovery from Data Streams.
    """

    _params = ("warm_start", "alpha", "beta")
    _state = (
        "_warning_detected",
        "_n",
        "_last_error",
        "_n_errors",
        "_dist_sum",
        "_dist_sq",
        "_p2s_max",
    )

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        if not 0 < beta <= alpha <= 1 or warm_start < 0:
            raise ValueError(
                "EDDM needs 0 < beta <= alpha <= 1 and warm_start >= 0; got "
                f"alpha={alpha}, beta={beta}, warm_start={warm_start}"
            )
        self.warm_start = whole(warm_start, "warm_start")
        self.alpha = alpha
        self.beta = beta
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False
        self._n = 0
        self._last_error = 0
        self._n_errors = 0
        self._dist_sum = 0
        self._dist_sq = 0
        self._p2s_max = -1.0

    @staticmethod
    def _p2s(m, total, squares):
        """Mean plus two standard deviations (ddof=1) of ``m`` distances from their sums."""
        m, total, squares = (np.asarray(v, dtype=float) for v in (m, total, squares))
        var = (m * squares - total * total) / np.maximum(m * (m - 1), 1.0)
        return total / m + 2.0 * np.sqrt(var)

    def _step(self, x: float) -> None:
        self._n += 1
        if x != 1.0:
            return
        distance = self._n - self._last_error
        self._last_error = self._n
        self._n_errors += 1
        self._dist_sum += distance
        self._dist_sq += distance * distance
        if self._n <= self.warm_start:
            return
        m, total = float(self._n_errors), float(self._dist_sum)
        var = (m * float(self._dist_sq) - total * total) / max(m * (m - 1.0), 1.0)
        p2s = total / m + 2.0 * math.sqrt(var) if var >= 0.0 else math.nan  # as _p2s, unboxed
        if p2s > self._p2s_max:
            self._p2s_max = p2s
        elif self._n_errors > self.warm_start:
            level = p2s / self._p2s_max
            if level < self.beta:
                self.drift_detected = True
            else:
                self._warning_detected = level < self.alpha

    def _scan(self, xs: np.ndarray) -> int:
        at = np.flatnonzero(xs == 1.0)
        if at.size == 0:
            self._n += xs.size
            return -1
        n = self._n + at + 1
        distance = np.diff(np.r_[self._last_error, n])
        m = self._n_errors + np.arange(1, at.size + 1)
        total = self._dist_sum + np.cumsum(distance)
        squares = self._dist_sq + np.cumsum(distance * distance)
        skip = int(np.searchsorted(n, self.warm_start, side="right"))
        p2s = self._p2s(m[skip:], total[skip:], squares[skip:])
        best = np.maximum.accumulate(np.r_[self._p2s_max, p2s])
        new = p2s > best[:-1]
        judged = ~new & (m[skip:] > self.warm_start)
        level = p2s / best[:-1]
        k = first_true(judged & (level < self.beta))
        end = at.size - 1 if k < 0 else skip + k
        self._n = int(n[end]) if k >= 0 else self._n + xs.size
        self._last_error, self._n_errors = int(n[end]), int(m[end])
        self._dist_sum, self._dist_sq = int(total[end]), int(squares[end])
        if end >= skip:
            self._p2s_max = float(best[end - skip + 1])
            warned = np.flatnonzero(judged[: end - skip + (k < 0)])
            if warned.size:
                self._warning_detected = bool(level[warned[-1]] < self.alpha)
        self.drift_detected = k >= 0
        return -1 if k < 0 else int(at[end])
