"""SQL sources (``data.source: {sql: ..., url: ..., watermark: ...}``): rows pulled after a
watermark, exactly once across restarts and crashes, on SQLite and on PostgreSQL.

Every test runs against an SQLite source file and, with ``RETRAINER_TEST_DATABASE_URL`` set
(``eval "$(bash .ci/postgres.sh)"``), against a table of that PostgreSQL database; the store
follows the suite's setting (an SQLite file, or a PostgreSQL schema).
"""

import json
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from retrainer.cli import main
from retrainer.config import Config
from retrainer.errors import ConfigError, DataError
from retrainer.integrations.sql_source import SqlSource, sql_source
from retrainer.project import Project
from retrainer.store.tables import BatchRow, EventRow, StateRow
from tests.conftest import DATABASE_URL, project_settings, requires_postgres, store_url

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=requires_postgres)])
def source(request, tmp_path):
    """(url, table) of an empty source table on SQLite or PostgreSQL; dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    else:
        url = DATABASE_URL
    table = f"readings_{uuid.uuid4().hex[:8]}"
    yield url, table
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as c:
        c.execute(sa.text(f"drop table if exists {table}"))
    engine.dispose()


def load(url: str, table: str, rows: pd.DataFrame, loaded_at) -> None:
    """Append ``rows`` to the source table with the watermark column ``loaded_at``."""
    frame = rows.assign(loaded_at=loaded_at)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    frame.to_sql(table, engine, if_exists="append", index=False)
    engine.dispose()


def settings_file(folder, url: str, table: str, **source) -> dict:
    settings = project_settings()
    settings["store"]["url"] = store_url(folder)
    settings["data"]["timezone"] = "UTC"  # SQLite hands timestamps back without their offset
    settings["data"]["source"] = {
        "sql": f"select * from {table} where loaded_at > :since order by id",
        "url": url,
        "watermark": "loaded_at",
        "start": "1970-01-01",
        **source,
    }
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    return settings


def stored_ids(project: Project) -> list[int]:
    """Every id of every stored batch, in batch order (duplicates kept)."""
    with project.store.session() as s:
        batches = list(s.scalars(sa.select(BatchRow).order_by(BatchRow.id)))
    return [i for b in batches for i in project.batch_frame(b)["id"].tolist()]


def test_each_pull_stores_the_closed_rows_once(tmp_path, source, elec):
    url, table = source
    settings_file(tmp_path, url, table)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    pull = sql_source(project)
    # three loads an hour apart: 0-99, 100-199, 200-299
    for n in range(3):
        load(url, table, elec.iloc[n * 100 : (n + 1) * 100], T0 + timedelta(hours=n))
    first = pull.pull()
    assert first.rows == 200 and first.stored.new  # the last load is held back
    assert pull.pull() is None  # nothing new is closed
    load(url, table, elec.iloc[300:350], T0 + timedelta(hours=3))
    second = pull.pull()
    assert second.rows == 100 and second.since == first.upto
    assert stored_ids(project) == list(range(300))
    assert project.cycle().decision["action"] == "retrain"  # the batches run the loop
    with project.store.session() as s:  # the watermark is bookkeeping, not a feature
        assert "loaded_at" not in project.batch_frame(s.get(BatchRow, 1)).columns
    assert "loaded_at" not in project.schema().names


def test_the_time_column_can_be_the_watermark(tmp_path, source, elec):
    url, table = source
    query = f"select * from {table} where timestamp > :since"
    settings_file(tmp_path, url, table, watermark="timestamp", sql=query)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    load(url, table, elec.iloc[:500], T0)
    assert sql_source(project).pull().rows == 499  # the last half-hour may have peers
    load(url, table, elec.iloc[500:600], T0)
    assert sql_source(project).pull().rows == 100
    assert stored_ids(project) == list(range(599))


def test_rows_with_the_same_watermark_that_commit_late_are_pulled(tmp_path, source, elec):
    url, table = source
    settings_file(tmp_path, url, table)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    load(url, table, elec.iloc[0:100], T0)
    load(url, table, elec.iloc[100:150], T0 + timedelta(hours=1))
    assert sql_source(project).pull().rows == 100
    # 50 more rows stamped with the same hour commit late, then a later hour
    load(url, table, elec.iloc[150:200], T0 + timedelta(hours=1))
    load(url, table, elec.iloc[200:210], T0 + timedelta(hours=2))
    assert sql_source(project).pull().rows == 100
    assert stored_ids(project) == list(range(200))


def test_without_hold_last_a_late_equal_row_is_not_pulled(tmp_path, source, elec):
    """The documented rule: a row that commits with a watermark already pulled is lost."""
    url, table = source
    settings_file(tmp_path, url, table, hold_last=False)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    load(url, table, elec.iloc[0:100], T0)
    assert sql_source(project).pull().rows == 100
    load(url, table, elec.iloc[100:150], T0)
    load(url, table, elec.iloc[150:200], T0 + timedelta(hours=1))
    assert sql_source(project).pull().rows == 50
    assert stored_ids(project) == list(range(100)) + list(range(150, 200))


def test_a_restart_continues_after_the_stored_watermark(tmp_path, source, elec, monkeypatch):
    url, table = source
    monkeypatch.chdir(tmp_path)
    settings_file(tmp_path, url, table)
    for n in range(4):
        load(url, table, elec.iloc[n * 300 : (n + 1) * 300], T0 + timedelta(hours=n))
    runner = CliRunner()
    first = runner.invoke(main, ["ingest", "--json"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["ingest"])  # a new process, nothing new closed
    assert again.exit_code == 0 and "no new rows ready" in again.stderr
    load(url, table, elec.iloc[1200:1300], T0 + timedelta(hours=4))
    second = runner.invoke(main, ["ingest", "--json"])
    assert second.exit_code == 0, second.output
    assert [b["n_rows"] for b in json.loads(second.stdout)] == [300]
    assert stored_ids(Project.from_yaml("retrainer.yaml")) == list(range(1200))


def crash_after(project: Project, when: str):
    """An ingest callable that dies before or after storing the batch (a kill)."""

    def ingest(frame, key, name):
        if when == "after":
            project.ingest(frame, key=key, source=name)
        raise KeyboardInterrupt  # like a kill: nothing after this line runs

    return ingest


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_between_pulling_and_storing_neither_loses_nor_duplicates(
    tmp_path, source, elec, when
):
    url, table = source
    settings_file(tmp_path, url, table)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    s = project.config.data.source
    for n in range(3):
        load(url, table, elec.iloc[n * 100 : (n + 1) * 100], T0 + timedelta(hours=n))
    dying = SqlSource(project.store, crash_after(project, when), **s.model_dump())
    with pytest.raises(KeyboardInterrupt):
        dying.pull()
    assert len(stored_ids(project)) == (200 if when == "after" else 0)
    # more rows arrive before the restart: the interrupted pull is finished as planned
    load(url, table, elec.iloc[300:400], T0 + timedelta(hours=3))
    restarted = Project.from_yaml(tmp_path / "retrainer.yaml")
    finished = sql_source(restarted).pull()
    assert finished.resumed and finished.rows == 200
    assert finished.stored.new == (when == "before")
    assert sql_source(restarted).pull().rows == 100
    assert stored_ids(restarted) == list(range(300))


def test_a_killed_process_is_finished_by_the_next_pull(tmp_path, source, elec):
    """A real kill (``os._exit``) right after the batch is stored, before the watermark moves."""
    url, table = source
    settings_file(tmp_path, url, table)
    for n in range(3):
        load(url, table, elec.iloc[n * 100 : (n + 1) * 100], T0 + timedelta(hours=n))
    script = textwrap.dedent(
        f"""
        import os
        from retrainer.integrations.sql_source import SqlSource
        from retrainer.project import Project
        project = Project.from_yaml({str(tmp_path / "retrainer.yaml")!r})
        def ingest(frame, key, name):
            project.ingest(frame, key=key, source=name)
            os._exit(9)
        SqlSource(project.store, ingest, **project.config.data.source.model_dump()).pull()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    assert stored_ids(project) == list(range(200))
    assert project.get_state("source:sql")["pending"] is not None
    finished = sql_source(project).pull()
    assert finished.resumed and not finished.stored.new
    load(url, table, elec.iloc[300:310], T0 + timedelta(hours=3))
    assert sql_source(project).pull().rows == 100
    assert stored_ids(project) == list(range(300))


