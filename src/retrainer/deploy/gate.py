"""The deploy part of the gate: a challenger must fit every declared microcontroller target.

For each target of the project file (``deploy_targets``) the model is exported to C, compiled on
the host and compared with Python on the held-out rows, cross-compiled for the target and
measured. A target that fails, or could not be measured, fails the gate.

Example:
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml import DeployTarget
    >>> X = np.linspace(0, 1, 40).reshape(-1, 1); y = (X[:, 0] > 0.5).astype(int)
    >>> tree = DecisionTreeClassifier().fit(X, y)
    >>> outcome = check_targets([DeployTarget("m4", 256, 64)], tree, X, y)
    >>> outcome.reports["m4"].parity.agreement
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrainer.data.schema import Schema
from retrainer.deploy.tinyml import DeployTarget, TargetReport, check_target, write_bundle
from retrainer.deploy.tinyml.telemetry import TelemetryLayout
from retrainer.errors import DataError
from retrainer.profile.batch import BatchProfile


@dataclass(frozen=True)
class TargetsOutcome:
    """Reports per target, whether all passed, and one reason line per failure."""

    reports: dict[str, TargetReport] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports.values())

    @property
    def reasons(self) -> list[str]:
        return [f"target {n}: {why}" for n, r in self.reports.items() for why in r.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {name: report.to_dict() for name, report in self.reports.items()}


def check_targets(
    targets: Sequence[DeployTarget],
    model: Any,
    X: Any,
    y: Any = None,
    *,
    feature_names: Sequence[str] | None = None,
) -> TargetsOutcome:
    """Check ``model`` against every target on the rows ``X`` (and labels ``y``)."""
    names = list(feature_names) if feature_names is not None else None
    return TargetsOutcome(
        {t.name: check_target(model, t, X, y, feature_names=names) for t in targets}
    )


def write_bundles(
    outcome: TargetsOutcome,
    directory: Path,
    version: int,
    *,
    reference: BatchProfile | dict | None = None,
    schema: Schema | None = None,
) -> dict[str, str]:
    """Write one deploy bundle per passed target; returns target -> bundle folder.

    With the version's ``reference`` profile (and ``schema`` for the range bounds) each bundle
    also holds the device telemetry sketch configured from the reference's bin edges; a model
    whose features cannot be sketched (non-numeric) is bundled without it.
    """
    written = {}
    for name, report in outcome.reports.items():
        if not report.passed:
            continue
        layout = None
        if reference is not None and report.export is not None:
            export = report.export
            try:
                layout = TelemetryLayout.build(
                    reference,
                    export.feature_names,
                    version=version,
                    classes=export.classes,
                    schema=schema,
                    name=export.name,
                )
            except DataError:
                layout = None
        bundle = write_bundle(report, directory, version=str(version), telemetry=layout)
        written[name] = str(bundle.path)
    return written
