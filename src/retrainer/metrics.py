"""Model metrics by name, computed with scikit-learn.

Example:
    >>> score("accuracy", [1, 0, 1, 1], [1, 0, 0, 1])
    0.75
    >>> higher_is_better("rmse")
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from retrainer.config import METRICS

BOOTSTRAPPED = ("f1", "balanced_accuracy", "roc_auc", "r2")  # with a bootstrap_se, on_resamples
SE_ROWS = 10_000  # bootstrap_se: R² and AUC resample at most this many rows (scaled beyond)


def higher_is_better(metric: str) -> bool:
    """True for scores (accuracy, r2), False for losses (mae, rmse)."""
    return METRICS[metric]


def score(
    metric: str,
    y_true: Sequence,
    y_pred: Sequence,
    y_score: Sequence | None = None,
    classes: Sequence | None = None,
) -> float:
    """The value of ``metric`` for true labels, predictions and (for roc_auc) scores: the
    positive class's, or one column per class of a multi-class model.

    ``f1`` is the positive class's F1 for a binary task and macro F1 otherwise. The task is
    binary when ``classes`` (the model's classes, sorted) has two entries, the positive class
    being the second; without ``classes``, when every label is 0 or 1. A multi-class task is
    macro-averaged whatever classes one batch happens to hold. A multi-class ``roc_auc`` is the
    one-vs-rest macro AUC over ``classes`` (scikit-learn's ``multi_class="ovr"``); NaN when a
    class is missing from the rows or the scores are not known.

    >>> score("f1", ["sun", "fog", "sun"], ["sun", "fog", "fog"])     # macro over fog and sun
    0.6666666666666666
    >>> score("f1", ["no", "yes", "yes"], ["no", "yes", "no"], classes=["no", "yes"])
    0.6666666666666666
    >>> proba = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.5, 0.2], [0.5, 0.1, 0.4]]
    >>> score("roc_auc", [0, 1, 2, 2], [0, 1, 2, 0], proba, classes=[0, 1, 2])
    0.8611111111111112
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if metric == "accuracy":
        value = skm.accuracy_score(y_true, y_pred)
    elif metric == "balanced_accuracy":
        value = skm.balanced_accuracy_score(y_true, y_pred)
    elif metric == "f1":
        value = skm.f1_score(
            y_true, y_pred, zero_division=0, **_f1_average(y_true, y_pred, classes)
        )
    elif metric == "roc_auc":
        value = _roc_auc(y_true, y_score, classes)
    elif metric == "mae":
        value = skm.mean_absolute_error(y_true, y_pred)
    elif metric == "rmse":
        value = skm.root_mean_squared_error(y_true, y_pred)
    elif metric == "r2":
        value = skm.r2_score(y_true, y_pred)
    else:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return float(value)


def _roc_auc(y_true: np.ndarray, y_score, classes: Sequence | None) -> float:
    """Binary AUC of the positive-class scores, or one-vs-rest macro AUC of class scores."""
    found = _class_scores(y_true, y_score, classes)
    if found is None or len(np.unique(y_true)) < 2:
        return float("nan")
    scores, labels = found
    if labels is None:
        return skm.roc_auc_score(y_true, scores)
    if not np.isin(labels, y_true).all():
        return float("nan")  # a class without rows: its one-vs-rest AUC is undefined
    return skm.roc_auc_score(y_true, scores, multi_class="ovr", labels=labels)


def _class_scores(y_true: np.ndarray, y_score, classes: Sequence | None) -> tuple | None:
    """The scores as an array and, for one column per class, their labels (None: the positive
    class's scores); a frame's columns are put in the order of ``classes``, a class it lacks
    scoring 0. None without scores, or with a label no model knows."""
    if y_score is None:
        return None
    if hasattr(y_score, "columns") and classes is not None:
        y_score = y_score.reindex(columns=list(classes), fill_value=0.0)
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim == 1:
        return scores, None
    labels = list(classes) if classes is not None else list(range(scores.shape[1]))
    if len(labels) != scores.shape[1] or not np.isin(y_true, labels).all():
        return None
    return scores, labels


def _f1_average(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence | None) -> dict:
    """``f1_score``'s averaging: binary with the positive class, or macro."""
    if classes is not None:
        known = list(classes)
        if len(known) == 2:
            return {"average": "binary", "pos_label": known[1]}
        return {"average": "macro"}
    labels = np.concatenate([y_true.reshape(-1), y_pred.reshape(-1)])
    if labels.dtype.kind in "biuf" and np.isin(labels, (0, 1)).all():
        return {"average": "binary", "pos_label": 1}
    return {"average": "macro"}


