"""Schema migrations of the metadata store (Alembic revisions in ``store/migrations/versions``).

Every :class:`~retrainer.store.db.Store` upgrades its database to the newest revision when it
opens it; a store that is already up to date costs one query. The upgrade runs under a lock so
that processes starting together migrate once: SQLite's write lock (``BEGIN IMMEDIATE``) or a
PostgreSQL transaction-level advisory lock. The others wait, then find the store up to date.
A store made before migrations existed (tables, no ``alembic_version``) is adopted in place by
the baseline revision, which creates only the missing tables.

Example:
    >>> from sqlalchemy import create_engine
    >>> engine = create_engine("sqlite://")
    >>> upgrade(engine).applied[0]
    '0001'
    >>> upgrade(engine).applied, current_revision(engine) == head_revision()
    ((), True)
    >>> differences(engine)
    []
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from retrainer.errors import StoreError

if TYPE_CHECKING:  # Alembic is imported where it runs: a store that is up to date opens without
    from alembic.config import Config  # it (importing it costs every command a second)
    from alembic.script import ScriptDirectory

__all__ = [
    "MIGRATIONS",
    "MigrationResult",
    "current_revision",
    "differences",
    "head_revision",
    "new_revision",
    "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")
# One key for every retrainer store of a PostgreSQL database: migrations there run one at a time.
_PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"retrainer.store.migrate").digest()[:8], "big", signed=True
)


@dataclass(frozen=True)
class MigrationResult:
    """What an upgrade did.

    Parameters:
        before: the store's revision before (None: no revision recorded, empty or pre-migrations).
        after: its revision now.
        applied: the revisions this call applied, oldest first (empty: it was up to date).
    """

    before: str | None
    after: str | None
    applied: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-friendly dict.

        Example:
            >>> MigrationResult(None, "0001", ("0001",)).to_dict()
            {'before': None, 'after': '0001', 'applied': ['0001']}
        """
        return {"before": self.before, "after": self.after, "applied": list(self.applied)}


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _metadata():
    import retrainer.store.tables  # noqa: F401  (registers every table on Base)
    from retrainer.store.base import Base

    return Base.metadata


def head_revision() -> str:
    """The newest revision of the migrations that ship with this version of retrainer.

    Example:
        >>> len(head_revision())
        4
    """
    heads = _script().get_heads()
    if len(heads) != 1:
        raise StoreError(f"the store migrations have {len(heads)} heads {heads}; merge them")
    return heads[0]


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision a store is at (None: empty, or made before migrations existed).

    Parameters:
        engine: the store's engine.
    """
    with engine.connect() as connection:
        return _current(connection)


def _lock(connection: Connection) -> None:
    """Begin a transaction that only one migrating process holds at a time."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        connection.execute(text("SELECT 1"))


def _migrate(connection: Connection, target: str) -> tuple[str, ...]:
    from alembic.runtime.environment import EnvironmentContext

    script = _script()
    applied: list[str] = []

    def steps(revision, _context):
        return script._upgrade_revs(target, revision)

    def record(*, step, **_kw) -> None:
        applied.append(step.up_revision_id)

    with EnvironmentContext(_config(), script, fn=steps, destination_rev=target) as env:
        env.configure(
            connection=connection,
            target_metadata=_metadata(),
            render_as_batch=connection.dialect.name == "sqlite",
            on_version_apply=[record],
        )
        with env.begin_transaction():
            env.run_migrations()
    return tuple(applied)


def _newest_shipped() -> str:
    """The highest revision number among the shipped migration files (``0003_fleet.py``...);
    :func:`head_revision` asks Alembic, which also checks that the revisions form one chain.

    Example:
        >>> _newest_shipped() == head_revision()
        True
    """
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _recorded(engine: Engine) -> str | None:
    """The one revision a store's ``alembic_version`` table records, read with plain SQL (None
    when there is no such table or it holds no single row)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> MigrationResult:
    """Bring a store's tables to ``revision`` (newest by default); running it again is a no-op.

    Parameters:
        engine: the store's engine.
        revision: the revision to reach (``head``, or an id such as ``0001``).
    """
    if revision == "head" and (at := _recorded(engine)) == _newest_shipped():
        return MigrationResult(at, at, ())  # up to date: Alembic need not load
    from alembic.util.exc import CommandError

    target = head_revision() if revision == "head" else revision
    try:
        before = current_revision(engine)
        if before == target:
            return MigrationResult(before, before, ())
        with engine.connect() as connection:
            _lock(connection)
            before = _current(connection)
            applied = () if before == target else _migrate(connection, target)
            after = _current(connection)
            connection.commit()
    except CommandError as exc:
        raise StoreError(f"cannot upgrade the store to revision {revision!r}: {exc}") from exc
    return MigrationResult(before, after, applied)


def differences(engine: Engine) -> list[str]:
    """How a store's tables differ from ``store/tables.py`` (Alembic's autogenerate comparison);
    an empty list means they agree.

    Parameters:
        engine: the store's engine.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [repr(diff) for diff in compare_metadata(context, _metadata())]


def new_revision(message: str) -> Path:
    """Write the next revision file: what ``store/tables.py`` adds to the newest revision.

    The changes are found by upgrading an in-memory SQLite store to the newest revision and
    comparing it with the tables; read the file before committing it.

    Parameters:
        message: what the revision does (also its file name).
    """
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.migration import MigrationContext

    engine = create_engine("sqlite://")
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        script = produce_migrations(context, _metadata())
    engine.dispose()
    if script.upgrade_ops.is_empty():
        raise StoreError("store/tables.py and the migrations agree: there is nothing to add")
    head = head_revision()
    number = f"{int(head) + 1:04d}"
    created = _script().generate_revision(
        number,
        message,
        head=head,
        upgrades=render_python_code(script.upgrade_ops, render_as_batch=True),
        downgrades=render_python_code(script.downgrade_ops, render_as_batch=True),
        imports="",
    )
    _script.cache_clear()
    return Path(created.path)
