"""The gate: a challenger becomes champion unless it is worse, with stated confidence, on rows
neither model was trained on.

Both models predict the same held-out rows; the gate reads the **paired** difference of the
metric (challenger minus champion, signed so that positive means the challenger is better) and
its uncertainty, a paired bootstrap over the rows (``DRAWS`` resamples, fixed seed; for accuracy
drawn exactly from the counts of rows only one model got right). With a one-sided interval at
``confidence``:

- fewer than ``min_rows`` rows: **inconclusive** ("not enough rows to tell");
- the upper bound below ``-tolerance``: **worse**, rejected;
- the lower bound at or above ``-tolerance``: **not worse**, passed;
- otherwise **inconclusive**: the rows cannot tell whether it is worse.

An inconclusive gate passes with ``on_inconclusive="promote"`` (the default: the challenger has
seen the newest rows, and nothing says it is worse, so a refresh is not blocked for want of
evidence) and keeps the champion with ``"keep"`` (the next run has more rows after the
champion's window to compare on, so the question is settled as rows arrive). With enough rows
to compare on, "nothing says it is worse" is checked: an inconclusive challenger is promoted
only when its measured difference falls short of ``-tolerance`` by no more than one standard
error (the one-standard-error rule of Breiman et al., 1984: a difference within one standard
error is no evidence either way) **and** it is not significantly worse than the champion (the
upper bound of the difference is at least 0); otherwise the champion is kept ("it measured
worse than the tolerance by more than one standard error" or "significantly worse"), whatever
``on_inconclusive`` says. A challenger trained on corrupted labels that the rows cannot prove
worse beyond the tolerance is then still kept when it measures clearly worse than that; an
equally good one is not kept on the sign of noise (with the measured difference alone, half of
them were). For accuracy the
result also carries McNemar's exact one-sided p-value (the chance of at least as many rows that
only the champion got right if both models were equally good), for the record.

Which rows to compare on is the caller's job (:mod:`retrainer.retrain` takes the newest
labelled rows after the champion's training window and fits the challenger without them).

Example:
    >>> from sklearn.dummy import DummyClassifier
    >>> import pandas as pd
    >>> X, y = pd.DataFrame({"x": range(100)}), [1] * 75 + [0] * 25
    >>> good = DummyClassifier(strategy="most_frequent").fit(X, y)
    >>> bad = DummyClassifier(strategy="constant", constant=0).fit(X, y)
    >>> result = evaluate_gate(bad, good, X, y, metric="accuracy")
    >>> result.passed, result.verdict, result.challenger, result.champion
    (False, 'worse', 0.25, 0.75)
    >>> evaluate_gate(good, good, X, y).verdict            # the same model is never worse
    'not_worse'
    >>> for part in evaluate_gate(bad, good, X[:10], y[:10]).reason.split("; "):
    ...     print(part)
    not enough rows to tell: 10 rows neither model was trained on (gate.min_rows is 30)
    promoted: an inconclusive gate does not block a refresh (gate.on_inconclusive)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from retrainer.metrics import higher_is_better, on_resamples, score
from retrainer.training import predict

DRAWS = 2000  # bootstrap resamples
SEED = 0
VERDICTS = ("no_champion", "not_worse", "worse", "inconclusive")


@dataclass(frozen=True)
class GateResult:
    """The outcome of a gate: both models' scores on the same held-out rows, the paired
    difference with its interval, the verdict and why.

    ``difference``, ``lower`` and ``upper`` are challenger minus champion, signed so that
    positive is better for the challenger; ``compared`` records the rows compared on and both
    models' training windows (filled in by the run)."""

    passed: bool
    metric: str
    challenger: float | None
    champion: float | None
    tolerance: float
    n_holdout: int
    reason: str
    verdict: str = "no_champion"
    difference: float | None = None
    lower: float | None = None
    upper: float | None = None
    confidence: float = 0.95
    p_value: float | None = None
    compared: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON: a score that is undefined on the rows (NaN) is None."""
        return {
            k: None if isinstance(v, float) and not np.isfinite(v) else v
            for k, v in asdict(self).items()
        }


def model_score(model: Any, X: pd.DataFrame, y: Sequence, metric: str) -> float:
    """Score a fitted model on labelled rows."""
    pred, proba = predict(model, X)
    return score(metric, y, pred, proba, classes=model_classes(model))


def model_classes(*models: Any) -> list | None:
    """The classes the models know (sorted union of ``classes_``); None for a regressor or a
    model without ``classes_``. F1 is binary or macro by these, not by one batch's labels."""
    known = [getattr(m, "classes_", None) for m in models if m is not None]
    if not known or any(k is None for k in known):
        return None
    return sorted(set().union(*(np.asarray(k).tolist() for k in known)))


