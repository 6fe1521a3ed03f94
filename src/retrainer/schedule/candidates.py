"""The candidates of the score matrix, trained and scored boundary by boundary: in this process
or in worker processes (one task per training window, each worker holding the batches once).

The candidate of boundary ``k`` is fitted with the real trainer on its window
(:func:`training_window`) and predicts every row from batch ``k`` on in one call; its **gate
copy** is fitted on the same window without the newest ``holdout`` share of rows (at most the
newest labelled batch; of a window in the history, the first model's, the share, as live with no
champion), reaching back over older batches to as many rows as the window, and predicts those
rows: its errors there are the gate's and the version's reference
sample's. Boundaries whose window is the same (before the
first stream label arrives) share one model and one task.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.training import Trainer
    >>> X = pd.DataFrame({"x": np.arange(400.0)})
    >>> batches = [(X[i : i + 100], (X["x"][i : i + 100] > 150).astype(int)) for i in (0, 100,
    ...            200, 300)]
    >>> work = Candidates(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2,
    ...                   label_delay=1, window=2, holdout=0.2)
    >>> one = work.score((1,))[0]  # trained on history batch 1 and stream batch 0
    >>> work.groups(), len(one.wrong), len(one.gate), one.gate_start  # the newest 20 % held out
    ([(0,), (1,)], 100, 40, 60)
    >>> [s.k for s in score_boundaries(work, jobs=1, threads=1)]
    [0, 1]
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from retrainer.metrics import row_losses
from retrainer.training import Trainer

Batch = tuple[pd.DataFrame, Any]


class Scored(NamedTuple):
    """One boundary's candidate and gate copy, scored."""

    k: int
    wrong: np.ndarray  # (rows of batches k..T-1,): the candidate's per-row errors (row_errors)
    gate: np.ndarray  # the gate copy's per-row errors on its held-out rows
    gate_start: int  # stream row of the first held-out row (-1: held out of the history)


def row_errors(metric: str, y_true: Any, y_pred: Any) -> np.ndarray:
    """Each row's error as a cost counts it: a classifier's wrong prediction (``metric`` empty;
    uint8 0 or 1), or a regressor's absolute (``mae``) or squared (``rmse``) error (float32).

    >>> row_errors("", [1, 0], [1, 1]).tolist(), row_errors("rmse", [1.0, 2.0], [2.0, 5.0]).tolist()
    ([0, 1], [1.0, 9.0])
    """
    if not metric:
        return (np.asarray(y_pred) != np.asarray(y_true)).astype(np.uint8)
    return row_losses(metric, y_true, y_pred).astype(np.float32)


def unit(metric: str) -> str:
    """What a cost counts, in words: a classifier's errors, a regressor's absolute or squared
    error (``metric`` ``mae`` or ``rmse``).

    >>> unit(""), unit("mae")
    ('errors', 'absolute error')
    """
    return {"": "errors", "mae": "absolute error", "rmse": "squared error"}[metric]


def dispersion(errors: Any) -> float:
    """A regressor's row errors' variance over their mean, in their units: what a count's
    Poisson variance (1 per wrong prediction) is for a sum of them; 1 without errors.

    >>> dispersion([1.0, 3.0]), dispersion([0.0, 0.0])
    (0.5, 1.0)
    """
    errors = np.asarray(errors, dtype=float)
    mean = float(errors.mean()) if errors.size else 0.0
    return float(errors.var()) / mean if mean > 0 else 1.0


def training_window(k: int, history: int, label_delay: int, window: int) -> range:
    """Indices (history first, then stream batch ``i`` at ``history + i``) of the batches the
    candidate of boundary ``k`` trains on; ``window`` 0 means every labelled batch.

    >>> list(training_window(0, history=4, label_delay=1, window=4))
    [0, 1, 2, 3]
    >>> list(training_window(6, history=4, label_delay=1, window=4))
    [6, 7, 8, 9]
    >>> list(training_window(1, history=4, label_delay=2, window=2))
    [2, 3]
    """
    end = history + max(k - label_delay, -1)
    start = 0 if window == 0 else max(0, end - window + 1)
    return range(start, end + 1)


