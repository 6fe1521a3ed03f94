"""A NUL character in any text cell is stored (as ``\\0``) instead of failing the write.

PostgreSQL text cannot hold NUL: before the store's sanitiser, an event message, batch note or
check detail carrying one made psycopg refuse the whole transaction. Runs on SQLite and, with
RETRAINER_TEST_DATABASE_URL, PostgreSQL; both keep the same text.
"""

import sqlalchemy as sa
from sqlalchemy import select

from retrainer.store.db import NUL_REPLACEMENT, Store
from retrainer.store.tables import BatchRow, CheckRow, CycleRow, EventRow, StateRow
from tests.conftest import project_settings, store_url

NUL = "bad\x00value"
STORED = "bad" + NUL_REPLACEMENT + "value"


def test_orm_core_and_executemany_writes_keep_text_with_nul(tmp_path):
    store = Store(store_url(tmp_path))
    with store.session() as s:
        cycle = CycleRow(summary={"error": NUL})
        s.add(cycle)
        s.flush()
        s.add(BatchRow(key="b1", source=NUL, n_rows=1, artifact="a" * 64, note=NUL))
        s.add(CheckRow(cycle_id=cycle.id, kind="quality", name=NUL, column=NUL, detail={"m": NUL}))
        s.add(EventRow(kind="cycle", message=NUL, data={"message": NUL, "list": [NUL]}))
        s.add(StateRow(key="nul", value={NUL: NUL}))
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(EventRow.__table__),
            [{"kind": "core", "message": f"{NUL} {i}", "data": {}} for i in range(3)],
        )
    with store.session() as s:
        batch = s.scalar(select(BatchRow))
        check = s.scalar(select(CheckRow))
        events = sorted(s.scalars(select(EventRow.message)))
        assert (batch.note, batch.source) == (STORED, STORED)
        assert (check.name, check.column) == (STORED, STORED)
        assert events == sorted([STORED, *(f"{STORED} {i}" for i in range(3))])
        # JSON keeps the character itself: it is written escaped (\u0000), which both accept
        assert check.detail == {"m": NUL}
        assert s.scalar(select(EventRow.data).where(EventRow.kind == "cycle"))["list"] == [NUL]
        assert s.get(StateRow, "nul").value == {NUL: NUL}
        # a lookup by the original value finds the row stored under it
        assert s.scalar(select(BatchRow.key).where(BatchRow.note == NUL)) == "b1"
    store.dispose()


def test_a_batch_whose_text_and_error_carry_nul_is_ingested(tmp_path, elec):
    from retrainer.project import Project

    settings = project_settings()
    settings["store"]["url"] = store_url(tmp_path)
    project = Project.from_dict(settings, root=tmp_path)
    info = project.ingest(elec.iloc[:336], key="week-0", source=NUL)
    with project.store.session() as s:
        project.event(s, "note", f"operator said {NUL}", batch_id=info.id)
    with project.store.session() as s:
        assert s.get(BatchRow, info.id).source == STORED
        assert s.scalar(select(EventRow.message).where(EventRow.kind == "note")) == (
            f"operator said {STORED}"
        )
    project.store.dispose()