def bootstrap_se(
    metric: str,
    y_true: Sequence,
    y_pred: Sequence,
    classes: Sequence | None = None,
    draws: int = 1000,
    seed: int = 0,
    y_score: Sequence | None = None,
) -> float | None:
    """The bootstrap standard error of ``f1``, ``balanced_accuracy``, ``r2`` or ``roc_auc`` on
    these rows (rows drawn with replacement: as cells of the confusion matrix, as weights of the
    sums of squares or of the ranked pairs of ``y_score``, for AUC); None for
    other metrics, fewer than two rows or an AUC without scores. F1 is binary or macro and AUC
    binary or one-vs-rest as in :func:`score`. R² and AUC resample whole rows, so beyond
    ``SE_ROWS`` rows they are bootstrapped on that many drawn without replacement and the
    error scaled by ``sqrt(SE_ROWS / n)`` (it falls as one over the root of the rows): a
    100,000-row binary AUC took 9 s, this 0.6 s.

    >>> y = [0, 1, 2, 2] * 50
    >>> round(bootstrap_se("f1", y, [0, 1, 2, 0] * 50, classes=[0, 1, 2]), 3)
    0.026
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=400)
    >>> round(bootstrap_se("r2", truth, truth + rng.normal(0, 0.5, 400)), 3)
    0.028
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    n = y_true.size
    if n < 2 or metric not in BOOTSTRAPPED:
        return None
    if metric == "roc_auc" and y_score is None:
        return None
    scale = 1.0
    if metric in ("r2", "roc_auc"):
        if n > SE_ROWS:
            keep = rng.choice(n, SE_ROWS, replace=False)
            y_true, y_pred, scale, n = y_true[keep], y_pred[keep], math.sqrt(SE_ROWS / n), SE_ROWS
            if y_score is not None:
                y_score = (
                    y_score.iloc[keep] if hasattr(y_score, "iloc") else np.asarray(y_score)[keep]
                )
        chunks = [100] * (draws // 100) + [draws % 100]  # 100 x rows weights at a time
        weights = (rng.multinomial(n, np.full(n, 1 / n), size=k) for k in chunks)
        values = np.concatenate(
            [on_resamples(metric, y_true, y_pred, w, classes, y_score) for w in weights]
        )
    else:
        labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
        k = labels.size
        cells = np.bincount(codes[:n] * k + codes[n:], minlength=k * k) / n
        drawn = rng.multinomial(n, cells, size=draws).reshape(-1, k, k)
        tp = np.diagonal(drawn, axis1=1, axis2=2)
        actual, predicted = drawn.sum(axis=2), drawn.sum(axis=1)
        positive = _positive(metric, labels, y_true, y_pred, classes)
        values = from_counts(metric, tp, actual, predicted, positive)
    values = values[np.isfinite(values)]
    return scale * float(np.std(values, ddof=1)) if values.size > 1 else None


def on_resamples(
    metric: str,
    y_true: Sequence,
    y_pred: Sequence,
    weights: np.ndarray,
    classes: Sequence | None = None,
    y_score: Sequence | None = None,
) -> np.ndarray:
    """``f1``, ``balanced_accuracy``, ``r2``, ``mae``, ``rmse`` or ``roc_auc`` on each resample
    of the rows, given as how often each row was drawn (``weights``: resamples x rows): from
    weighted counts per class, weighted sums of absolute errors or squares, or weighted ranked
    pairs of ``y_score``
    (:func:`auc_on_resamples`). The values :func:`score` gives on each resample (binary or
    macro F1 decided on all the rows).

    >>> weights = np.array([[1, 1, 1, 1], [2, 0, 2, 0]])
    >>> on_resamples("f1", ["a", "b", "c", "c"], ["a", "b", "c", "a"], weights).round(4).tolist()
    [0.7778, 1.0]
    >>> on_resamples("r2", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], weights).tolist()
    [0.8, 1.0]
    >>> on_resamples("rmse", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0], weights).tolist()
    [1.0, 0.0]
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    w = np.asarray(weights, dtype=float)
    if metric == "roc_auc":
        return auc_on_resamples(y_true, y_score, w, classes)
    if metric in ("mae", "rmse"):
        error = y_pred.astype(float) - y_true.astype(float)
        if metric == "mae":
            return w @ np.abs(error) / y_true.size
        return np.sqrt(w @ error**2 / y_true.size)
    if metric == "r2":
        y, n = y_true.astype(float), y_true.size
        total = w @ y**2 - (w @ y) ** 2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - (w @ (y - y_pred.astype(float)) ** 2) / total
    labels = np.unique(np.concatenate([y_true, y_pred]))
    truth, said = y_true[:, None] == labels, y_pred[:, None] == labels
    tp, actual, predicted = w @ (truth & said), w @ truth, w @ said
    positive = _positive(metric, labels, y_true, y_pred, classes)
    return from_counts(metric, tp, actual, predicted, positive)


