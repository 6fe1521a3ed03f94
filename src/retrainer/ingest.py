"""Ingest: store one batch (conformed to the schema, fixes applied, early labels and served
predictions joined), or every data file of a path.

Example:
    >>> import tempfile
    >>> import pandas as pd
    >>> from retrainer.record import Record
    >>> record = Record.from_dict({"data": {"target": "y", "id_column": "id"}},
    ...                           root=tempfile.mkdtemp())
    >>> batch = ingest(record, pd.DataFrame({"id": [1, 2], "x": [0.5, 0.7]}), key="b1")
    >>> batch.n_rows, batch.new, ingest(record, pd.DataFrame({"id": [1], "x": [0.5]}), key="b1").new
    (2, True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from retrainer.data.io import file_lines, list_files, read_table, to_pandas
from retrainer.data.schema import Schema
from retrainer.errors import DataError, StoreError
from retrainer.labels import check_label_kind, join_early_labels
from retrainer.record import BatchInfo, checked_key
from retrainer.serving import record_from_batch
from retrainer.store.tables import BatchRow, StateRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from retrainer.record import Record

FUTURE_SLACK = timedelta(hours=1)  # clock skew tolerated before a batch's time is the future
INGEST_ATTEMPTS = 3  # a unique-key collision with a concurrent ingest is read again


def ingest(project: Record, data: Any, *, key: str | None = None, source: str = "") -> BatchInfo:
    """Store one batch (pandas, polars or Arrow table). Ingest is idempotent by ``key``
    (default: the content hash), so a redelivered batch is stored once."""
    where = source or "batch"
    frame = to_pandas(data, source=where)
    if frame.empty:
        raise DataError(f"{where}: the batch has no rows")
    frame = conform(project, frame, where)
    try:
        sha = project.artifacts.put_frame(frame)
    except StoreError as exc:  # e.g. a column Parquet cannot hold: name the batch
        raise type(exc)(f"{where}: {exc}") from exc
    key = checked_key(key, where) or f"sha256:{sha}"
    source = source.replace("\x00", "\\0")
    target = project.target
    n_labelled = int(frame[target].notna().sum()) if target in frame else 0
    time_col = project.config.data.time_column
    data_time = frame[time_col].max().to_pydatetime() if time_col else utcnow()
    future = future_note(data_time, time_col) if time_col else ""
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with project.store.session() as s:
                existing = s.scalar(select(BatchRow).where(BatchRow.key == key))
                if existing is not None:
                    return BatchInfo.of(existing, new=False)
                schema = project.schema()
                if schema is None:
                    inferred = Schema.infer(frame, exclude=project.special_columns())
                    project.set_state("schema", inferred.to_dict(), s)
                elif schema.untyped:
                    type_first_values(project, s, frame, source or key)
                row = BatchRow(
                    key=key,
                    source=source,
                    n_rows=len(frame),
                    artifact=sha,
                    data_time=data_time,
                    n_labelled=n_labelled,
                    status="quarantined" if future else "new",
                    note=future,
                )
                s.add(row)
                s.flush()
                join_early_labels(project, s, row, frame)
                record_from_batch(project, s, row, frame)
                project.event(
                    s,
                    "ingest",
                    f"batch {row.id} ({len(frame)} rows) from {where}",
                    batch_id=row.id,
                    key=key,
                    rows=len(frame),
                    labelled=n_labelled,
                )
                if future:  # never checked, never in a window, never the data clock
                    msg = f"batch {row.id} quarantined: {future}"
                    project.event(s, "quarantine", msg, batch_id=row.id)
                return BatchInfo.of(row)
        except SQLIntegrityError as exc:
            # A concurrent ingest stored the same key, or inferred the schema first: read
            # again and find its row (R4: 16 writers on one store).
            if attempt == INGEST_ATTEMPTS:
                raise StoreError(f"{where}: cannot store batch {key!r}: {exc}") from exc


def type_first_values(project: Record, s: Session, frame: pd.DataFrame, where: str) -> None:
    """Give the inferred schema's columns that had no value until ``frame`` the kind of their
    first values (a column not recorded in the first batch has no kind to read), with an event
    each; nothing for a declared schema."""
    row = s.get(StateRow, "schema")
    if row is None:
        return
    before = Schema.from_dict(row.value)
    after = before.typed_by(frame)
    if after is before:
        return
    project.set_state("schema", after.to_dict(), s)
    for name in sorted(set(before.untyped) - set(after.untyped)):
        message = f"column {name!r} is {after[name].kind}: its first values came in {where}"
        project.event(s, "schema", message, column=name, typed=after[name].kind)


def each_file(project: Record, path: str | Path, ingest: Callable[..., Any], table: type) -> list:
    """``ingest`` each data file of ``path`` (read with ``data.encoding``, keyed by
    :meth:`file_key`); errors about a CSV file's rows give its lines."""
    done = []
    for f in list_files(path):
        with file_lines(f):
            frame = read_table(f, encoding=project.config.data.encoding)
            done.append(ingest(frame, key=file_key(project, f, table), source=str(f)))
    return done


