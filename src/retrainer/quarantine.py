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

A batch whose only blocking findings are bursts of far-out values (``out_of_range_burst``: a few
values ``FAR`` reference widths beyond the reference's range) is not quarantined when those rows
are at most ``SET_ASIDE_SHARE`` (10 %) of its rows: :func:`far_rows` names them, they are set
aside (:func:`set_aside`: kept in the stored batch, listed in the project's ``set_aside`` state,
left out of every training window, holdout and evaluation) and the rest of the batch is checked
again and proceeds; the alarm stays, as a warning. ``retrainer release B`` brings them back
(:func:`release_rows`). A larger share of far-out rows quarantines the batch as a whole.

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

from retrainer.record import SET_ASIDE
from retrainer.store.tables import BatchRow, StateRow

if TYPE_CHECKING:
    import pandas as pd

    from retrainer.data.schema import Schema
    from retrainer.record import Record

STATE = "quarantine"
SET_ASIDE_SHARE = 0.1  # far-out rows up to this share of a batch are set aside, not the batch
EXAMPLES = 3


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


def far_rows(
    frame: pd.DataFrame, schema: Schema, edges: dict, blocking: Sequence[Any]
) -> dict[str, list[int]] | None:
    """The rows to set aside instead of quarantining the batch, per column (positions in
    ``frame``): when every ``blocking`` alarm is a burst of far-out values and their rows
    together are at most ``SET_ASIDE_SHARE`` of the batch; else None.

    A row is far out as the profile counts it (``FAR`` widths beyond the reference's ``edges``)
    and, with a contract range, outside that range too.

    Example:
        >>> import numpy as np
        >>> import pandas as pd
        >>> from retrainer.data.schema import Schema
        >>> from retrainer.diagnosis import Alarm
        >>> frame = pd.DataFrame({"p": [1.0] * 28 + [9.0, -7.0]})
        >>> burst = Alarm("data_quality", "", "error", "out_of_range_burst", "p", "2 far values")
        >>> schema, edges = Schema.infer(frame.iloc[:28]), {"p": np.array([0.0, 2.0])}
        >>> far_rows(frame, schema, edges, [burst])
        {'p': [28, 29]}
        >>> far_rows(frame.iloc[20:], schema, edges, [burst]) is None  # 2 of 10: the batch
        True
    """
    if not blocking or any(a.check != "out_of_range_burst" or not a.column for a in blocking):
        return None
    import numpy as np  # here: commands that only read the store (status) start without it

    from retrainer.profile.column import far_mask

    found: dict[str, list[int]] = {}
    for column in sorted({a.column for a in blocking}):
        if column not in frame or column not in edges:
            return None
        values = frame[column].to_numpy(dtype="float64", na_value=np.nan)
        mask = far_mask(values, np.asarray(edges[column], dtype="float64"))
        spec = schema[column]
        if spec.min is not None and spec.max is not None:
            mask &= (values < spec.min) | (values > spec.max)
        if not mask.any():
            return None
        found[column] = np.flatnonzero(mask).tolist()
    rows = set().union(*found.values())
    return found if len(rows) <= SET_ASIDE_SHARE * len(frame) else None


def aside_alarm(alarm: Any, frame: pd.DataFrame, rows: list[int], batch_id: int) -> Any:
    """``alarm`` (a burst of far-out values) once its ``rows`` were set aside: a warning that
    names the rows, a few of their values and how to bring them back."""
    values = frame[alarm.column].to_numpy()[rows[:EXAMPLES]]
    shown = ", ".join(f"row {r}: {v:.6g}" for r, v in zip(rows, values, strict=False))
    n = len(rows)
    message = (
        f"{alarm.message}; {n} row{'s' if n > 1 else ''} of {len(frame)} set aside "
        f"(column {alarm.column!r}, e.g. {shown}), the rest of the batch proceeds; "
        f"`retrainer release {batch_id} --reason ...` if they are real"
    )
    action = "rows set aside (not trained or evaluated on); alert the data owner"
    return replace(alarm, severity="warning", message=message, action=action)


def set_aside(project: Record, s: Any, batch_id: int, found: dict[str, list[int]]) -> str:
    """Record ``found`` (rows per column) as set aside for batch ``batch_id`` (in session
    ``s``); returns the note for the batch."""
    rows = sorted(set().union(*found.values()))
    state = _aside_state(s)
    state[str(batch_id)] = {"rows": rows, "columns": found}
    project.set_state(SET_ASIDE, state, s)
    where = ", ".join(f"{len(r)} in {c!r}" for c, r in found.items())
    return f"{len(rows)} row(s) set aside ({where}): far-out values; the rest proceeds"


def release_rows(project: Record, batch_id: int, reason: str, actor: str = "user") -> dict | None:
    """Bring a batch's set-aside rows back into training windows (None when it has none)."""
    with project.store.session() as s:
        state = _aside_state(s)
        entry = state.pop(str(batch_id), None)
        row = s.get(BatchRow, batch_id)
        if entry is None or row is None:
            return None
        project.set_state(SET_ASIDE, state, s)
        row.note = f"{row.note}; rows released by {actor}: {reason}".lstrip("; ")
        message = (
            f"batch {batch_id}: {len(entry['rows'])} set-aside row(s) released by {actor}: "
            f"{reason}; later training windows include them"
        )
        project.event(
            s,
            "release",
            message,
            batch_id=batch_id,
            actor=actor,
            reason=reason,
            rows=entry["rows"],
        )
        return {
            "id": row.id,
            "status": row.status,
            "artifact": row.artifact,
            "before": row.artifact,
            "quality_alarms": [],
            "rows": entry["rows"],
            "message": message,
        }


def set_aside_summary(project: Record) -> dict | None:
    """The rows set aside and not released (how many, in which batches, and a line saying
    how to bring them back), or None when there are none."""
    with project.store.session() as s:
        state = _aside_state(s)
    if not state:
        return None
    batches = sorted(int(b) for b in state)
    rows = sum(len(state[str(b)]["rows"]) for b in batches)
    shown = ", ".join(str(b) for b in batches[:EXAMPLES]) + (
        ", ..." if len(batches) > EXAMPLES else ""
    )
    line = (
        f"{rows} row(s) with far-out values set aside in {len(batches)} batch(es) ({shown}): "
        f"not trained or evaluated on; `retrainer release {batches[-1]} --reason ...` if real"
    )
    return {"batches": batches, "rows": rows, "line": line}


def _aside_state(s: Any) -> dict:
    """The rows set aside per batch (read in session ``s``)."""
    row = s.get(StateRow, SET_ASIDE)
    return dict(row.value) if row else {}
