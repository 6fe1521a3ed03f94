"""A project: one model kept fresh. The Python door to the whole loop.

Example:
    >>> import tempfile
    >>> from retrainer.datasets import load_elec2
    >>> folder = tempfile.mkdtemp()
    >>> project = Project.from_dict({
    ...     "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    ...     "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier",
    ...                 "params": {"max_depth": 4}, "window": {"batches": 2}},
    ... }, root=folder)
    >>> elec = load_elec2()
    >>> project.ingest(elec.iloc[:1344], key="weeks-1-4").n_rows
    1344
    >>> project.cycle().decision["action"]
    'retrain'
    >>> project.champion.version
    1
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from retrainer.artifacts import ArtifactStore
from retrainer.config import Config
from retrainer.data.io import file_lines, list_files, read_table, to_pandas
from retrainer.data.schema import ColumnSpec, Schema
from retrainer.errors import DataError, NotFoundError, StoreError
from retrainer.labels import LabelReport, join_early_labels
from retrainer.registry import ModelVersion, Registry
from retrainer.serving import PredictionReport, ingest_predictions, record_from_batch
from retrainer.store import Store
from retrainer.store.tables import (
    BatchRow,
    EventRow,
    LabelSetRow,
    PredictionLogRow,
    StateRow,
    utcnow,
)

if TYPE_CHECKING:
    from retrainer.training import Trainer
    from retrainer.triggers import Policy

FUTURE_SLACK = timedelta(hours=1)  # clock skew tolerated before a batch's time is the future
INGEST_ATTEMPTS = 3  # a unique-key collision with a concurrent ingest is read again


@dataclass(frozen=True)
class BatchInfo:
    """A stored batch."""

    id: int
    key: str
    n_rows: int
    n_labelled: int
    status: str
    data_time: datetime | None
    new: bool = True

    @classmethod
    def of(cls, row: BatchRow, new: bool = True) -> BatchInfo:
        return cls(row.id, row.key, row.n_rows, row.n_labelled, row.status, row.data_time, new)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "key": self.key,
            "n_rows": self.n_rows,
            "n_labelled": self.n_labelled,
            "status": self.status,
            "new": self.new,
            "data_time": self.data_time.isoformat() if self.data_time else None,
        }


class Project:
    """The store, artifacts, registry, trainer and policy of one project file."""

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.store_url)
        self.artifacts = ArtifactStore(config.resolve(config.store.artifacts))
        self.registry = Registry(self.store, self.artifacts)
        self._models: dict[int, Any] = {}
        self._schema: Schema | None = None

    # built on first use: scikit-learn and the policy's checks take seconds to import, which
    # commands that only read the store (status, models, explain) do not pay
    @cached_property
    def trainer(self) -> Trainer:
        from retrainer.training import Trainer

        return Trainer(self.config.trainer.estimator, dict(self.config.trainer.params))

    @cached_property
    def policy(self) -> Policy:
        from retrainer.triggers import Policy

        return Policy.from_settings(self.config.policy)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Project:
        """Open the project of a ``retrainer.yaml`` file."""
        return cls(Config.from_yaml(path))

    @classmethod
    def from_dict(cls, data: dict, *, root: str | Path = ".") -> Project:
        """Open a project from settings given as a dict (paths relative to ``root``)."""
        return cls(Config.from_dict(data, root=Path(root).resolve()))

    # ----------------------------------------------------------------- columns and schema
    @property
    def target(self) -> str:
        return self.config.data.target

    def special_columns(self) -> list[str]:
        """Columns that are not features: target, id, time and prediction."""
        d = self.config.data
        return [c for c in (d.target, d.id_column, d.time_column, d.prediction) if c]

    def features(self, frame: pd.DataFrame | None = None) -> list[str]:
        """The feature columns: configured, or the schema's, or every non-special column."""
        if self.config.data.features:
            return list(self.config.data.features)
        schema = self.schema()
        if schema is not None:
            return schema.names
        special = set(self.special_columns())
        return [c for c in (frame.columns if frame is not None else []) if c not in special]

    def schema(self) -> Schema | None:
        """The data contract: from the project file, or inferred from the first batch."""
        declared = self.config.data.schema_
        rows = self.config.data.expected_rows
        if isinstance(declared, dict):
            columns = tuple(ColumnSpec(name=n, **spec) for n, spec in declared.items())
            return Schema(
                columns,
                ignored=tuple(self.special_columns()),
                min_rows=rows.get("min"),
                max_rows=rows.get("max"),
            )
        if self._schema is None:  # inferred once from the first batch, never changed after
            value = self.get_state("schema")
            if not value:
                return None
            bounds = {"min_rows": rows.get("min"), "max_rows": rows.get("max")}
            self._schema = Schema.from_dict({**value, **bounds})
        return self._schema

    # ----------------------------------------------------------------------- state
    def get_state(self, key: str) -> dict | None:
        with self.store.session() as s:
            row = s.get(StateRow, key)
            return dict(row.value) if row else None

    def set_state(self, key: str, value: dict, session: Session | None = None) -> None:
        with self._session(session) as s:
            row = s.get(StateRow, key)
            if row is None:
                s.add(StateRow(key=key, value=value))
            else:
                row.value, row.updated_at = value, utcnow()

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.store.session() as s:
                yield s

    def event(
        self,
        s: Session,
        kind: str,
        message: str,
        *,
        cycle_id: int | None = None,
        batch_id: int | None = None,
        **data: Any,
    ) -> None:
        """Add one event to the log (in the caller's transaction)."""
        s.add(EventRow(kind=kind, message=message, cycle_id=cycle_id, batch_id=batch_id, data=data))

    # ---------------------------------------------------------------------- ingest
    def ingest(self, data: Any, *, key: str | None = None, source: str = "") -> BatchInfo:
        """Store one batch (pandas, polars or Arrow table). Ingest is idempotent by ``key``
        (default: the content hash), so a redelivered batch is stored once."""
        where = source or "batch"
        frame = to_pandas(data, source=where)
        if frame.empty:
            raise DataError(f"{where}: the batch has no rows")
        frame = self._conform(frame, where)
        try:
            sha = self.artifacts.put_frame(frame)
        except StoreError as exc:  # e.g. a column Parquet cannot hold: name the batch
            raise type(exc)(f"{where}: {exc}") from exc
        key = _checked_key(key, where) or f"sha256:{sha}"
        source = source.replace("\x00", "\\0")
        target = self.target
        n_labelled = int(frame[target].notna().sum()) if target in frame else 0
        time_col = self.config.data.time_column
        data_time = frame[time_col].max().to_pydatetime() if time_col else utcnow()
        future = future_note(data_time, time_col) if time_col else ""
        for attempt in range(1, INGEST_ATTEMPTS + 1):
            try:
                with self.store.session() as s:
                    existing = s.scalar(select(BatchRow).where(BatchRow.key == key))
                    if existing is not None:
                        return BatchInfo.of(existing, new=False)
                    if self.schema() is None:
                        inferred = Schema.infer(frame, exclude=self.special_columns())
                        self.set_state("schema", inferred.to_dict(), s)
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
                    join_early_labels(self, s, row, frame)
                    record_from_batch(self, s, row, frame)
                    self.event(
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
                        self.event(s, "quarantine", msg, batch_id=row.id)
                    return BatchInfo.of(row)
            except SQLIntegrityError as exc:
                # A concurrent ingest stored the same key, or inferred the schema first: read
                # again and find its row (R4: 16 writers on one store).
                if attempt == INGEST_ATTEMPTS:
                    raise StoreError(f"{where}: cannot store batch {key!r}: {exc}") from exc

    def ingest_path(self, path: str | Path) -> list[BatchInfo]:
        """Ingest a CSV or Parquet file, or every such file of a folder (one batch each)."""
        return self._each_file(path, self.ingest, BatchRow)

    def _each_file(self, path: str | Path, ingest: Callable[..., Any], table: type) -> list:
        """``ingest`` each data file of ``path`` (read with ``data.encoding``, keyed by
        :meth:`file_key`); errors about a CSV file's rows give its lines."""
        done = []
        for f in list_files(path):
            with file_lines(f):
                frame = read_table(f, encoding=self.config.data.encoding)
                done.append(ingest(frame, key=self.file_key(f, table), source=str(f)))
        return done

    def file_key(self, path: Path, table: type) -> str:
        """The ingest key of a file: ``file:<name>:<content hash>``, or the key under which the
        same bytes were stored before (in ``table``) under another name, so a file sent again
        is recognised whatever its name."""
        sha = _file_sha(path)
        with self.store.session() as s:
            same = s.scalar(select(table.key).where(table.key.like(f"file:%:{sha}")).limit(1))
        return same or f"file:{path.name}:{sha}"

    def _conform(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        d = self.config.data
        frame = frame.copy()
        missing = [c for c in (d.id_column, d.time_column) if c and c not in frame.columns]
        if missing:
            raise DataError(
                f"{where}: missing column(s) {missing} named in the project file "
                f"(data.id_column / data.time_column); columns are {list(frame.columns)}"
            )
        from retrainer.diagnosis.fixes import apply_fixes

        frame = apply_fixes(frame, self.fixes(), where)
        schema = self.schema()
        if schema is not None:  # with a champion, a missing or re-typed column is stored and
            lenient = self.champion is not None  # diagnosed (quarantined), not refused
            frame = schema.conform(
                frame, source=where, required=not lenient, keep_unreadable=lenient
            )
        if d.time_column:
            column = f"{where}: column {d.time_column!r}"
            frame[d.time_column] = _utc(frame[d.time_column], column, d.timezone)
        if d.target in frame:
            self._check_label_kind(frame[d.target], f"{where}: column {d.target!r} (the target)")
        if d.id_column and frame[d.id_column].isna().any():
            row = int(frame[d.id_column].isna().to_numpy().argmax())
            raise DataError(f"{where}: column {d.id_column!r} (the id) is empty in row {row}")
        return frame

    def _check_label_kind(self, values: pd.Series, where: str) -> None:
        """Refuse labels of another kind (text or numbers) than the first labels stored, and
        numbers that are no class (0.5, or beyond 2**53, which no integer type holds) when the
        task is classification."""
        kind = _check_labels(values, where)
        if kind == "number" and self.config.trainer.task == "classification":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            finite = np.isfinite(numbers)
            fractional = finite & ((numbers != np.round(numbers)) | (np.abs(numbers) > 2.0**53))
            if fractional.any():
                row = int(fractional.argmax())
                raise DataError(
                    f"{where}: row {row} has {numbers[row]:g}, not a class label (the task "
                    "is classification: labels are whole numbers, booleans or text; set "
                    "trainer.task: regression for a number to predict)"
                )
        known = (self.get_state("labels") or {}).get("kind")
        if kind and known and kind != known:
            raise DataError(f"{where}: labels are {kind}, but the stored labels are {known}")
        if kind and not known:
            try:
                self.set_state("labels", {"kind": kind})
            except SQLIntegrityError:  # a concurrent first batch stored its kind: check against it
                self._check_label_kind(values, where)

    def ingest_labels(
        self,
        data: Any,
        *,
        key: str | None = None,
        source: str = "",
        replace: bool = False,
        actor: str = "user",
    ) -> LabelReport:
        """Join late labels (a table of id and target) to the stored batches. A label that
        differs from the stored label of its id is refused unless ``replace`` (logged)."""
        from retrainer.labels import ingest_labels

        return ingest_labels(self, data, key=key, source=source, replace=replace, actor=actor)

    def ingest_labels_path(self, path: str | Path, *, replace: bool = False) -> list[LabelReport]:
        """Ingest late labels from a CSV or Parquet file or folder (``replace``: correct
        stored labels, see ``ingest_labels``)."""
        return self._each_file(
            path, functools.partial(self.ingest_labels, replace=replace), LabelSetRow
        )

    def ingest_predictions(
        self, data: Any, *, key: str | None = None, version: int | None = None, source: str = ""
    ) -> PredictionReport:
        """Join a serving system's predictions (id, prediction and optionally score columns)
        to the stored batches; ``version`` is the model that served (default: the champion).
        Once labels arrive the cycle scores them as the ``serving`` role."""
        return ingest_predictions(self, data, key=key, version=version, source=source)

    def ingest_predictions_path(self, path: str | Path, version: int | None = None) -> list:
        """Ingest served predictions from a CSV or Parquet file or folder."""
        ingest = functools.partial(self.ingest_predictions, version=version)
        return self._each_file(path, ingest, PredictionLogRow)

    def batch_frame(self, row: BatchRow, *, labelled_only: bool = False) -> pd.DataFrame:
        """The rows of a stored batch, with late labels joined in."""
        frame = self.artifacts.get_frame(row.artifact)
        if row.labels:
            id_col, target = self.config.data.id_column, self.target
            labels = self.artifacts.get_frame(row.labels).set_index(id_col)[target]
            joined = frame[id_col].map(labels)
            frame[target] = _labels_over(frame[target], joined) if target in frame else joined
        if labelled_only:
            frame = frame[frame[self.target].notna()] if self.target in frame else frame.iloc[:0]
        return frame

    # ------------------------------------------------------------------- the loop
    def cycle(self, *, holder: str | None = None, clock: Callable[[], datetime] = utcnow) -> Any:
        """Run one pass of the loop over what arrived since the last one, holding the
        project's cycle lease (``BusyError`` while another process runs a cycle). The service's
        scheduler passes its own ``holder`` and ``clock``."""
        from threadpoolctl import threadpool_limits

        from retrainer.cycle import run_cycle
        from retrainer.lease import cycle_lease

        with cycle_lease(self, holder, clock), threadpool_limits(self.config.trainer.threads):
            return run_cycle(self)

    def request_retrain(self, reason: str, actor: str = "user") -> None:
        """Ask for a retrain at the next cycle (the manual trigger; ignores the cooldown)."""
        with self.store.session() as s:
            self.set_state("manual", {"reason": reason, "actor": actor}, s)
            self.event(s, "manual", f"retrain requested by {actor}: {reason}")

    # -------------------------------------------------------------------- diagnosis
    def diagnosis(self, batch_id: int) -> dict | None:
        """The stored diagnosis of a batch (ranked causes, alarms, proposed fix), or None."""
        from retrainer.diagnosis.loop import stored_diagnosis

        return stored_diagnosis(self, batch_id)

    def fixes(self) -> dict:
        """The fixes applied at ingest: ``data.fixes`` of the project file over accepted ones."""
        from retrainer.diagnosis.loop import accepted_fixes

        return accepted_fixes(self)

    def accept_fix(self, batch_id: int, *, reason: str = "accepted", actor: str = "user") -> dict:
        """Accept the fix proposed by the diagnosis of ``batch_id``; later batches get it."""
        from retrainer.diagnosis.loop import accept_fix

        return accept_fix(self, batch_id, reason=reason, actor=actor)

    def release(
        self, batch_id: int, reason: str, *, actor: str = "user", force: bool = False
    ) -> dict:
        """Release a quarantined batch (accepted fixes applied, quality checks re-run: a batch
        that still fails them stays quarantined unless ``force``)."""
        from retrainer.diagnosis.loop import release

        return release(self, batch_id, reason=reason, actor=actor, force=force)

    # -------------------------------------------------------------------- models
    @property
    def models(self) -> list[ModelVersion]:
        """Every registered model version, oldest first."""
        return self.registry.versions()

    @property
    def champion(self) -> ModelVersion | None:
        """The model version the ``champion`` alias points to."""
        return self.registry.alias("champion")

    def promote(
        self,
        version: int,
        *,
        reason: str = "promoted by hand",
        actor: str = "user",
        force: bool = False,
    ) -> ModelVersion:
        """Make ``version`` the champion; one that failed its gate needs ``force=True``
        (:class:`~retrainer.errors.GateFailedError` says why it failed), and one whose model
        does not load (damaged, or not a skops file) is refused, naming the version."""
        from retrainer.promotion import check_promotable

        check_promotable(self.registry.get(version), force=force)
        self.registry.load(version)
        result = self.registry.promote(version, reason=reason, actor=actor)
        self.set_state("detector", {})
        return result

    def rollback(self, *, reason: str = "rolled back by hand", actor: str = "user") -> ModelVersion:
        """Make the previous champion the champion again."""
        result = self.registry.rollback(reason=reason, actor=actor)
        self.set_state("detector", {})
        return result

    def load_model(self, version: int | None = None) -> Any:
        """Load a model version (default: the champion), verified against its hash when first
        loaded by this process (versions are immutable)."""
        if version is None:
            champion = self.champion
            if champion is None:
                raise NotFoundError("no champion yet: run a cycle with labelled data first")
            version = champion.version
        if version not in self._models:
            self._models[version] = self.registry.load(version)
        return self._models[version]

    def bundle_folder(self) -> Path:
        """Where microcontroller deploy bundles (``<target>-<version>``) are written."""
        return self.config.resolve(self.config.store.artifacts) / "bundles"

    # -------------------------------------------------------------------- views
    def status(self) -> dict:
        """Counts, the champion and the latest events."""
        from retrainer.views import status

        return status(self)

    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report and return its path."""
        from retrainer.report import write_report

        return write_report(self, Path(path) if path else self.config.resolve("report.html"))


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


def _labels_over(own: pd.Series, joined: pd.Series) -> pd.Series:
    """A batch's own labels with the joined ones over them where they differ (a replaced label
    wins); the column keeps its dtype where nothing changes.

    Example:
        >>> _labels_over(pd.Series([0, 1, None]), pd.Series([0, 0, 1])).tolist()
        [0.0, 0.0, 1.0]
    """
    differs = (own.astype(object) != joined.astype(object)).to_numpy(dtype=bool)
    over = joined.notna().to_numpy() & differs
    return own.mask(over, joined) if over.any() else own


def _checked_key(key: str | None, where: str) -> str | None:
    """An idempotency key: at most 200 characters, no control characters (NUL breaks
    PostgreSQL text, and none belongs in a name)."""
    if key is None:
        return None
    if not key or len(key) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise DataError(
            f"{where}: key {key[:60]!r} must be 1-200 characters without control characters"
        )
    return key


def _file_sha(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _check_labels(values: pd.Series, where: str) -> str | None:
    """Labels are finite numbers, booleans or text, all of one kind; anything else is refused
    here, at ingest, rather than failing every later training and evaluation. Returns the kind
    (``number`` or ``text``; None without labels)."""
    if values.isna().all():
        return None
    if pd.api.types.is_bool_dtype(values.dtype):
        return "number"
    if isinstance(values.dtype, pd.StringDtype):
        return "text"
    kind = "number"
    if pd.api.types.is_numeric_dtype(values.dtype):
        bad = ~np.isfinite(values.to_numpy(dtype="float64", na_value=0.0))
    else:
        kinds = values.map(_label_kind)
        bad = (kinds == "bad").to_numpy()
        found = set(kinds) - {"missing"}
        if not bad.any() and len(found) > 1:
            row = int((kinds == "text").to_numpy().argmax())
            raise DataError(f"{where}: labels mix text (row {row}) and numbers; use one kind")
        kind = found.pop() if found else None
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{where}: row {row} has {repr(values.iloc[row])[:80]}, not a finite number, "
            "a boolean or text"
        )
    return kind


def _label_kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float | np.number):
        return "missing" if value != value else "number" if np.isfinite(value) else "bad"
    return "missing" if value is None or value is pd.NA or value is pd.NaT else "bad"


def _utc(values: pd.Series, where: str, zone: str | None = None) -> pd.Series:
    """Timestamps as UTC. Times without an offset are read in ``zone`` (``data.timezone``);
    without one they are refused (they are ambiguous).

    >>> naive = pd.Series(["2024-05-01 10:00"])
    >>> _utc(naive, "t", "Europe/Zurich").dt.hour.tolist()
    [8]
    """
    try:
        parsed = pd.to_datetime(values, utc=False)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: not a timestamp: {exc}") from None
    if getattr(parsed.dt, "tz", None) is None:
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
