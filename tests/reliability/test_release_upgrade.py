"""R10: a store of every release upgrades to HEAD keeping every row.

The fixtures in ``tests/fixtures/releases`` are stores written by the release's own code
(commit 5982afd, revision 0001, the first released schema) running
``tests/fixtures/releases/log_everything.py`` 5 times: an SQLite file and a plain-SQL
``pg_dump`` of the same run on PostgreSQL (used with RETRAINER_TEST_DATABASE_URL). Each test
restores one into a fresh store and opens it with HEAD's code, which upgrades it:

- every table of the release keeps every row and every value (frames equal before and after);
- the schema equals ``tests/db/schema_<dialect>.sql`` (regenerate: ``python -m tests.db.schema``)
  and agrees with ``store/tables.py``; a fresh store has the same schema;
- a second upgrade is a no-op;
- two processes opening the release store together migrate it once;
- a SIGKILL halfway through the upgrade leaves the release's schema and rows (the upgrade is
  one transaction), and the next open completes it.

To add a release: run ``log_everything.py`` 5 times at its commit (``PYTHONPATH=<worktree>/src``)
on SQLite and on a throwaway PostgreSQL schema ``release_fixture`` (``pg_dump --schema
release_fixture --inserts --no-owner --no-privileges``), and add its name to ``RELEASES``.
"""

import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer.store import migrate
from retrainer.store.db import Store
from retrainer.store.tables import EventRow
from tests.conftest import DATABASE_URL, store_url
from tests.db.schema import schema_path, schema_sql, search_path

FIXTURES = Path(__file__).parents[1] / "fixtures" / "releases"
RELEASES = {"5982afd": "0001"}  # release commit -> its schema revision
ALL = tuple(reversed([r.revision for r in migrate._script().walk_revisions()]))  # oldest first
TIMEOUT_S = 120
DIALECT = "postgresql" if DATABASE_URL else "sqlite"


def restore(release: str, folder: Path) -> str:
    """A store at ``folder`` (or its PostgreSQL schema) holding the release fixture; its URL."""
    url = store_url(folder)
    if not DATABASE_URL:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / f"release_{release}.sqlite", folder / "store.db")
        os.chmod(folder / "store.db", 0o600)
        return url
    schema = search_path(url)
    dump = (FIXTURES / f"release_{release}_postgresql.sql").read_text()
    lines = [
        line
        for line in dump.splitlines()
        if not line.startswith("\\") and line != "CREATE SCHEMA release_fixture;"
    ]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    try:
        raw.cursor().execute("\n".join(lines).replace("release_fixture.", f"{schema}."))
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return url


