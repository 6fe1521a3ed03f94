"""Quarantine per batch, conditions that persist, and how long retraining has been held back.

A batch whose diagnosis finds a blocking condition (an error of data quality or an upstream
change, of a cause in ``policy.block_on``) is set aside: stored and diagnosed, never trained on.
The other batches of the cycle proceed: they are predicted, evaluated and can be trained on.

A condition is its cause, rule and column (:func:`condition`). One that returns in
``quarantine.persist_batches`` consecutive batches is no longer an incident but the new normal;
``quarantine.on_persist`` says what then happens:

- ``alert`` (the default): the batches stay quarantined and one ``alert`` event says that the
  condition persists and needs a person (a fix, or ``on_persist: adopt``);
- ``adopt``: the streak's batches are released into the training window, the condition no
  longer quarantines, and a retrain is requested, so that the next champion's reference holds
  the new normal; the adoption ends when a new champion is promoted (its reference then has it).

Either way :func:`held_back` says in one line how long retraining has been held back: the newest
batches that were all quarantined, since when, and by which conditions.

Example:
    >>> from retrainer.diagnosis import Alarm
    >>> condition(Alarm("data_quality", "block", "error", "stuck", "x", "stuck at 3"))
    "data_quality: stuck (column 'x')"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from retrainer.store.tables import BatchRow

if TYPE_CHECKING:
    from retrainer.record import Record

STATE = "quarantine"


def condition(alarm: Any) -> str:
    """The condition an alarm reports: cause, rule and column, without the batch's numbers."""
    where = f" (column '{alarm.column}')" if alarm.column else ""
    return f"{alarm.cause}: {alarm.check}{where}"


class Quarantine:
    """The quarantine decisions of one cycle, batch by batch (oldest first), with the streaks of
    conditions kept in the project's state between cycles."""

    def __init__(self, project: Record):
        self.p = project
        self.settings = project.config.quarantine
        state = project.get_state(STATE) or {}
        self.streaks: dict[str, list[int]] = dict(state.get("streaks", {}))
        self.adopted: dict[str, str] = dict(state.get("adopted", {}))

    def screen(self, s: Any, batch_id: int, blocking: Sequence[Any], cycle_id: int) -> list[Any]:
        """The alarms that quarantine batch ``batch_id`` (of its ``blocking`` ones: those whose
        condition was not adopted), after updating the streaks; on a streak reaching
        ``persist_batches`` applies ``on_persist`` (in session ``s``)."""
        kept = [a for a in blocking if condition(a) not in self.adopted]
        now = {condition(a) for a in kept}
        self.streaks = {k: [*self.streaks.get(k, []), batch_id] for k in sorted(now)}
        n = self.settings.persist_batches
        for key, batches in self.streaks.items():
            if len(batches) != n:
                continue
            if self.settings.on_persist == "adopt":
                self._adopt(s, key, batches[:-1], cycle_id)
                kept = [a for a in kept if condition(a) != key]
            else:
                self.p.event(
                    s,
                    "alert",
                    f"{key} persisted for {n} consecutive batches (since batch {batches[0]}): "
                    "the batches stay quarantined (quarantine.on_persist is alert); fix it "
                    "upstream, or adopt it as the new normal (quarantine.on_persist: adopt)",
                    cycle_id=cycle_id,
                    batch_id=batch_id,
                    condition=key,
                    batches=batches,
                )
        self.p.set_state(STATE, {"streaks": self.streaks, "adopted": self.adopted}, s)
        return kept

    def _adopt(self, s: Any, key: str, batches: list[int], cycle_id: int) -> None:
        self.adopted[key] = f"adopted after {len(batches) + 1} consecutive batches"
        for row in s.scalars(select(BatchRow).where(BatchRow.id.in_(batches))):
            if row.status == "quarantined":
                row.status = "processed"
                row.note = f"released: {key} adopted as the new normal; was {row.note}"
        self.p.set_state("manual", {"reason": f"adopt {key} as the new normal"}, s)
        self.p.event(
            s,
            "quarantine",
            f"{key} persisted for {len(batches) + 1} batches: adopted as the new normal "
            f"(quarantine.on_persist is adopt); batches {batches} released, retrain requested",
            cycle_id=cycle_id,
            condition=key,
            batches=batches,
        )

    def tolerated(self, alarms: Sequence[Any]) -> list[Any]:
        """``alarms`` for the decision: those of an adopted condition as warnings (they no
        longer block)."""
        return [
            replace(a, severity="warning", message=f"{a.message} (adopted as the new normal)")
            if condition(a) in self.adopted
            else a
            for a in alarms
        ]

    def promoted(self) -> None:
        """A new champion was promoted: its reference holds what was adopted."""
        if self.adopted:
            self.adopted = {}
            self.p.set_state(STATE, {"streaks": self.streaks, "adopted": {}})


def held_back(project: Record) -> dict | None:
    """How long retraining has been held back: the newest checked batches that were all
    quarantined (their number, the first one's time, the conditions), or None when the newest
    checked batch was not quarantined.

    Example:
        >>> import tempfile
        >>> from retrainer.project import Project
        >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
        >>> held_back(project) is None
        True
    """
    with project.store.session() as s:
        rows = s.scalars(
            select(BatchRow).where(BatchRow.status != "new").order_by(BatchRow.id.desc())
        )
        trailing = []
        for row in rows:
            if row.status != "quarantined":
                break
            trailing.append((row.id, row.data_time or row.received_at, row.note))
    if not trailing:
        return None
    state = project.get_state(STATE) or {}
    by = sorted(state.get("streaks", {})) or [trailing[0][2].split("; ")[0][:120]]
    first_id, since, _ = trailing[-1]
    n = len(trailing)
    line = (
        f"Retraining held back for {n} batch{'es' if n > 1 else ''} "
        f"(since {since.date().isoformat()}, batch {first_id}) by quarantined batches: "
        + "; ".join(by)
    )
    return {
        "batches": n,
        "since": since.isoformat(),
        "first_batch": first_id,
        "by": by,
        "line": line,
    }
