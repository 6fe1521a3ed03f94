"""Page-Hinkley test for a change in the mean of a stream (Page 1954, Hinkley 1971)."""

from __future__ import annotations

import math

import numpy as np

from retrainer.checks.concept.base import DriftDetector, first_true, whole
from retrainer.checks.concept.native import native

MODES = ("up", "down", "both")


class PageHinkley(native("PageHinkleyStep"), DriftDetector):
    """Page-Hinkley: a faded cumulative sum of deviations from the running mean crosses a threshold.

    ``m_up = alpha * m_up + (x - mean) - delta`` drifts when it rises ``threshold`` above its
    minimum (mean up), ``m_down = alpha * m_down + (x - mean) + delta`` when it falls
    ``threshold`` below its maximum (mean down), once ``min_instances`` values were read.
    Same parameters, defaults and reset rule as ``river.drift.PageHinkley``, including River's
    starting maximum of -1 for ``m_down``; the mean is computed as sum / n instead of a running
    update, so values can differ from River's in the last bits (change points do not, in tests).

    Parameters:
        min_instances: values to read after a reset before a drift can be signalled.
        delta: magnitude of change that is tolerated.
        threshold: the cumulative deviation that signals a drift.
        alpha: forgetting factor of the cumulative sums.
        mode: ``"up"`` (mean increases), ``"down"`` or ``"both"``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> ph = PageHinkley()
        >>> ph.update_many(np.r_[rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)]).tolist()
        [1010]

    References:
        Page (1954). Continuous inspection schemes. Biometrika 41, 100-115.
        Hinkley (1971). Inference about the change-point from cumulative sum tests. Biometrika 58.
    """

    _params = ("min_instances", "delta", "threshold", "alpha", "mode")
    _state = ("_n", "_sum", "_up", "_down", "_up_min", "_down_max")

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"PageHinkley mode must be one of {MODES}; got {mode!r}")
        if not 0 < alpha <= 1 or threshold <= 0 or min_instances < 0:
            raise ValueError(
                "PageHinkley needs 0 < alpha <= 1, threshold > 0, min_instances >= 0; got "
                f"{alpha}, {threshold}, {min_instances}"
            )
        self.min_instances = whole(min_instances, "min_instances")
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._mode_code = MODES.index(mode)  # read by the compiled step
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._sum = 0.0
        self._up = 0.0
        self._down = 0.0
        self._up_min = math.inf
        self._down_max = -1.0

    def _test(self, up_rise, down_fall):
        if self.mode == "up":
            return up_rise > self.threshold
        if self.mode == "down":
            return down_fall > self.threshold
        return (up_rise > self.threshold) | (down_fall > self.threshold)

    def _step(self, x: float) -> None:
        n = self._n + 1
        self._n = n
        self._sum += x
        dev = x - self._sum / n
        up = self.alpha * self._up + (dev - self.delta)
        down = self.alpha * self._down + (dev + self.delta)
        self._up, self._down = up, down
        if up < self._up_min:
            self._up_min = up
        if down > self._down_max:
            self._down_max = down
        if n >= self.min_instances:
            rise, fall = up - self._up_min > self.threshold, self._down_max - down > self.threshold
            mode = self.mode
            self.drift_detected = rise if mode == "up" else fall if mode == "down" else rise or fall

    def _scan(self, xs: np.ndarray) -> int:
        from scipy.signal import lfilter  # here: importing SciPy costs every command

        n = self._n + np.arange(1, xs.size + 1)
        total = np.cumsum(np.r_[self._sum, xs])[1:]
        dev = xs - total / n
        feedback = [1.0, -self.alpha]
        up = lfilter([1.0], feedback, dev - self.delta, zi=[self.alpha * self._up])[0]
        down = lfilter([1.0], feedback, dev + self.delta, zi=[self.alpha * self._down])[0]
        up_min = np.minimum.accumulate(np.r_[self._up_min, up])[1:]
        down_max = np.maximum.accumulate(np.r_[self._down_max, down])[1:]
        drift = self._test(up - up_min, down_max - down) & (n >= self.min_instances)
        k = first_true(drift)
        end = xs.size - 1 if k < 0 else k
        self._n, self._sum = int(n[end]), float(total[end])
        self._up, self._down = float(up[end]), float(down[end])
        self._up_min, self._down_max = float(up_min[end]), float(down_max[end])
        self.drift_detected = k >= 0
        return k