def test_a_pull_that_meets_another_pulls_plan_finishes_it(tmp_path, source, elec):
    """B pulls while A sits between writing its plan and storing its batch: both store the
    same batch under the same key, once."""
    url, table = source
    settings_file(tmp_path, url, table)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    s = project.config.data.source.model_dump()
    for n in range(3):
        load(url, table, elec.iloc[n * 100 : (n + 1) * 100], T0 + timedelta(hours=n))
    seen = {}

    def ingest_a(frame, key, name):
        seen["b"] = SqlSource(project.store, ingest_b, **s).pull()  # B runs in between
        return project.ingest(frame, key=key, source=name)

    def ingest_b(frame, key, name):
        return project.ingest(frame, key=key, source=name)

    a = SqlSource(project.store, ingest_a, **s).pull()
    assert seen["b"].resumed and seen["b"].key == a.key
    assert seen["b"].stored.new and not a.stored.new
    assert stored_ids(project) == list(range(200))


def test_run_pulls_and_cycles(tmp_path, source, elec, monkeypatch):
    url, table = source
    monkeypatch.chdir(tmp_path)
    settings_file(tmp_path, url, table)
    load(url, table, elec.iloc[:1344], T0)
    load(url, table, elec.iloc[1344:1400], T0 + timedelta(hours=1))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cycle 1: batch 1,")
    assert stored_ids(Project.from_yaml("retrainer.yaml")) == list(range(1344))


