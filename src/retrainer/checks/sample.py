"""The checks that need reference rows: prediction drift, target drift and a multivariate check.

Profiles carry the univariate feature checks; three more checks need rows. Each registered
version therefore keeps a bounded **reference sample**: at most ``rows`` rows of its gate
holdout (the newest rows of its training window, drawn with a fixed seed), with their labels and
the version's predictions on them, stored as one content-addressed Parquet artifact and
referenced from the version's metrics (``metrics["reference_sample"]``). Against it, a batch gets:

- prediction drift: the champion's predictions on the batch against its predictions on the
  sample (labels of a classifier as categories, values of a regressor as numbers);
- target drift: the labels of the batch, when they arrive, against the sample's labels;
- one multivariate check of the features (``mmd`` by default, or ``domain_classifier`` or
  ``pca_reconstruction``) on at most ``multivariate_rows`` rows of each side.

The predictions on the sample are out of sample: those of the run's gate copy, the challenger
fitted on the window without the holdout, also when the registered version was refit on the
whole window after the gate (``gate.refit``; the entry names them ``"predictions": "held_out"``).
A refit model's own predictions on rows it was trained on would make the reference look better
than any batch it will ever see. The cycle
stores the results as ``drift`` checks on the columns ``prediction`` and ``target`` (the
multivariate check on the dataset, column None), with ``detail["output"]`` and the sample's hash
in ``detail["sample"]``; they are shown with the other checks and not read by the diagnosis.

Example:
    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.artifacts import ArtifactStore
    >>> rng = np.random.default_rng(0)
    >>> rows = pd.DataFrame({"x": rng.normal(size=400)}).assign(y=lambda d: d.x > 0)
    >>> model = DecisionTreeClassifier(max_depth=2).fit(rows[["x"]], rows.y)
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> entry = store_sample(store, model, rows, ["x"], "y", task="classification")
    >>> sample = ReferenceSample.load(store, entry)
    >>> shifted = pd.DataFrame({"x": rng.normal(1.0, 1.0, size=400)})
    >>> [(r.name, r.column, r.alarm) for r in prediction_drift(sample, model, shifted)][:1]
    [('z', 'prediction', True)]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from retrainer.checks.drift import output_drift
from retrainer.checks.multivariate import domain_classifier, mmd, pca_reconstruction
from retrainer.checks.result import CheckResult

SAMPLE_ROWS = 5000
PREDICTION = "__prediction__"  # the predictions' column in the sample artifact
MULTIVARIATE = {
    "mmd": mmd,
    "domain_classifier": domain_classifier,
    "pca_reconstruction": pca_reconstruction,
}


def at_most(rows: pd.DataFrame | pd.Series, max_rows: int, seed: int = 0):
    """At most ``max_rows`` of ``rows``, drawn with ``seed`` and kept in row order: how a
    version's reference sample is drawn (and how the backtest redraws it).

    >>> at_most(pd.Series(range(10)), 3).tolist()
    [2, 4, 8]
    """
    return rows.sample(max_rows, random_state=seed).sort_index() if len(rows) > max_rows else rows


def store_sample(
    artifacts: Any,
    model: Any,
    rows: pd.DataFrame,
    features: Sequence[str],
    target: str,
    *,
    task: str,
    max_rows: int = SAMPLE_ROWS,
    seed: int = 0,
) -> dict:
    """Store at most ``max_rows`` of ``rows`` with ``model``'s predictions; return the entry
    for the version's metrics.

    Parameters:
        artifacts: the artifact store (``put_frame``).
        model: a model fitted without ``rows`` (the run's gate copy).
        rows: reference rows with features and target (a version's gate holdout).
        features, target: the model's feature columns and the label column.
        task: ``"classification"`` or ``"regression"`` (how predictions and labels are tested).
        max_rows: the largest sample (drawn with ``seed``, kept in row order).
    """
    frame = at_most(rows, max_rows, seed)[[*features, target]].reset_index(drop=True)
    frame[PREDICTION] = model.predict(frame[list(features)])
    return {
        "artifact": artifacts.put_frame(frame),
        "rows": len(frame),
        "features": list(features),
        "target": target,
        "task": task,
        "predictions": "held_out",
    }


@dataclass(frozen=True)
class ReferenceSample:
    """A version's reference rows: features, labels and the version's predictions (``artifact``:
    the hash of the stored sample, named in the results' detail as ``sample``)."""

    features: pd.DataFrame
    labels: pd.Series
    predictions: pd.Series
    task: str
    artifact: str | None = None

    @classmethod
    def load(cls, artifacts: Any, entry: dict) -> ReferenceSample:
        """The sample an entry of ``store_sample`` points to (hash-verified by the store)."""
        frame = artifacts.get_frame(entry["artifact"])
        return cls(
            frame[list(entry["features"])],
            frame[entry["target"]],
            frame[PREDICTION],
            str(entry.get("task", "classification")),
            entry["artifact"],
        )

    @property
    def output_kind(self) -> str:
        return "categorical" if self.task == "classification" else "numeric"


def _tagged(results: list[CheckResult], output: str, sample: ReferenceSample) -> list[CheckResult]:
    tags = {"output": output, "sample": sample.artifact}
    return [replace(r, detail={**r.detail, **tags}) for r in results]


def prediction_drift(
    sample: ReferenceSample, model: Any, frame: pd.DataFrame, **options
) -> list[CheckResult]:
    """Drift of ``model``'s predictions on ``frame`` against its predictions on the sample.

    Parameters:
        sample: the version's reference sample.
        model: the version's model.
        frame: the batch (with the sample's feature columns).
        options: passed to ``check_drift`` (alpha, min_rows, method, ...).
    """
    missing = [c for c in sample.features.columns if c not in frame.columns]
    if missing:
        message = f"prediction drift not tested: the batch lacks the model's columns {missing}"
        result = CheckResult(
            "drift",
            "prediction_drift",
            "prediction",
            False,
            status="schema_error",
            message=message,
            detail={"missing": missing},
        )
        return _tagged([result], "prediction", sample)
    current = pd.Series(model.predict(frame[list(sample.features.columns)]))
    results = output_drift(
        sample.predictions, current, name="prediction", kind=sample.output_kind, **options
    )
    return _tagged(results, "prediction", sample)


def target_drift(sample: ReferenceSample, labels: pd.Series, **options) -> list[CheckResult]:
    """Drift of a batch's labels (nulls dropped) against the sample's labels.

    Example:
        >>> labels = pd.Series([0, 1] * 200)
        >>> s = ReferenceSample(pd.DataFrame(), labels, labels, "classification")
        >>> target_drift(s, pd.Series([1] * 300 + [0] * 100))[0].alarm
        True
    """
    known = labels.dropna()
    results = output_drift(sample.labels, known, name="target", kind=sample.output_kind, **options)
    return _tagged(results, "target", sample)


def multivariate_drift(
    sample: ReferenceSample,
    frame: pd.DataFrame,
    *,
    method: str = "mmd",
    max_rows: int = 500,
    seed: int = 0,
    exclude: Collection[str] = (),
    dispersion: Mapping[str, float] | None = None,
) -> CheckResult:
    """One multivariate check of ``frame``'s features against the sample's.

    Parameters:
        sample: the version's reference sample.
        frame: the batch.
        method: ``mmd``, ``domain_classifier`` or ``pca_reconstruction``.
        max_rows: rows of each side the check reads at most (drawn with ``seed``); columns
            the batch lacks read as missing.
        seed: sampling seed.
        exclude: features left out on both sides (a batch's date parts).
        dispersion: per column, how much more the champion's reference batches differ than
            their rows' spread explains (``checks.reference.dispersion``); MMD counts each row
            as 1 / the median over the checked columns (see :func:`mmd`).
    """
    if method not in MULTIVARIATE:
        raise ValueError(f"multivariate check {method!r} is not one of {sorted(MULTIVARIATE)}")
    columns = [c for c in sample.features.columns if c not in exclude]
    current = frame.reindex(columns=columns)
    reference, current = (at_most(f, max_rows, seed) for f in (sample.features[columns], current))
    options = {"max_rows": max_rows, "seed": seed}
    effects = [dispersion[c] for c in columns if c in (dispersion or {})]
    if method == "mmd" and effects:
        options["design_effect"] = float(np.median(effects))
    return MULTIVARIATE[method](reference, current, **options)
