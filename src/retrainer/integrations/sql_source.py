"""Pull new rows from a database by a watermark column, exactly once across restarts.

``data.source: {sql: "select * from readings where event_time > :since", url: ...,
watermark: event_time, start: 2024-01-01}`` makes every pull run the query with ``:since``
bound to the greatest watermark already stored (``start`` the first time) and store the rows
it returns as one batch.

**Exactly once.** A pull is planned before it is stored: the plan (the rows after ``since`` up
to and including ``upto``, under the batch key ``sql:<hash of since, upto>``) is written to
the project's store first, then the batch is ingested under that key (ingest is idempotent by
key), then the watermark moves to ``upto`` and the plan is cleared. A crash after the plan is
written is finished by the next pull, whoever makes it: it runs the query from the same
``since``, keeps the rows up to the same ``upto`` and ingests them under the same key, so a
batch stored before the crash is found, not stored twice, and a batch not stored yet is
stored; rows are neither lost nor duplicated. Two processes pulling at once settle on one
plan (the plan is written only if the state is still the one the pull started from).

**Equal watermarks arriving late.** Rows that share the greatest watermark value of a pull are
held back (``hold_last: true``, the default) until a greater value appears, so rows with
that same value that commit a moment later are still pulled, with their peers. The rule a
source must follow: *no row commits with a watermark below one already seen by a pull*. A
database-assigned insert time or a serial id follows it; a clock of the sending device need
not (a row that breaks it is never pulled). With ``hold_last: false`` (a strictly increasing
watermark, e.g. a serial id) the last value is pulled at once.

The URL may name environment variables (``${PGPASSWORD}``), expanded when connecting; the
password is never written to a message, an event or the store.

Example (an SQLite table; a pull, rows arriving, and the next pull):
    >>> import tempfile, sqlalchemy as sa
    >>> from retrainer.store import Store
    >>> folder = tempfile.mkdtemp()
    >>> source = sa.create_engine(f"sqlite:///{folder}/source.db")
    >>> with source.begin() as c:
    ...     _ = c.execute(sa.text("create table t (n integer, x real)"))
    ...     _ = c.execute(sa.text("insert into t values (1, 0.5), (2, 0.7), (3, 0.1)"))
    >>> store = Store(f"sqlite:///{folder}/store.db")
    >>> stored = []
    >>> def ingest(frame, key, source):
    ...     stored.append((key, frame["n"].tolist()))
    >>> pull = SqlSource(store, ingest, sql="select * from t where n > :since",
    ...                  url=f"sqlite:///{folder}/source.db", watermark="n", start=0,
    ...                  keep_watermark=True)
    >>> pull.pull().rows, stored[-1][1]  # 3 is held back: another n = 3 may still commit
    (2, [1, 2])
    >>> with source.begin() as c:
    ...     _ = c.execute(sa.text("insert into t values (3, 0.2), (4, 0.9)"))
    >>> pull.pull().rows, stored[-1][1], pull.watermark()
    (2, [3, 3], 3)
    >>> pull.pull() is None  # only n = 4, held back
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, make_url, text, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.pool import NullPool

from retrainer.errors import ConfigError, DataError, StoreError
from retrainer.store.tables import StateRow, utcnow

__all__ = ["Pulled", "SqlSource", "SqlWatch", "expand_env", "shown_url", "sql_source", "sql_watch"]

STATE_KEY = "source:sql"
ATTEMPTS = 5  # plans lost to a concurrent puller before giving up
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_env(url: str) -> str:
    """``url`` with ``${NAME}`` and ``$NAME`` replaced by environment variables; a variable
    that is not set is an error naming it (never a silent empty password).

    >>> os.environ["RT_DOC_PW"] = "s3cret"
    >>> expand_env("postgresql://me:${RT_DOC_PW}@db/x")
    'postgresql://me:s3cret@db/x'
    >>> expand_env("postgresql://me:${RT_DOC_NOT_SET}@db/x")
    Traceback (most recent call last):
    retrainer.errors.ConfigError: invalid project file <data.source.url>:
      - environment variable RT_DOC_NOT_SET is not set
    """

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise ConfigError([f"environment variable {name} is not set"], "<data.source.url>")
        return os.environ[name]

    return _ENV.sub(value, url)


def shown_url(url: str) -> str:
    """The URL as it may be shown: the password (expanded or not) replaced by ``***``.

    >>> shown_url("postgresql+psycopg://me:s3cret@db:5432/x")
    'postgresql+psycopg://me:***@db:5432/x'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<an SQLAlchemy URL that does not parse>"


