"""Shared fixtures: real ELEC2 data and a project on an SQLite file in a temporary folder.

With ``RETRAINER_TEST_DATABASE_URL`` set (``eval "$(bash .ci/postgres.sh)"``), every store the
tests open is a fresh schema of that PostgreSQL database instead of an SQLite file.
"""

import hashlib
import os
import uuid
import weakref
from pathlib import Path

import pytest
import sqlalchemy as sa

from retrainer.datasets import load_elec2
from retrainer.project import Project

DATABASE_URL = os.environ.get("RETRAINER_TEST_DATABASE_URL", "")
requires_postgres = pytest.mark.skipif(
    not DATABASE_URL, reason='PostgreSQL not configured: eval "$(bash .ci/postgres.sh)"'
)
_schemas: set[str] = set()


def store_url(folder=None) -> str:
    """A test's store: ``store.db`` in ``folder`` (relative without one), or with PostgreSQL a
    schema of its own; the same folder gives the same schema, like reopening the same file."""
    if not DATABASE_URL:
        return "sqlite:///store.db" if folder is None else f"sqlite:///{Path(folder) / 'store.db'}"
    key = uuid.uuid4().hex if folder is None else str(Path(folder).resolve())
    schema = "t_" + hashlib.sha256(key.encode()).hexdigest()[:24]
    engine = sa.create_engine(DATABASE_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    except sa.exc.IntegrityError:
        pass  # another process created it at the same moment
    finally:
        engine.dispose()
    _schemas.add(schema)
    url = sa.make_url(DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


_engines: weakref.WeakSet = weakref.WeakSet()


@sa.event.listens_for(sa.engine.Engine, "engine_connect")
def _remember_engine(connection) -> None:
    _engines.add(connection.engine)


@pytest.fixture(autouse=True)
def _close_idle_connections():
    """After each test, close the pooled connections of every engine it opened (a finished
    test's engines would otherwise hold PostgreSQL backends until the garbage collector runs)."""
    yield
    if DATABASE_URL:
        for engine in list(_engines):
            engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas():
    yield
    if DATABASE_URL and _schemas:
        engine = sa.create_engine(DATABASE_URL, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            for schema in sorted(_schemas):  # one transaction each: one holds too many locks
                with connection.begin():
                    connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(scope="session")
def elec():
    return load_elec2()


REGRESSION = {  # a regression project's overrides: every window, retrained by hand
    "trainer": {
        "estimator": "sklearn.linear_model.Ridge",
        "task": "regression",
        "window": {"all": True},
        "min_rows": 50,
    },
    "checks": {"concept": {"detector": "page_hinkley"}},
    "policy": {"triggers": [{"type": "manual"}]},
    "gate": {"metric": "mae"},
}


def project_settings(**overrides):
    settings = {
        "project": "test",
        "store": {"url": store_url(), "artifacts": "artifacts"},
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 6, "random_state": 0},
            "window": {"batches": 4},
            "min_rows": 200,
        },
        "policy": {
            "triggers": [
                {"type": "schedule", "every": "14d"},
                {"type": "drift"},
                {"type": "concept"},
                {"type": "manual"},
            ],
            "cooldown": "7d",
        },
        "gate": {"metric": "accuracy", "tolerance": 0.01},
    }
    for key, value in overrides.items():
        settings[key] = value
    return settings


@pytest.fixture
def make_project(tmp_path):
    def make(**overrides):
        settings = project_settings(**overrides)
        if "store" not in overrides:
            settings["store"]["url"] = store_url(tmp_path)
        return Project.from_dict(settings, root=tmp_path)

    return make


def integrity_ok(session) -> bool:
    """SQLite's ``PRAGMA integrity_check``; on PostgreSQL the store must answer a query."""
    if session.get_bind().dialect.name != "sqlite":
        return session.execute(sa.text("select 1")).scalar() == 1
    return session.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
