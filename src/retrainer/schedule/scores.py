"""The model-by-batch score matrix: a candidate model trained at every batch boundary, scored on
every later batch, out of sample by construction.

Batches ``0..T-1`` follow ``history`` labelled batches. The candidate of boundary ``k`` is trained
before batch ``k`` is predicted, on the trainer's window of labelled batches ending at batch
``k - label_delay`` (history batches count; before any stream label arrives, the history's last
batch), so it never sees a label that was not there in time, nor the batches it is scored on.
``errors[k, j]`` is its number of wrong predictions on batch ``j >= k`` (NaN below the
diagonal); ``row_errors(k)`` its per-row errors on batches ``k..T-1`` (for detector triggers).
A regressor's errors are its absolute errors (``metric`` ``mae``) or squared errors (``rmse``),
summed the same way (:func:`~retrainer.schedule.candidates.row_errors`).

The gate of a retrain is simulated as live (:mod:`retrainer.retrain`): the **gate copy** of
boundary ``k`` is fitted on its window without the newest ``holdout`` share of rows (at most the
newest labelled batch, as live when that batch is the first the champion has not seen), and
``gate_errors(k)`` holds its per-row errors on those held-out rows, which start at stream row
``gate_start[k]`` (-1 when the window ends in the history: the candidate is then the first
model again, and its held-out rows, the newest ``holdout`` share of the history window as live
with no champion, are in the history). The held-out rows with the gate copy's predictions are
also what live keeps as the version's reference sample, which primes its concept detector
(:class:`~retrainer.schedule.policies.DetectorTrigger`).

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.training import Trainer
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=600)})
    >>> y = (X["x"] > np.repeat([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 100)).astype(int)
    >>> batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, 600, 100)]
    >>> m = build_scores(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2)
    >>> m.errors.shape, bool(np.isnan(m.errors[1, 0])), int(m.rows.sum()), len(m.row_errors(1))
    ((4, 4), True, 400, 300)
    >>> bool(m.errors[0, 1] > m.errors[3, 3])  # the old concept's model on the new one
    True
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.checks.sample import SAMPLE_ROWS, at_most
from retrainer.errors import DataError
from retrainer.schedule.candidates import Candidates, score_boundaries
from retrainer.training import Trainer

Batch = tuple[pd.DataFrame, Any]


@dataclass(frozen=True)
class ScoreMatrix:
    """Errors of the candidate of each boundary on each later batch, rows per batch."""

    errors: np.ndarray  # (T, T) float, NaN below the diagonal
    rows: np.ndarray  # (T,) rows per batch
    label_delay: int
    packed: np.ndarray  # per-row errors of every model, concatenated (a classifier's packed)
    offsets: np.ndarray  # (T + 1,) start of model k's rows in ``packed``
    gate_packed: np.ndarray  # per-row errors of every gate copy on its holdout, the same way
    gate_offsets: np.ndarray  # (T + 1,) start of gate copy k's rows in ``gate_packed``
    gate_start: np.ndarray  # (T,) stream row of gate copy k's first held-out row (-1: history)
    metric: str = ""  # "": a classifier's wrong predictions (bits); "mae" or "rmse": a regressor's

    @property
    def batches(self) -> int:
        return len(self.rows)

    def row_errors(self, k: int) -> np.ndarray:
        """Model ``k``'s per-row errors (0/1, or a regressor's) on batches ``k..T-1``, in row
        order."""
        return self._rows(self.packed, self.offsets, k)

    def gate_errors(self, k: int) -> np.ndarray:
        """Gate copy ``k``'s per-row errors on its held-out rows (from ``gate_start[k]`` on, or
        in the history)."""
        return self._rows(self.gate_packed, self.gate_offsets, k)

    def _rows(self, data: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
        start, stop = int(offsets[k]), int(offsets[k + 1])
        if self.metric:
            return data[start:stop]
        return np.unpackbits(data, count=stop)[start:stop]

    def reference(self, k: int, rows: int = SAMPLE_ROWS) -> np.ndarray:
        """Model ``k``'s errors on its reference sample, as live keeps it
        (:func:`~retrainer.checks.sample.store_sample`): the gate copy's per-row errors on the
        held-out rows, at most ``rows`` of them (``checks.sample.rows``; 0: no sample) drawn
        with the same seed and kept in row order. Live this primes the champion's concept
        detector."""
        return np.asarray(at_most(pd.Series(self.gate_errors(k)), rows))

    def part(self, start: int, stop: int | None = None) -> ScoreMatrix:
        """Batches ``start..stop-1`` as a matrix of their own (the candidate of boundary
        ``start`` is its first model), e.g. to tune on one half of a stream and test on the
        other."""
        stop = self.batches if stop is None else stop
        before = int(np.sum(self.rows[:start]))
        shifted = self.gate_start[start:stop] - before
        return ScoreMatrix(
            errors=self.errors[start:stop, start:stop],
            rows=self.rows[start:stop],
            label_delay=self.label_delay,
            packed=self.packed,
            offsets=self.offsets[start : stop + 1],
            gate_packed=self.gate_packed,
            gate_offsets=self.gate_offsets[start : stop + 1],
            gate_start=np.where((self.gate_start[start:stop] < 0) | (shifted < 0), -1, shifted),
            metric=self.metric,
        )

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file in the same folder, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(
                    f,
                    errors=self.errors,
                    rows=self.rows,
                    label_delay=np.array(self.label_delay),
                    packed=self.packed,
                    offsets=self.offsets,
                    gate_packed=self.gate_packed,
                    gate_offsets=self.gate_offsets,
                    gate_start=self.gate_start,
                    metric=np.array(self.metric),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> ScoreMatrix:
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(
                errors=z["errors"],
                rows=z["rows"],
                label_delay=int(z["label_delay"]),
                packed=z["packed"],
                offsets=z["offsets"],
                gate_packed=z["gate_packed"],
                gate_offsets=z["gate_offsets"],
                gate_start=z["gate_start"],
                metric=str(z["metric"]) if "metric" in z.files else "",
            )


def build_scores(
    batches: Sequence[Batch],
    trainer: Trainer,
    *,
    history: int = 4,
    label_delay: int = 1,
    window: int = 4,
    holdout: float = 0.2,
    on_model: Callable[[int, int], None] | None = None,
    threads: int | None = 1,
    jobs: int | None = 1,
    metric: str = "",
) -> ScoreMatrix:
    """Train the candidate of every boundary with ``trainer`` and score it on every later batch.

    ``batches`` are ``(features, labels)`` in time order, the first ``history`` of them the
    labelled history; ``window`` is the trainer's window in batches (0: all labelled batches);
    ``holdout`` the gate's share of the window held out (``gate.holdout``); ``jobs`` worker
    processes share the boundaries (1: this process; ``None``: one per core when the work pays
    for them, see :func:`~retrainer.schedule.candidates.score_boundaries`), each capping
    native threads (OpenMP, BLAS) at ``threads`` (``None``: no cap), as ``trainer.threads``;
    ``on_model(done, total)`` reports the boundaries scored so far; ``metric`` is empty for a
    classifier (errors are wrong predictions), else a regressor's ``mae`` or ``rmse`` (absolute
    or squared errors).
    """
    if label_delay < 1:
        raise DataError("score matrix: label_delay must be at least 1 batch")
    if len(batches) <= history:
        raise DataError(f"score matrix: {len(batches)} batches; need more than {history}")
    if metric not in ("", "mae", "rmse"):
        raise DataError(
            f"score matrix: a regressor's errors are summed as absolute (mae) or squared (rmse) "
            f"errors, not {metric}"
        )
    work = Candidates(
        batches,
        trainer,
        history=history,
        label_delay=label_delay,
        window=window,
        holdout=holdout,
        metric=metric,
    )
    scored = score_boundaries(work, jobs=jobs, threads=threads, on_done=on_model)
    T, rows, starts = len(work.rows), work.rows, work.starts
    errors = np.full((T, T), np.nan)
    for s in scored:
        errors[s.k, s.k :] = np.add.reduceat(
            s.wrong.astype(np.float64), starts[s.k : -1] - starts[s.k]
        )
    sizes = [s.gate.size for s in scored]
    pack = (lambda a: a) if metric else np.packbits
    return ScoreMatrix(
        errors=errors,
        rows=rows,
        label_delay=label_delay,
        packed=pack(np.concatenate([s.wrong for s in scored])),
        offsets=np.r_[0, np.cumsum([s.wrong.size for s in scored])].astype(np.int64),
        gate_packed=pack(np.concatenate([s.gate for s in scored])),
        gate_offsets=np.r_[0, np.cumsum(sizes)].astype(np.int64),
        gate_start=np.array([s.gate_start for s in scored], dtype=np.int64),
        metric=metric,
    )


def scores_key(batches: Sequence[Batch], config: dict) -> str:
    """Hash of the data (features, labels, batch sizes) and the trainer config: the cache key.

    >>> X = pd.DataFrame({"x": [1.0, 2.0]})
    >>> a = scores_key([(X, [0, 1])], {"window": 4})
    >>> a == scores_key([(X, [0, 1])], {"window": 4}), a == scores_key([(X, [1, 1])], {"window": 4})
    (True, False)
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for X, y in batches:
        digest.update(str(len(X)).encode())
        digest.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(pd.Series(np.asarray(y)), index=False).to_numpy())
    return digest.hexdigest()[:24]


