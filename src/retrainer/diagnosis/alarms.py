"""Alarms and their ranking: the causes an alarm can have, the action each implies, and a
batch's :class:`Diagnosis` (what :mod:`retrainer.diagnosis.engine` finds, and the CLI reads back
from the store without importing the engine's rules).

Example:
    >>> alarm = Alarm("data_quality", ACTIONS["data_quality"], "error", "nulls", "x", "30% nulls")
    >>> alarm.blocking, rank([alarm]).top
    (True, 'data_quality')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from retrainer.checks.result import plain

CAUSES = ("upstream_change", "data_quality", "changed_relation", "covariate_drift")
ACTIONS = {
    "upstream_change": "fix or map the input at the producer or with data.fixes; "
    "do not retrain on it",
    "data_quality": "quarantine the batch and alert the data owner; do not retrain on it",
    "changed_relation": "retrain on recent labelled data and shrink the window",
    "covariate_drift": "watch, or retrain with the new region and weigh recent data",
}
WORDS = {
    "upstream_change": "an upstream change (a producer changed what it sends)",
    "data_quality": "a data-quality issue (broken values in the batch)",
    "changed_relation": "a changed relation (the same inputs now get other labels)",
    "covariate_drift": "covariate drift (the inputs moved, the relation may hold)",
}
COVARIATE_MAX = 0.8  # covariate drift never outranks structural evidence


@dataclass(frozen=True)
class Alarm:
    """One finding: its cause, the action it implies, how sure, and the evidence behind it.

    ``check`` names the rule that matched (``rename``, ``scale``, ``nulls``, ...);
    ``evidence`` holds the checks and values it read; ``fix`` a ``data.fixes`` snippet when the
    mapping is evident.
    """

    cause: str
    action: str
    severity: str
    check: str
    column: str | None
    message: str
    confidence: float = 1.0
    evidence: tuple[dict, ...] = ()
    fix: dict | None = None

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
            "confidence": round(float(self.confidence), 3),
            "evidence": [plain(e) for e in self.evidence],
            "fix": self.fix,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Alarm:
        return cls(
            d["cause"],
            d["action"],
            d["severity"],
            d["check"],
            d.get("column"),
            d["message"],
            float(d.get("confidence", 1.0)),
            tuple(d.get("evidence") or ()),
            d.get("fix"),
        )


@dataclass(frozen=True)
class RankedCause:
    """One cause of a diagnosis: combined confidence, the columns it touches, the action."""

    cause: str
    confidence: float
    columns: tuple[str, ...]
    action: str
    blocking: bool

    def to_dict(self) -> dict:
        return {
            "cause": self.cause,
            "confidence": round(float(self.confidence), 3),
            "columns": list(self.columns),
            "action": self.action,
            "blocking": self.blocking,
            "words": WORDS[self.cause],
        }


@dataclass(frozen=True)
class Diagnosis:
    """The ranked causes of one batch's alarms, the alarms themselves, and the input shift: the
    largest total-variation distance from the reference (0..1) among the columns whose drift
    test alarmed (0 when no test said the inputs moved: the distance of an unchanged column is
    sampling noise, large in a small batch)."""

    causes: tuple[RankedCause, ...]
    alarms: tuple[Alarm, ...]
    shift: float = 0.0
    fix: dict = field(default_factory=dict)

    @property
    def top(self) -> str | None:
        """The first-ranked cause, or None when nothing is wrong."""
        return self.causes[0].cause if self.causes else None

    @property
    def blocking(self) -> bool:
        return any(a.blocking for a in self.alarms)

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "causes": [c.to_dict() for c in self.causes],
            "alarms": [a.to_dict() for a in self.alarms],
            "shift": round(float(self.shift), 4),
            "fix": self.fix,
        }

    def explain(self) -> list[str]:
        """The diagnosis in plain words, one line each, first cause first."""
        if not self.causes:
            return ["nothing wrong: no check raised an alarm the diagnosis keeps"]
        lines = []
        for rank, c in enumerate(self.causes, 1):
            where = f" in {', '.join(c.columns)}" if c.columns else ""
            lines.append(f"{rank}. {WORDS[c.cause]}{where} (confidence {c.confidence:.2f})")
            lines += [f"   - {a.message}" for a in self.alarms if a.cause == c.cause]
            lines.append(f"   action: {c.action}")
        if self.fix:
            lines.append(f"proposed fix (retrainer accept-fix): data.fixes = {self.fix}")
        return lines


def rank(alarms: Sequence[Alarm], shift: float = 0.0) -> Diagnosis:
    """Rank causes by combined confidence (noisy-or of their alarms; covariate drift capped at
    0.8) and order the alarms by their cause's rank, then their own confidence.

    Example:
        >>> a = Alarm("data_quality", ACTIONS["data_quality"], "error", "nulls", "x", "nulls", 0.9)
        >>> b = Alarm("covariate_drift", ACTIONS["covariate_drift"], "warning", "drift", "y",
        ...           "moved", 0.6)
        >>> [c.cause for c in rank([b, a]).causes]
        ['data_quality', 'covariate_drift']
    """
    combined: dict[str, float] = {}
    for a in alarms:
        combined[a.cause] = 1 - (1 - combined.get(a.cause, 0.0)) * (1 - a.confidence)
    if "covariate_drift" in combined:
        combined["covariate_drift"] = min(COVARIATE_MAX, combined["covariate_drift"])
    order = sorted(combined, key=lambda c: (-combined[c], CAUSES.index(c)))
    causes = tuple(
        RankedCause(
            c,
            combined[c],
            tuple(dict.fromkeys(a.column for a in alarms if a.cause == c and a.column)),
            next(a.action for a in alarms if a.cause == c),
            any(a.blocking for a in alarms if a.cause == c),
        )
        for c in order
    )
    ordered = sorted(alarms, key=lambda a: (order.index(a.cause), -a.confidence))
    fix: dict = {}
    for a in ordered:
        for section, entries in (a.fix or {}).items():
            fix.setdefault(section, {}).update(entries)
    return Diagnosis(causes, tuple(ordered), shift, fix)
