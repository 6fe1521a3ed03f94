"""Give every alarm a cause and the action it implies.

Causes: ``upstream_change`` (a producer changed the schema), ``data_quality`` (nulls, non-finite
values, out-of-range or unseen values), ``changed_relation`` (the error rose: concept drift) and
``covariate_drift`` (the inputs moved). Quality and upstream causes block retraining on the batch.

Example:
    >>> from retrainer.checks.result import CheckResult
    >>> alarm = diagnose([CheckResult("quality", "missing_column", "price", True, "error")])[0]
    >>> alarm.cause, alarm.blocking
    ('upstream_change', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrainer.checks.result import CheckResult

UPSTREAM = {"missing_column", "extra_column", "type_change"}
ACTIONS = {
    "upstream_change": "fix or map the input; do not retrain on it",
    "data_quality": "quarantine the batch and alert the data owner; do not retrain on it",
    "changed_relation": "retrain on recent labelled data",
    "covariate_drift": "watch, or retrain with the new region",
}


@dataclass(frozen=True)
class Alarm:
    """An alarm raised by a check, with its cause and action."""

    cause: str
    action: str
    severity: str
    check: str
    column: str | None
    message: str

    @property
    def blocking(self) -> bool:
        """Whether this alarm stops retraining on its batch (errors of quality or upstream)."""
        return self.cause in ("upstream_change", "data_quality") and self.severity == "error"

    def to_dict(self) -> dict:
        return {
            "cause": self.cause,
            "action": self.action,
            "severity": self.severity,
            "check": self.check,
            "column": self.column,
            "message": self.message,
            "blocking": self.blocking,
        }


def cause_of(result: CheckResult) -> str:
    """The cause a failed check points to."""
    if result.kind == "quality":
        return "upstream_change" if result.name in UPSTREAM else "data_quality"
    if result.kind in ("concept", "performance"):
        return "changed_relation"
    return "covariate_drift"


def diagnose(results: Sequence[CheckResult]) -> list[Alarm]:
    """Alarms for the failed checks, most severe first."""
    rank = {"error": 0, "warning": 1, "info": 2}
    alarms = [
        Alarm(cause, ACTIONS[cause], r.severity, r.name, r.column, r.message)
        for r in results
        if r.alarm
        for cause in [cause_of(r)]
    ]
    return sorted(alarms, key=lambda a: rank.get(a.severity, 3))
