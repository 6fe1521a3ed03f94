"""KSWIN: Kolmogorov-Smirnov windowing (Raab, Heusinger and Schleif 2020)."""

from __future__ import annotations

import random
import warnings
from functools import cache

import numpy as np

from retrainer.checks.concept.base import DriftDetector, first_true


@cache
def ks_p_values(size: int) -> np.ndarray:
    """SciPy's two-sample KS p-value (``method="auto"``) for two samples of ``size``, by ``D*size``.

    Example:
        >>> p = ks_p_values(30)
        >>> float(p[0]), bool(p[15] < 0.005)
        (1.0, True)
    """
    from scipy import stats  # here: importing SciPy costs every command, not only this one

    base = np.arange(size, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([stats.ks_2samp(base, base + k).pvalue for k in range(size + 1)])


def ks_statistic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic of each row of ``a`` against the same row of ``b`` (equal sizes).

    Computed as ``scipy.stats.ks_2samp`` does (ECDF differences at every value, ties included).

    Example:
        >>> ks_statistic(np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 3.0, 4.0]])).tolist()
        [0.33333333333333337]
    """
    size = a.shape[1]
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    from_a = order < size
    diff = np.cumsum(from_a, axis=1) / size - np.cumsum(~from_a, axis=1) / size
    group_end = np.ones_like(from_a)
    group_end[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    return np.where(group_end, np.abs(diff), 0.0).max(axis=1)


class KSWIN(DriftDetector):
    """KSWIN: a KS test between the newest values and a random sample of the older ones.

    Once ``window_size`` values are held, each new value triggers a two-sample KS test of the
    last ``stat_size`` values against ``stat_size`` values drawn at random (without replacement)
    from the rest of the window; a drift is signalled when ``p <= alpha`` and the statistic
    exceeds 0.1. Same parameters, defaults, reset rule and random draws as ``river.drift.KSWIN``
    (a ``random.Random(seed)`` drawing ``sample(range(window_size - stat_size), stat_size)``,
    reseeded at each reset), so with the same seed the change points are River's. The batch
    update draws the same samples, then computes all KS statistics at once; p-values come from
    a table of SciPy's exact values.

    Parameters:
        alpha: significance level of the KS test.
        window_size: values held in the window.
        stat_size: size of each of the two samples compared.
        seed: seed of the random draws (None: a fresh random seed at each reset).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> kswin = KSWIN(seed=42)
        >>> kswin.update_many(np.r_[rng.normal(0, 1, 500), rng.normal(3, 1, 100)]).tolist()
        [514]

    References:
        Raab, Heusinger, Schleif (2020). Reactive soft prototype computing for concept drift
        streams. Neurocomputing 416, 340-351.
    """

    _params = ("alpha", "window_size", "stat_size", "seed")
    _state = ("_n", "_window", "p_value")

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int | None = None,
    ) -> None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"KSWIN alpha must be in [0, 1]; got {alpha}")
        if not 0 < stat_size <= window_size - stat_size:
            raise ValueError(
                "KSWIN needs 0 < stat_size <= window_size - stat_size; got "
                f"window_size={window_size}, stat_size={stat_size}"
            )
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self._p_table = ks_p_values(stat_size)
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.p_value = 0.0
        self._n = 0
        self._window: list[float] = []
        self._rng = random.Random(self.seed)

    def _draw(self, count: int) -> np.ndarray:
        older = range(self.window_size - self.stat_size)
        picks = [self._rng.sample(older, self.stat_size) for _ in range(count)]
        return np.array(picks, dtype=np.intp).reshape(count, self.stat_size)

    def _test(self, data: np.ndarray, ends: np.ndarray, picks: np.ndarray):
        """(drift, p-value) of the tests on the windows ending before each of ``ends``."""
        starts = ends - self.window_size
        sample = data[starts[:, None] + picks]
        recent = data[(ends - self.stat_size)[:, None] + np.arange(self.stat_size)]
        statistic = ks_statistic(sample, recent)
        p = self._p_table[np.rint(statistic * self.stat_size).astype(np.intp)]
        return (p <= self.alpha) & (statistic > 0.1), p

    def _step(self, x: float) -> None:
        self._n += 1
        self._window = [*self._window[1 - self.window_size :], x]
        if len(self._window) < self.window_size:
            return
        drift, p = self._test(np.array(self._window), np.array([self.window_size]), self._draw(1))
        self.drift_detected, self.p_value = bool(drift[0]), float(p[0])

    def _scan(self, xs: np.ndarray) -> int:
        data = np.r_[np.array(self._window, dtype=float), xs]
        held = len(self._window)
        first = max(0, self.window_size - held - 1)
        k = -1
        if first < xs.size:
            tested = np.arange(first, xs.size)
            before = self._rng.getstate()
            drift, p = self._test(data, held + tested + 1, self._draw(tested.size))
            hit = first_true(drift)
            if 0 <= hit < tested.size - 1:
                self._rng.setstate(before)
                self._draw(hit + 1)
            k = -1 if hit < 0 else int(tested[hit])
            self.p_value = float(p[hit])
            self.drift_detected = hit >= 0
        end = xs.size - 1 if k < 0 else k
        self._n += end + 1
        self._window = data[max(0, held + end + 1 - self.window_size) : held + end + 1].tolist()
        return k

    def _get_state(self) -> dict:
        version, internal, gauss = self._rng.getstate()
        return {**super()._get_state(), "rng": [version, list(internal), gauss]}

    def _set_state(self, state: dict) -> None:
        super()._set_state(state)
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
