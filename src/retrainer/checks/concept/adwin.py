"""ADWIN: adaptive windowing (Bifet and Gavalda 2007).

The window lives in a C type (``_native.ADWINWindow``, built by ``pip install`` when a C
compiler is there): one compiled call per value. Without it, :class:`NumbaWindow` keeps the
values read one at a time until the next cut test and reads them in one Numba call; both give
the same change points and the same state (``native.COMPILED`` tells which one runs).
"""

from __future__ import annotations

import math
from array import array
from functools import cache

import numpy as np
from numpy.typing import ArrayLike

from retrainer.checks.concept.base import DriftDetector
from retrainer.checks.concept.native import COMPILED, native

LEVELS = 64  # bucket sizes 2**0 .. 2**63: more than any stream holds


def _scan(xs, shift, acc, positions, prefix, params):
    """Read ``xs - shift`` into the exponential histogram up to and including the first drift.

    The histogram is its ``size`` bucket boundaries, oldest first (``positions``: values read up
    to each boundary; ``prefix``: the shifted sum up to it), in arrays with room for more.
    ``acc`` holds ``n, total, squares, size`` and is updated in place; ``params`` holds
    ``delta, clock, max_buckets, min_len, grace`` (few arguments: a compiled call from Python
    pays per argument). Returns the index of the drift in ``xs``, or -1.
    """
    n, total, squares, size = int(acc[0]), acc[1], acc[2], int(acc[3])
    delta, clock, max_buckets = params[0], int(params[1]), int(params[2])
    min_len, grace = params[3], params[4]
    k = -1
    counts = np.zeros(LEVELS, np.int64)
    for j in range(size):
        width = positions[j] - (positions[j - 1] if j else 0)
        level = 0
        while width > 1:
            width >>= 1
            level += 1
        counts[level] += 1
    for i in range(xs.size):
        x = xs[i] - shift
        n += 1
        total += x
        squares += x * x
        positions[size] = n
        prefix[size] = total
        size += 1
        counts[0] += 1
        level, start = 0, size - counts[0]
        while counts[level] == max_buckets + 1:
            for j in range(start, size - 1):
                positions[j] = positions[j + 1]
                prefix[j] = prefix[j + 1]
            size -= 1
            counts[level] -= 2
            counts[level + 1] += 1
            level += 1
            start += 1 - counts[level]
        if n % clock or n <= grace:
            continue
        log_term = math.log(2.0 * math.log(n) / delta)
        variance = (squares - total * total / n) / n
        for j in range(size):
            n_old = float(positions[j])
            n_new = n - n_old
            if n_old < min_len or n_new < min_len:
                continue
            old = prefix[j]
            gap = abs(old / n_old - (total - old) / n_new)
            recip = 1.0 / (n_old - min_len + 1) + 1.0 / (n_new - min_len + 1)
            bound = np.sqrt(2.0 * recip * variance * log_term) + 2.0 / 3.0 * log_term * recip
            if gap > bound:
                k = i
                break
        if k >= 0:
            break
    acc[0], acc[1], acc[2], acc[3] = n, total, squares, size
    return k


