"""Several challengers trained in parallel, one task each, and the best one picked.

The challengers of a project are its trainer, one per point of the ``trainer.search`` grid over
the trainer's params, and each ``trainer.candidates`` estimator. With more than one, each is
fitted on the training rows but the last ``validation`` share (time order: the validation rows
are the most recent) and scored on those; the best by the gate's metric is refitted on all the
training rows and goes to the gate. On Dask (``compute: {backend: dask}``) each fit is one task
on the cluster; the fitted model travels back inside Dask's own serialisation between processes
of this installation, and the registry then stores it as skops, as any model.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.config import TrainerSettings
    >>> settings = TrainerSettings(
    ...     estimator="sklearn.tree.DecisionTreeClassifier",
    ...     params={"random_state": 0},
    ...     search={"max_depth": [1, 4]},
    ... )
    >>> [t.params for t in challengers(settings)]
    [{'random_state': 0, 'max_depth': 1}, {'random_state': 0, 'max_depth': 4}]
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.random(400), "b": rng.random(400)})
    >>> y = ((X.a > 0.5) ^ (X.b > 0.5)).astype(int)
    >>> picked = select_challenger(challengers(settings), X, y, metric="accuracy")
    >>> picked.trainer.params["max_depth"], picked.scores[1] > picked.scores[0]
    (4, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from retrainer.errors import TrainingError
from retrainer.gate import model_score
from retrainer.metrics import higher_is_better
from retrainer.training import Trainer

if TYPE_CHECKING:
    from retrainer.config import Config, TrainerSettings

__all__ = ["Selection", "challengers", "select_challenger", "train_challenger"]


def challengers(settings: TrainerSettings) -> list[Trainer]:
    """The trainers to try: the grid over the trainer's params (or just the trainer), then the
    other candidates, in the order of the project file.

    Parameters:
        settings: the ``trainer`` section.
    """
    names = list(settings.search)
    points = itertools.product(*(settings.search[name] for name in names))
    found = [
        Trainer(settings.estimator, {**settings.params, **dict(zip(names, point, strict=True))})
        for point in points
    ]
    return found + [Trainer(c.estimator, dict(c.params)) for c in settings.candidates]


@dataclass(frozen=True)
class Selection:
    """The challenger picked for the gate, fitted on the training rows, and how it was picked.

    Parameters:
        trainer: the winning trainer.
        model: the winner fitted on all the training rows.
        trainers: every challenger tried, in order.
        scores: each challenger's validation score (None: failed, or the only challenger).
        errors: why a challenger failed ("" when it did not).
        metric: the metric of the comparison (the gate's).
        backend: ``local`` or ``dask``.
    """

    trainer: Trainer
    model: Any
    trainers: tuple[Trainer, ...]
    scores: tuple[float | None, ...]
    errors: tuple[str, ...]
    metric: str
    backend: str

    def to_dict(self) -> dict:
        """A JSON-friendly dict: the winner's index and each challenger with its score."""
        return {
            "winner": self.trainers.index(self.trainer),
            "metric": self.metric,
            "backend": self.backend,
            "challengers": [
                {"estimator": t.estimator, "params": dict(t.params), "score": s, "error": e}
                for t, s, e in zip(self.trainers, self.scores, self.errors, strict=True)
            ],
        }


def _fit(trainer: Trainer, X: pd.DataFrame, y: pd.Series) -> Any:
    return trainer.fit(X, y)


def _score(
    trainer: Trainer, X: pd.DataFrame, y: pd.Series, X_val: pd.DataFrame, y_val: pd.Series, metric
) -> tuple[float | None, str]:
    try:
        value = model_score(trainer.fit(X, y), X_val, y_val, metric)
    except TrainingError as exc:
        return None, str(exc)
    if math.isnan(value):
        return None, f"{metric} is undefined on the {len(X_val)} validation rows"
    return value, ""


def _run(client: Any | None, function, trainers: Sequence[Trainer], *args) -> list:
    """``function(trainer, *args)`` for each trainer: one task each on Dask (the frames sent to
    the cluster once), or one after the other here."""
    if client is None:
        return [function(t, *args) for t in trainers]
    shared = [client.scatter(a) if isinstance(a, pd.DataFrame | pd.Series) else a for a in args]
    futures = [client.submit(function, t, *shared, pure=False) for t in trainers]
    return client.gather(futures)


def select_challenger(
    trainers: Sequence[Trainer],
    X: pd.DataFrame,
    y: Sequence,
    *,
    metric: str,
    validation: float = 0.2,
    client: Any | None = None,
) -> Selection:
    """Fit every challenger (one Dask task each with a ``client``), pick the best, refit it.

    Parameters:
        trainers: the challengers, in order (ties go to the first).
        X: the training rows, oldest first.
        y: their labels.
        metric: a metric of ``retrainer.metrics`` (the gate's).
        validation: the share of the latest rows the challengers are compared on.
        client: a Dask client (None: fit here, one after the other).
    """
    trainers = tuple(trainers)
    if not trainers:
        raise TrainingError("no challenger to train: trainer.search and candidates are empty")
    y = pd.Series(list(y), index=X.index) if not isinstance(y, pd.Series) else y
    backend = "local" if client is None else "dask"
    if len(trainers) == 1:
        (model,) = _run(client, _fit, trainers, X, y)
        return Selection(trainers[0], model, trainers, (None,), ("",), metric, backend)
    n_val = max(1, int(round(len(X) * validation)))
    if len(X) - n_val < 1:
        raise TrainingError(f"{len(X)} training rows are too few to compare challengers")
    fit, val = slice(None, -n_val), slice(-n_val, None)
    found = _run(
        client, _score, trainers, X.iloc[fit], y.iloc[fit], X.iloc[val], y.iloc[val], metric
    )
    scores, errors = tuple(s for s, _ in found), tuple(e for _, e in found)
    ranked = [i for i, s in enumerate(scores) if s is not None]
    if not ranked:
        raise TrainingError(f"every challenger failed: {'; '.join(e for e in errors if e)}")
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = max(ranked, key=lambda i: (sign * scores[i], -i))
    (model,) = _run(client, _fit, (trainers[best],), X, y)
    return Selection(trainers[best], model, trainers, scores, errors, metric, backend)


def train_challenger(config: Config, X: pd.DataFrame, y: Sequence) -> Selection:
    """The challenger of a retraining run, trained where ``compute`` says.

    Parameters:
        config: the project's settings (``trainer``, ``gate.metric``, ``compute``).
        X: the training rows, oldest first.
        y: their labels.
    """
    options = {"metric": config.gate.metric, "validation": config.trainer.validation}
    trainers = challengers(config.trainer)
    if config.compute.backend != "dask":
        return select_challenger(trainers, X, y, **options)
    from retrainer.compute.backend import compute_client

    with compute_client(config.compute) as client:
        return select_challenger(trainers, X, y, client=client, **options)