# ------------------------------------------------------------------- watermark values
def encode(value: Any, column: str) -> dict:
    """A watermark value as JSON for the store, with its type kept.

    >>> encode(datetime(2024, 5, 1, 10), "t"), decode(encode(Decimal("1.5"), "t"))
    ({'datetime': '2024-05-01T10:00:00'}, Decimal('1.5'))
    """
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        value = value.to_pydatetime()
    for kind, cls in (("datetime", datetime), ("date", date)):
        if isinstance(value, cls):
            return {kind: value.isoformat()}
    if isinstance(value, bool) or value is None:
        raise DataError(f"watermark column {column!r}: a row has {value!r}, not a watermark")
    if isinstance(value, int | float | str):
        return {type(value).__name__: value}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    raise DataError(
        f"watermark column {column!r} holds {type(value).__name__} values; "
        "use a number, text or a timestamp column"
    )


def decode(stored: dict) -> Any:
    """The value :func:`encode` wrote."""
    (kind, value), *_ = stored.items()
    return {
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "decimal": Decimal,
    }.get(kind, lambda v: v)(value)


# ------------------------------------------------------------------------ the source
@dataclass(frozen=True)
class Pulled:
    """One pull: the batch key, its rows and the watermark range (since, upto]."""

    key: str
    rows: int
    since: Any
    upto: Any
    stored: Any  # what the ingest callable returned (a BatchInfo for a project)
    resumed: bool  # finished the plan of an interrupted pull


@dataclass(frozen=True)
class _Plan:
    key: str
    since: dict | None  # encoded; None: ``start``
    upto: dict

    def to_dict(self) -> dict:
        return {"key": self.key, "since": self.since, "upto": self.upto}


