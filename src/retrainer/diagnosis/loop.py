"""The diagnosis in the loop: diagnose a batch in a cycle, diagnose a changed relation from
evaluations, accept a proposed fix and release a quarantined batch.

Every diagnosis is stored with the batch's ``check`` event (``data["diagnosis"]``), so the CLI,
the dashboard and ``accept-fix`` read the same record (:func:`retrainer.record.stored_diagnosis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import select

from retrainer.checks.calendar import calendar_columns
from retrainer.checks.concept.sequential import MAX_BATCHES, Finding, baseline, error_rise
from retrainer.checks.quality import check_quality
from retrainer.checks.result import CheckResult
from retrainer.config import METRICS
from retrainer.diagnosis.batch_size import UsualSize, usual_size
from retrainer.diagnosis.engine import Alarm, Diagnosis, diagnose_batch, relation_alarm
from retrainer.diagnosis.fixes import apply_fixes, merge_fixes
from retrainer.diagnosis.signals import batch_signals
from retrainer.errors import DataError, NotFoundError, StoreError
from retrainer.profile import BatchProfile
from retrainer.record import stored_diagnosis
from retrainer.store.tables import BatchRow

if TYPE_CHECKING:
    from retrainer.record import Record

HISTORY = 104  # earlier batches whose sizes say how much a batch's size varies


def expected_rows(project: Record, batch_id: int) -> UsualSize | None:
    """The usual size of a batch before ``batch_id`` and how far below it a batch is truncated
    (:mod:`retrainer.diagnosis.batch_size`; None with fewer than 3 earlier batches)."""
    with project.store.session() as s:
        sizes = s.scalars(
            select(BatchRow.n_rows)
            .where(BatchRow.id < batch_id)
            .order_by(BatchRow.id.desc())
            .limit(HISTORY)
        ).all()
    return usual_size(sizes[::-1])


def diagnose_in_cycle(
    project: Record,
    batch_id: int,
    frame: pd.DataFrame,
    results: Sequence[CheckResult],
    reference: BatchProfile | None,
    current: BatchProfile,
) -> Diagnosis:
    """Diagnose one new batch of a cycle from its checks, profiles and rows."""
    if reference is None:
        return diagnose_batch(results)
    d = project.config.data
    numeric = [n for n, c in reference.columns.items() if c.kind == "numeric"]
    moved = [r.column for r in results if r.name == "out_of_range" and r.alarm and r.column]
    signals = batch_signals(
        frame,
        numeric,
        keys=[c for c in (d.id_column, d.time_column) if c],
        expected_rows=expected_rows(project, batch_id),
        previous_last=previous_last(project, batch_id, moved) if moved else None,
    )
    return diagnose_batch(results, reference, current, signals)


def previous_last(project: Record, batch_id: int, columns: Sequence[str]) -> dict[str, float]:
    """The last finite value of each of ``columns`` in the newest batch before ``batch_id`` that
    was not quarantined: a series goes on from data that was accepted (a value after a
    quarantined unit change would hide the change, and one quarantined month must not leave
    every later one without a batch before it). None of it when that batch's rows cannot be
    read (``retrainer doctor`` names a missing or damaged artifact): the rules then judge the
    batch as if it had no batch before it."""
    with project.store.session() as s:
        row = s.scalars(
            select(BatchRow)
            .where(BatchRow.id < batch_id, BatchRow.status != "quarantined")
            .order_by(BatchRow.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return {}
        s.expunge(row)
    try:
        frame = project.artifacts.get_frame(row.artifact)  # its inputs: no labels to join
    except StoreError:
        return {}
    out = {}
    for name in columns:
        if name in frame.columns:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")
            finite = values[np.isfinite(values)]
            if finite.size:
                out[name] = float(finite[-1])
    return out


def relation_alarms(project: Record, evaluations: Sequence[dict], detector: bool) -> list[Alarm]:
    """A changed-relation alarm per model version whose error on newly labelled batches rose
    beyond its holdout error more than the batches' input shift explains; the current
    champion's errors also feed the sequential test accumulated over batches."""
    metric = project.config.gate.metric
    if not METRICS.get(metric) or metric == "r2":
        return []
    champion = project.champion
    alarms = []
    for version in sorted({e["version"] for e in evaluations if e["role"] == "champion"}):
        mine = [e for e in evaluations if e["role"] == "champion" and e["version"] == version]
        n = sum(e["n"] for e in mine)
        metrics = project.registry.get(version).metrics
        if not n or metrics.get("holdout") is None:
            continue
        error = 1 - sum(e["value"] * e["n"] for e in mine) / n
        expected, n_expected = 1 - float(metrics["holdout"]), int(metrics.get("n_holdout") or n)
        found, batches = None, [e["batch"] for e in mine]
        if champion is not None and version == champion.version:
            found, ids = _accumulate(project, version, mine, expected, n_expected)
            batches = ids[found.start :] if found is not None and found.fired else batches
        shift = max((_shift(project, b) for b in batches), default=0.0)
        alarm = relation_alarm(
            error,
            n,
            expected,
            n_expected,
            shift=shift,
            detector=detector,
            metric=metric,
            sequential=found,
        )
        alarms += [alarm] if alarm is not None else []
    return alarms


