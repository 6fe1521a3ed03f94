"""The drift reference in the loop: build a batch's reference from the store as the project file
asks (``checks.drift.reference``), and hint at a seasonal reference when drift looks periodic.

Stored profiles taken on the champion's edges are merged as they are; a batch profiled under
an earlier champion is profiled again from its stored rows on the current edges.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from retrainer.checks.reference import (
    FIXED_NOTE,
    HINT_HISTORY,
    Candidate,
    Chosen,
    ReferenceSpec,
    fixed_reference,
    periodic_drift,
    reference_for,
)
from retrainer.checks.result import CheckResult
from retrainer.profile import BatchProfile
from retrainer.store.tables import BatchRow, CheckRow, ProfileRow

if TYPE_CHECKING:
    from retrainer.record import Record


def spec_of(project: Record) -> ReferenceSpec:
    """The project's reference choice."""
    r = project.config.checks.drift.reference
    return ReferenceSpec(r.kind, r.window, r.period, r.min_rows, r.periods)


def drift_reference(project: Record, batch_id: int, champion: Any, fixed: BatchProfile) -> Chosen:
    """The reference batch ``batch_id`` is drift-checked against (see ``checks.reference``):
    earlier stored batches that were not quarantined, chosen by data time."""
    chosen = _chosen(project, batch_id, champion, fixed)
    if chosen.kind != "fixed":
        return chosen
    trained_on = ((champion.lineage or {}).get("window") or {}).get("batches")
    return replace(chosen, newest=max(trained_on) if trained_on else None)


def _chosen(project: Record, batch_id: int, champion: Any, fixed: BatchProfile) -> Chosen:
    spec = spec_of(project)
    if spec.kind == "fixed":
        return fixed_reference(fixed)
    with project.store.session() as s:
        at = s.get(BatchRow, batch_id).data_time
        rows = s.execute(
            select(BatchRow.id, BatchRow.data_time, BatchRow.n_rows).where(
                BatchRow.id < batch_id,
                BatchRow.status != "quarantined",
                BatchRow.data_time.is_not(None),
            )
        ).all()
    history = [Candidate(i, _aware(t), n) for i, t, n in rows]
    edges, schema = fixed.edges(), project.schema()

    def profile_of(other: int) -> BatchProfile:
        with project.store.session() as s:
            stored = s.get(ProfileRow, other)
            if stored is not None and stored.reference_version == champion.version:
                return BatchProfile.from_dict(stored.profile)
            frame = project.batch_frame(s.get(BatchRow, other), kept_only=True)
        return BatchProfile.from_frame(frame, schema, edges=edges)

    return reference_for(fixed, history, _aware(at), spec, profile_of)


def annotate(verdict: CheckResult, chosen: Chosen) -> CheckResult:
    """The dataset-drift verdict with the reference it was checked against in its detail (and
    in its message, unless it is the usual fixed reference)."""
    detail = dict(verdict.detail, reference=chosen.note, reference_kind=chosen.kind)
    usual = chosen.note == FIXED_NOTE
    message = verdict.message if usual else f"{verdict.message} ({chosen.note})"
    return replace(verdict, detail=detail, message=message)


def seasonality_hint(project: Record) -> str | None:
    """A sentence suggesting a seasonal reference when the recent batches drifted in a cycle
    (None when the reference is already seasonal or nothing periodic is seen)."""
    if spec_of(project).kind == "seasonal":
        return None
    with project.store.session() as s:
        batches = s.execute(
            select(BatchRow.id, BatchRow.data_time, ProfileRow.profile)
            .join(ProfileRow, ProfileRow.batch_id == BatchRow.id)
            .where(BatchRow.data_time.is_not(None))
            .order_by(BatchRow.id.desc())
            .limit(HINT_HISTORY)
        ).all()[::-1]
        ids = [b[0] for b in batches]
        alarmed = set(
            s.scalars(
                select(CheckRow.batch_id).where(
                    CheckRow.batch_id.in_(ids),
                    CheckRow.name == "dataset_drift",
                    CheckRow.alarm.is_(True),
                )
            )
        )
    means: dict[str, list[float]] = {}
    for _, _, profile in batches:
        for name, col in profile["columns"].items():
            if col.get("kind") == "numeric":
                value = col.get("mean")
                means.setdefault(name, []).append(np.nan if value is None else float(value))
    if any(len(v) != len(batches) for v in means.values()):
        return None
    times = [_aware(t) for _, t, _ in batches]
    rows = [int(profile.get("n_rows") or 0) for _, _, profile in batches]
    found = periodic_drift(times, means, [i in alarmed for i in ids], rows)
    return found.hint(spec_of(project)) if found else None


def _aware(moment):
    from datetime import UTC

    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def seasonality_notes(project: Record, cycle_id: int) -> tuple[str, ...]:
    """The cycle's notes: the seasonality hint, if any; logged as a ``hint`` event when it
    is new (not the same sentence as the last one logged)."""
    hint = seasonality_hint(project)
    if hint is None:
        return ()
    if (project.get_state("hint") or {}).get("text") != hint:
        with project.store.session() as s:
            project.event(s, "hint", hint, cycle_id=cycle_id)
            project.set_state("hint", {"text": hint}, s)
    return (hint,)