class SqlSource:
    """Rows of a query after a watermark, one batch per :meth:`pull`, exactly once.

    Parameters:
        store: the project's store (the watermark and the plan live in its ``state`` table).
        ingest: ``ingest(frame, key, source)`` stores one batch, idempotent by ``key``.
        sql: the query; ``:since`` is bound to the watermark.
        url: SQLAlchemy URL of the source database (``${VAR}`` expanded when connecting).
        watermark: the column the query orders rows by.
        start: the watermark the first pull starts after.
        hold_last: keep rows of the greatest watermark value for the next pull.
        keep_watermark: store the watermark column in the batch (else it is dropped: it is
            bookkeeping, and as a feature it would drift in every batch).
        min_rows: pull nothing until this many rows are ready.
    """

    def __init__(
        self,
        store: Any,
        ingest: Callable[[Any, str, str], Any],
        *,
        sql: str,
        url: str,
        watermark: str,
        start: Any,
        hold_last: bool = True,
        keep_watermark: bool = False,
        min_rows: int = 1,
    ):
        self.store, self._ingest = store, ingest
        self.sql, self.url, self.column = sql, url, watermark
        self.start, self.hold_last, self.min_rows = start, hold_last, min_rows
        self.keep_watermark = keep_watermark
        self._engine: Engine | None = None

    @classmethod
    def of_project(cls, project: Any) -> SqlSource:
        """The SQL source of a project whose ``data.source`` is a mapping."""
        data = project.config.data
        s = data.source
        named = {data.target, data.id_column, data.time_column, *(data.features or [])}

        def ingest(frame, key, source):
            return project.ingest(frame, key=key, source=source)

        return cls(
            project.store,
            ingest,
            sql=s.sql,
            url=s.url,
            watermark=s.watermark,
            start=s.start,
            hold_last=s.hold_last,
            min_rows=s.min_rows,
            keep_watermark=s.watermark in named,
        )

    @property
    def name(self) -> str:
        """How messages name this source (no password)."""
        return f"sql {shown_url(self.url)}"

    # ----------------------------------------------------------------------- public
    def watermark(self) -> Any:
        """The greatest watermark stored (``start`` before the first pull)."""
        stored = self._state().get("watermark")
        return self.start if stored is None else decode(stored)

    def pull(self) -> Pulled | None:
        """Store the rows that arrived after the watermark as one batch, or finish an
        interrupted pull first; None when no rows are ready."""
        for _ in range(ATTEMPTS):
            state = self._state()
            if state.get("pending"):
                plan = _Plan(**state["pending"])
                frame = self._rows(plan.since, decode(plan.upto))
                return self._finish(plan, frame, resumed=True)
            since = state.get("watermark")
            keys, rows = self._query(self._bound(since))
            plan, frame = self._plan(since, keys, rows)
            if plan is None:
                return None
            if self._write_plan(state, plan):
                return self._finish(plan, frame, resumed=False)
        raise StoreError(f"{self.name}: {ATTEMPTS} pulls lost to concurrent pulls; try again")

    # ---------------------------------------------------------------------- planning
    def _bound(self, since: dict | None) -> Any:
        return self.start if since is None else decode(since)

    def _plan(self, since: dict | None, keys: list[str], rows: Sequence) -> tuple:
        """The plan and rows of a pull from ``since``, or (None, None) if none are ready."""
        at = keys.index(self.column)
        values = [row[at] for row in rows]
        for value in {type(v): v for v in values}.values():  # one value of each type
            encode(value, self.column)  # refuses nulls and odd types, naming the column
        if since is not None:  # a query written with >= returns the stored value again
            floor = decode(since)
            keep = [i for i, v in enumerate(values) if v > floor]
            rows, values = [rows[i] for i in keep], [values[i] for i in keep]
        if self.hold_last and values:
            top = max(values)
            keep = [i for i, v in enumerate(values) if v < top]
            rows, values = [rows[i] for i in keep], [values[i] for i in keep]
        if not rows or len(rows) < self.min_rows:
            return None, None
        upto = encode(max(values), self.column)
        digest = hashlib.sha256(json.dumps([since, upto], sort_keys=True).encode()).hexdigest()
        return _Plan(f"sql:{digest[:32]}", since, upto), self._frame(keys, rows)

    def _rows(self, since: dict | None, upto: Any):
        """The rows of a plan again: after ``since``, up to and including ``upto``."""
        keys, rows = self._query(self._bound(since))
        at = keys.index(self.column)
        floor = None if since is None else decode(since)
        kept = [r for r in rows if r[at] <= upto and (floor is None or r[at] > floor)]
        return self._frame(keys, kept)

    def _frame(self, keys: list[str], rows: Sequence):
        import pandas as pd

        frame = pd.DataFrame.from_records(list(rows), columns=keys, coerce_float=True)
        return frame if self.keep_watermark else frame.drop(columns=self.column)

    # --------------------------------------------------------------------- the store
    def _state(self) -> dict:
        with self.store.session() as s:
            row = s.get(StateRow, STATE_KEY)
            return dict(row.value) if row else {}

    def _locked(self, s) -> StateRow | None:
        """The state row, locked for the rest of ``s``'s transaction (SQLite: the write lock;
        PostgreSQL: a row lock), or None before the first plan."""
        s.execute(update(StateRow).where(StateRow.key == STATE_KEY).values(updated_at=utcnow()))
        return s.get(StateRow, STATE_KEY, populate_existing=True)

    def _write_plan(self, seen: dict, plan: _Plan) -> bool:
        """Write ``plan`` if the state is still ``seen``; False if another pull moved it."""
        value = {**seen, "pending": plan.to_dict(), "query": _digest(self.sql)}
        try:
            with self.store.session() as s:
                row = self._locked(s)
                if row is None:
                    if seen:
                        return False
                    s.add(StateRow(key=STATE_KEY, value=value))
                    s.flush()
                    return True
                if dict(row.value) != seen:
                    return False
                row.value = value
                return True
        except SQLIntegrityError:  # a concurrent first plan
            return False

    def _finish(self, plan: _Plan, frame, *, resumed: bool) -> Pulled | None:
        """Ingest the plan's rows under its key, then move the watermark and clear it."""
        stored = None
        if len(frame):  # rows deleted at the source since the plan: nothing to store
            stored = self._ingest(frame, plan.key, self.name)
        with self.store.session() as s:
            row = self._locked(s)
            if row is not None and (row.value.get("pending") or {}).get("key") == plan.key:
                row.value = {**row.value, "watermark": plan.upto, "pending": None}
        since = self._bound(plan.since)
        return Pulled(plan.key, len(frame), since, decode(plan.upto), stored, resumed)

    # -------------------------------------------------------------------- the source
    def _query(self, since: Any) -> tuple[list[str], list]:
        """Run the query with ``:since`` bound; its column names and rows. Errors name the
        source without its password."""
        try:
            with self._connect().connect() as connection:
                result = connection.execute(text(self.sql), {"since": since})
                keys = list(result.keys())
                rows = [tuple(row) for row in result]  # pandas reads Row objects slowly
        except SQLAlchemyError as exc:
            raise DataError(self._scrub(f"{self.name}: the query failed: {exc}")) from None
        if self.column not in keys:
            raise DataError(
                f"{self.name}: data.source.watermark {self.column!r} is not a column of the "
                f"query (columns: {keys})"
            )
        return keys, rows

    def _connect(self) -> Engine:
        if self._engine is None:
            url = expand_env(self.url)
            try:
                # no pool: a pull runs once a poll, and a warehouse connection is not held
                # open between polls (nor left behind by a source object nobody closes)
                self._engine = create_engine(url, poolclass=NullPool)
            except (ArgumentError, ImportError, ValueError) as exc:
                raise ConfigError(
                    [self._scrub(f"data.source.url {shown_url(url)}: {exc}")], "<data.source>"
                ) from None
            self._password = _password(url)
        return self._engine

    def _scrub(self, message: str) -> str:
        password = getattr(self, "_password", None) or _password(self.url)
        return message.replace(password, "***") if password else message


