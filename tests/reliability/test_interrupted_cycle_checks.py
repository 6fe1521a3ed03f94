"""A cycle that stops after checking its batches (a crash, a kill) leaves them new: the next
cycle checks them again and must record each check and each diagnosis once, not twice."""

from collections import Counter

import pytest
from sqlalchemy import select

from retrainer import cycle as cycle_module
from retrainer.store.tables import CheckRow, CycleRow, EventRow

WEEK = 48 * 7


def test_batches_checked_by_an_interrupted_cycle_are_recorded_once(make_project, elec, monkeypatch):
    project = make_project()
    project.ingest(elec.iloc[: 4 * WEEK], key="history")
    project.cycle()
    ids = [
        project.ingest(elec.iloc[(4 + i) * WEEK : (5 + i) * WEEK], key=f"w{i}").id for i in range(3)
    ]

    def crash(self, batch_ids):
        raise OSError(5, "input/output error (injected after the checks were written)")

    with monkeypatch.context() as m:
        m.setattr(cycle_module._Cycle, "_predict", crash)
        with pytest.raises(OSError):
            project.cycle()
    with project.store.session() as s:
        interrupted = s.scalars(select(CycleRow).order_by(CycleRow.id.desc())).first()
        assert interrupted.status == "failed"
        assert s.scalars(select(CheckRow).where(CheckRow.cycle_id == interrupted.id)).first()
    project.cycle()
    with project.store.session() as s:
        rows = s.scalars(select(CheckRow).where(CheckRow.batch_id.in_(ids))).all()
        events = s.scalars(
            select(EventRow).where(EventRow.kind == "check", EventRow.batch_id.in_(ids))
        ).all()
    per_check = Counter(
        (r.batch_id, r.kind, r.name, r.column, (r.detail or {}).get("role")) for r in rows
    )
    assert rows and max(per_check.values()) == 1
    assert sorted(e.batch_id for e in events) == ids  # one diagnosis per batch
    assert {r.cycle_id for r in rows} == {interrupted.id + 1}
