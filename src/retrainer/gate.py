"""The gate: a challenger becomes champion only if it does not regress on recent held-out data.

Example:
    >>> from sklearn.dummy import DummyClassifier
    >>> import pandas as pd
    >>> X, y = pd.DataFrame({"x": [0, 1, 2, 3]}), [1, 1, 1, 0]
    >>> good = DummyClassifier(strategy="most_frequent").fit(X, y)
    >>> bad = DummyClassifier(strategy="constant", constant=0).fit(X, y)
    >>> result = evaluate_gate(bad, good, X, y, metric="accuracy")
    >>> result.passed, result.challenger, result.champion
    (False, 0.25, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from retrainer.metrics import is_worse, score
from retrainer.training import predict


@dataclass(frozen=True)
class GateResult:
    """The outcome of a gate: scores of both models on the same held-out rows, and why."""

    passed: bool
    metric: str
    challenger: float
    champion: float | None
    tolerance: float
    n_holdout: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_score(model: Any, X: pd.DataFrame, y: Sequence, metric: str) -> float:
    """Score a fitted model on labelled rows."""
    pred, proba = predict(model, X)
    return score(metric, y, pred, proba)


def evaluate_gate(
    challenger: Any,
    champion: Any | None,
    X: pd.DataFrame,
    y: Sequence,
    *,
    metric: str = "accuracy",
    tolerance: float = 0.0,
) -> GateResult:
    """Compare ``challenger`` with ``champion`` on held-out rows ``X, y``."""
    challenger_score = model_score(challenger, X, y, metric)
    if champion is None:
        return GateResult(
            True,
            metric,
            challenger_score,
            None,
            tolerance,
            len(X),
            "no champion yet: nothing to compare with",
        )
    champion_score = model_score(champion, X, y, metric)
    worse = is_worse(metric, challenger_score, champion_score, tolerance)
    verdict = "regresses beyond" if worse else "is within"
    reason = (
        f"challenger {metric}={challenger_score:.4f} vs champion {champion_score:.4f} "
        f"on {len(X)} held-out rows: {verdict} the tolerance {tolerance}"
    )
    return GateResult(
        not worse, metric, challenger_score, champion_score, tolerance, len(X), reason
    )
