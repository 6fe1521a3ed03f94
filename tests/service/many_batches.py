"""A store of many batches, fast: real cycles on ELEC2 days, then their record repeated forward
in time (batches, checks, cycles, decisions and per-batch events), as if the same days had
come again. The pages read only the record, so they see a long-running project."""

from datetime import timedelta

from sqlalchemy import func, insert, select, text

from retrainer.datasets import load_elec2
from retrainer.project import Project
from retrainer.store.tables import BatchRow, CheckRow, CycleRow, DecisionRow, EventRow
from tests.service.service_helpers import service_settings

DAY = 48  # half-hours of ELEC2
REPEATED_EVENTS = ("check", "quarantine", "ingest", "decision", "cycle", "evaluate")


def real_days(root, days=60, per_cycle=20, missing=(23,), broken=(35,)):
    """A project that ran real cycles on ``days`` ELEC2 days: day ``missing`` never arrives,
    day ``broken`` lost its price column's values (quarantined), and stuck prices are real."""
    settings = service_settings(root)
    settings["trainer"]["window"] = {"batches": 28}
    project = Project.from_dict(settings, root=root)
    elec = load_elec2()
    for day in range(days):
        if day in missing:
            continue
        rows = elec.iloc[day * DAY : (day + 1) * DAY]
        if day in broken:
            rows = rows.assign(nswprice=None)
        project.ingest(rows, key=f"day-{day}")
        if (day + 1) % per_cycle == 0:
            project.cycle()
    return project


def _plain(row) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def _renumber(value, batches: dict, cycles: dict, key: str):
    """Batch and cycle numbers inside stored JSON, moved to the copy's."""
    if isinstance(value, dict):
        return {k: _renumber(v, batches, cycles, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_renumber(v, batches, cycles, key) for v in value]
    if key in ("batch", "batches", "quarantined", "batch_id", "last_batch") and isinstance(
        value, int
    ):
        return batches.get(value, value)
    if key == "cycle" and isinstance(value, int):
        return cycles.get(value, value)
    return value


def grow(project: Project, total: int) -> None:
    """Repeat the record forward in time until the store holds ``total`` batches."""
    with project.store.session() as s:
        cycles = [_plain(c) for c in s.scalars(select(CycleRow).order_by(CycleRow.id))]
        first = set(cycles[0]["summary"]["batches"])  # trained the first model: not repeated
        cycles = cycles[1:]
        batches = [
            _plain(b)
            for b in s.scalars(select(BatchRow).order_by(BatchRow.id))
            if b.id not in first
        ]
        later = CheckRow.cycle_id > cycles[0]["id"] - 1
        checks = [_plain(c) for c in s.scalars(select(CheckRow).where(later))]
        decisions = [
            _plain(d)
            for d in s.scalars(
                select(DecisionRow).where(DecisionRow.cycle_id.in_([c["id"] for c in cycles]))
            )
        ]
        events = [
            _plain(e)
            for e in s.scalars(select(EventRow).where(EventRow.kind.in_(REPEATED_EVENTS)))
            if e.batch_id not in first and (e.cycle_id is None or e.cycle_id >= cycles[0]["id"])
        ]
        n = s.scalar(select(func.count()).select_from(BatchRow))
        top = {t: s.scalar(select(func.max(t.id))) for t in (CheckRow, DecisionRow, EventRow)}
    times = [b["data_time"] for b in batches]
    span = max(times) - min(times) + timedelta(days=1)
    copy = 0
    while n < total:
        copy += 1
        shift = span * copy
        take = batches[: total - n]
        moved_b = {b["id"]: b["id"] + copy * len(batches) for b in batches}
        moved_c = {c["id"]: c["id"] + copy * len(cycles) for c in cycles}
        rows = {t: [] for t in (BatchRow, CycleRow, CheckRow, DecisionRow, EventRow)}
        for b in take:
            rows[BatchRow].append(
                b
                | {
                    "id": moved_b[b["id"]],
                    "key": f"{b['key']}-again-{copy}",
                    "data_time": b["data_time"] + shift,
                    "received_at": b["received_at"] + shift,
                }
            )
        kept = {b["id"] for b in take}
        for c in cycles:
            summary = _renumber(dict(c["summary"]), moved_b, moved_c, "")
            summary["run"] = None
            if summary.get("clock"):
                summary["clock"] = (_time(summary["clock"]) + shift).isoformat()
            rows[CycleRow].append(
                c
                | {
                    "id": moved_c[c["id"]],
                    "started_at": c["started_at"] + shift,
                    "finished_at": c["finished_at"] and c["finished_at"] + shift,
                    "summary": summary,
                }
            )
        for c in checks:
            if c["batch_id"] is not None and c["batch_id"] not in kept:
                continue
            detail = _renumber(dict(c["detail"]), moved_b, moved_c, "")
            if detail.get("data_time"):
                detail["data_time"] = (_time(detail["data_time"]) + shift).isoformat()
            rows[CheckRow].append(
                c
                | {
                    "id": c["id"] + copy * top[CheckRow],
                    "cycle_id": moved_c[c["cycle_id"]],
                    "batch_id": c["batch_id"] and moved_b[c["batch_id"]],
                    "detail": detail,
                }
            )
        for d in decisions:
            rows[DecisionRow].append(
                d
                | {
                    "id": d["id"] + copy * top[DecisionRow],
                    "cycle_id": moved_c[d["cycle_id"]],
                    "at": d["at"] + shift,
                }
            )
        for e in events:
            if e["batch_id"] is not None and e["batch_id"] not in kept:
                continue
            rows[EventRow].append(
                e
                | {
                    "id": e["id"] + copy * top[EventRow],
                    "at": e["at"] + shift,
                    "cycle_id": e["cycle_id"] and moved_c.get(e["cycle_id"], e["cycle_id"]),
                    "batch_id": e["batch_id"] and moved_b[e["batch_id"]],
                }
            )
        with project.store.session() as s:
            for table, new in rows.items():
                if new:
                    s.execute(insert(table), new)
        n += len(take)
    _after_explicit_ids(project)


def _after_explicit_ids(project: Project) -> None:
    """On PostgreSQL, move the id sequences past the ids written by hand (SQLite needs not)."""
    with project.store.session() as s:
        if s.get_bind().dialect.name != "postgresql":
            return
        for table in (BatchRow, CycleRow, CheckRow, DecisionRow, EventRow):
            name = table.__tablename__
            s.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
            )


def _time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def more_versions(project: Project, n: int) -> None:
    """Register ``n`` more versions (the first model again, as later retrains would have made,
    every third one rejected by its gate) and promote those that passed, as a long-running
    project's registry looks."""
    first = project.registry.get(1)
    model = project.load_model(1)
    for i in range(n):
        passed = i % 3 != 2
        gate = dict(first.lineage.get("gate") or {}) | {
            "passed": passed,
            "reason": "challenger accuracy=0.8100 vs champion 0.8400 on 192 held-out rows: "
            + ("is within" if passed else "regresses beyond")
            + " the tolerance 0.01",
        }
        version = project.registry.register(
            model,
            lineage=first.lineage | {"gate": gate, "parent": 1, "reasons": [f"drift: retrain {i}"]},
            metrics=first.metrics | {"gate_passed": passed},
            reference=first.reference,
        )
        if passed:
            project.promote(version.version, reason=f"retrain {i}: gate passed")