def frames(url: str) -> dict[str, pd.DataFrame]:
    """Every table as a frame, rows ordered by primary key."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    out = {}
    with engine.connect() as connection:
        for name, table in metadata.tables.items():
            key = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execute(sa.select(table).order_by(*key)).all()
            out[name] = pd.DataFrame(rows, columns=list(table.columns.keys()))
    engine.dispose()
    return out


def revision(url: str) -> str | None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def schema_of(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return schema_sql(engine)
    finally:
        engine.dispose()


def committed_schema() -> str:
    path = schema_path(DIALECT)
    assert path.exists(), f"{path} is missing: run python -m tests.db.schema"
    return path.read_text()


def assert_rows_kept(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    assert set(before) <= set(after), f"tables dropped: {set(before) - set(after)}"
    for name, old in before.items():
        if name == "alembic_version":
            continue
        assert set(old.columns) <= set(after[name].columns), name
        pd.testing.assert_frame_equal(after[name][list(old.columns)], old, obj=name)


def assert_schema_is_head(url: str) -> None:
    current = schema_of(url)
    assert current == committed_schema(), (
        "the store's schema differs from tests/db/schema_*.sql; if a new migration is meant, "
        "regenerate it with `python -m tests.db.schema` (see tests/db/schema.py) and read the diff"
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    assert migrate.differences(engine) == []
    engine.dispose()


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_upgrading_a_release_keeps_every_row(tmp_path, release):
    url = restore(release, tmp_path / "store")
    assert revision(url) == RELEASES[release]
    before = frames(url)
    assert all(len(frame) for frame in before.values()), "the fixture logs every table"

    store = Store(url)
    later = ALL[ALL.index(RELEASES[release]) + 1 :]
    assert store.migration.to_dict() == {
        "before": RELEASES[release],
        "after": ALL[-1],
        "applied": list(later),
    }
    store.dispose()
    after = frames(url)
    assert_rows_kept(before, after)
    assert_schema_is_head(url)

    again = Store(url)
    assert again.migration.applied == ()
    with again.session() as session:  # the sequences came along: new rows get fresh ids
        event = EventRow(kind="upgrade", message="written after the upgrade")
        session.add(event)
        session.flush()
        assert event.id == before["events"]["id"].max() + 1
        session.delete(event)
    again.dispose()
    for name, frame in frames(url).items():
        pd.testing.assert_frame_equal(frame, after[name], obj=name)
    assert_schema_is_head(url)


def test_a_fresh_store_has_the_committed_schema(tmp_path):
    url = store_url(tmp_path)
    Store(url).dispose()
    assert_schema_is_head(url)


def _open(url: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=TIMEOUT_S)
        store = Store(url)
        results.put(list(store.migration.applied))
        store.dispose()
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put(repr(exc))


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_two_processes_upgrading_a_release_migrate_once(tmp_path, release):
    url = restore(release, tmp_path / "store")
    before = frames(url)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_open, args=(url, barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in processes]
    for process in processes:
        process.join(timeout=TIMEOUT_S)
    later = list(ALL[ALL.index(RELEASES[release]) + 1 :])
    assert sorted(outcomes, key=len) == [[], later]
    assert_rows_kept(before, frames(url))
    assert_schema_is_head(url)


def _writes(statement: str) -> bool:
    return statement.lstrip().split(None, 1)[0].upper() in {
        "CREATE",
        "ALTER",
        "DROP",
        "INSERT",
        "UPDATE",
    }


def _upgrade_until(url: str, stop_at: int | None, marker: str, counted) -> None:
    """Upgrade; before write statement number ``stop_at`` touch ``marker`` and hang."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    seen = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_args) -> None:
        if not _writes(statement):
            return
        if stop_at is not None and len(seen) == stop_at:
            Path(marker).touch()
            time.sleep(TIMEOUT_S)
        seen.append(statement.split("(", 1)[0].strip()[:60])

    migrate.upgrade(engine)
    counted.put(seen)


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_sigkill_halfway_through_the_upgrade_leaves_the_old_schema(tmp_path, release):
    context = multiprocessing.get_context("fork")
    counted = context.Queue()
    dry = restore(release, tmp_path / "dry")
    process = context.Process(target=_upgrade_until, args=(dry, None, "", counted))
    process.start()
    writes = counted.get(timeout=TIMEOUT_S)
    process.join(timeout=TIMEOUT_S)
    assert len(writes) >= 2, writes  # the DDL of the new revisions, then the version stamp

    url = restore(release, tmp_path / "store")
    before, old_schema = frames(url), schema_of(url)
    marker = tmp_path / "halfway"
    process = context.Process(
        target=_upgrade_until, args=(url, len(writes) // 2, str(marker), counted)
    )
    process.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the upgrade never reached its middle"
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=TIMEOUT_S)
    assert process.exitcode == -signal.SIGKILL

    assert revision(url) == RELEASES[release]  # rolled back: the old schema, every row
    assert schema_of(url) == old_schema
    for name, frame in frames(url).items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)
    store = Store(url)  # the next open completes the upgrade
    assert store.migration.after == ALL[-1]
    store.dispose()
    assert_rows_kept(before, frames(url))
    assert_schema_is_head(url)
