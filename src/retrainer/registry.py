"""The model registry: numbered model versions with lineage, and aliases with their history.

A version's artifact is written (atomically, content-addressed) before its row, so every row
points at a complete file. Version numbers are ``max + 1`` with a retry on a unique-key
collision, so concurrent writers, threads or processes, get 1..N without gaps. Every alias move
writes the alias, its history row and an event in one transaction.

Example:
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> from retrainer.artifacts import ArtifactStore
    >>> from retrainer.store.db import Store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(Store("sqlite://"), ArtifactStore(tmp.name))
    >>> model = DummyClassifier().fit([[0], [1]], [0, 1])
    >>> [registry.register(model, lineage={}, metrics={"f1": f1}).version for f1 in (0.7, 0.8)]
    [1, 2]
    >>> registry.promote(1, reason="first").aliases
    ('champion',)
    >>> registry.promote(2, reason="better f1").version
    2
    >>> registry.rollback(reason="f1 dropped in production").version
    1
    >>> [(h["version"], h["previous"], h["kind"]) for h in registry.history()]
    [(1, None, 'promote'), (2, 1, 'promote'), (1, 2, 'rollback')]
    >>> tmp.cleanup()
"""

from __future__ import annotations

import json
import platform
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from retrainer.artifacts import ArtifactStore
from retrainer.errors import IntegrityError, NotFoundError, StoreError
from retrainer.store.db import Store
from retrainer.store.tables import (
    AliasHistoryRow,
    AliasRow,
    EventRow,
    ModelVersionRow,
    utcnow,
)
from retrainer.version import __version__

__all__ = ["ModelVersion", "Registry"]

CHAMPION = "champion"
MAX_ATTEMPTS = 200
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
_ALIAS_EVENTS = ("alias", "promote", "rollback")


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every time the registry hands out is aware UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json_default(value: Any) -> Any:
    import numpy as np  # imported where a version is registered, like pandas below

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON-serialisable")


def _jsonable(value: dict | None, what: str) -> dict:
    """A plain-JSON copy of ``value`` (NumPy scalars and arrays, dates and paths converted)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StoreError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored as JSON: {exc}") from exc


def _packages() -> dict[str, str]:
    # from the installed metadata: importing scikit-learn, SciPy and skops here would cost
    # seconds in every command that only reads the registry (numpy and pandas: tenths)
    import numpy as np
    import pandas as pd

    return {
        "python": platform.python_version(),
        "retrainer": __version__,
        "scikit-learn": metadata.version("scikit-learn"),
        "numpy": np.__version__,
        "scipy": metadata.version("scipy"),
        "pandas": pd.__version__,
        "skops": metadata.version("skops"),
    }


def _retryable(exc: SQLAlchemyError) -> bool:
    """A unique-key collision, or SQLite's lock contention (``database is locked``)."""
    if isinstance(exc, SQLIntegrityError):
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.002 * attempt)))


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version.

    Parameters:
        version: the number, 1, 2, ... in registration order.
        created_at: when it was registered (aware UTC).
        artifact: SHA-256 of the model file in the artifact folder.
        artifact_format: serialisation format (``"skops"``).
        lineage: where it came from: data window, trainer, parameters, package versions.
        metrics: evaluation metrics at registration.
        reference: the reference profile its checks compare against.
        run_id: the retraining run that produced it, if any.
        aliases: aliases pointing at it now (``("champion",)``).
    """

    version: int
    created_at: datetime
    artifact: str
    artifact_format: str
    lineage: dict
    metrics: dict
    reference: dict
    run_id: int | None
    aliases: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-friendly dict (ISO 8601 times, aliases as a list).

        Example:
            >>> mv = ModelVersion(3, datetime(2024, 5, 1, tzinfo=UTC), "ab" * 32, "skops",
            ...                   {}, {"f1": 0.9}, {}, None, ("champion",))
            >>> mv.to_dict()["created_at"], mv.to_dict()["aliases"]
            ('2024-05-01T00:00:00+00:00', ['champion'])
        """
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "artifact": self.artifact,
            "artifact_format": self.artifact_format,
            "lineage": self.lineage,
            "metrics": self.metrics,
            "reference": self.reference,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
        }


