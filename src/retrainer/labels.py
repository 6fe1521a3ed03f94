"""Late labels: join a label set to the stored batches, one join at a time.

Every transaction that reads and rewrites the labels of stored batches (a label set's join) or
reads the labels that arrived early (a new batch's join) first takes the label lock: an update of
one row of the state table (``lock:labels``). On SQLite the update takes the write lock before
any read, on PostgreSQL it locks that row until commit, so two joins never both read a batch's
labels and overwrite each other's, and a batch and its labels sent at the same moment always
meet (whichever commits second sees the first).

A label whose id already has a different label is a correction: refused unless ``replace`` is
given, then logged as a ``labels_replaced`` event.

Example:
    >>> import tempfile
    >>> import pandas as pd
    >>> from retrainer.project import Project
    >>> project = Project.from_dict({"data": {"target": "y", "id_column": "id"}},
    ...                             root=tempfile.mkdtemp())
    >>> _ = project.ingest(pd.DataFrame({"id": [1, 2], "x": [0.5, 0.7]}), key="b1")
    >>> project.ingest_labels(pd.DataFrame({"id": [1, 2], "y": [0, 1]})).matched
    2
    >>> project.ingest_labels(pd.DataFrame({"id": [1], "y": [1]}))
    Traceback (most recent call last):
    ...
    retrainer.errors.DataError: labels: 1 label(s) differ from the stored labels of the same ids \
(id 1 in batch 1: stored 0.0, now 1); to correct them run `retrainer ingest --labels --replace` \
(Python: ingest_labels(..., replace=True))
    >>> project.ingest_labels(pd.DataFrame({"id": [1], "y": [1]}), replace=True).replaced
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from retrainer.data.io import to_pandas
from retrainer.errors import DataError, StoreError
from retrainer.record import checked_key
from retrainer.store.tables import BatchRow, LabelSetRow, StateRow, utcnow

if TYPE_CHECKING:
    from retrainer.record import Record

EARLY_LABEL_SETS = 100  # label sets with rows no batch had yet, kept to join later batches
ATTEMPTS = 3  # a unique-key collision with a concurrent ingest is read again
LOCK_KEY = "lock:labels"
EXAMPLES = 20  # corrected labels named in the refusal and in the replace event


@dataclass(frozen=True)
class LabelReport:
    """What a set of late labels joined to: ``matched`` labels joined rows without one,
    ``unchanged`` repeated a stored label, ``replaced`` corrected one (``replace=True``),
    ``unmatched`` found no stored row (kept to join a later batch)."""

    key: str
    n_rows: int
    matched: int
    unmatched: int
    batches: tuple[int, ...]
    new: bool = True
    unchanged: int = 0
    replaced: int = 0

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "n_rows": self.n_rows,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "batches": list(self.batches),
            "new": self.new,
        }


def hold_label_lock(s: Session) -> None:
    """Take the label lock for the rest of ``s``'s transaction (first write of the transaction
    on SQLite, a row lock on PostgreSQL). A first-ever concurrent creation of the lock row
    raises IntegrityError: the caller's transaction is retried."""
    taken = s.execute(
        update(StateRow).where(StateRow.key == LOCK_KEY).values(updated_at=utcnow())
    ).rowcount
    if not taken:
        s.add(StateRow(key=LOCK_KEY, value={}))
        s.flush()


@dataclass
class _Join:
    """The outcome of joining one label set to the stored batches (inside the lock)."""

    found: set = field(default_factory=set)
    matched: int = 0
    unchanged: int = 0
    replaced: int = 0
    touched: list[int] = field(default_factory=list)
    differing: int = 0  # labels that differ from the stored label of their id
    examples: list[tuple[int, Any, Any, Any]] = field(default_factory=list)  # batch, id, old, new
    replaced_in: list[int] = field(default_factory=list)