@dataclass(frozen=True)
class PairedDifference:
    """Challenger minus champion on the same rows (positive: challenger better), its one-sided
    bootstrap bounds at ``confidence`` and, for accuracy, McNemar's exact p-value that the
    challenger is worse."""

    challenger: float
    champion: float
    difference: float
    lower: float
    upper: float
    p_value: float | None


def paired_difference(
    metric: str,
    y: Sequence,
    challenger: tuple[pd.Series, pd.Series | None],
    champion: tuple[pd.Series, pd.Series | None],
    *,
    confidence: float = 0.95,
    draws: int = DRAWS,
    seed: int = SEED,
    classes: Sequence | None = None,
) -> PairedDifference:
    """The paired comparison of two models' predictions ``(labels, scores)`` on rows ``y``.

    Example:
        >>> y = pd.Series([1, 0] * 100)
        >>> right, wrong = (y, None), (1 - y, None)
        >>> d = paired_difference("accuracy", y, wrong, right)
        >>> d.difference, d.upper < 0, d.p_value < 1e-50
        (-1.0, True, True)
    """
    y = np.asarray(y)
    sign = 1.0 if higher_is_better(metric) else -1.0
    a = score(metric, y, challenger[0], challenger[1], classes)
    b = score(metric, y, champion[0], champion[1], classes)
    rng = np.random.default_rng(seed)
    p_value = None
    if metric == "accuracy":
        ok_a = np.asarray(challenger[0]) == y
        ok_b = np.asarray(champion[0]) == y
        only_a, only_b = int(np.sum(ok_a & ~ok_b)), int(np.sum(ok_b & ~ok_a))
        n = y.size
        counts = rng.multinomial(n, [only_a / n, only_b / n, 1 - (only_a + only_b) / n], draws)
        gains = (counts[:, 0] - counts[:, 1]) / n
        if only_a + only_b:
            p_value = float(binomtest(only_b, only_a + only_b, 0.5, alternative="greater").pvalue)
        else:
            p_value = 1.0
    else:  # the same resamples as drawn one by one, scored at once from weighted counts or sums
        gains = np.empty(draws)
        for start in range(0, draws, 100):
            chunk = [rng.integers(0, y.size, y.size) for _ in range(min(100, draws - start))]
            weights = np.stack([np.bincount(rows, minlength=y.size) for rows in chunk])
            gains[start : start + len(chunk)] = sign * (
                on_resamples(metric, y, challenger[0], weights, classes, challenger[1])
                - on_resamples(metric, y, champion[0], weights, classes, champion[1])
            )
    gains = gains[np.isfinite(gains)]  # a resample without some class: undefined, left out
    lower, upper = np.quantile(gains, [1 - confidence, confidence]) if gains.size else (np.nan,) * 2
    return PairedDifference(a, b, sign * (a - b), float(lower), float(upper), p_value)


