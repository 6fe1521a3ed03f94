"""Predictions made by a serving system, joined to the stored batches by id.

A serving system either sends its prediction in the batch itself (the column named by
``data.prediction``) or posts it later, apart from the batch (``Project.ingest_predictions``,
``retrainer ingest --predictions``, ``POST /api/predictions``). Either way the rows are kept as
the batch's ``serving`` prediction set, and once the batch's labels arrive the cycle scores
what was really served next to what the champion predicts.

Example:
    >>> import tempfile
    >>> from retrainer.datasets import load_elec2
    >>> from retrainer.project import Project
    >>> project = Project.from_dict({
    ...     "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    ...     "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier",
    ...                 "params": {"max_depth": 4}, "window": {"batches": 2}},
    ... }, root=tempfile.mkdtemp())
    >>> elec = load_elec2()
    >>> _ = project.ingest(elec.iloc[:1344], key="history"); _ = project.cycle()
    >>> week = elec.iloc[1344:1680]
    >>> _ = project.ingest(week.drop(columns="target"), key="week-1")
    >>> served = week[["id"]].assign(prediction=1)
    >>> report = project.ingest_predictions(served, key="serving-log-1")
    >>> report.matched, report.unmatched, report.version
    (336, 0, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.data.io import to_pandas
from retrainer.errors import DataError, NotFoundError, StoreError
from retrainer.record import checked_key
from retrainer.store.tables import BatchRow, ModelVersionRow, PredictionLogRow, PredictionSetRow

if TYPE_CHECKING:
    from retrainer.record import Record

ROLE = "serving"
SCORE = "score"  # optional column: the served probability of the positive class
CLASS_SCORE = "score:"  # or one column per class of a multi-class model: "score:<class>"


@dataclass(frozen=True)
class PredictionReport:
    """What a set of served predictions joined to."""

    key: str
    n_rows: int
    matched: int
    unmatched: int
    batches: tuple[int, ...]
    version: int
    new: bool = True

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "n_rows": self.n_rows,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "batches": list(self.batches),
            "version": self.version,
            "new": self.new,
        }


def prediction_column(project: Record) -> str:
    """The column that holds a served prediction (``data.prediction``, else ``prediction``)."""
    return project.config.data.prediction or "prediction"


def served_version(project: Record, s: Session, version: int | None, where: str) -> int:
    """The model version that served: the one named, or else the champion."""
    if version is None:
        champion = project.champion
        if champion is None:
            raise DataError(f"{where}: no champion yet; name the model version that served")
        return champion.version
    if s.get(ModelVersionRow, version) is None:
        raise NotFoundError(f"{where}: model version {version} does not exist")
    return version


def ingest_predictions(
    project: Record,
    data: Any,
    *,
    key: str | None = None,
    version: int | None = None,
    source: str = "",
) -> PredictionReport:
    """Join served predictions (id, prediction and optionally score columns) to the stored
    batches that were not scored yet. Idempotent by ``key`` (default: the content hash)."""
    where = source or "predictions"
    table = _validated(project, to_pandas(data, source=where), where)
    with project.store.session() as s:
        version = served_version(project, s, version, where)  # before anything is stored
    if any(str(c).startswith(CLASS_SCORE) for c in table.columns):
        _covers_classes(project, table, version, where)
    try:
        sha = project.artifacts.put_frame(table.reset_index(drop=True))
    except StoreError as exc:  # e.g. ids of mixed types Parquet cannot hold
        raise type(exc)(f"{where}: {exc}") from exc
    key = checked_key(key, where) or f"sha256:{sha}"
    id_col = project.config.data.id_column
    with project.store.session() as s:
        if s.scalar(select(PredictionLogRow).where(PredictionLogRow.key == key)) is not None:
            return PredictionReport(key, len(table), 0, 0, (), version, new=False)
        by_id = table.set_index(id_col)
        left = np.ones(len(table), dtype=bool)
        touched, matched = [], 0
        rows = s.scalars(
            select(BatchRow).where(BatchRow.evaluated.is_(False)).order_by(BatchRow.id.desc())
        ).all()
        for row in rows:
            if not left.any():
                break
            ids = project.artifacts.get_frame(row.artifact)[id_col]
            hit = ids.isin(by_id.index).to_numpy()
            if not hit.any():
                continue
            served = by_id.loc[ids[hit]].reset_index().rename(columns={id_col: "id"})
            served.insert(0, "row", np.flatnonzero(hit))
            record(project, s, row, served, version)
            left &= ~table[id_col].isin(ids).to_numpy()
            matched += int(hit.sum())
            touched.append(row.id)
        unmatched = int(left.sum())
        s.add(
            PredictionLogRow(
                key=key,
                source=source.replace("\x00", "\\0"),
                n_rows=len(table),
                matched=matched,
                version=version,
                artifact=sha,
            )
        )
        project.event(
            s,
            "predictions",
            f"{len(table)} served predictions of v{version} from {where}: {matched} joined to "
            f"batches {sorted(touched)}, {unmatched} matched no batch waiting for its score",
            key=key,
            matched=matched,
            unmatched=unmatched,
            batches=sorted(touched),
        )
    return PredictionReport(key, len(table), matched, unmatched, tuple(sorted(touched)), version)


def _validated(project: Record, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The id, prediction (and score) columns, checked."""
    id_col, column = project.config.data.id_column, prediction_column(project)
    if not id_col:
        raise DataError(f"{where}: served predictions need data.id_column in the project file")
    missing = [c for c in (id_col, column) if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; columns are {list(frame.columns)}")
    scores = [c for c in frame.columns if c == SCORE or str(c).startswith(CLASS_SCORE)]
    table = frame[[id_col, column, *scores]].rename(columns={column: "prediction"})
    if table.empty:
        raise DataError(f"{where}: no rows")
    for name in (id_col, "prediction"):
        if table[name].isna().any():
            at = int(table[name].isna().to_numpy().argmax())
            raise DataError(f"{where}: column {name!r} is empty in row {at}")
    if table[id_col].duplicated().any():
        dup = table[id_col][table[id_col].duplicated()].tolist()[0]
        raise DataError(f"{where}: id {dup!r} appears more than once")
    return _checked_scores(table, scores, where)


def _checked_scores(table: pd.DataFrame, scores: list, where: str) -> pd.DataFrame:
    """Scores are probabilities; one column per class sums to 1 in each row."""
    for name in scores:
        values = pd.to_numeric(table[name], errors="coerce")
        bad = ~values.between(0, 1)
        if bad.any():
            at = int(bad.to_numpy().argmax())
            raise DataError(f"{where}: column {name!r} must be a probability in [0, 1] (row {at})")
        table[name] = values
    per_class = [c for c in scores if c != SCORE]
    if per_class:
        total = table[per_class].sum(axis=1).to_numpy()
        off = ~np.isclose(total, 1.0, rtol=1e-5, atol=1e-8)  # as scikit-learn's AUC asks
        if off.any():
            at = int(off.argmax())
            raise DataError(
                f"{where}: the class scores {per_class} must sum to 1 in each row; row {at} "
                f"sums to {total[at]:.6g}"
            )
    return table


def _covers_classes(project: Record, table: pd.DataFrame, version: int, where: str) -> None:
    """Class scores must name every class of the model that served (as its own prediction sets
    do, ``score:<class>``), so that the realised AUC reads them."""
    from retrainer.gate import model_classes

    classes = model_classes(project.load_model(version)) or []
    given = {str(c) for c in table.columns if str(c).startswith(CLASS_SCORE)}
    if len(classes) <= 2:
        raise DataError(
            f"{where}: v{version} is no multi-class model; its served score is one column, "
            f"{SCORE!r} (the positive class's probability), not {sorted(given)}"
        )
    wanted = {f"{CLASS_SCORE}{c}" for c in classes}
    if given != wanted:
        raise DataError(
            f"{where}: class scores {sorted(given)} do not match the classes of v{version}; "
            f"send one column per class: {sorted(wanted)}"
        )


def record(
    project: Record, s: Session, batch: BatchRow, served: pd.DataFrame, version: int
) -> None:
    """Add served rows (``row``, ``prediction``, ...) to a batch's serving set of ``version``;
    rows served before keep their first prediction (a redelivered log changes nothing)."""
    existing = s.scalar(
        select(PredictionSetRow).where(
            PredictionSetRow.batch_id == batch.id,
            PredictionSetRow.role == ROLE,
            PredictionSetRow.version == version,
        )
    )
    if existing is not None:
        before = project.artifacts.get_frame(existing.artifact)
        served = pd.concat([before, served[~served["row"].isin(before["row"])]])
    served = served.sort_values("row").reset_index(drop=True)
    sha = project.artifacts.put_frame(served)
    if existing is None:
        s.add(PredictionSetRow(batch_id=batch.id, version=version, role=ROLE, artifact=sha))
    else:
        existing.artifact = sha


def record_from_batch(project: Record, s: Session, batch: BatchRow, frame: pd.DataFrame) -> None:
    """Keep the prediction column a batch arrived with as its serving set (of the champion)."""
    column, id_col = project.config.data.prediction, project.config.data.id_column
    if not column or column not in frame or project.champion is None:
        return
    present = frame[column].notna().to_numpy()
    if not present.any():
        return
    served = pd.DataFrame({"row": np.flatnonzero(present), "prediction": frame[column][present]})
    if id_col:
        served["id"] = frame[id_col].to_numpy()[present]
    record(project, s, batch, served, project.champion.version)