def test_run_joins_label_files_to_pulled_rows(tmp_path, source, elec, monkeypatch):
    url, table = source
    monkeypatch.chdir(tmp_path)
    settings = settings_file(tmp_path, url, table)
    settings["data"]["labels"] = "labels"
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "labels").mkdir()
    load(url, table, elec.iloc[:1344], T0)
    unlabelled = elec.iloc[1344:1680].astype({"target": "Int64"})
    unlabelled.loc[:, "target"] = pd.NA
    load(url, table, unlabelled, T0 + timedelta(hours=1))
    load(url, table, elec.iloc[1680:1690], T0 + timedelta(hours=2))
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--interval", "0.01", "--max-cycles", "1"]).exit_code == 0
    assert labelled() == [1344]  # one batch of both closed loads, week 5 without its target
    elec.iloc[1344:1680][["id", "target"]].to_csv(tmp_path / "labels" / "week5.csv", index=False)
    result = runner.invoke(main, ["run", "--interval", "0.01", "--max-cycles", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cycle 2: labels,")
    assert labelled() == [1680]


def labelled() -> list[int]:
    with Project.from_yaml("retrainer.yaml").store.session() as s:
        return list(s.scalars(sa.select(BatchRow.n_labelled).order_by(BatchRow.id)))


@requires_postgres
def test_the_password_is_never_shown_or_stored(tmp_path, elec, monkeypatch):
    table = f"readings_{uuid.uuid4().hex[:8]}"
    parts = sa.make_url(DATABASE_URL)
    monkeypatch.setenv("RT_TEST_SQL_PW", parts.password)
    url = parts.set(password="PW").render_as_string(hide_password=False)
    settings = settings_file(tmp_path, url.replace(":PW@", ":${RT_TEST_SQL_PW}@"), table)
    load(DATABASE_URL, table, elec.iloc[:200], T0)
    load(DATABASE_URL, table, elec.iloc[200:210], T0 + timedelta(hours=1))
    try:
        project = Project.from_yaml(tmp_path / "retrainer.yaml")
        assert parts.password not in str(settings["data"])  # the store's URL aside
        assert sql_source(project).pull().rows == 200
        s = project.config.data.source.model_dump()
        broken = SqlSource(project.store, None, **{**s, "sql": "select nope where 1 > :since"})
        with pytest.raises(DataError) as failed:
            broken.pull()
        assert parts.password not in str(failed.value) and ":***@" in str(failed.value)
        monkeypatch.setenv("RT_TEST_SQL_PW", "wrong-" + parts.password)
        with pytest.raises(DataError) as refused:
            sql_source(project).pull()
        assert "password authentication failed" in str(refused.value)
        assert parts.password not in str(refused.value)
        with project.store.session() as s:
            written = [str(b.source) for b in s.scalars(sa.select(BatchRow))]
            written += [f"{e.message} {e.data}" for e in s.scalars(sa.select(EventRow))]
            written += [str(r.value) for r in s.scalars(sa.select(StateRow))]
        assert written and not any(parts.password in w for w in written)
    finally:
        engine = sa.create_engine(DATABASE_URL, poolclass=sa.pool.NullPool)
        with engine.begin() as c:
            c.execute(sa.text(f"drop table if exists {table}"))
        engine.dispose()


def test_the_url_reads_environment_variables(tmp_path, elec, monkeypatch):
    monkeypatch.setenv("RT_TEST_SQL_DIR", str(tmp_path))
    settings_file(tmp_path, "sqlite:///${RT_TEST_SQL_DIR}/source.db", "readings")
    load(f"sqlite:///{tmp_path}/source.db", "readings", elec.iloc[:20], T0)
    load(f"sqlite:///{tmp_path}/source.db", "readings", elec.iloc[20:30], T0 + timedelta(1))
    assert sql_source(Project.from_yaml(tmp_path / "retrainer.yaml")).pull().rows == 20
    monkeypatch.delenv("RT_TEST_SQL_DIR")
    with pytest.raises(ConfigError, match="RT_TEST_SQL_DIR is not set"):
        sql_source(Project.from_yaml(tmp_path / "retrainer.yaml")).pull()


def test_the_project_file_names_what_is_wrong(tmp_path):
    settings = project_settings()
    settings["data"]["source"] = {"sql": "select * from t", "url": "sqlite://", "watermark": "n"}
    with pytest.raises(ConfigError) as bad:
        Project.from_dict(settings, root=tmp_path)
    text = str(bad.value)
    assert "data.source.sql: the query must compare the watermark with :since" in text
    assert "data.source.start: field required" in text


def test_a_watermark_column_the_query_lacks_is_named(tmp_path, source, elec):
    url, table = source
    settings_file(tmp_path, url, table, watermark="arrived")
    load(url, table, elec.iloc[:10], T0)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    with pytest.raises(DataError, match="'arrived' is not a column of the query"):
        sql_source(project).pull()


def test_rows_stay_for_min_rows(tmp_path, source, elec):
    url, table = source
    settings_file(tmp_path, url, table, min_rows=150)
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    load(url, table, elec.iloc[:100], T0)
    load(url, table, elec.iloc[100:160], T0 + timedelta(hours=1))
    assert sql_source(project).pull() is None  # 100 rows closed, 60 held back
    load(url, table, elec.iloc[160:170], T0 + timedelta(hours=2))
    assert sql_source(project).pull().rows == 160


def test_rows_a_batch_cannot_hold_keep_the_plan_until_fixed(tmp_path, source, elec):
    url, table = source
    settings = settings_file(tmp_path, url, table)
    query = settings["data"]["source"]["sql"]
    columns = ", ".join(c for c in [*elec.columns, "loaded_at"] if c != "id")
    settings["data"]["source"]["sql"] = query.replace("*", columns).replace("order by id", "")
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    load(url, table, elec.iloc[:100], T0)
    load(url, table, elec.iloc[100:110], T0 + timedelta(hours=1))
    for _ in range(2):  # the same rows fail each time: nothing is skipped
        with pytest.raises(DataError, match="missing column"):
            sql_source(Project.from_yaml(tmp_path / "retrainer.yaml")).pull()
    settings["data"]["source"]["sql"] = query  # the query fixed: the plan is finished
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    assert sql_source(project).pull().resumed
    assert stored_ids(project) == list(range(100))


def test_the_readme_project_file_is_valid(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### SQL sources") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = Config.from_dict(yaml.safe_load(block), root=tmp_path)
    assert config.data.source.watermark == "loaded_at" and ":since" in config.data.source.sql


def test_the_service_scheduler_pulls_the_source_once_per_gap(tmp_path, source, elec):
    from retrainer.service.scheduler import Scheduler

    url, table = source
    settings = settings_file(tmp_path, url, table)
    settings["service"] = {"schedule": {"on_data": True, "min_gap": "5s", "lease": "30s"}}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    at = [T0 + timedelta(days=400)]
    node = Scheduler(project, clock=lambda: at[0])
    load(url, table, elec.iloc[:400], T0)
    load(url, table, elec.iloc[400:800], T0 + timedelta(hours=1))
    tick = node.tick()
    assert tick.reason == "data arrived" and tick.cycle_id is not None and not tick.error
    assert stored_ids(project) == elec["id"].iloc[:400].tolist()  # the last load is held back
    load(url, table, elec.iloc[800:1200], T0 + timedelta(hours=2))
    assert node.tick().cycle_id is None  # within min_gap: no pull, no cycle
    at[0] += timedelta(seconds=6)
    assert node.tick().cycle_id is not None
    assert stored_ids(project) == elec["id"].iloc[:800].tolist()


def test_the_service_scheduler_survives_a_source_that_is_down(tmp_path, elec):
    from retrainer.service.scheduler import Scheduler

    settings = settings_file(tmp_path, f"sqlite:///{tmp_path / 'gone' / 'x.db'}", "readings")
    settings["service"] = {"schedule": {"on_data": True, "min_gap": "5s", "lease": "30s"}}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    tick = Scheduler(project, clock=lambda: T0).tick()
    assert tick.leader and tick.cycle_id is None and not tick.error