def evaluate_gate(
    challenger: Any,
    champion: Any | None,
    X: pd.DataFrame,
    y: Sequence,
    *,
    metric: str = "accuracy",
    tolerance: float = 0.0,
    confidence: float = 0.95,
    min_rows: int = 30,
    on_inconclusive: str = "promote",
) -> GateResult:
    """Compare ``challenger`` with ``champion`` on rows ``X, y`` that neither was trained on."""
    n = len(X)
    classes = model_classes(challenger, champion)
    ours = _predicted(challenger, X, classes) if n else None
    challenger_score = score(metric, y, *ours, classes) if n else None
    base = {
        "metric": metric,
        "challenger": challenger_score,
        "tolerance": tolerance,
        "n_holdout": n,
        "confidence": confidence,
    }
    if champion is None:
        why = "no champion yet: nothing to compare with"
        return GateResult(True, champion=None, reason=why, **base)
    if n < min_rows:
        champion_score = model_score(champion, X, y, metric) if n else None
        why = (
            f"not enough rows to tell: {n} rows neither model was trained on "
            f"(gate.min_rows is {min_rows})"
        )
        return _inconclusive(why, on_inconclusive, champion=champion_score, **base)
    theirs = _predicted(champion, X, classes)
    d = paired_difference(metric, y, ours, theirs, confidence=confidence, classes=classes)
    stated = (
        f"challenger {metric}={d.challenger:.4f} vs champion {d.champion:.4f} on {n} rows "
        f"neither was trained on: difference {d.difference:+.4f} "
        f"({confidence:.0%} bounds {d.lower:+.4f} to {d.upper:+.4f}"
        + (f", McNemar p={d.p_value:.3g}" if d.p_value is not None else "")
        + ")"
    )
    paired = {
        "champion": d.champion,
        "difference": d.difference,
        "lower": d.lower,
        "upper": d.upper,
        "p_value": d.p_value,
    }
    if not np.isfinite(d.difference) or not np.isfinite(d.lower + d.upper):
        why = (
            f"not measured: {stated}: {metric} is undefined on these rows"
            f"{_undefined(metric, y, classes, ours[1], theirs[1])}; champion kept (an undefined "
            "metric is no evidence, gate.on_inconclusive does not apply)"
        )
        return GateResult(False, reason=why, verdict="inconclusive", **paired, **base)
    if d.upper < -tolerance:
        why = f"{stated}: worse beyond the tolerance {tolerance}"
        return GateResult(False, reason=why, verdict="worse", **paired, **base)
    if d.lower >= -tolerance:
        why = f"{stated}: not worse beyond the tolerance {tolerance}"
        return GateResult(True, reason=why, verdict="not_worse", **paired, **base)
    why = f"{stated}: cannot tell whether it is worse beyond the tolerance {tolerance}"
    doubt = _doubt(d, tolerance, confidence)
    if doubt:
        why = f"{why}; {doubt}: champion kept"
        return GateResult(False, reason=why, verdict="inconclusive", **paired, **base)
    return _inconclusive(why, on_inconclusive, **paired, **base)


def _predicted(model: Any, X: pd.DataFrame, classes: list | None) -> tuple:
    """A model's predictions and scores, a multi-class model's score columns in the order of
    ``classes`` (both models' classes; a class the model lacks scores 0)."""
    pred, proba = predict(model, X)
    if isinstance(proba, pd.DataFrame) and classes is not None:
        proba = proba.reindex(columns=classes, fill_value=0.0)
    return pred, proba


def _undefined(metric: str, y: Sequence, classes: list | None, *scores) -> str:
    """Why ``metric`` has no value on rows ``y``: the models give no scores, or a class has no
    row ("" when neither explains it)."""
    if metric != "roc_auc":
        return ""
    if any(s is None for s in scores):
        return " (a model gives no class scores: no predict_proba)"
    missing = [c for c in classes or [] if c not in set(np.asarray(y).tolist())]
    if missing:
        return f" ({len(classes)} classes; no row of class {', '.join(map(str, missing))})"
    return ""


