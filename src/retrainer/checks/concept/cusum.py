"""Two-sided CUSUM (Page 1954) on a standardised stream."""

from __future__ import annotations

import numpy as np

from retrainer.checks.concept.base import DriftDetector, first_true


class CUSUM(DriftDetector):
    """Two-sided CUSUM: cumulative standardised excess over ``target +- allowance`` passes ``h``.

    With ``z = (x - target) / sigma``, ``S+ = max(0, S+ + z - allowance)`` and
    ``S- = max(0, S- - z - allowance)``; a drift is signalled when either exceeds ``threshold``
    (both in units of ``sigma``). Without ``target`` and ``sigma``, they are estimated from the
    first ``warm_start`` values after each reset (mean and sample standard deviation; the warm-up
    goes on while those values are all equal), and monitoring starts with the next value.
    ``S`` is kept as a cumulative sum minus its running minimum, which equals Page's recursion
    (up to rounding) and makes the batch update vectorised.

    Parameters:
        allowance: slack ``k`` per value, in sigmas (half the shift to detect quickly).
        threshold: decision interval ``h``, in sigmas.
        warm_start: values used to estimate ``target`` and ``sigma`` when they are not given.
        target: in-control mean, or None to estimate it.
        sigma: in-control standard deviation, or None to estimate it.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> cusum = CUSUM()
        >>> cusum.update_many(np.r_[rng.normal(0, 1, 300), rng.normal(2, 1, 100)]).tolist()
        [302]

    References:
        Page (1954). Continuous inspection schemes. Biometrika 41, 100-115.
        Montgomery (2009). Introduction to Statistical Quality Control, 6th ed., section 9.1.
    """

    _params = ("allowance", "threshold", "warm_start", "target", "sigma")
    _state = (
        "_n",
        "_shift",
        "_sum",
        "_sumsq",
        "_mean",
        "_scale",
        "_up",
        "_up_min",
        "_down",
        "_down_min",
    )

    def __init__(
        self,
        allowance: float = 0.5,
        threshold: float = 5.0,
        warm_start: int = 30,
        target: float | None = None,
        sigma: float | None = None,
    ) -> None:
        if allowance < 0 or threshold <= 0 or warm_start < 2:
            raise ValueError(
                "CUSUM needs allowance >= 0, threshold > 0 and warm_start >= 2; got "
                f"{allowance}, {threshold}, {warm_start}"
            )
        if (target is None) != (sigma is None) or (sigma is not None and not sigma > 0):
            raise ValueError(
                f"CUSUM needs both target and sigma > 0, or neither; got "
                f"target={target}, sigma={sigma}"
            )
        self.allowance = allowance
        self.threshold = threshold
        self.warm_start = warm_start
        self.target = target
        self.sigma = sigma
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._shift = 0.0
        self._sum = 0.0
        self._sumsq = 0.0
        self._mean = self.target
        self._scale = self.sigma
        self._up = self._up_min = self._down = self._down_min = 0.0

    def _warm(self, n, total, squares):
        """Mean and standard deviation of the warm-up values (shifted sums, for accuracy)."""
        var = (squares - total * total / n) / np.maximum(n - 1, 1)
        return self._shift + total / n, np.sqrt(np.maximum(var, 0.0))

    def _step(self, x: float) -> None:
        if self._scale is None:
            if self._n == 0:
                self._shift = x
            self._n += 1
            self._sum += x - self._shift
            self._sumsq += (x - self._shift) * (x - self._shift)
            mean, scale = self._warm(self._n, self._sum, self._sumsq)
            if self._n >= self.warm_start and scale > 0:
                self._mean, self._scale = float(mean), float(scale)
            return
        z = (x - self._mean) / self._scale
        self._up += z - self.allowance
        self._down += -z - self.allowance
        self._up_min = min(self._up_min, self._up)
        self._down_min = min(self._down_min, self._down)
        self.drift_detected = (self._up - self._up_min > self.threshold) or (
            self._down - self._down_min > self.threshold
        )

    def _scan(self, xs: np.ndarray) -> int:
        start = 0
        if self._scale is None:
            if self._n == 0:
                self._shift = float(xs[0])
            centred = xs - self._shift
            n = self._n + np.arange(1, xs.size + 1)
            total = np.cumsum(np.r_[self._sum, centred])[1:]
            squares = np.cumsum(np.r_[self._sumsq, centred * centred])[1:]
            mean, scale = self._warm(n, total, squares)
            ready = first_true((n >= self.warm_start) & (scale > 0))
            end = xs.size - 1 if ready < 0 else ready
            self._n, self._sum, self._sumsq = int(n[end]), float(total[end]), float(squares[end])
            if ready < 0:
                return -1
            self._mean, self._scale = float(mean[ready]), float(scale[ready])
            start = ready + 1
        z = (xs[start:] - self._mean) / self._scale
        up = np.cumsum(np.r_[self._up, z - self.allowance])[1:]
        down = np.cumsum(np.r_[self._down, -z - self.allowance])[1:]
        up_min = np.minimum.accumulate(np.r_[self._up_min, up])[1:]
        down_min = np.minimum.accumulate(np.r_[self._down_min, down])[1:]
        drift = (up - up_min > self.threshold) | (down - down_min > self.threshold)
        k = first_true(drift)
        if z.size:
            end = z.size - 1 if k < 0 else k
            self._up, self._down = float(up[end]), float(down[end])
            self._up_min, self._down_min = float(up_min[end]), float(down_min[end])
        self.drift_detected = k >= 0
        return -1 if k < 0 else start + k
