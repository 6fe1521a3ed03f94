"""HDDM-A: drift detection with Hoeffding's bounds on moving averages (Frias-Blanco et al. 2015)."""

from __future__ import annotations

import math

import numpy as np

from retrainer.checks.concept.base import (
    BinaryDriftDetector,
    WarningMixin,
    first_true,
    last_index,
)


class HDDMA(WarningMixin, BinaryDriftDetector):
    """HDDM-A: the mean since a cut point exceeds the mean before it by a Hoeffding bound.

    The cut point is where the running mean plus its Hoeffding bound was lowest; a drift
    (warning) is signalled when the mean since then is higher by more than the bound of a
    two-sample test at ``drift_confidence`` (``warning_confidence``). With ``two_sided_test``,
    a decrease is tested the same way. Same parameters, defaults and reset rule as
    ``river.drift.binary.HDDMA``; means are computed as sum / n, so values can differ from
    River's running means in the last bits.

    Parameters:
        drift_confidence: confidence level of the drift test.
        warning_confidence: confidence level of the warning test.
        two_sided_test: also signal a decrease of the error rate.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> stream = np.r_[rng.random(3000) < 0.1, rng.random(3000) < 0.4]
        >>> HDDMA().update_many(stream).tolist()
        [3092]

    References:
        Frias-Blanco, del Campo-Avila, Ramos-Jimenez, Morales-Bueno, Ortiz-Diaz, Caballero-Mota
        (2015). Online and non-parametric drift detection methods based on Hoeffding's bounds.
        IEEE Transactions on Knowledge and Data Engineering 27(3), 810-823.
    """

    _params = ("drift_confidence", "warning_confidence", "two_sided_test")
    _state = ("_warning_detected", "_n", "_sum", "_low_n", "_low_mean", "_high_n", "_high_mean")

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        if not 0 < drift_confidence < 1 or not 0 < warning_confidence < 1:
            raise ValueError(
                f"HDDMA confidences must be in (0, 1); got {drift_confidence}, {warning_confidence}"
            )
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        self._log_cut = math.log(1.0 / drift_confidence) / 2.0
        self._log_drift = math.log(2.0 / drift_confidence) / 2.0
        self._log_warning = math.log(2.0 / warning_confidence) / 2.0
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False
        self._n = 0
        self._sum = 0.0
        self._low_n, self._low_mean = 0, math.nan
        self._high_n, self._high_mean = 0, math.nan

    def _bound(self, n):
        return np.sqrt(self._log_cut / n)

    def _flags(self, n, mean, low_n, low_mean, high_n, high_mean):
        """(drift, warning) after one value, from the two cut points (arrays or scalars)."""
        weight_up = (n - low_n) / (low_n * n)
        up = mean - low_mean
        up_drift = (low_n != n) & (up >= np.sqrt(weight_up * self._log_drift))
        up_warning = (low_n != n) & (up >= np.sqrt(weight_up * self._log_warning))
        drift = up_drift
        warning = ~up_drift & up_warning
        if self.two_sided_test:
            weight_down = (n - high_n) / (high_n * n)
            down = high_mean - mean
            down_drift = (high_n != n) & (down >= np.sqrt(weight_down * self._log_drift))
            down_warning = (high_n != n) & (down >= np.sqrt(weight_down * self._log_warning))
            drift = drift | down_drift
            warning = warning | (~down_drift & down_warning)
        return drift, warning

    def _step(self, x: float) -> None:
        n = self._n + 1
        self._n = n
        self._sum += x
        mean = self._sum / n
        bound = math.sqrt(self._log_cut / n)
        if self._low_n == 0 or self._low_mean + math.sqrt(self._log_cut / self._low_n) >= (
            mean + bound
        ):
            self._low_n, self._low_mean = n, mean
        if self._high_n == 0 or self._high_mean - math.sqrt(self._log_cut / self._high_n) <= (
            mean - bound
        ):
            self._high_n, self._high_mean = n, mean
        drift = warning = False
        if self._low_n != n:  # :meth:`_flags` for one value, in plain floats
            weight = (n - self._low_n) / (self._low_n * n)
            up = mean - self._low_mean
            drift = up >= math.sqrt(weight * self._log_drift)
            warning = not drift and up >= math.sqrt(weight * self._log_warning)
        if self.two_sided_test and self._high_n != n:
            weight = (n - self._high_n) / (self._high_n * n)
            down = self._high_mean - mean
            down_drift = down >= math.sqrt(weight * self._log_drift)
            warning = warning or (not down_drift and down >= math.sqrt(weight * self._log_warning))
            drift = drift or down_drift
        self.drift_detected, self._warning_detected = drift, warning

    def _scan(self, xs: np.ndarray) -> int:
        n = self._n + np.arange(1, xs.size + 1)
        total = np.cumsum(np.r_[self._sum, xs])[1:]
        mean = total / n
        bound = self._bound(n)
        upper, lower = mean + bound, mean - bound
        start_up = self._low_mean + self._bound(self._low_n) if self._low_n else math.inf
        start_down = self._high_mean - self._bound(self._high_n) if self._high_n else -math.inf
        low = last_index(upper <= np.minimum.accumulate(np.r_[start_up, upper])[:-1])
        high = last_index(lower >= np.maximum.accumulate(np.r_[start_down, lower])[:-1])
        low_n = np.where(low >= 0, n[low], self._low_n)
        low_mean = np.where(low >= 0, mean[low], self._low_mean)
        high_n = np.where(high >= 0, n[high], self._high_n)
        high_mean = np.where(high >= 0, mean[high], self._high_mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            drift, warning = self._flags(n, mean, low_n, low_mean, high_n, high_mean)
        k = first_true(drift)
        end = xs.size - 1 if k < 0 else k
        self._n, self._sum = int(n[end]), float(total[end])
        self._low_n, self._low_mean = int(low_n[end]), float(low_mean[end])
        self._high_n, self._high_mean = int(high_n[end]), float(high_mean[end])
        self.drift_detected, self._warning_detected = bool(drift[end]), bool(warning[end])
        return k
