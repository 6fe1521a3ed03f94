"""A sequential test that a model's error rate rose above its baseline, accumulated over batches.

Each labelled batch adds its row count ``n`` and error count ``k``. For every batch ``j`` among
the last ``max_batches``, the evidence since ``j`` is the mixture likelihood ratio (a mixture
martingale) of the rows from ``j`` on::

    E = (1 / (1 - p0)) * integral_{p0}^{1} q^k (1 - q)^(n - k) dq  /  (p0^k (1 - p0)^(n - k))

(the likelihood of error rate ``q`` against the baseline ``p0``, averaged over ``q`` uniform on
``[p0, 1]``). Under an error rate at or below ``p0`` every such ``E`` is a nonnegative
(super)martingale with mean at most 1, so the procedure that alarms when the largest ``E``
reaches ``arl`` (a CUSUM-style e-detector, Shin, Ramdas and Rinaldo 2022) raises a false alarm
at most once per ``arl`` batches on average, whatever the batch sizes, assuming independent
rows. No window or warm-up is tuned: a change is found as soon as the rows since it carry
enough evidence.

The baseline ``p0`` is the champion's out-of-sample (holdout) error plus ``min_rise``. That
error is itself an estimate: a holdout that happened to score low would make every later batch
look worse. So an alarm also needs the rows since ``j`` to be worse than the holdout rows by
more than ``min_rise`` beyond the holdout's own noise (a one-sided two-proportion z-test,
``p < alpha``): as rows accumulate that test converges to asking whether the holdout
underestimated the error by more than ``min_rise`` plus its noise (probability below
``alpha``).

Example:
    >>> p0, holdout = baseline(0.15), (400, 60)
    >>> round(p0, 3)
    0.18
    >>> error_rise([(30, 5)] * 20, p0, holdout=holdout).fired  # 17 % errors, as usual
    False
    >>> found = error_rise([(30, 5)] * 20 + [(30, 14), (30, 13)], p0, holdout=holdout)
    >>> found.fired, found.start, found.errors, found.n
    (True, 20, 27, 60)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

ARL = 200  # batches between false alarms, on average at least
MAX_BATCHES = 50  # start points looked back at
HOLDOUT_ALPHA = 0.01  # the two-proportion guard against a holdout that scored low by chance
MIN_RISE = 0.03


def baseline(expected: float, *, min_rise: float = MIN_RISE) -> float:
    """The error rate tested against: the holdout error ``expected`` plus ``min_rise``.

    Example:
        >>> baseline(0.2)
        0.23
    """
    if not 0 <= expected <= 1:
        raise ValueError(f"a holdout error in [0, 1] is needed, not {expected}")
    return min(expected + min_rise, 1 - 1e-9)


def above_holdout(
    errors: ArrayLike, n: ArrayLike, holdout: tuple[int, int], margin: float = 0.0
) -> np.ndarray:
    """One-sided p-values of a two-proportion z-test that the error rate of ``errors`` in ``n``
    rows exceeds the holdout's ``(rows, errors)`` by more than ``margin``, element-wise.

    Example:
        >>> [round(float(p), 4) for p in above_holdout([27, 9], [60, 60], (264, 66))]
        [0.001, 0.9513]
    """
    from scipy import stats  # here: commands that read a diagnosis start without SciPy

    n0, k0 = holdout
    k, n = np.asarray(errors, dtype=float), np.asarray(n, dtype=float)
    rate, rate0 = k / np.maximum(n, 1), k0 / n0
    pooled = (k + k0) / (n + n0)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / np.maximum(n, 1) + 1 / n0))
    return stats.norm.sf((rate - rate0 - margin) / se)


def log_evidence(errors: ArrayLike, n: ArrayLike, p0: float) -> np.ndarray | float:
    """The log of the mixture likelihood ratio ``E`` of ``errors`` in ``n`` rows against ``p0``
    (see the module doc), element-wise; 0 for no rows.

    Example:
        >>> float(log_evidence(0, 0, 0.2))
        0.0
        >>> bool(log_evidence(0, 50, 0.2) < 0 < log_evidence(30, 50, 0.2))
        True
    """
    if not 0 < p0 < 1:
        raise ValueError(f"the baseline error rate must be in (0, 1), not {p0}")
    from scipy import special, stats

    k, n = np.asarray(errors, dtype=float), np.asarray(n, dtype=float)
    a, b = k + 1, n - k + 1
    mixture = special.betaln(a, b) + stats.beta.logsf(p0, a, b) - math.log1p(-p0)
    out = mixture - k * math.log(p0) - (n - k) * math.log1p(-p0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Finding:
    """The strongest evidence of a rise: from batch ``start`` (index into the batches given)
    on, ``errors`` in ``n`` rows against the baseline; ``fired`` when ``log_e`` reached
    ``log(arl)``."""

    fired: bool
    start: int
    errors: int
    n: int
    log_e: float
    baseline: float
    arl: int

    @property
    def rate(self) -> float:
        return self.errors / self.n if self.n else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        verdict = "reached" if self.fired else "is below"
        return (
            f"over the last {self.n} labelled rows the error rate is {self.rate:.3f} "
            f"({self.errors} errors) against a baseline of {self.baseline:.3f}: evidence "
            f"{math.exp(min(self.log_e, 700)):.3g} {verdict} {self.arl} (at most one false "
            f"alarm per {self.arl} batches on average)"
        )


def error_rise(
    batches: Sequence[tuple[int, int]],
    p0: float,
    *,
    holdout: tuple[int, int] | None = None,
    arl: int = ARL,
    max_batches: int = MAX_BATCHES,
    alpha: float = HOLDOUT_ALPHA,
) -> Finding:
    """Test the batches' ``(rows, errors)`` (oldest first) for an error rate above ``p0``:
    the start among the last ``max_batches`` with the most evidence (among those whose rows
    are worse than the ``holdout``'s ``(rows, errors)`` at level ``alpha``, when given), and
    whether it fired."""
    if arl < 2:
        raise ValueError(f"arl must be at least 2 batches, not {arl}")
    recent = np.asarray(list(batches)[-max_batches:], dtype=float).reshape(-1, 2)
    first = len(batches) - len(recent)
    bad = np.flatnonzero((recent[:, 1] < 0) | (recent[:, 1] > recent[:, 0]))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"batch {first + j}: {recent[j, 1]:g} errors in {recent[j, 0]:g} rows")
    nothing = Finding(False, len(batches), 0, 0, 0.0, p0, arl)
    if not len(recent):
        return nothing
    n = np.cumsum(recent[::-1, 0])[::-1]  # rows from each start to the newest batch
    k = np.cumsum(recent[::-1, 1])[::-1]
    values = np.asarray(log_evidence(k, n, p0), dtype=float).reshape(-1)
    margin = max(0.0, p0 - holdout[1] / holdout[0]) if holdout else 0.0
    worse = (
        np.ones(len(values), bool)
        if holdout is None
        else above_holdout(k, n, holdout, margin) < alpha
    )
    j = int(np.argmax(np.where(worse, values, -np.inf))) if worse.any() else int(np.argmax(values))
    if values[j] <= 0:
        return nothing
    fired = bool(worse[j] and values[j] >= math.log(arl))
    return Finding(fired, first + j, int(k[j]), int(n[j]), float(values[j]), p0, arl)
