"""The hindsight-optimal retraining schedule on a score matrix, by dynamic programming.

Total cost of a schedule = errors of the serving model on every batch + ``cost`` x retrains. The
first model (boundary 0) is given; a retrain at boundary ``t`` puts the candidate of ``t`` in
service from batch ``t`` on. ``V[t, k]``, the least cost of batches ``0..t`` with model ``k``
serving batch ``t``, is ``V[t-1, k] + E[k, t]`` for ``k < t`` and
``min_k V[t-1, k] + cost + E[t, t]`` for ``k = t``: O(T^2) time.

Example:
    >>> import numpy as np
    >>> E = np.array([[1, 9, 9], [np.nan, 1, 1], [np.nan, np.nan, 0]], dtype=float)
    >>> optimal_schedule(E, cost=3).retrain_at, optimal_schedule(E, cost=3).total
    ((1,), 6.0)
    >>> optimal_schedule(E, cost=100).retrain_at
    ()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """A retraining schedule's outcome on a score matrix."""

    retrain_at: tuple[int, ...]  # boundaries where a retrained model went into service
    errors: float
    retrains: int  # every retrain paid for, promoted or rejected by the gate
    cost: float  # the retrain cost it was priced at
    rows: int
    rejected: tuple[int, ...] = ()  # boundaries where the gate kept the champion

    @property
    def total(self) -> float:
        return self.errors + self.cost * self.retrains

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.rows if self.rows else float("nan")


def serving_models(retrain_at: Iterable[int], batches: int) -> np.ndarray:
    """The model serving each batch under a schedule.

    >>> serving_models([2, 3], 5).tolist()
    [0, 0, 2, 3, 3]
    """
    serving = np.zeros(batches, dtype=np.int64)
    for t in sorted(retrain_at):
        serving[t:] = t
    return serving


def evaluate(
    errors: np.ndarray,
    rows: np.ndarray,
    retrain_at: Iterable[int],
    cost: float,
    rejected: Iterable[int] = (),
) -> Schedule:
    """The cost of a given schedule; ``rejected`` retrains are paid for but change nothing.

    >>> E = np.array([[1, 9], [np.nan, 1]], dtype=float)
    >>> evaluate(E, np.array([10, 10]), [1], cost=3).total
    5.0
    >>> evaluate(E, np.array([10, 10]), [], cost=3, rejected=[1]).total
    13.0
    """
    at = tuple(sorted(set(int(t) for t in retrain_at)))
    kept = tuple(sorted(int(t) for t in rejected))
    if any(t < 1 or t >= len(errors) for t in at + kept):
        raise ValueError(f"retrain boundaries must lie in 1..{len(errors) - 1}: {at + kept}")
    serving = serving_models(at, len(errors))
    total_errors = float(errors[serving, np.arange(len(errors))].sum())
    return Schedule(at, total_errors, len(at) + len(kept), float(cost), int(np.sum(rows)), kept)


def optimal_schedule(errors: np.ndarray, cost: float, rows: np.ndarray | None = None) -> Schedule:
    """The schedule of least total cost (``rows`` only to report its accuracy)."""
    E = np.asarray(errors, dtype=float)
    T = len(E)
    rows = np.ones(T, dtype=np.int64) if rows is None else np.asarray(rows)
    V = np.full(T, np.inf)  # V[k]: best cost so far with model k serving the current batch
    V[0] = E[0, 0]
    choice = np.zeros(T, dtype=np.int64)  # for a retrain at t: the model serving batch t - 1
    for t in range(1, T):
        best = int(np.argmin(V[:t]))
        retrain = V[best] + cost + E[t, t]
        V[:t] += E[:t, t]
        V[t] = retrain
        choice[t] = best
    k = int(np.argmin(V))
    at = []
    while k > 0:
        at.append(k)
        k = int(choice[k])
    return evaluate(E, rows, at, cost)


def frontier(errors: np.ndarray, rows: np.ndarray, costs: Iterable[float]) -> list[Schedule]:
    """The optimal schedule at each retrain cost: the best accuracy for each number of retrains
    that some cost makes optimal."""
    return [optimal_schedule(errors, c, rows) for c in costs]