def _positive(metric: str, labels: np.ndarray, y_true, y_pred, classes) -> int | None:
    """The index in ``labels`` of binary F1's positive class (-1: not among them); None for
    macro F1 and other metrics."""
    average = _f1_average(y_true, y_pred, classes) if metric == "f1" else {}
    if average.get("average") != "binary":
        return None
    found = np.flatnonzero(labels == average["pos_label"])
    return int(found[0]) if found.size else -1


def auc_on_resamples(
    y_true: Sequence, y_score, weights: np.ndarray, classes: Sequence | None = None
) -> np.ndarray:
    """``roc_auc`` on each resample of the rows (``weights``: resamples x rows, how often each
    row was drawn), from the weighted positives and negatives at each distinct score, ties
    counting half: the values :func:`score` gives on each resample (NaN where a class, or
    every other class, has no row; all NaN without scores or with a label no model knows).

    >>> y, p = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]
    >>> auc_on_resamples(y, p, np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 2, 2, 0]])).tolist()
    [0.75, 1.0, 0.0]
    """
    y, w = np.asarray(y_true), np.asarray(weights, dtype=float)
    found = _class_scores(y, y_score, classes)
    if found is None:
        return np.full(len(w), np.nan)
    scores, labels = found
    if labels is None:
        present = np.unique(y)
        if present.size != 2:
            return np.full(len(w), np.nan)
        columns = [(y == present[1], scores)]
    else:
        columns = [(y == c, scores[:, j]) for j, c in enumerate(labels)]
    return np.mean([_weighted_auc(positive, s, w) for positive, s in columns], axis=0)


def _weighted_auc(positive: np.ndarray, scores: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One binary AUC per row of weights ``w``: the weighted share of (positive, negative)
    pairs ranked right, ties half (the Mann-Whitney statistic)."""
    levels, at = np.unique(scores, return_inverse=True)
    draws, size = w.shape[0], levels.size
    flat = (np.arange(draws)[:, None] * size + at[None, :]).ravel()

    def per_level(weights: np.ndarray) -> np.ndarray:
        total = np.bincount(flat, weights=weights.ravel(), minlength=draws * size)
        return total.reshape(draws, size)

    pos, neg = per_level(w * positive), per_level(w * ~positive)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def from_counts(metric: str, tp, actual, predicted, positive: int | None = None):
    """Accuracy, balanced accuracy or F1 from per-class counts (last axis: classes) of true
    positives, rows of the class and rows predicted as it. F1 is the class ``positive``'s
    (-1: a positive class without rows, 0) or macro over the classes present, balanced accuracy
    the mean recall of the classes with rows, as in scikit-learn.

    >>> float(from_counts("f1", [3, 1], [4, 1], [3, 2]))  # macro: (6/7 + 2/3) / 2
    0.7619047619047619
    """
    tp, actual, predicted = (np.asarray(v, dtype=float) for v in (tp, actual, predicted))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return tp.sum(axis=-1) / actual.sum(axis=-1)
        if metric == "balanced_accuracy":
            present = actual > 0
            recall = np.where(present, tp / actual, 0.0)
            return recall.sum(axis=-1) / present.sum(axis=-1)
        if metric == "f1":
            seen = (actual + predicted) > 0
            f1 = np.where(seen, 2 * tp / (actual + predicted), 0.0)
            if positive is not None:
                return f1[..., positive] if positive >= 0 else np.zeros(f1.shape[:-1])
            return f1.sum(axis=-1) / seen.sum(axis=-1)
    raise ValueError(f"no {metric!r} from class counts: accuracy, balanced_accuracy or f1")


def is_worse(metric: str, challenger: float, champion: float, tolerance: float = 0.0) -> bool:
    """Whether ``challenger`` regresses from ``champion`` by more than ``tolerance``.

    >>> is_worse("accuracy", 0.80, 0.82, tolerance=0.01), is_worse("mae", 1.0, 1.2)
    (True, False)
    """
    if higher_is_better(metric):
        return challenger < champion - tolerance
    return challenger > champion + tolerance


def row_losses(metric: str, y_true: Sequence, y_pred: Sequence) -> np.ndarray | None:
    """Each row's share of a mean loss: the absolute error for ``mae``, the squared error for
    ``rmse`` (whose square, the mean squared error, is their mean); None for other metrics.

    >>> row_losses("rmse", [1.0, 2.0], [2.0, 4.0]), row_losses("accuracy", [1], [1])
    (array([1., 4.]), None)
    """
    if metric not in ("mae", "rmse"):
        return None
    error = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return np.abs(error) if metric == "mae" else error**2