class Candidates:
    """Everything a boundary needs: the batches, the trainer, the window rule and the gate's
    holdout share. Pickled to each worker without the joined stream (rebuilt there)."""

    def __init__(
        self,
        batches: Sequence[Batch],
        trainer: Trainer,
        *,
        history: int,
        label_delay: int,
        window: int,
        holdout: float,
        metric: str = "",
    ) -> None:
        self.batches = list(batches)
        self.metric = metric  # "": a classifier's wrong predictions; a regressor's mae or rmse
        self.trainer = trainer
        self.history, self.label_delay = history, label_delay
        self.window, self.holdout = window, holdout
        self.rows = np.array([len(X) for X, _ in self.batches[history:]], dtype=np.int64)
        self.starts = np.r_[0, np.cumsum(self.rows)]

    @cached_property
    def X_all(self) -> pd.DataFrame:
        """The stream's features, joined (computed where the scoring runs)."""
        return pd.concat([X for X, _ in self.batches[self.history :]], ignore_index=True)

    @cached_property
    def y_all(self) -> np.ndarray:
        return np.concatenate([np.asarray(y) for _, y in self.batches[self.history :]])

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("X_all", "y_all")}

    def span(self, k: int) -> range:
        return training_window(k, self.history, self.label_delay, self.window)

    def groups(self) -> list[tuple[int, ...]]:
        """The boundaries in order, consecutive ones with the same window together."""
        found: list[list[int]] = []
        for k in range(len(self.rows)):
            if found and self.span(found[-1][0]) == self.span(k):
                found[-1].append(k)
            else:
                found.append([k])
        return [tuple(g) for g in found]

    def score(self, group: tuple[int, ...]) -> list[Scored]:
        """Fit the model of ``group``'s window (and its gate copy) and score them."""
        from retrainer.gate import holdout_size

        span = self.span(group[0])
        X = pd.concat([self.batches[i][0] for i in span], ignore_index=True)
        y = np.concatenate([np.asarray(self.batches[i][1]) for i in span])
        model = self.trainer.fit(X, y)
        first = int(self.starts[group[0]])
        wrong = row_errors(self.metric, self.y_all[first:], model.predict(self.X_all.iloc[first:]))
        newest = span[-1] - self.history  # the newest labelled stream batch (< 0: history)
        unseen = np.ones(len(X), dtype=bool)  # the first model: no champion, all rows unseen
        if newest >= 0:
            unseen[: len(X) - self.rows[newest]] = False
        n = holdout_size(len(X), self.holdout, unseen)
        copy = self.trainer.fit(*self.as_much_history(span, X.iloc[:-n], y[:-n], len(X)))
        gate = row_errors(self.metric, y[-n:], copy.predict(X.iloc[-n:]))
        gate_start = int(self.starts[newest + 1]) - n if newest >= 0 else -1
        return [Scored(k, wrong[int(self.starts[k]) - first :], gate, gate_start) for k in group]

    def as_much_history(
        self, span: range, X: pd.DataFrame, y: np.ndarray, rows: int
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The gate copy's rows: ``X``, ``y`` (the window's before the holdout) after the
        batches before ``span``, newest first, until they hold ``rows``, as live
        (:func:`retrainer.retrain.as_much_history`)."""
        first, held = span[0], len(X)
        while held < rows and first > 0:
            first -= 1
            held += len(self.batches[first][0])
        extra = list(range(first, span[0]))
        if not extra:
            return X, y
        older_X = [self.batches[i][0] for i in extra]
        older_y = [np.asarray(self.batches[i][1]) for i in extra]
        return pd.concat([*older_X, X], ignore_index=True), np.concatenate([*older_y, y])


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


PAYS_OFF = 20.0  # CPU seconds of work left below which starting workers costs more than it saves


def score_boundaries(
    work: Candidates,
    *,
    jobs: int | None = 1,
    threads: int | None = 1,
    on_done: Callable[[int, int], None] | None = None,
) -> list[Scored]:
    """Every boundary scored, in order: in ``jobs`` worker processes (1: in this process;
    ``None``: one per core once the first boundary, scored here, shows that the rest takes more
    than :data:`PAYS_OFF` CPU seconds), each capping native threads at ``threads``;
    ``on_done(done, total)`` after each task (and with 0 first)."""
    from threadpoolctl import threadpool_limits

    groups = work.groups()
    total = len(work.rows)
    workers = min(cores() if jobs is None else max(1, jobs), len(groups))
    done: list[Scored] = []

    def here(some: list[tuple[int, ...]]) -> None:
        with threadpool_limits(threads):
            for group in some:
                done.extend(work.score(group))
                if on_done:
                    on_done(len(done), total)

    if on_done:
        on_done(0, total)
    work.trainer.build()  # a clear error here, and its native libraries loaded before capping
    if jobs is None and workers > 1:
        started = time.process_time()
        here(groups[:1])
        groups = groups[1:]
        if (time.process_time() - started) * len(groups) < PAYS_OFF:
            workers = 1
    if workers == 1:
        here(groups)
        return done
    context = multiprocessing.get_context("spawn")  # no forked OpenMP state
    with ProcessPoolExecutor(
        workers, context, initializer=_start, initargs=(work, threads)
    ) as pool:
        futures = [pool.submit(_score, group) for group in groups]  # widest first
        try:
            for future in as_completed(futures):
                done.extend(future.result())
                if on_done:
                    on_done(len(done), total)
        finally:
            for future in futures:
                future.cancel()
    return sorted(done, key=lambda s: s.k)


_WORKER: dict[str, Any] = {}


def _start(work: Candidates, threads: int | None) -> None:
    """A worker's initializer: keep the work, load the estimator, cap native threads."""
    from threadpoolctl import threadpool_limits

    work.trainer.build()
    _WORKER["work"], _WORKER["limits"] = work, threadpool_limits(threads)


def _score(group: tuple[int, ...]) -> list[Scored]:
    return _WORKER["work"].score(group)
