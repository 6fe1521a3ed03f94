"""The run's record: what one project has stored (events, batches and their frames, state, the
schema, the registry's champion), read and written by every stage below the door.

Stages take a :class:`Record` (a :class:`~retrainer.project.Project` is one), so they depend on
the record and never on the door above them.

Example:
    >>> import tempfile
    >>> record = Record.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
    >>> record.special_columns(), record.schema(), record.champion
    (['y'], None, None)
    >>> with record.store.session() as s:
    ...     record.set_state("manual", {"reason": "why"}, s)
    >>> record.get_state("manual")
    {'reason': 'why'}
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.config import Config
from retrainer.errors import DataError, NotFoundError
from retrainer.integrations.mlflow_registry import mirror_for
from retrainer.integrations.storage_artifacts import open_artifacts
from retrainer.registry import ModelVersion, Registry
from retrainer.store import Store
from retrainer.store.tables import BatchRow, EventRow, StateRow, utcnow

SET_ASIDE = "set_aside"  # the state of rows set aside per batch (retrainer.quarantine)

if TYPE_CHECKING:  # pandas (through the schema) is imported where a frame or the schema is
    import pandas as pd  # read: commands that only read the store start without it

    from retrainer.data.schema import Schema
    from retrainer.training import Trainer
    from retrainer.triggers import Policy


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


class Record:
    """The store, artifacts, registry, trainer and policy of one project file."""

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.store_url)
        self.artifacts = open_artifacts(
            config.store.artifacts, config.root, config.store.storage_options
        )
        self.registry = Registry(self.store, self.artifacts)
        self.registry.mirror = mirror_for(config, self.registry)  # registry.backend: mlflow
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
    def from_yaml(cls, path: str | Path) -> Record:
        """Open the record of a ``retrainer.yaml`` file."""
        return cls(Config.from_yaml(path))

    @classmethod
    def from_dict(cls, data: dict, *, root: str | Path = ".") -> Record:
        """Open the record of settings given as a dict (paths relative to ``root``)."""
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
        """The data contract: from the project file, or inferred from the first batch (its
        types and nullability: ranges and categories are the champion's reference's)."""
        from retrainer.data.schema import ColumnSpec, Schema

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
        # inferred from the first batch; a column it had no value of is typed by its first values
        if self._schema is None or self._schema.untyped:
            value = self.get_state("schema")
            if not value:
                return None
            bounds = {"min_rows": rows.get("min"), "max_rows": rows.get("max")}
            self._schema = Schema.from_dict({**value, **bounds}).types_only()
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

    def request_retrain(self, reason: str, actor: str = "user") -> None:
        """Ask for a retrain at the next cycle (the manual trigger; ignores the cooldown)."""
        with self.store.session() as s:
            self.set_state("manual", {"reason": reason, "actor": actor}, s)
            self.event(s, "manual", f"retrain requested by {actor}: {reason}")

    # --------------------------------------------------------------------- batches
    def set_aside(self, batch_id: int) -> list[int]:
        """Positions of a batch's rows set aside (a few impossible values; see
        ``retrainer.quarantine``): kept in the batch, never trained or evaluated on."""
        entry = (self.get_state(SET_ASIDE) or {}).get(str(batch_id)) or {}
        return list(entry.get("rows", []))

    def without_set_aside(self, frame: pd.DataFrame, batch_id: int) -> pd.DataFrame:
        """``frame`` (a batch's stored rows, in their stored order) without the rows set aside
        from it (dropped by position, whatever the frame's index labels)."""
        aside = self.set_aside(batch_id)
        if not aside:
            return frame
        import numpy as np

        keep = np.ones(len(frame), dtype=bool)
        keep[aside] = False
        return frame[keep]

    def batch_frame(
        self, row: BatchRow, *, labelled_only: bool = False, kept_only: bool = False
    ) -> pd.DataFrame:
        """The rows of a stored batch, with late labels joined in; ``kept_only``: without its
        rows set aside (``retrainer.quarantine``; a reference's or an estimate's rows);
        ``labelled_only``: its labelled rows that were not set aside (a training window's)."""
        frame = self.artifacts.get_frame(row.artifact)
        if row.labels:
            id_col, target = self.config.data.id_column, self.target
            labels = self.artifacts.get_frame(row.labels).set_index(id_col)[target]
            joined = frame[id_col].map(labels)
            frame[target] = _labels_over(frame[target], joined) if target in frame else joined
        if labelled_only or kept_only:
            frame = self.without_set_aside(frame, row.id)
        if labelled_only:
            frame = frame[frame[self.target].notna()] if self.target in frame else frame.iloc[:0]
        return frame

    # -------------------------------------------------------------------- models
    @property
    def models(self) -> list[ModelVersion]:
        """Every registered model version, oldest first."""
        return self.registry.versions()

    @property
    def champion(self) -> ModelVersion | None:
        """The model version the ``champion`` alias points to."""
        return self.registry.alias("champion")

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
        """Where microcontroller deploy bundles (``<target>-<version>``) are written: beside the
        artifacts, or in ``.retrainer/bundles`` when the artifacts are in object storage."""
        from retrainer.integrations.storage import is_url

        artifacts = self.config.store.artifacts
        return self.config.resolve(".retrainer" if is_url(artifacts) else artifacts) / "bundles"


def _labels_over(own: pd.Series, joined: pd.Series) -> pd.Series:
    """A batch's own labels with the joined ones over them where they differ (a replaced label
    wins); the column keeps its dtype where nothing changes.

    Example:
        >>> import pandas as pd
        >>> _labels_over(pd.Series([0, 1, None]), pd.Series([0, 0, 1])).tolist()
        [0.0, 0.0, 1.0]
    """
    differs = (own.astype(object) != joined.astype(object)).to_numpy(dtype=bool)
    over = joined.notna().to_numpy() & differs
    return own.mask(over, joined) if over.any() else own


def checked_key(key: str | None, where: str) -> str | None:
    """An idempotency key: at most 200 characters, no control characters (NUL breaks
    PostgreSQL text, and none belongs in a name)."""
    if key is None:
        return None
    if not key or len(key) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise DataError(
            f"{where}: key {key[:60]!r} must be 1-200 characters without control characters"
        )
    return key


def stored_diagnosis(project: Record, batch_id: int) -> dict | None:
    """The latest diagnosis stored for a batch, or None if it was never checked."""
    with project.store.session() as s:
        if s.get(BatchRow, batch_id) is None:
            raise NotFoundError(f"batch {batch_id} does not exist")
        event = s.scalars(
            select(EventRow)
            .where(EventRow.batch_id == batch_id, EventRow.kind == "check")
            .order_by(EventRow.id.desc())
            .limit(1)
        ).first()
        return dict(event.data["diagnosis"]) if event and "diagnosis" in event.data else None