def _model_version(row: ModelVersionRow, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        version=row.version,
        created_at=_utc(row.created_at),
        artifact=row.artifact,
        artifact_format=row.artifact_format,
        lineage=dict(row.lineage or {}),
        metrics=dict(row.metrics or {}),
        reference=dict(row.reference or {}),
        run_id=row.run_id,
        aliases=aliases,
    )


class Registry:
    """Model versions, aliases and their history, on a metadata store and an artifact folder.

    Parameters:
        store: the metadata store (rows: versions, aliases, alias history, events).
        artifacts: the content-addressed folder holding the model files.
    """

    def __init__(self, store: Store, artifacts: ArtifactStore, mirror: Any = None):
        self.store = store
        self.artifacts = artifacts
        self.mirror = mirror  # e.g. an MlflowMirror: synced after every alias move

    def sync_mirror(self) -> None:
        """Bring the mirror (``registry.backend: mlflow``) in step; a no-op without one."""
        if self.mirror is not None:
            self.mirror.sync()

    def __repr__(self) -> str:
        return f"Registry(store={self.store.url!r}, artifacts={self.artifacts!r})"

    def _next_version(self) -> int:
        """``max(version) + 1`` as seen now; the insert may still collide and is then retried."""
        with self.store.session() as session:
            return session.scalar(select(func.coalesce(func.max(ModelVersionRow.version), 0))) + 1

    def register(
        self,
        model: Any,
        *,
        lineage: dict,
        metrics: dict,
        reference: dict | None = None,
        run_id: int | None = None,
    ) -> ModelVersion:
        """Store a model's artifact, then record it as the next version (and a ``register`` event).

        ``lineage`` gets ``artifact`` (its SHA-256), ``artifact_format`` and ``packages``
        (python, retrainer, scikit-learn, numpy, scipy, pandas, skops versions); these keys are
        set by the registry and override the caller's.

        Parameters:
            model: a fitted scikit-learn estimator or pipeline (stored with skops).
            lineage: where the model came from (data window, trainer, parameters, ...).
            metrics: evaluation metrics (JSON-serialisable; NumPy scalars are converted).
            reference: the reference profile, if any.
            run_id: the retraining run that produced it.
        """
        lineage = _jsonable(lineage, "lineage")
        metrics = _jsonable(metrics, "metrics")
        reference = _jsonable(reference, "reference")
        sha = self.artifacts.put_model(model)
        lineage.update(artifact=sha, artifact_format="skops", packages=_packages())
        for attempt in range(1, MAX_ATTEMPTS + 1):
            version = self._next_version()
            try:
                with self.store.session() as session:
                    row = ModelVersionRow(
                        version=version,
                        created_at=utcnow(),
                        run_id=run_id,
                        artifact=sha,
                        artifact_format="skops",
                        lineage=lineage,
                        metrics=metrics,
                        reference=reference,
                    )
                    session.add(row)
                    session.add(
                        EventRow(
                            kind="register",
                            message=f"registered model version {version} (artifact {sha[:12]})",
                            data={
                                "version": version,
                                "artifact": sha,
                                "run_id": run_id,
                                "attempts": attempt,
                            },
                        )
                    )
                return _model_version(row, ())
            except SQLAlchemyError as exc:
                if not _retryable(exc):
                    raise StoreError(f"cannot register model version {version}: {exc}") from exc
                _backoff(attempt)
        raise StoreError(
            f"cannot register the model (artifact {sha}): {MAX_ATTEMPTS} attempts collided "
            "with concurrent registrations"
        )

    def _aliases_of(
        self, session: Session, version: int | None = None
    ) -> dict[int, tuple[str, ...]]:
        query = select(AliasRow.version, AliasRow.name).order_by(AliasRow.name)
        if version is not None:
            query = query.where(AliasRow.version == version)
        found: dict[int, tuple[str, ...]] = {}
        for v, name in session.execute(query):
            found[v] = (*found.get(v, ()), name)
        return found

    def get(self, version: int) -> ModelVersion:
        """One model version.

        Parameters:
            version: its number.
        """
        with self.store.session() as session:
            row = session.get(ModelVersionRow, version)
            if row is None:
                latest = session.scalar(select(func.max(ModelVersionRow.version)))
                known = f"registered: 1..{latest}" if latest else "no version is registered"
                raise NotFoundError(f"model version {version!r} does not exist ({known})")
            return _model_version(row, self._aliases_of(session, version).get(version, ()))

    def versions(self) -> list[ModelVersion]:
        """Every model version, oldest first."""
        with self.store.session() as session:
            aliases = self._aliases_of(session)
            rows = session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.version))
            return [_model_version(row, aliases.get(row.version, ())) for row in rows]

    def load(self, version: int) -> Any:
        """The model of a version, after verifying its artifact's hash.

        Parameters:
            version: its number.
        """
        model_version = self.get(version)
        try:
            return self.artifacts.get_model(model_version.artifact)
        except StoreError as exc:  # damaged, or re-pointed to a pickle: name the version
            raise type(exc)(f"model version {version}: {exc}") from exc

    def alias(self, name: str = CHAMPION) -> ModelVersion | None:
        """The version an alias points at, or None if the alias was never set.

        Parameters:
            name: the alias.
        """
        with self.store.session() as session:
            row = session.get(AliasRow, name)
            version = None if row is None else row.version
        return None if version is None else self.get(version)

    def set_alias(
        self, name: str, version: int, *, reason: str, actor: str = "retrainer"
    ) -> ModelVersion:
        """Point an alias at a version (alias, history row and ``alias`` event in one transaction).

        Parameters:
            name: the alias (a letter, then letters, digits, ``_ . -``; at most 100 characters).
            version: the version it should point at.
            reason: why (kept in the history).
            actor: who moved it.
        """
        moved = self._move(name, version, reason=reason, actor=actor, kind="alias")
        self.sync_mirror()
        return moved

    def promote(self, version: int, *, reason: str, actor: str = "retrainer") -> ModelVersion:
        """Make a version the champion (event kind ``promote``).

        Parameters:
            version: the version to promote.
            reason: why (kept in the history).
            actor: who promoted it.
        """
        moved = self._move(CHAMPION, version, reason=reason, actor=actor, kind="promote")
        self.sync_mirror()
        return moved

    def rollback(
        self, *, reason: str, actor: str = "retrainer", alias: str = CHAMPION
    ) -> ModelVersion:
        """Give the alias back to the version that held it before the current one.

        Rollbacks undo moves in order: after champions 1, 2, 3, two rollbacks give 2 then 1.

        Parameters:
            reason: why (kept in the history).
            actor: who rolled back.
            alias: the alias to roll back.
        """
        moved = self._move(alias, None, reason=reason, actor=actor, kind="rollback")
        self.sync_mirror()
        return moved

    def _rollback_target(self, session: Session, name: str) -> int:
        """Replay the alias history as a stack: moves push, rollbacks pop."""
        kinds = self._history_kinds(session, name)
        stack: list[int] = []
        for row in session.scalars(
            select(AliasHistoryRow)
            .where(AliasHistoryRow.alias == name)
            .order_by(AliasHistoryRow.id)
        ):
            if kinds.get(row.id) == "rollback" and stack:
                stack.pop()
            elif not stack or stack[-1] != row.version:
                stack.append(row.version)
        if len(stack) < 2:
            current = f"version {stack[-1]}" if stack else "no version"
            raise NotFoundError(
                f"cannot roll back alias {name!r}: it points at {current} and no earlier "
                "version held it; promote a version instead"
            )
        return stack[-2]

    def _move(
        self, name: str, version: int | None, *, reason: str, actor: str, kind: str
    ) -> ModelVersion:
        if not isinstance(name, str) or not _ALIAS_RE.fullmatch(name):
            raise StoreError(
                f"invalid alias name {name!r}: use a letter, then letters, digits, '_', '.' "
                "or '-' (at most 100 characters)"
            )
        for attempt in range(1, MAX_ATTEMPTS + 1):
            now = utcnow()
            try:
                with self.store.session() as session:
                    # Write first: this takes SQLite's write lock (a row lock on PostgreSQL), so
                    # the reads below see every earlier move and the history chain stays exact.
                    # No row locked (PostgreSQL, first move): insert, and retry on a collision.
                    locked = session.execute(
                        update(AliasRow).where(AliasRow.name == name).values(updated_at=now)
                    ).rowcount
                    target = self._rollback_target(session, name) if version is None else version
                    if session.get(ModelVersionRow, target) is None:
                        raise NotFoundError(
                            f"cannot point alias {name!r} at model version {target!r}: "
                            "it does not exist"
                        )
                    row = session.get(AliasRow, name, populate_existing=True) if locked else None
                    previous = None if row is None else row.version
                    if row is None:
                        session.add(AliasRow(name=name, version=target, updated_at=now))
                    else:
                        row.version = target
                    history = AliasHistoryRow(
                        alias=name,
                        version=target,
                        previous=previous,
                        at=now,
                        reason=reason,
                        actor=actor,
                    )
                    session.add(history)
                    session.flush()
                    session.add(
                        EventRow(
                            at=now,
                            kind=kind,
                            message=f"{kind}: alias {name!r} {previous} -> {target}: {reason}",
                            data={
                                "alias": name,
                                "version": target,
                                "previous": previous,
                                "history_id": history.id,
                                "reason": reason,
                                "actor": actor,
                            },
                        )
                    )
                return self.get(target)
            except SQLAlchemyError as exc:
                if not _retryable(exc):
                    raise StoreError(f"cannot move alias {name!r}: {exc}") from exc
                _backoff(attempt)
        raise StoreError(f"cannot move alias {name!r}: {MAX_ATTEMPTS} attempts collided")

    def _history_kinds(self, session: Session, name: str) -> dict[int, str]:
        kinds: dict[int, str] = {}
        for event in session.scalars(select(EventRow).where(EventRow.kind.in_(_ALIAS_EVENTS))):
            data = event.data or {}
            if data.get("alias") == name and isinstance(data.get("history_id"), int):
                kinds[data["history_id"]] = event.kind
        return kinds

    def history(self, alias: str = CHAMPION) -> list[dict]:
        """Every move of an alias, oldest first.

        Each entry has ``version``, ``previous``, ``at`` (ISO 8601), ``reason``, ``actor`` and
        ``kind`` (``promote``, ``rollback`` or ``alias``).

        Parameters:
            alias: the alias.
        """
        with self.store.session() as session:
            kinds = self._history_kinds(session, alias)
            rows = session.scalars(
                select(AliasHistoryRow)
                .where(AliasHistoryRow.alias == alias)
                .order_by(AliasHistoryRow.id)
            )
            return [
                {
                    "version": row.version,
                    "previous": row.previous,
                    "at": _utc(row.at).isoformat(),
                    "reason": row.reason,
                    "actor": row.actor,
                    "kind": kinds.get(row.id, "alias"),
                }
                for row in rows
            ]

    def verify(self) -> list[str]:
        """Problems found: artifacts missing or corrupt, lineage naming another artifact, aliases
        pointing at missing versions. An empty list means all is well."""
        problems: list[str] = []
        with self.store.session() as session:
            rows = session.execute(
                select(
                    ModelVersionRow.version, ModelVersionRow.artifact, ModelVersionRow.lineage
                ).order_by(ModelVersionRow.version)
            ).all()
            aliases = session.execute(select(AliasRow.name, AliasRow.version)).all()
        known = {version for version, _, _ in rows}
        for version, sha, lineage in rows:
            try:
                self.artifacts.get_bytes(sha)
            except (IntegrityError, StoreError) as exc:
                problems.append(f"model version {version}: {exc}")
            recorded = (lineage or {}).get("artifact")
            if recorded not in (None, sha):
                problems.append(
                    f"model version {version}: lineage names artifact {recorded}, row has {sha}"
                )
        for name, version in aliases:
            if version not in known:
                problems.append(f"alias {name!r} points at missing model version {version}")
        return problems
