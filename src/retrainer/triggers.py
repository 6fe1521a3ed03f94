"""Retraining triggers and the policy that turns evidence into a decision with reasons.

The same policy runs live (one call per cycle) and in a replay. Time is the data's time when the
project names a time column, so that replays of history honour schedules and cooldowns.

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> policy = Policy([ScheduleTrigger(every=timedelta(days=7))], cooldown=timedelta(days=1))
    >>> now = datetime(2024, 1, 10, tzinfo=UTC)
    >>> policy.decide(Evidence(now=now, last_retrain=now - timedelta(days=8))).action
    'retrain'
    >>> policy.decide(Evidence(now=now, last_retrain=now - timedelta(days=2))).action
    'hold'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from retrainer.config import PolicySettings, TriggerSettings
from retrainer.diagnose import Alarm
from retrainer.metrics import is_worse


@dataclass(frozen=True)
class Evidence:
    """What a cycle knows when the policy decides."""

    now: datetime
    last_retrain: datetime | None = None
    new_labelled_rows: int = 0
    alarms: Sequence[Alarm] = ()
    drifted_columns: Sequence[str] = ()
    dataset_drift: bool = False
    concept_drift: bool = False
    metric: str = "accuracy"
    performance: float | None = None
    reference_performance: float | None = None
    manual: str | None = None
    has_champion: bool = True


@dataclass(frozen=True)
class Decision:
    """``retrain``, ``hold`` or ``alert``, with the reasons that fired and those suppressed."""

    action: str
    reasons: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "suppressed": list(self.suppressed),
        }


@dataclass(frozen=True)
class ScheduleTrigger:
    """Fires when ``every`` has passed since the last retrain, or at each ``cron`` slot."""

    every: timedelta | None = None
    cron: str | None = None

    def fire(self, ev: Evidence) -> str | None:
        if ev.last_retrain is None:
            return None
        if self.every is not None and ev.now - ev.last_retrain >= self.every:
            return (
                f"schedule: {ev.now - ev.last_retrain} since the last retrain (every {self.every})"
            )
        if self.cron is not None:
            from croniter import croniter

            slot = croniter(self.cron, ev.last_retrain).get_next(datetime)
            if slot <= ev.now:
                return f"schedule: cron slot {slot.isoformat()} ({self.cron}) has passed"
        return None


@dataclass(frozen=True)
class VolumeTrigger:
    """Fires when at least ``min_rows`` new labelled rows arrived since the last retrain."""

    min_rows: int

    def fire(self, ev: Evidence) -> str | None:
        if ev.new_labelled_rows >= self.min_rows:
            return f"volume: {ev.new_labelled_rows} new labelled rows (>= {self.min_rows})"
        return None


@dataclass(frozen=True)
class DriftTrigger:
    """Fires on dataset-level data drift, or on drift of any of the named ``columns``."""

    columns: tuple[str, ...] = ()

    def fire(self, ev: Evidence) -> str | None:
        if self.columns:
            hit = sorted(set(self.columns) & set(ev.drifted_columns))
            return f"drift: columns {', '.join(hit)} drifted" if hit else None
        if ev.dataset_drift:
            return f"drift: dataset drift ({', '.join(ev.drifted_columns)} drifted)"
        return None


@dataclass(frozen=True)
class ConceptTrigger:
    """Fires when the error-stream detector signals concept drift."""

    def fire(self, ev: Evidence) -> str | None:
        return "concept: the error-stream detector signalled drift" if ev.concept_drift else None


@dataclass(frozen=True)
class PerformanceTrigger:
    """Fires when realised performance drops ``max_drop`` below the champion's own, or below
    ``min_value``."""

    max_drop: float | None = None
    min_value: float | None = None

    def fire(self, ev: Evidence) -> str | None:
        value, ref = ev.performance, ev.reference_performance
        if value is None:
            return None
        if self.min_value is not None and is_worse(ev.metric, value, self.min_value):
            return f"performance: {ev.metric}={value:.4f} is below the floor {self.min_value}"
        if (
            self.max_drop is not None
            and ref is not None
            and is_worse(ev.metric, value, ref, self.max_drop)
        ):
            return (
                f"performance: {ev.metric}={value:.4f} dropped more than {self.max_drop} "
                f"from the champion's {ref:.4f}"
            )
        return None


@dataclass(frozen=True)
class ManualTrigger:
    """Fires when someone asked for a retrain; ignores the cooldown."""

    def fire(self, ev: Evidence) -> str | None:
        return f"manual: {ev.manual}" if ev.manual else None


Trigger = (
    ScheduleTrigger
    | VolumeTrigger
    | DriftTrigger
    | ConceptTrigger
    | PerformanceTrigger
    | ManualTrigger
)


def trigger_from_settings(s: TriggerSettings) -> Trigger:
    """Build one trigger from its project-file entry."""
    if s.type == "schedule":
        return ScheduleTrigger(every=s.every, cron=s.cron)
    if s.type == "volume":
        return VolumeTrigger(min_rows=s.min_rows)
    if s.type == "drift":
        return DriftTrigger(columns=tuple(s.columns or ()))
    if s.type == "concept":
        return ConceptTrigger()
    if s.type == "performance":
        return PerformanceTrigger(max_drop=s.max_drop, min_value=s.min_value)
    return ManualTrigger()


@dataclass(frozen=True)
class Policy:
    """Any trigger firing means retrain, unless a blocking alarm or the cooldown holds it back.

    Parameters:
        triggers: the triggers, combined with *any*.
        cooldown: minimum time between retrains (manual requests ignore it).
        block_on: alarm causes that block retraining and raise an alert instead.
    """

    triggers: Sequence[Trigger] = field(default_factory=tuple)
    cooldown: timedelta | None = None
    block_on: Sequence[str] = ("data_quality", "upstream_change")

    @classmethod
    def from_settings(cls, s: PolicySettings) -> Policy:
        return cls(
            tuple(trigger_from_settings(t) for t in s.triggers), s.cooldown, tuple(s.block_on)
        )

    def decide(self, ev: Evidence) -> Decision:
        """The decision for this evidence."""
        if not ev.has_champion:
            return Decision("retrain", ("bootstrap: no champion yet",))
        fired = [reason for t in self.triggers if (reason := t.fire(ev))]
        blocking = [a for a in ev.alarms if a.blocking and a.cause in self.block_on]
        if blocking:
            causes = sorted({f"{a.cause}: {a.message}" for a in blocking})
            return Decision("alert", tuple(f"blocked by {c}" for c in causes), tuple(fired))
        if not fired:
            alarms = tuple(sorted({f"{a.cause}: {a.check}" for a in ev.alarms}))
            watch_only = all(a.cause == "covariate_drift" for a in ev.alarms)
            return Decision("hold" if watch_only else "alert", alarms)
        manual = [r for r in fired if r.startswith("manual")]
        cooling = (
            self.cooldown is not None
            and ev.last_retrain is not None
            and ev.now - ev.last_retrain < self.cooldown
        )
        if cooling and not manual:
            note = (
                f"cooldown: {ev.now - ev.last_retrain} since the last retrain (< {self.cooldown})"
            )
            return Decision("hold", (note,), tuple(fired))
        return Decision("retrain", tuple(fired))