def _accumulate(
    project: Record, version: int, entries: Sequence[dict], expected: float, n_expected: int
) -> tuple[Finding | None, list[int]]:
    """Add the champion's newly scored batches (rows, errors) to its sequential test (kept in
    the project state ``relation``, restarted for a new champion: its errors have another
    baseline) and test them. Returns the finding and the ids of the batches tested (the
    input shift of a finding's rows is read from the batches from its start on)."""
    counts = [(e["n"], e["errors"], e["batch"]) for e in entries if e.get("errors") is not None]
    if not counts:
        return None, []
    state = project.get_state("relation") or {}
    mine = state.get("version") == version
    batches = [*(state.get("batches", []) if mine else []), *([n, k] for n, k, _ in counts)]
    ids = [*(state.get("ids", []) if mine else []), *(b for _, _, b in counts)]
    if len(ids) != len(batches):  # a state written before ids were kept: unknown batches
        ids = [0] * (len(batches) - len(counts)) + [b for _, _, b in counts]
    batches, ids = batches[-MAX_BATCHES:], ids[-MAX_BATCHES:]
    project.set_state("relation", {"version": version, "batches": batches, "ids": ids})
    holdout = (n_expected, round(expected * n_expected))
    return error_rise([tuple(b) for b in batches], baseline(expected), holdout=holdout), ids


def _shift(project: Record, batch_id: int) -> float:
    stored = stored_diagnosis(project, batch_id)
    return float(stored.get("shift", 0.0)) if stored else 0.0


def accepted_fixes(project: Record) -> dict:
    """The fixes applied at ingest: the project file's ``data.fixes`` over accepted ones."""
    accepted = (project.get_state("fixes") or {}).get("fixes", {})
    return merge_fixes(accepted, project.config.data.fixes.model_dump())


def accept_fix(project: Record, batch_id: int, *, reason: str, actor: str = "user") -> dict:
    """Accept the fix the diagnosis of ``batch_id`` proposed; later batches get it at ingest.

    Returns the accepted fix. Raises NotFoundError when the diagnosis proposed none.
    """
    stored = stored_diagnosis(project, batch_id)
    fix = (stored or {}).get("fix") or {}
    if not fix:
        raise NotFoundError(
            f"the diagnosis of batch {batch_id} proposes no fix (see `retrainer explain "
            f"{batch_id}`); write one under data.fixes in the project file"
        )
    state = project.get_state("fixes") or {}
    with project.store.session() as s:
        project.set_state("fixes", {"fixes": merge_fixes(state.get("fixes"), fix)}, s)
        project.event(
            s,
            "fix",
            f"fix accepted by {actor} from batch {batch_id}: {fix} ({reason})",
            batch_id=batch_id,
            fix=fix,
            actor=actor,
            reason=reason,
        )
    return fix


def release(
    project: Record, batch_id: int, *, reason: str, actor: str = "user", force: bool = False
) -> dict:
    """Release a quarantined batch so training windows include it again; the accepted fixes
    are applied to its stored rows first (a new artifact; the old one stays) and the quality
    checks run again on the fixed rows, against the champion's reference. A batch whose fixed
    rows still raise a quality alarm stays quarantined (DataError naming the checks) unless
    ``force`` (a person says the rows are fit for training as they are)."""
    with project.store.session() as s:
        row = s.get(BatchRow, batch_id)
        if row is None:
            raise NotFoundError(f"batch {batch_id} does not exist")
        if row.status != "quarantined":
            raise DataError(
                f"batch {batch_id} is {row.status}, not quarantined: nothing to release"
            )
        frame = project.artifacts.get_frame(row.artifact)
        fixed = apply_fixes(frame, accepted_fixes(project), f"batch {batch_id}")
        schema = project.schema()
        if schema is not None:
            fixed = schema.conform(fixed, source=f"batch {batch_id}")
        alarms = recheck_quality(project, fixed)
        if alarms and not force:
            raise DataError(
                f"batch {batch_id} stays quarantined: its rows, with the accepted fixes applied, "
                f"still fail {len(alarms)} quality check(s): "
                + "; ".join(alarms)
                + " (release it anyway with --force if the rows are fit for training)"
            )
        old = row.artifact
        if not fixed.equals(frame):
            row.artifact = project.artifacts.put_frame(fixed)
        row.status = "processed"
        row.note = f"{row.note}; released by {actor}: {reason}".lstrip("; ")
        checked = f"quality checks re-run on the fixed rows: {len(alarms)} alarm(s)" + (
            f", released anyway: {'; '.join(alarms)}" if alarms else ""
        )
        project.event(
            s,
            "release",
            f"batch {batch_id} released by {actor}: {reason}; {checked}",
            batch_id=batch_id,
            actor=actor,
            reason=reason,
            artifact={"before": old, "after": row.artifact},
            quality_alarms=alarms,
        )
        return {
            "id": row.id,
            "status": row.status,
            "artifact": row.artifact,
            "before": old,
            "quality_alarms": alarms,
        }


def recheck_quality(project: Record, frame: pd.DataFrame) -> list[str]:
    """The quality alarms (messages) of ``frame`` against the champion's reference (none
    without a champion or a schema)."""
    champion, schema = project.champion, project.schema()
    if champion is None or not champion.reference or schema is None:
        return []
    reference = BatchProfile.from_dict(champion.reference)
    profile = BatchProfile.from_frame(frame, schema, edges=reference.edges())
    options = project.config.checks.quality.model_dump()
    data = project.config.data
    calendar = calendar_columns(frame, data.time_column, data.timezone, reference)
    results = check_quality(reference, profile, schema, **options, calendar=calendar)
    return [f"{r.name} ({r.column}): {r.message}" for r in results if r.alarm]
