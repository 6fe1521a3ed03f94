"""Trainers: any scikit-learn-style estimator by import path, fitted on a window of batches.

Example:
    >>> import pandas as pd
    >>> trainer = Trainer("sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
    >>> model = trainer.fit(X, [0, 0, 1, 1])
    >>> model.predict(X).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils import get_tags

from retrainer.data.schema import mostly_distinct
from retrainer.errors import TrainingError

MAX_ONE_HOT = 100  # one-hot columns of one text column at most (8,345 film titles: 131 s, 2 GB)


@dataclass(frozen=True)
class Trainer:
    """Builds and fits an estimator named by import path.

    Parameters:
        estimator: import path of a class with ``fit``/``predict`` (scikit-learn API).
        params: keyword arguments for its constructor.

    Categorical (string) features are one-hot encoded in a Pipeline in front of the estimator,
    so the registered model takes the raw feature frame; a feature with no value in the window
    (a column not recorded yet) is left out by that Pipeline, and so is a text column whose
    values are nearly all distinct (a name, a title, free text: the schema's id-like rule),
    which one-hot encoding would make one column per row. A column keeps its
    ``MAX_ONE_HOT - 1`` most frequent codes; the rest share one column.
    """

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """A fresh, unfitted estimator."""
        module, _, name = self.estimator.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise TrainingError(
                f"trainer.estimator: cannot import {self.estimator!r}: {exc}"
            ) from None
        try:
            return cls(**self.params)
        except TypeError as exc:
            raise TrainingError(f"trainer.params: {self.estimator} refused them: {exc}") from None

    def fit(self, X: pd.DataFrame, y: Sequence) -> Any:
        """Fit a fresh estimator (with encoding for string columns) and return it."""
        if len(X) == 0:
            raise TrainingError("cannot train on an empty window: no labelled rows")
        estimator = self.build()
        # A column with no value in the window teaches nothing, and some estimators (such as
        # HistGradientBoosting) cannot bin it: the model leaves it out until it is recorded.
        unrecorded = [c for c in X.columns if X[c].isna().all()]
        text = [
            c for c in X.columns if c not in unrecorded and not pd.api.types.is_numeric_dtype(X[c])
        ]
        distinct = [c for c in text if mostly_distinct(X[c].count(), X[c].nunique())]
        categorical = [c for c in text if c not in distinct]
        steps = []
        if categorical:
            # unknown codes: the infrequent codes' column when there is one, else none
            one_hot = OneHotEncoder(
                handle_unknown="infrequent_if_exist", max_categories=MAX_ONE_HOT
            )
            steps.append(("categories", one_hot, categorical))
        if unrecorded:
            steps.append(("unrecorded", "drop", unrecorded))
        if distinct:
            steps.append(("distinct", "drop", distinct))
        if steps:
            # one-hot columns are sparse when there are many categories; an estimator that
            # takes dense input only (HistGradientBoosting, GaussianNB) gets them dense
            sparse = 0.3 if _takes_sparse(estimator) else 0.0
            encode = ColumnTransformer(steps, remainder="passthrough", sparse_threshold=sparse)
            estimator = Pipeline([("encode", encode), ("model", estimator)])
        try:
            return clone(estimator).fit(X, y)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"{self.estimator} failed to fit {len(X)} rows: {exc}") from None


def _takes_sparse(estimator: Any) -> bool:
    """Whether ``estimator`` accepts sparse input, by its scikit-learn tags (unknown: no).

    >>> from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    >>> _takes_sparse(HistGradientBoostingClassifier()), _takes_sparse(RandomForestClassifier())
    (False, True)
    """
    try:
        return bool(get_tags(estimator).input_tags.sparse)
    except (AttributeError, TypeError, ValueError):
        return False


def predict(model: Any, X: pd.DataFrame) -> tuple[pd.Series, pd.Series | pd.DataFrame | None]:
    """Predictions and the scores: a binary classifier's positive-class score, a multi-class
    one's probabilities (one column per class of ``classes_``), None without ``predict_proba``.

    Example:
        >>> from sklearn.naive_bayes import GaussianNB
        >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
        >>> predict(GaussianNB().fit(X, ["a", "b", "c"]), X)[1].columns.tolist()
        ['a', 'b', 'c']
    """
    pred = pd.Series(model.predict(X), index=X.index)
    proba = None
    if hasattr(model, "predict_proba"):
        classes = list(getattr(model, "classes_", []))
        if len(classes) == 2:
            proba = pd.Series(model.predict_proba(X)[:, 1], index=X.index)
        elif len(classes) > 2:
            proba = pd.DataFrame(model.predict_proba(X), index=X.index, columns=classes)
    return pred, proba
