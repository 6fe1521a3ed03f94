"""What the loop keeps with a model version to watch it later: its performance estimator (for
batches without labels) and its concept detector's calibrated threshold (for the error stream).

Both are fitted on held-out rows the model did not train on (the gate's holdout, scored by the
challenger before any refit), so calibration and false-alarm rates are out of sample.

Example:
    >>> import tempfile
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.artifacts import ArtifactStore
    >>> from retrainer.config import Config
    >>> from retrainer.datasets import load_elec2
    >>> elec = load_elec2()
    >>> X, y = elec[["period", "nswprice", "nswdemand"]], elec["target"]
    >>> model = DecisionTreeClassifier(max_depth=4).fit(X[:2000], y[:2000])
    >>> config = Config.from_dict({"data": {"target": "target"},
    ...                            "checks": {"concept": {"detector": "DDM", "arl": 500}}})
    >>> found = version_monitors(config, ArtifactStore(tempfile.mkdtemp()), model,
    ...                          X[2000:2500], y[2000:2500])
    >>> found["estimator"]["method"], found["concept"]["detector"], found["concept"]["arl"] >= 500
    ('cbpe', 'DDM', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from numpy.typing import ArrayLike

from retrainer.checks.concept.calibrate import calibrate_detector, error_stream
from retrainer.checks.estimate import fit_estimator, save_estimator
from retrainer.errors import RetrainerError

if TYPE_CHECKING:
    from retrainer.artifacts import ArtifactStore
    from retrainer.config import Config


def version_monitors(
    config: Config, artifacts: ArtifactStore, model: Any, X: pd.DataFrame, y: ArrayLike
) -> dict:
    """The estimator spec (its fitted part stored as a skops artifact) and the concept
    calibration of ``model`` from held-out rows ``X, y``; a part that cannot be fitted is None
    and its reason is kept under ``notes``."""
    task, metric = config.trainer.task, config.gate.metric
    found: dict = {"estimator": None, "concept": None, "notes": []}
    try:
        estimator = fit_estimator(task, metric, model, X, y)
        if estimator is not None:
            found["estimator"] = save_estimator(estimator, artifacts)
        else:
            found["notes"].append(f"no label-free estimate of {metric} for this model")
    except (RetrainerError, ValueError) as exc:
        found["notes"].append(f"estimator: {exc}")
        found["no_estimate"] = str(exc)  # each unlabelled batch's check says so
    concept = config.checks.concept
    if concept.arl is not None:
        stream = error_stream(task, concept.loss, y, model.predict(X))
        try:
            found["concept"] = calibrate_detector(
                concept.detector, dict(concept.params), stream, arl=concept.arl
            ).to_dict()
        except RetrainerError as exc:
            found["notes"].append(f"concept calibration: {exc}")
    return found
