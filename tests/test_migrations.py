"""Store migrations (Alembic): tables.py and the revisions agree, upgrades are idempotent, older
stores are upgraded in place, processes starting together migrate once, on SQLite and (with
RETRAINER_TEST_DATABASE_URL) PostgreSQL."""

import importlib.util
import json
import math
import multiprocessing
import shutil

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select

from retrainer.cli import main
from retrainer.errors import StoreError
from retrainer.store import migrate
from retrainer.store.db import Base, Store
from retrainer.store.tables import BatchRow, ModelVersionRow, StateRow
from tests.conftest import store_url

TIMEOUT_S = 120
ALL = tuple(reversed([r.revision for r in migrate._script().walk_revisions()]))  # oldest first
HEAD = ALL[-1]
NEXT = f"{len(ALL) + 1:04d}"


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_tables_py_and_the_migrations_agree(tmp_path):
    store = Store(store_url(tmp_path))
    assert store.migration.applied == ALL
    assert migrate.differences(store.engine) == []
    assert _tables(store.engine) == set(Base.metadata.tables) | {"alembic_version"}
    store.dispose()


def test_the_comparison_sees_a_missing_table_and_column(tmp_path):
    store = Store(store_url(tmp_path))
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE state"))
        connection.execute(sa.text("ALTER TABLE service_leases DROP COLUMN holder"))
    found = " ".join(migrate.differences(store.engine))
    assert "add_table" in found and "'state'" in found
    assert "add_column" in found and "'holder'" in found
    store.dispose()


def test_upgrading_twice_is_a_no_op(tmp_path):
    url = store_url(tmp_path)
    first = Store(url)
    with first.session() as session:
        session.add(StateRow(key="k", value={"a": 1}))
    second = Store(url)
    assert first.migration.to_dict() == {"before": None, "after": HEAD, "applied": list(ALL)}
    assert second.migration.to_dict() == {"before": HEAD, "after": HEAD, "applied": []}
    assert migrate.upgrade(second.engine).applied == ()
    with second.session() as session:
        assert session.get(StateRow, "k").value == {"a": 1}
        assert session.scalar(sa.text("SELECT count(*) FROM alembic_version")) == 1
    first.dispose()
    second.dispose()


def test_a_store_made_before_migrations_is_upgraded_in_place(tmp_path):
    url = store_url(tmp_path)
    engine = sa.create_engine(url)
    # A store of the previous release: create_all of the tables it had, no alembic_version.
    spec = importlib.util.spec_from_file_location(
        "baseline", migrate.MIGRATIONS / "versions" / "0001_baseline.py"
    )
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    old = [
        Base.metadata.tables[name] for name in baseline.TABLES if not name.startswith("service_")
    ]
    Base.metadata.create_all(engine, tables=old)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(BatchRow.__table__).values(
                key="b1",
                source="x",
                received_at=sa.func.now(),
                n_rows=3,
                artifact="a" * 64,
                status="new",
                note="",
                n_labelled=0,
                evaluated=False,
            )
        )
    assert migrate.current_revision(engine) is None
    engine.dispose()

    store = Store(url)
    assert store.migration.to_dict() == {"before": None, "after": HEAD, "applied": list(ALL)}
    assert {"service_tokens", "service_leases"} <= _tables(store.engine)
    assert migrate.differences(store.engine) == []
    with store.session() as session:
        assert session.scalars(select(BatchRow.key)).all() == ["b1"]
    store.dispose()


def test_migrate_false_refuses_a_store_that_is_behind(tmp_path):
    url = store_url(tmp_path)
    with pytest.raises(StoreError, match="retrainer db upgrade"):
        Store(url, migrate=False)
    Store(url).dispose()
    assert Store(url, migrate=False).migration.applied == ()


def test_json_columns_store_nan_and_infinity_as_null(tmp_path):
    store = Store(store_url(tmp_path))
    value = {"mean": math.nan, "hist": [1.0, math.inf, -math.inf], "nested": {"x": math.nan}}
    with store.session() as session:
        session.add(StateRow(key="nan", value=value))
        session.add(
            ModelVersionRow(version=1, artifact="a" * 64, metrics={"auc": math.nan}, lineage={})
        )
    with store.session() as session:
        assert session.get(StateRow, "nan").value == {
            "mean": None,
            "hist": [1.0, None, None],
            "nested": {"x": None},
        }
        assert session.get(ModelVersionRow, 1).metrics == {"auc": None}
    store.dispose()


def _open_at_barrier(url: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=TIMEOUT_S)
        store = Store(url)
        results.put(list(store.migration.applied))
        store.dispose()
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put(repr(exc))


def test_processes_starting_together_migrate_once(tmp_path):
    n = 4
    url = store_url(tmp_path)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(n)
    results = context.Queue()
    processes = [
        context.Process(target=_open_at_barrier, args=(url, barrier, results)) for _ in range(n)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in range(n)]
    for process in processes:
        process.join(timeout=TIMEOUT_S)
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert not errors, "\n".join(errors)  # in full: the assertion diff would cut the message
    assert sorted(outcomes, key=len) == [[], [], [], list(ALL)]
    store = Store(url)
    assert store.migration.applied == ()
    assert migrate.differences(store.engine) == []
    store.dispose()


def test_db_commands(tmp_path):
    url = store_url(tmp_path)
    runner = CliRunner()
    current = runner.invoke(main, ["db", "current", "--url", url, "--json"])
    assert current.exit_code == 0, current.output
    assert json.loads(current.output) == {"current": None, "head": HEAD, "differences": []}
    for applied in (list(ALL), []):
        result = runner.invoke(main, ["db", "upgrade", "--url", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["applied"] == applied
    current = runner.invoke(main, ["db", "current", "--url", url])
    assert f"revision {HEAD} (newest {HEAD}): up to date" in current.output


def test_a_new_revision_brings_the_store_to_the_changed_tables(tmp_path, monkeypatch):
    shutil.copytree(migrate.MIGRATIONS, tmp_path / "migrations")
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path / "migrations")
    migrate._script.cache_clear()
    changed = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    sa.Table("extra", changed, sa.Column("id", sa.Integer, primary_key=True))
    changed.tables["state"].append_column(sa.Column("note", sa.Text, nullable=True))
    monkeypatch.setattr(migrate, "_metadata", lambda: changed)
    try:
        path = migrate.new_revision("add extra and state.note")
        assert path.name == f"{NEXT}_add_extra_and_state_note.py"
        assert migrate.head_revision() == NEXT
        (tmp_path / "new").mkdir()
        engine = sa.create_engine(store_url(tmp_path / "new"))
        assert migrate.upgrade(engine).applied == (*ALL, NEXT)
        assert migrate.differences(engine) == []
        assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("state")}
        engine.dispose()
        with pytest.raises(StoreError, match="nothing to add"):
            migrate.new_revision("nothing")
    finally:
        migrate._script.cache_clear()