def _doubt(d: PairedDifference, tolerance: float, confidence: float) -> str:
    """Why an inconclusive challenger must not be promoted even so ("" when nothing speaks
    against it): it measured worse than the tolerance by more than one standard error of the
    difference (read from the one-sided bounds at ``confidence``), or it is significantly
    worse.

    Example:
        >>> d = PairedDifference(0.80, 0.81, -0.010, -0.030, 0.010, None)  # se 0.0122
        >>> _doubt(d, 0.0, 0.95)
        ''
        >>> worse = PairedDifference(0.78, 0.81, -0.030, -0.050, 0.001, None)  # se 0.0155
        >>> _doubt(worse, 0.0, 0.95).startswith("it measured 0.0300 worse, more than the")
        True
    """
    se = (d.upper - d.lower) / (2 * NormalDist().inv_cdf(confidence))
    if -tolerance - d.difference > se:
        return (
            f"it measured {-d.difference:.4f} worse, more than the tolerance {tolerance} by "
            f"more than one standard error ({se:.4f})"
        )
    if d.upper < 0:
        return "it is significantly worse than the champion (upper bound below 0)"
    return ""


def _inconclusive(why: str, on_inconclusive: str, **fields) -> GateResult:
    promote = on_inconclusive == "promote"
    policy = (
        "promoted: an inconclusive gate does not block a refresh"
        if promote
        else "champion kept until the rows can tell"
    )
    return GateResult(
        promote, reason=f"{why}; {policy} (gate.on_inconclusive)", verdict="inconclusive", **fields
    )


def unmeasured(result: GateResult, new_rows: int) -> GateResult:
    """``result`` marked as measuring nothing: the gate copy was fitted on exactly the
    champion's rows (the window did not slide, so the rows after the champion's window are the
    holdout), so it is the champion again. Promoted whatever ``on_inconclusive`` says: the refit
    is the champion's own fit with ``new_rows`` newer rows added, and keeping it would wait for
    a comparison that this window never allows.

    Example:
        >>> from sklearn.dummy import DummyClassifier
        >>> X, y = pd.DataFrame({"x": range(40)}), [1] * 30 + [0] * 10
        >>> same = DummyClassifier(strategy="most_frequent").fit(X, y)
        >>> found = unmeasured(evaluate_gate(same, same, X, y), 40)
        >>> found.verdict, found.passed, found.difference
        ('inconclusive', True, 0.0)
        >>> found.reason.startswith("not measured: the gate copy was fitted on the champion's")
        True
    """
    why = (
        "not measured: the gate copy was fitted on the champion's own rows (the window did not "
        "slide past them), so it predicts as the champion; promoted: the refit is the "
        f"champion's fit with the {new_rows} newer rows added (gate.on_inconclusive does not "
        "apply: this window never allows a comparison)"
    )
    fields = {k: v for k, v in asdict(result).items() if k not in ("passed", "reason", "verdict")}
    return GateResult(True, reason=why, verdict="inconclusive", **fields)


def holdout_size(rows: int, share: float, unseen: np.ndarray) -> int:
    """How many of the window's newest rows to hold out: those after the champion's window
    (``unseen``), at most ``share`` of the window; ``share`` of it when there are none.

    The gate copy is then fitted on the rows before these, reaching back over older batches to
    as many rows as the window (``retrain.as_much_history``): as much history as the champion
    had, and no row it is compared on. A longer holdout would fit it on older rows than the
    champion's and bias the gate against the challenger.

    Example:
        >>> holdout_size(1000, 0.2, np.r_[np.zeros(900, bool), np.ones(100, bool)])
        100
        >>> [holdout_size(1000, 0.2, np.full(1000, after)) for after in (True, False)]
        [200, 200]
    """
    cap = max(1, int(round(rows * share)))
    after = int(unseen.sum())
    return min(cap, after) if after else cap
