"""ADWIN: adaptive windowing (Bifet and Gavalda 2007)."""

from __future__ import annotations

import math

import numpy as np

from retrainer.checks.concept.base import DriftDetector, first_true


class ADWIN(DriftDetector):
    """ADWIN: two sub-windows of the window since the last reset have too different means.

    The window is kept as an exponential histogram (``max_buckets`` buckets of each size
    ``2**i``); every ``clock`` values, each bucket boundary splits it into an older and a newer
    part and a drift is signalled when their means differ by more than ADWIN's bound at
    ``delta`` (both parts at least ``min_window_length`` long, the window longer than
    ``grace_period``). Same parameters, defaults, check times and reset rule as
    ``river.drift.ADWIN``. Since River resets the window after each drift, the histogram's
    bucket boundaries depend only on the number of values read, so they are computed directly
    and the means come from prefix sums, which is what makes a batch update vectorised;
    the window variance uses shifted sums instead of Welford's update (last-bit differences).

    Parameters:
        delta: confidence of the cut test (smaller: fewer, later detections).
        clock: the cut test runs every ``clock`` values.
        max_buckets: buckets of each size kept before two are merged.
        min_window_length: smallest sub-window a cut may leave on each side.
        grace_period: values to read after a reset before a test runs.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> adwin = ADWIN()
        >>> adwin.update_many(np.r_[rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)]).tolist()
        [1023]

    References:
        Bifet, Gavalda (2007). Learning from time-changing data with adaptive windowing.
        SIAM International Conference on Data Mining, 443-448.
    """

    _params = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")
    _state = ("_n", "_shift", "_sum", "_sumsq", "_positions", "_prefix")

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1 or clock < 1 or max_buckets < 1 or min_window_length < 1:
            raise ValueError(
                "ADWIN needs 0 < delta < 1, clock >= 1, max_buckets >= 1 and "
                f"min_window_length >= 1; got {delta}, {clock}, {max_buckets}, {min_window_length}"
            )
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._shift = 0.0
        self._sum = 0.0
        self._sumsq = 0.0
        # bucket boundaries (values read up to them) and the shifted sum up to each
        self._positions: list[int] = []
        self._prefix: list[float] = []

    @property
    def width(self) -> int:
        """Number of values in the window (all values since the last reset)."""
        return self._n

    @property
    def estimation(self) -> float:
        """Mean of the window (0 when empty)."""
        return self._shift + self._sum / self._n if self._n else 0.0

    def _boundaries(self, n: np.ndarray) -> np.ndarray:
        """Bucket boundaries, oldest first, after ``n`` values: one row per ``n``, 0 = padding."""
        counts = []
        arrived = n
        while True:
            merged = np.maximum((arrived - self.max_buckets + 1) // 2, 0)
            counts.append(arrived - 2 * merged)
            if not merged.any():
                break
            arrived = merged
        levels = len(counts)
        per_level = np.stack(counts[::-1], axis=1)
        sizes = 2 ** np.arange(levels - 1, -1, -1, dtype=np.int64)
        slots = np.arange(self.max_buckets)
        filled = slots[None, None, :] < per_level[:, :, None]
        size = np.where(filled, sizes[None, :, None], 0).reshape(n.size, -1)
        return np.where(size > 0, np.cumsum(size, axis=1), 0)

    def _cuts(self, n, total, squares, positions, prefix) -> np.ndarray:
        """Whether a cut is found at each check (one per entry of ``n``)."""
        at = self._boundaries(n)
        n_old = at.astype(float)
        n_new = n[:, None] - n_old
        usable = (at > 0) & (n_old >= self.min_window_length) & (n_new >= self.min_window_length)
        index = np.minimum(np.searchsorted(positions, at), positions.size - 1)
        old = prefix[index]
        new = total[:, None] - old
        variance = (squares - total * total / n) / n
        log_term = np.array([math.log(2.0 * math.log(w) / self.delta) for w in n.tolist()])
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs(old / n_old - new / n_new)
            recip = 1.0 / (n_old - self.min_window_length + 1) + 1.0 / (
                n_new - self.min_window_length + 1
            )
            bound = np.sqrt(2.0 * recip * variance[:, None] * log_term[:, None]) + (
                2.0 / 3.0 * log_term[:, None] * recip
            )
        return (usable & (gap > bound)).any(axis=1)

    def _prune(self) -> None:
        keep = self._boundaries(np.array([self._n]))[0]
        keep = keep[keep > 0]
        index = np.searchsorted(self._positions, keep)
        self._positions = keep.tolist()
        self._prefix = [self._prefix[i] for i in index.tolist()]

    def _step(self, x: float) -> None:
        if self._n == 0:
            self._shift = x
        self._n += 1
        self._sum += x - self._shift
        self._sumsq += (x - self._shift) * (x - self._shift)
        self._positions.append(self._n)
        self._prefix.append(self._sum)
        if self._n % self.clock:
            return
        if self._n > self.grace_period:
            self._drift_detected = bool(
                self._cuts(
                    np.array([self._n]),
                    np.array([self._sum]),
                    np.array([self._sumsq]),
                    np.array(self._positions),
                    np.array(self._prefix),
                )[0]
            )
        self._prune()

    def _scan(self, xs: np.ndarray) -> int:
        if self._n == 0:
            self._shift = float(xs[0])
        centred = xs - self._shift
        n = self._n + np.arange(1, xs.size + 1)
        total = np.cumsum(np.r_[self._sum, centred])[1:]
        squares = np.cumsum(np.r_[self._sumsq, centred * centred])[1:]
        positions = np.r_[np.array(self._positions, dtype=np.int64), n]
        prefix = np.r_[np.array(self._prefix, dtype=float), total]
        checks = np.flatnonzero((n % self.clock == 0) & (n > self.grace_period))
        k = -1
        if checks.size:
            hit = first_true(
                self._cuts(n[checks], total[checks], squares[checks], positions, prefix)
            )
            k = -1 if hit < 0 else int(checks[hit])
        end = xs.size - 1 if k < 0 else k
        self._n, self._sum, self._sumsq = int(n[end]), float(total[end]), float(squares[end])
        self._positions = positions[: len(self._positions) + end + 1].tolist()
        self._prefix = prefix[: len(self._prefix) + end + 1].tolist()
        self._prune()
        self._drift_detected = k >= 0
        return k

    def _get_state(self) -> dict:
        self._prune()
        return super()._get_state()