def ingest_labels(
    project: Record,
    data: Any,
    *,
    key: str | None = None,
    source: str = "",
    replace: bool = False,
    actor: str = "user",
) -> LabelReport:
    """Join late labels (a table of id and target) to the stored batches; see the module."""
    where = source or "labels"
    id_col, target = project.config.data.id_column, project.target
    if not id_col:
        raise DataError(f"{where}: late labels need data.id_column in the project file")
    labels = to_pandas(data, source=where)
    missing = [c for c in (id_col, target) if c not in labels.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; columns are {list(labels.columns)}")
    labels = labels[[id_col, target]].dropna()
    check_label_kind(project, labels[target], f"{where}: column {target!r}")
    if labels.empty:
        raise DataError(f"{where}: no labelled rows")
    if labels[id_col].duplicated().any():
        dup = labels[id_col][labels[id_col].duplicated()].tolist()[0]
        raise DataError(f"{where}: id {dup!r} appears more than once")
    try:
        sha = project.artifacts.put_frame(labels.reset_index(drop=True))
    except StoreError as exc:  # e.g. ids of mixed types Parquet cannot hold
        raise type(exc)(f"{where}: {exc}") from exc
    key = checked_key(key, where) or f"sha256:{sha}"
    source = source.replace("\x00", "\\0")
    by_id = labels.set_index(id_col)[target]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with project.store.session() as s:
                hold_label_lock(s)
                if s.scalar(select(LabelSetRow).where(LabelSetRow.key == key)) is not None:
                    return LabelReport(key, len(labels), 0, 0, (), new=False)
                join = _join(project, s, by_id, replace)
                if join.differing and not replace:
                    raise DataError(_conflict_message(where, join))
                s.add(LabelSetRow(key=key, source=source, n_rows=len(labels), artifact=sha))
                unmatched = len(labels) - len(join.found)
                if unmatched:  # labels may arrive before their batch: joined when it comes
                    state = s.get(StateRow, "early_labels")
                    early = dict(state.value) if state is not None else {}
                    kept = dict(list({**early, sha: unmatched}.items())[-EARLY_LABEL_SETS:])
                    project.set_state("early_labels", kept, s)
                project.event(
                    s,
                    "labels",
                    f"{len(labels)} labels from {where}: {join.matched} joined to "
                    f"batches {join.touched}, {unmatched} matched no stored row",
                    key=key,
                    matched=join.matched,
                    unmatched=unmatched,
                    unchanged=join.unchanged,
                    replaced=join.replaced,
                    batches=join.touched,
                )
                if join.replaced:
                    project.event(
                        s,
                        "labels_replaced",
                        f"{join.replaced} stored labels replaced by {where} in batches "
                        f"{join.replaced_in} (requested by {actor})",
                        key=key,
                        actor=actor,
                        replaced=join.replaced,
                        batches=join.replaced_in,
                        examples=[
                            {"batch": b, "id": _plain(i), "old": _plain(o), "new": _plain(n)}
                            for b, i, o, n in join.examples
                        ],
                    )
                return LabelReport(
                    key,
                    len(labels),
                    join.matched,
                    unmatched,
                    tuple(join.touched),
                    unchanged=join.unchanged,
                    replaced=join.replaced,
                )
        except SQLIntegrityError as exc:  # a concurrent first creation of the lock row
            if attempt == ATTEMPTS:
                raise StoreError(f"{where}: cannot store label set {key!r}: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _join(project: Record, s: Session, by_id: pd.Series, replace: bool) -> _Join:
    """Join ``by_id`` to the batches with unlabelled rows; the ids left over are looked for in
    fully labelled batches too (a repeated or corrected label)."""
    join = _Join()
    partly = BatchRow.n_labelled < BatchRow.n_rows
    for rows in (partly, ~partly):
        for row in s.scalars(select(BatchRow).where(rows).order_by(BatchRow.id)):
            _join_batch(project, row, by_id, replace, join)
        if len(join.found) == len(by_id):
            break
    return join


def _join_batch(
    project: Record, row: BatchRow, by_id: pd.Series, replace: bool, join: _Join
) -> None:
    id_col, target = project.config.data.id_column, project.target
    frame = project.batch_frame(row)
    fresh = frame[id_col].map(by_id)
    has = fresh.notna().to_numpy()
    if not has.any():
        return
    known = frame[target] if target in frame else pd.Series(index=frame.index, dtype=float)
    join.found.update(frame[id_col][has])
    new = has & known.isna().to_numpy()
    differ = has & ~new & _differs(known, fresh)
    join.matched += int(new.sum())
    join.unchanged += int((has & ~new & ~differ).sum())
    join.differing += int(differ.sum())
    for i in differ.nonzero()[0][: EXAMPLES - len(join.examples)]:
        ident = frame[id_col].iloc[i]
        join.examples.append((row.id, ident, known.iloc[i], by_id[ident]))
    if not new.any() and not (replace and differ.any()):
        return
    merged = known.mask(new | (differ if replace else False), fresh)
    table = pd.DataFrame({id_col: frame[id_col], target: merged}).dropna()
    row.labels = project.artifacts.put_frame(table.reset_index(drop=True))
    row.n_labelled = len(table)
    join.touched.append(row.id)
    if replace and differ.any():
        join.replaced += int(differ.sum())
        join.replaced_in.append(row.id)


def _differs(known: pd.Series, fresh: pd.Series) -> Any:
    """Where two label columns hold different values (1 and 1.0 are the same label)."""
    return (known.astype(object) != fresh.astype(object)).to_numpy(dtype=bool)


def _conflict_message(where: str, join: _Join) -> str:
    batch, ident, old, new = join.examples[0]
    return (
        f"{where}: {join.differing} label(s) differ from the stored labels of the same ids "
        f"(id {_plain(ident)!r} in batch {batch}: stored {_plain(old)!r}, now {_plain(new)!r}); "
        "to correct them run `retrainer ingest --labels --replace` "
        "(Python: ingest_labels(..., replace=True))"
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as a plain Python value (for messages and JSON event data)."""
    return value.item() if hasattr(value, "item") else value


def join_early_labels(project: Record, s: Session, row: BatchRow, frame: pd.DataFrame) -> None:
    """Join to a new batch the labels that arrived before it (state ``early_labels``: the
    label sets with unmatched rows, newest ``EARLY_LABEL_SETS``, with their unmatched count).
    Takes the label lock, so a label set ingested at the same moment is seen either here or
    by its own join."""
    id_col, target = project.config.data.id_column, project.target
    if not id_col:
        return
    hold_label_lock(s)
    early = s.get(StateRow, "early_labels")
    if early is None or not early.value:
        return
    known = frame[target] if target in frame else pd.Series(index=frame.index, dtype=float)
    merged, left = known, {}
    for sha, unmatched in early.value.items():
        fresh = frame[id_col].map(project.artifacts.get_frame(sha).set_index(id_col)[target])
        hits = int((merged.isna() & fresh.notna()).sum())
        merged = merged.where(merged.notna(), fresh)
        if unmatched > hits:
            left[sha] = unmatched - hits
    early.value, early.updated_at = left, utcnow()
    if int(merged.notna().sum()) > int(known.notna().sum()):
        table = pd.DataFrame({id_col: frame[id_col], target: merged}).dropna()
        row.labels = project.artifacts.put_frame(table.reset_index(drop=True))
        row.n_labelled = len(table)


def check_label_kind(project: Record, values: pd.Series, where: str) -> None:
    """Refuse labels of another kind (text or numbers) than the first labels stored, and
    numbers that are no class (0.5, or beyond 2**53, which no integer type holds) when the
    task is classification."""
    kind = _check_labels(values, where)
    if kind == "number" and project.config.trainer.task == "classification":
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
    known = (project.get_state("labels") or {}).get("kind")
    if kind and known and kind != known:
        raise DataError(f"{where}: labels are {kind}, but the stored labels are {known}")
    if kind and not known:
        try:
            project.set_state("labels", {"kind": kind})
        except SQLIntegrityError:  # a concurrent first batch stored its kind: check against it
            check_label_kind(project, values, where)


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