def _password(url: str) -> str | None:
    try:
        parsed: URL = make_url(expand_env(url))
    except (ArgumentError, ConfigError):
        return None
    return parsed.password or None


def _digest(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


class SqlWatch:
    """``retrainer run``'s view of an SQL source, shaped like ``retrainer.watch.FolderWatch``:
    each :meth:`ingest_next` is one pull, plus the label files of ``data.labels`` (watched by
    ``folders``, a ``FolderWatch``). A pull that fails is kept in ``failed`` and tried again
    at the next poll."""

    def __init__(self, source: SqlSource, folders: Any):
        self.source, self.folders = source, folders
        self.batches: list = []  # nothing waits: a pull takes every row that is ready
        self.failed: dict = {}

    @property
    def labels(self) -> list:
        return self.folders.labels

    def scan(self) -> int:
        return self.folders.scan()

    def ingest_next(self, limit: int) -> tuple[list, list]:
        _, labels = self.folders.ingest_next(limit)
        self.failed = dict(self.folders.failed)
        try:
            pulled = self.source.pull()
        except (DataError, ConfigError, StoreError) as exc:
            self.failed[self.source.name] = str(exc)
            return [], labels
        return ([pulled.stored] if pulled and pulled.stored is not None else []), labels


def sql_source(project: Any) -> SqlSource | None:
    """The project's SQL source, or None when ``data.source`` is a path (or not set)."""
    is_sql = getattr(project.config.data.source, "sql", None) is not None
    return SqlSource.of_project(project) if is_sql else None


def sql_watch(project: Any) -> SqlWatch | None:
    """``retrainer run``'s watch of an SQL ``data.source``, or None for a path."""
    from retrainer.watch import FolderWatch

    source = sql_source(project)
    return SqlWatch(source, FolderWatch(project)) if source is not None else None
