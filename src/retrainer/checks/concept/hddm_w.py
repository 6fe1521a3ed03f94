"""HDDM-W: drift detection with McDiarmid bounds on EWMAs (Frias-Blanco 2015)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from retrainer.checks.concept.base import (
    BinaryDriftDetector,
    WarningMixin,
    first_true,
    last_index,
)


@cache
def ibc_table(lambda_val: float) -> np.ndarray:
    """Independent bound condition of an EWMA after ``k`` values, ``k = 0 ..`` its fixed point.

    ``ibc(0) = 1`` and ``ibc(k) = lambda**2 + (1 - lambda)**2 * ibc(k - 1)``; the float iteration
    settles on its fixed point within a few hundred steps, after which the table's last entry
    holds.

    Example:
        >>> table = ibc_table(0.05)
        >>> float(table[0]), round(float(table[1]), 6), round(float(table[-1]), 6)
        (1.0, 0.905, 0.025641)
    """
    square, rest = lambda_val * lambda_val, (1.0 - lambda_val) * (1.0 - lambda_val)
    values = [1.0]
    while len(values) < 2 or values[-1] != values[-2]:
        values.append(square + rest * values[-1])
    return np.array(values)


class HDDMW(WarningMixin, BinaryDriftDetector):
    """HDDM-W: an EWMA since a cut point exceeds the EWMA at the cut by a McDiarmid bound.

    The cut point is where the stream's EWMA plus its McDiarmid bound was lowest; a drift
    (warning) is signalled when the EWMA of the values since the cut is higher than the EWMA at
    the cut by more than the bound at ``drift_confidence`` (``warning_confidence``). With
    ``two_sided_test``, a decrease is tested the same way. Same parameters, defaults and reset
    rule as ``river.drift.binary.HDDMW``.

    Parameters:
        drift_confidence: confidence level of the drift test (and of the cut points).
        warning_confidence: confidence level of the warning test.
        lambda_val: weight of the newest value in the EWMAs.
        two_sided_test: also signal a decrease of the error rate.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> stream = np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.4]
        >>> HDDMW().update_many(stream).tolist()[0]
        3059

    References:
        Frias-Blanco, del Campo-Avila, Ramos-Jimenez, Morales-Bueno, Ortiz-Diaz, Caballero-Mota
        (2015). Online and non-parametric drift detection methods based on Hoeffding's bounds.
        IEEE Transactions on Knowledge and Data Engineering 27(3), 810-823.
    """

    _params = ("drift_confidence", "warning_confidence", "lambda_val", "two_sided_test")
    _state = (
        "_warning_detected",
        "_n",
        "_ewma",
        "_incr_cut",
        "_decr_cut",
        "_incr_ref",
        "_incr_new",
        "_decr_ref",
        "_decr_new",
    )

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        if not 0 < drift_confidence < 1 or not 0 < warning_confidence < 1:
            raise ValueError(
                f"HDDMW confidences must be in (0, 1); got {drift_confidence}, {warning_confidence}"
            )
        if not 0 < lambda_val < 1:
            raise ValueError(f"HDDMW lambda_val must be in (0, 1); got {lambda_val}")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.lambda_val = lambda_val
        self.two_sided_test = two_sided_test
        self._keep = 1.0 - lambda_val
        self._ibc = ibc_table(lambda_val)
        self._ibc_list = self._ibc.tolist()
        self._log_drift = math.log(1.0 / drift_confidence) / 2.0
        self._log_warning = math.log(1.0 / warning_confidence) / 2.0
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False
        self._n = 0
        self._ewma = math.nan
        self._incr_cut, self._decr_cut = math.inf, -math.inf
        # EWMA and count of the stream at the cut point and of the values since (0 = none yet)
        self._incr_ref, self._incr_new = [math.nan, 0], [math.nan, 0]
        self._decr_ref, self._decr_new = [math.nan, 0], [math.nan, 0]

    def _ibc_at(self, count):
        return self._ibc[np.minimum(count, self._ibc.size - 1)]

    def _ewma_run(self, xs: np.ndarray, ewma: float, count: int) -> np.ndarray:
        """EWMAs after each value of ``xs``, continuing from ``ewma`` after ``count`` values."""
        from scipy.signal import lfilter  # here: importing SciPy costs every command

        if count == 0:
            rest = lfilter([self.lambda_val], [1.0, -self._keep], xs[1:], zi=[self._keep * xs[0]])
            return np.r_[xs[0], rest[0]]
        return lfilter([self.lambda_val], [1.0, -self._keep], xs, zi=[self._keep * ewma])[0]

    def _rises(self, before, before_n, after, after_n, log_conf):
        """Whether ``after`` exceeds ``before`` by the McDiarmid bound (both need values)."""
        bound = np.sqrt((self._ibc_at(before_n) + self._ibc_at(after_n)) * log_conf)
        return (before_n > 0) & (after_n > 0) & (after - before > bound)

    def _flags(self, incr, decr):
        """(drift, warning) from (ref ewma, ref n, new ewma, new n) of both directions."""
        up_drift = self._rises(*incr, self._log_drift)
        drift = up_drift
        warning = ~up_drift & self._rises(*incr, self._log_warning)
        if self.two_sided_test:
            ref, ref_n, new, new_n = decr
            down_drift = self._rises(new, new_n, ref, ref_n, self._log_drift)
            drift = drift | down_drift
            warning = warning | (
                ~down_drift & self._rises(new, new_n, ref, ref_n, self._log_warning)
            )
        return drift, warning

    def _bound_one(self, before_n: int, after_n: int, log_conf: float) -> float:
        last = len(self._ibc_list) - 1
        return math.sqrt(
            (self._ibc_list[min(before_n, last)] + self._ibc_list[min(after_n, last)]) * log_conf
        )

    def _rises_one(self, before: list, after: list, log_conf: float) -> bool:
        """:meth:`_rises` for one value, in plain floats."""
        if before[1] <= 0 or after[1] <= 0:
            return False
        return after[0] - before[0] > self._bound_one(before[1], after[1], log_conf)

    def _step(self, x: float) -> None:
        lam, keep, n = self.lambda_val, self._keep, self._n + 1
        ewma = x if n == 1 else lam * x + keep * self._ewma
        self._ewma, self._n = ewma, n
        eps = math.sqrt(self._ibc_list[min(n, len(self._ibc_list) - 1)] * self._log_drift)
        if ewma + eps < self._incr_cut:
            self._incr_cut = ewma + eps
            self._incr_ref, self._incr_new = [ewma, n], [math.nan, 0]
        else:
            new = self._incr_new
            new[0] = x if new[1] == 0 else lam * x + keep * new[0]
            new[1] += 1
        if ewma - eps > self._decr_cut:
            self._decr_cut = ewma - eps
            self._decr_ref, self._decr_new = [ewma, n], [math.nan, 0]
        else:
            new = self._decr_new
            new[0] = x if new[1] == 0 else lam * x + keep * new[0]
            new[1] += 1
        drift = self._rises_one(self._incr_ref, self._incr_new, self._log_drift)
        warning = not drift and self._rises_one(self._incr_ref, self._incr_new, self._log_warning)
        if self.two_sided_test:
            down = self._rises_one(self._decr_new, self._decr_ref, self._log_drift)
            warning = warning or (
                not down and self._rises_one(self._decr_new, self._decr_ref, self._log_warning)
            )
            drift = drift or down
        self.drift_detected, self._warning_detected = drift, warning

    def _side(self, xs, n, ewma, cut_at, ref, new):
        """Per value: (ref ewma, ref n, new ewma, new n) of one direction, given its cut points."""
        last = last_index(cut_at)
        ref_ewma = np.where(last >= 0, ewma[last], ref[0])
        ref_n = np.where(last >= 0, n[last], ref[1])
        new_ewma = np.full(xs.size, math.nan)
        positions = np.arange(xs.size)
        new_n = np.where(last >= 0, positions - last, new[1] + positions + 1)
        starts = np.r_[0, np.flatnonzero(cut_at) + 1]
        stops = np.r_[np.flatnonzero(cut_at), xs.size]
        for j, (a, b) in enumerate(zip(starts, stops, strict=True)):
            if b > a:
                prior = (new[0], new[1]) if j == 0 else (math.nan, 0)
                new_ewma[a:b] = self._ewma_run(xs[a:b], *prior)
        return ref_ewma, ref_n, new_ewma, new_n

    def _scan(self, xs: np.ndarray) -> int:
        n = self._n + np.arange(1, xs.size + 1)
        ewma = self._ewma_run(xs, self._ewma, self._n)
        eps = np.sqrt(self._ibc_at(n) * self._log_drift)
        upper, lower = ewma + eps, ewma - eps
        incr_cut = np.minimum.accumulate(np.r_[self._incr_cut, upper])
        decr_cut = np.maximum.accumulate(np.r_[self._decr_cut, lower])
        incr = self._side(xs, n, ewma, upper < incr_cut[:-1], self._incr_ref, self._incr_new)
        decr = self._side(xs, n, ewma, lower > decr_cut[:-1], self._decr_ref, self._decr_new)
        with np.errstate(invalid="ignore"):
            drift, warning = self._flags(incr, decr)
        k = first_true(drift)
        end = xs.size - 1 if k < 0 else k
        self._n, self._ewma = int(n[end]), float(ewma[end])
        self._incr_cut, self._decr_cut = float(incr_cut[end + 1]), float(decr_cut[end + 1])
        self._incr_ref = [float(incr[0][end]), int(incr[1][end])]
        self._incr_new = [float(incr[2][end]), int(incr[3][end])]
        self._decr_ref = [float(decr[0][end]), int(decr[1][end])]
        self._decr_new = [float(decr[2][end]), int(decr[3][end])]
        self.drift_detected, self._warning_detected = bool(drift[end]), bool(warning[end])
        return k