@cache
def _compiled():
    """:func:`_scan` compiled by Numba (once per process; the machine code is cached on disk)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_scan)


class NumbaWindow:
    """ADWIN's window without the C extension: values read by ``update`` are kept until the next
    cut test and read there in one compiled call (Numba), one append per value in between."""

    _settings: np.ndarray

    def _configure(self, delta, clock, max_buckets, min_window_length, grace_period) -> None:
        self._settings = np.array(
            [delta, clock, max_buckets, min_window_length, grace_period], dtype=float
        )
        self._room = LEVELS * (max_buckets + 1) + 2

    def _reset(self) -> None:
        self.drift_detected = False
        self._pending = array("d")  # values read by ``update`` since the last cut test
        self._n = 0
        self._to_test = self._next_test(0)
        self._shift = 0.0
        self._sum = 0.0
        self._sumsq = 0.0
        # bucket boundaries, oldest first, and the shifted sum up to each: the first ``_size``
        # entries of buffers that hold the most a histogram can have (LEVELS sizes)
        self._positions, self._prefix = np.zeros(self._room, np.int64), np.zeros(self._room)
        self._size = 0

    def update(self, x: float) -> None:
        """Read one value (see :meth:`DriftDetector.update`).

        A drift can only be signalled when the cut test runs (every ``clock`` values after the
        grace period), so values in between are kept in an array and read in one compiled call at
        the next test: one append per value instead of a compiled call.
        """
        value = float(x)
        if value - value != 0.0:
            self.n_seen += 1
            self.n_nonfinite += 1
            return
        self.n_seen += 1
        if self.drift_detected:
            self._reset()
        self._pending.append(value)
        self._to_test -= 1
        if self._to_test == 0:
            self._flush()
            if self.drift_detected:
                self.n_detections += 1

    def update_many(self, xs: ArrayLike) -> np.ndarray:
        self._flush()
        found = super().update_many(xs)
        self._to_test = self._next_test(self._n)
        return found

    def _flush(self) -> None:
        """Read the values kept by :meth:`update` (no test is due among them but the last)."""
        if self._pending:
            values, self._pending = np.frombuffer(self._pending), array("d")
            self._scan(values)
        self._to_test = self._next_test(self._n)

    def _next_test(self, n: int) -> int:
        """Values to read after ``n`` until the cut test runs again."""
        first = max(n, self.grace_period) // self.clock * self.clock + self.clock
        return first - n

    def _scan(self, xs: np.ndarray) -> int:
        if self._n == 0:
            self._shift = float(xs[0])
        acc = np.array([self._n, self._sum, self._sumsq, self._size], dtype=float)
        k = _compiled()(xs, self._shift, acc, self._positions, self._prefix, self._settings)
        n, self._sum, self._sumsq, size = acc.tolist()
        self._n, self._size = int(n), int(size)
        self.drift_detected = k >= 0
        return int(k)

    def _buckets(self) -> tuple[list[int], list[float]]:
        return self._positions[: self._size].tolist(), self._prefix[: self._size].tolist()

    def _load_buckets(self, positions: list[int], prefix: list[float]) -> None:
        self._size = len(positions)
        self._positions[:] = 0
        self._prefix[:] = 0.0
        self._positions[: self._size] = positions
        self._prefix[: self._size] = prefix
        self._to_test = self._next_test(self._n)


def adwin_class(window: type) -> type:
    """ADWIN on the given window implementation (the C ``ADWINWindow`` or :class:`NumbaWindow`)."""

    class ADWIN(window, DriftDetector):
        """ADWIN: two sub-windows of the window since the last reset have too different means.

        The window is kept as an exponential histogram (``max_buckets`` buckets of each size
        ``2**i``); every ``clock`` values, each bucket boundary splits it into an older and a
        newer part and a drift is signalled when their means differ by more than ADWIN's bound
        at ``delta`` (both parts at least ``min_window_length`` long, the window longer than
        ``grace_period``). Same parameters, defaults, check times and reset rule as
        ``river.drift.ADWIN``. The histogram is stored as its bucket boundaries with the sum up
        to each (sums of values minus the window's first value, for precision), and a batch is
        read by one compiled loop (C, or Numba without the C extension); the window variance
        uses these shifted sums instead of Welford's update (last-bit differences).

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
                    f"min_window_length >= 1; got {delta}, {clock}, {max_buckets}, "
                    f"{min_window_length}"
                )
            self.delta = delta
            self.clock = clock
            self.max_buckets = max_buckets
            self.min_window_length = min_window_length
            self.grace_period = grace_period
            self._configure(delta, clock, max_buckets, min_window_length, grace_period)
            DriftDetector.__init__(self)

        @property
        def width(self) -> int:
            """Number of values in the window (all values since the last reset)."""
            self._flush()
            return self._n

        @property
        def estimation(self) -> float:
            """Mean of the window (0 when empty)."""
            self._flush()
            return self._shift + self._sum / self._n if self._n else 0.0

        def _get_state(self) -> dict:
            self._flush()
            positions, prefix = self._buckets()
            return {
                "_n": self._n,
                "_shift": self._shift,
                "_sum": self._sum,
                "_sumsq": self._sumsq,
                "_positions": positions,
                "_prefix": prefix,
            }

        def _set_state(self, state: dict) -> None:
            self._n, self._shift = int(state["_n"]), float(state["_shift"])
            self._sum, self._sumsq = float(state["_sum"]), float(state["_sumsq"])
            self._load_buckets(state["_positions"], state["_prefix"])

    ADWIN.__module__ = __name__
    ADWIN.__qualname__ = "ADWIN"
    return ADWIN


ADWIN = adwin_class(native("ADWINWindow") if COMPILED else NumbaWindow)
