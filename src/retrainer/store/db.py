"""Open a metadata store by URL: an SQLite file by default, PostgreSQL or any SQLAlchemy URL.

Example:
    >>> store = Store("sqlite://")
    >>> with store.session() as s:
    ...     s.execute(text("select 1")).scalar()
    1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from retrainer.errors import StoreError

__all__ = ["Base", "Store", "text"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    """Declarative base shared by every table of the store."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """A metadata store: an engine plus a session factory; tables are created on open.

    Parameters:
        url: SQLAlchemy URL (``sqlite:///path/store.db``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            folder = Path(url.removeprefix("sqlite:///")).parent
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        import retrainer.store.tables  # noqa: F401  (registers every table on Base)

        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create tables in store {url!r}: {exc}") from exc

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
