"""Read-only views of the record, shared by the CLI, the report and the replay summary."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import func, select

from retrainer.store.tables import (
    BatchRow,
    CheckRow,
    CycleRow,
    DecisionRow,
    EventRow,
    RunRow,
)

if TYPE_CHECKING:
    from retrainer.project import Project


def performance(project: Project) -> pd.DataFrame:
    """Realised performance per batch and role (champion, baseline), in batch order."""
    with project.store.session() as s:
        rows = s.scalars(
            select(CheckRow).where(CheckRow.kind == "performance").order_by(CheckRow.batch_id)
        ).all()
        details = [dict(r.detail) for r in rows]
    columns = ["batch", "version", "role", "metric", "value", "n", "data_time"]
    frame = pd.DataFrame(details, columns=columns)
    frame["data_time"] = pd.to_datetime(frame["data_time"], utc=True)
    return frame


def overall(perf: pd.DataFrame, role: str) -> float | None:
    """Row-weighted mean of a role's per-batch metric (exact for accuracy)."""
    part = perf[perf["role"] == role]
    if part.empty:
        return None
    return float((part["value"] * part["n"]).sum() / part["n"].sum())


def promotions(project: Project) -> pd.DataFrame:
    """Runs that promoted a version, with the clock time at which they ran."""
    with project.store.session() as s:
        runs = s.scalars(
            select(RunRow).where(RunRow.version.is_not(None)).order_by(RunRow.id)
        ).all()
        rows = [
            {
                "run": r.id,
                "version": r.version,
                "status": r.status,
                "promoted": bool(r.metrics.get("promoted")),
                "clock": r.window.get("clock"),
            }
            for r in runs
        ]
    frame = pd.DataFrame(rows, columns=["run", "version", "status", "promoted", "clock"])
    frame["clock"] = pd.to_datetime(frame["clock"], utc=True)
    return frame


def decisions(project: Project) -> pd.DataFrame:
    """Every decision with its reasons, oldest first."""
    with project.store.session() as s:
        rows = [
            {
                "id": d.id,
                "cycle": d.cycle_id,
                "at": d.at,
                "action": d.action,
                "reasons": "; ".join(d.reasons),
                "suppressed": "; ".join(d.suppressed),
            }
            for d in s.scalars(select(DecisionRow).order_by(DecisionRow.id))
        ]
    return pd.DataFrame(rows, columns=["id", "cycle", "at", "action", "reasons", "suppressed"])


def alarm_causes(project: Project) -> dict[str, int]:
    """How many cycles raised each alarm cause."""
    counts: Counter[str] = Counter()
    with project.store.session() as s:
        for summary in s.scalars(select(CycleRow.summary)):
            for cause in {a["cause"] for a in (summary or {}).get("alarms", [])}:
                counts[cause] += 1
    return dict(counts)


def recent_alarms(project: Project, limit: int = 20) -> list[dict]:
    """The alarms of the latest cycles that raised any, newest first, in plain words:
    cause, severity, what was seen and the action it implies."""
    rows: list[dict] = []
    with project.store.session() as s:
        cycles = s.scalars(select(CycleRow).order_by(CycleRow.id.desc()).limit(200)).all()
        for cycle in cycles:
            summary = cycle.summary or {}
            seen = set()
            for alarm in summary.get("alarms", []):
                key = (alarm["cause"], alarm["message"])
                if key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "cycle": cycle.id,
                        "clock": summary.get("clock", "")[:16],
                        "cause": alarm["cause"],
                        "severity": alarm["severity"],
                        "message": alarm["message"],
                        "action": alarm["action"],
                    }
                )
            if len(rows) >= limit:
                break
    return rows[:limit]


def status(project: Project) -> dict:
    """Counts, the champion, the last decision and the latest events."""
    with project.store.session() as s:
        by_status = dict(
            s.execute(select(BatchRow.status, func.count()).group_by(BatchRow.status)).all()
        )
        labelled = s.scalar(select(func.sum(BatchRow.n_labelled))) or 0
        rows = s.scalar(select(func.sum(BatchRow.n_rows))) or 0
        last = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc()).limit(1)).first()
        events = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(10)).all()
        cycles = s.scalar(select(func.count()).select_from(CycleRow)) or 0
        last_decision = (
            {"action": last.action, "reasons": list(last.reasons), "at": last.at.isoformat()}
            if last
            else None
        )
        recent = [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in reversed(events)
        ]
    champion = project.champion
    return {
        "project": project.config.project,
        "store": project.config.store_url,
        "batches": {"total": sum(by_status.values()), **by_status},
        "rows": int(rows),
        "labelled_rows": int(labelled),
        "cycles": int(cycles),
        "models": len(project.models),
        "champion": champion.to_dict() | {"reference": None} if champion else None,
        "last_decision": last_decision,
        "alarms": recent_alarms(project, limit=5),
        "events": recent,
    }