def cached_scores(
    batches: Sequence[Batch],
    trainer: Trainer,
    *,
    folder: str | Path,
    history: int = 4,
    label_delay: int = 1,
    window: int = 4,
    holdout: float = 0.2,
    on_model: Callable[[int, int], None] | None = None,
    threads: int | None = 1,
    jobs: int | None = 1,
    metric: str = "",
) -> tuple[ScoreMatrix, Path, bool]:
    """The score matrix from ``folder``'s cache if this data and trainer (estimator, parameters
    and the version of the library it comes from) were scored before, else built and cached;
    returns ``(matrix, path, was_cached)``."""
    config = {
        "estimator": trainer.estimator,
        "params": trainer.params,
        "library": library_version(trainer.estimator),
        "history": history,
        "label_delay": label_delay,
        "window": window,
        "holdout": holdout,
        "version": 4,  # 4: gate copies reach back to as many rows as their window
    } | ({"metric": metric} if metric else {})  # a classifier's key as before regressors
    path = Path(folder) / f"scores-{scores_key(batches, config)}.npz"
    if path.exists():
        return ScoreMatrix.load(path), path, True
    matrix = build_scores(
        batches,
        trainer,
        history=history,
        label_delay=label_delay,
        window=window,
        holdout=holdout,
        on_model=on_model,
        threads=threads,
        jobs=jobs,
        metric=metric,
    )
    return matrix, matrix.save(path), False


def library_version(estimator: str) -> str:
    """The version of the package an estimator's import path starts with ("" if unknown).

    >>> library_version("sklearn.tree.DecisionTreeClassifier").startswith("1.")
    True
    >>> library_version("nowhere.Model")
    ''
    """
    try:
        return str(getattr(importlib.import_module(estimator.split(".")[0]), "__version__", ""))
    except ImportError:
        return ""
