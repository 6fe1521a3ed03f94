"""Open a metadata store by URL: an SQLite file by default, PostgreSQL or any SQLAlchemy URL.

Example:
    >>> store = Store("sqlite://")
    >>> with store.session() as s:
    ...     s.execute(text("select 1")).scalar()
    1
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from retrainer.errors import StoreError
from retrainer.store.base import Base

__all__ = ["Base", "Store", "text"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_dumps(value: Any) -> str:
    """Strict JSON for JSON columns: NaN and infinities become null (PostgreSQL rejects them)."""
    return json.dumps(_finite(value), allow_nan=False)


NUL_REPLACEMENT = "\\0"


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(item) for item in value)
    return value


def without_nul(_connection, _cursor, statement, parameters, _context, _executemany):
    r"""Write a NUL character in any text value as the two characters ``\0``.

    PostgreSQL text cannot hold NUL (psycopg refuses the whole statement), so a message, note or
    name that carries one (from a batch, a user or an exception) would fail the write. Every
    store does the same, SQLite included, so both keep the same text. It runs on every statement
    (``before_cursor_execute``): ORM flushes, Core inserts and executemany alike; a lookup by a
    value with a NUL finds the row stored under the same value.

    Example:
        >>> without_nul(None, None, "q", {"note": "a\x00b", "n": 1}, None, False)
        ('q', {'note': 'a\\0b', 'n': 1})
    """
    return statement, _without_nul(parameters)


def _when_unlocked(step: Callable[[], T], seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> T:
    """``step()``, tried again while SQLite answers "database is locked" for up to ``seconds``:
    a new file that several processes open at once can refuse one of them before its busy
    timeout applies (switching it to WAL), and the migration that failed rolled back whole.

    Example:
        >>> calls = []
        >>> def step():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise OperationalError("PRAGMA", {}, Exception("database is locked"))
        ...     return "migrated"
        >>> _when_unlocked(step), len(calls)
        ('migrated', 3)
    """
    deadline, pause = time.monotonic() + seconds, 0.05
    while True:
        try:
            return step()
        except OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(1.0, 2 * pause)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: WAL may wait too
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """A metadata store: an engine plus a session factory; its tables are migrated on open.

    Opening a store brings its tables to the newest migration (``retrainer.store.migrate``: an
    empty database gets every table, an older store is upgraded in place, an up-to-date one costs
    one query; concurrent openers migrate once). ``migrate=False`` only checks, for deployments
    that run ``retrainer db upgrade`` themselves.

    Parameters:
        url: SQLAlchemy URL (``sqlite:///path/store.db``, ``postgresql+psycopg://...``).
        migrate: upgrade the tables if they are behind (else raise StoreError).

    Attributes:
        migration: what opening did (a ``MigrationResult``: revisions before, after, applied).
    """

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///").split("?")[0])
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if path.name and not path.exists():  # private from the start (-wal/-shm follow it)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self.engine: Engine = create_engine(url, future=True, json_serializer=_json_dumps)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "before_cursor_execute", without_nul, retval=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        import retrainer.store.tables  # noqa: F401  (registers every table on Base)
        from retrainer.store import migrate as migrations

        shown = make_url(url).render_as_string(hide_password=True)
        try:
            if migrate:
                self.migration = _when_unlocked(lambda: migrations.upgrade(self.engine))
            else:
                at, head = migrations.current_revision(self.engine), migrations.head_revision()
                if at != head:
                    raise StoreError(
                        f"store {shown} is at revision {at} but this retrainer needs {head}: "
                        "run `retrainer db upgrade`"
                    )
                self.migration = migrations.MigrationResult(at, at, ())
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot create or upgrade the tables of store {shown}: {exc}"
            ) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