def file_key(project: Record, path: Path, table: type, sha: str | None = None) -> str:
    """The ingest key of a file: ``file:<name>:<content hash>``, or the key under which the
    same bytes were stored before (in ``table``) under another name, so a file sent again
    is recognised whatever its name. ``sha``: the file's hash when the caller has it."""
    sha = sha or _file_sha(path)
    with project.store.session() as s:
        same = s.scalar(select(table.key).where(table.key.like(f"file:%:{sha}")).limit(1))
    return same or f"file:{path.name}:{sha}"


def conform(project: Record, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    d = project.config.data
    frame = frame.copy()
    missing = [c for c in (d.id_column, d.time_column) if c and c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {missing} named in the project file "
            f"(data.id_column / data.time_column); columns are {list(frame.columns)}"
        )
    from retrainer.diagnosis.fixes import apply_fixes
    from retrainer.diagnosis.loop import accepted_fixes

    frame = apply_fixes(frame, accepted_fixes(project), where)
    schema = project.schema()
    if schema is not None:
        schema = schema.typed_by(frame)  # stored at ingest (type_first_values)
        # with a champion, a missing or re-typed column is stored and diagnosed (quarantined),
        # not refused
        lenient = project.champion is not None
        frame = schema.conform(frame, source=where, required=not lenient, keep_unreadable=lenient)
    if d.time_column:
        column = f"{where}: column {d.time_column!r}"
        frame[d.time_column] = utc_times(frame[d.time_column], column, d.timezone)
    if d.target in frame:
        check_label_kind(project, frame[d.target], f"{where}: column {d.target!r} (the target)")
    if d.id_column and frame[d.id_column].isna().any():
        row = int(frame[d.id_column].isna().to_numpy().argmax())
        raise DataError(f"{where}: column {d.id_column!r} (the id) is empty in row {row}")
    return frame


def future_note(data_time: datetime, column: str, now: datetime | None = None) -> str:
    """Why a batch whose time column reaches past the wall clock (plus ``FUTURE_SLACK``) is
    quarantined at ingest, or "" when it does not: such a time would move the data clock, and
    every later cycle would wait for it.

    Example:
        >>> now = datetime(2026, 1, 1, tzinfo=UTC)
        >>> future_note(datetime(2999, 1, 1, tzinfo=UTC), "timestamp", now)[:60]
        "future_timestamp: column 'timestamp' (the time column) reach"
        >>> future_note(now + FUTURE_SLACK, "timestamp", now)
        ''
    """
    now = now or utcnow()
    if data_time <= now + FUTURE_SLACK:
        return ""
    return (
        f"future_timestamp: column {column!r} (the time column) reaches "
        f"{data_time.isoformat()}, later than the wall clock {now.isoformat(timespec='seconds')} "
        f"plus {FUTURE_SLACK}"
    )


def _file_sha(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def utc_times(values: pd.Series, where: str, zone: str | None = None) -> pd.Series:
    """Timestamps as UTC, as ingest reads the time column (and the backtest, so that its
    periods are the live ones). Times without an offset are read in ``zone``
    (``data.timezone``); without one they are refused (they are ambiguous), except calendar
    dates: a column whose every value is a midnight without an offset (``2024-05-01``) names
    days, not instants, and is read as UTC days.

    >>> naive = pd.Series(["2024-05-01 10:00"])
    >>> utc_times(naive, "t", "Europe/Zurich").dt.hour.tolist()
    [8]
    >>> utc_times(pd.Series(["2024-05-01", "2024-05-02"]), "t").dt.day.tolist()
    [1, 2]
    """
    try:
        parsed = pd.to_datetime(values, utc=False)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: not a timestamp: {exc}") from None
    if getattr(parsed.dt, "tz", None) is None:
        if zone is None and _calendar_dates(parsed):
            zone = "UTC"
        if zone is None:
            raise DataError(
                f"{where}: timestamps without a time zone are ambiguous; set data.timezone "
                "(e.g. UTC, Europe/Zurich) or write them with an offset (2024-05-01T10:00:00+00:00)"
            )
        try:
            parsed = parsed.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError) as exc:  # a clock change: the hour is skipped or repeated
            raise DataError(f"{where}: {exc} in data.timezone {zone}") from None
    return parsed.dt.tz_convert(UTC)


def _calendar_dates(parsed: pd.Series) -> bool:
    """Whether naive timestamps are all midnights: dates, whose order and days need no zone."""
    known = parsed.dropna()
    return bool(len(known)) and bool((known == known.dt.normalize()).all())
