"""The model-by-batch score matrix: a candidate model trained at every batch boundary, scored on
every later batch, out of sample by construction.

Batches ``0..T-1`` follow ``history`` labelled batches. The candidate of boundary ``k`` is trained
before batch ``k`` is predicted, on the trainer's window of labelled batches ending at batch
``k - label_delay`` (history batches count; before any stream label arrives, the history's last
batch), so it never sees a label that was not there in time, nor the batches it is scored on.
``errors[k, j]`` is its number of wrong predictions on batch ``j >= k`` (NaN below the
diagonal); ``bits(k)`` its per-row errors on batches ``k..T-1`` (for detector triggers).

The gate of a retrain is simulated as live (:mod:`retrainer.retrain`): the **gate copy** of
boundary ``k`` is fitted on its window without the newest ``holdout`` share of rows (at most the
newest labelled batch, as live when that batch is the first the champion has not seen), and
``gate_bits(k)`` holds its per-row errors on those held-out rows, which start at stream row
``gate_start[k]`` (-1 when the window ends in the history: the candidate is then the first
model again).

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.training import Trainer
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=600)})
    >>> y = (X["x"] > np.repeat([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 100)).astype(int)
    >>> batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, 600, 100)]
    >>> m = build_scores(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2)
    >>> m.errors.shape, bool(np.isnan(m.errors[1, 0])), int(m.rows.sum()), len(m.bits(1))
    ((4, 4), True, 400, 300)
    >>> bool(m.errors[0, 1] > m.errors[3, 3])  # the old concept's model on the new one
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import DataError
from retrainer.training import Trainer

Batch = tuple[pd.DataFrame, Any]


@dataclass(frozen=True)
class ScoreMatrix:
    """Errors of the candidate of each boundary on each later batch, rows per batch."""

    errors: np.ndarray  # (T, T) float, NaN below the diagonal
    rows: np.ndarray  # (T,) rows per batch
    label_delay: int
    packed: np.ndarray  # per-row error bits of every model, packed, concatenated
    offsets: np.ndarray  # (T + 1,) start of model k's bits in ``packed`` (in bits)
    gate_packed: np.ndarray  # per-row error bits of every gate copy on its holdout, packed
    gate_offsets: np.ndarray  # (T + 1,) start of gate copy k's bits in ``gate_packed``
    gate_start: np.ndarray  # (T,) stream row of gate copy k's first held-out row (-1: none)

    @property
    def batches(self) -> int:
        return len(self.rows)

    def bits(self, k: int) -> np.ndarray:
        """Model ``k``'s per-row errors (0/1) on batches ``k..T-1``, in row order."""
        start, stop = int(self.offsets[k]), int(self.offsets[k + 1])
        return np.unpackbits(self.packed, count=stop)[start:stop]

    def gate_bits(self, k: int) -> np.ndarray:
        """Gate copy ``k``'s per-row errors on its held-out rows (from ``gate_start[k]`` on)."""
        start, stop = int(self.gate_offsets[k]), int(self.gate_offsets[k + 1])
        return np.unpackbits(self.gate_packed, count=stop)[start:stop]

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
            )


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


def build_scores(
    batches: Sequence[Batch],
    trainer: Trainer,
    *,
    history: int = 4,
    label_delay: int = 1,
    window: int = 4,
    holdout: float = 0.2,
    on_model: Any = None,
    threads: int | None = 1,
) -> ScoreMatrix:
    """Train the candidate of every boundary with ``trainer`` and score it on every later batch.

    ``batches`` are ``(features, labels)`` in time order, the first ``history`` of them the
    labelled history; ``window`` is the trainer's window in batches (0: all labelled batches);
    ``holdout`` the gate's share of the window held out (``gate.holdout``); ``threads`` caps
    native threads (OpenMP, BLAS; ``None``: no cap), as ``trainer.threads``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return _build(batches, trainer, history, label_delay, window, holdout, on_model)


def _build(
    batches: Sequence[Batch],
    trainer: Trainer,
    history: int,
    label_delay: int,
    window: int,
    holdout: float,
    on_model: Any,
) -> ScoreMatrix:
    from retrainer.gate import holdout_size

    if label_delay < 1:
        raise DataError("score matrix: label_delay must be at least 1 batch")
    if len(batches) <= history:
        raise DataError(f"score matrix: {len(batches)} batches; need more than {history}")
    stream = batches[history:]
    T = len(stream)
    rows = np.array([len(X) for X, _ in stream], dtype=np.int64)
    X_all = pd.concat([X for X, _ in stream], ignore_index=True)
    y_all = np.concatenate([np.asarray(y) for _, y in stream])
    starts = np.r_[0, np.cumsum(rows)]
    errors = np.full((T, T), np.nan)
    bit_runs, offsets = [], [0]
    gate_runs, gate_offsets, gate_start = [], [0], np.full(T, -1, dtype=np.int64)
    previous: tuple[range, Any] | None = None
    for k in range(T):
        if on_model:
            on_model(k, T)
        span = training_window(k, history, label_delay, window)
        X = pd.concat([batches[i][0] for i in span], ignore_index=True)
        y = np.concatenate([np.asarray(batches[i][1]) for i in span])
        if previous is not None and previous[0] == span:
            model = previous[1]  # the same labelled window: the same model
        else:
            model = trainer.fit(X, y)
            previous = (span, model)
        newest = span[-1] - history  # the newest labelled stream batch (< 0: in the history)
        if newest >= 0:
            unseen = np.zeros(len(X), dtype=bool)
            unseen[len(X) - rows[newest] :] = True
            n = holdout_size(len(X), holdout, unseen)
            copy = trainer.fit(X.iloc[:-n], y[:-n])
            gate = (np.asarray(copy.predict(X.iloc[-n:])) != y[-n:]).astype(np.uint8)
            gate_start[k] = starts[newest + 1] - n
            gate_runs.append(gate)
            gate_offsets.append(gate_offsets[-1] + gate.size)
        else:
            gate_offsets.append(gate_offsets[-1])
        wrong = (np.asarray(model.predict(X_all.iloc[starts[k] :])) != y_all[starts[k] :]).astype(
            np.uint8
        )
        errors[k, k:] = np.add.reduceat(wrong, starts[k:-1] - starts[k])
        bit_runs.append(wrong)
        offsets.append(offsets[-1] + wrong.size)
    return ScoreMatrix(
        errors=errors,
        rows=rows,
        label_delay=label_delay,
        packed=np.packbits(np.concatenate(bit_runs)),
        offsets=np.asarray(offsets, dtype=np.int64),
        gate_packed=np.packbits(np.concatenate(gate_runs or [np.zeros(0, np.uint8)])),
        gate_offsets=np.asarray(gate_offsets, dtype=np.int64),
        gate_start=gate_start,
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
    on_model: Any = None,
    threads: int | None = 1,
) -> tuple[ScoreMatrix, Path, bool]:
    """The score matrix from ``folder``'s cache if this data and trainer config were scored
    before, else built and cached; returns ``(matrix, path, was_cached)``."""
    config = {
        "estimator": trainer.estimator,
        "params": trainer.params,
        "history": history,
        "label_delay": label_delay,
        "window": window,
        "holdout": holdout,
        "version": 2,
    }
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
    )
    return matrix, matrix.save(path), False
