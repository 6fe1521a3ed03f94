"""The profile of a batch: one mergeable column profile per schema column, plus extra columns.

Profile the reference once (its histogram edges are quantiles of its own values), then profile
each later batch on the reference's edges, so profiles of batches, windows, devices or partitions
merge by adding counts, and drift tests compare histograms on the same bins.

Example:
    >>> import pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> ref = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "a"]})
    >>> schema = Schema.infer(ref)
    >>> reference = BatchProfile.from_frame(ref, schema, bins=2)
    >>> batch = BatchProfile.from_frame(ref.head(2), schema, edges=reference.edges())
    >>> merged = reference.merge(batch)
    >>> merged.n_rows, merged.columns["x"].hist, merged.columns["c"].categories
    (6, (0, 4, 2, 0), {'a': 4, 'b': 2})
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from retrainer.data.schema import ColumnSpec, Schema, kind_of
from retrainer.errors import DataError
from retrainer.profile.column import (
    NULL_BATCH_ROWS,
    OTHER,
    TOP_K,
    BatchMoments,
    ColumnProfile,
    profile_column,
    text_counts,
)

FORMAT = 1
THREADS = min(4, os.cpu_count() or 1)
THREADED_ROWS = 50_000  # smaller frames: starting threads costs more than it saves


@dataclass(frozen=True)
class BatchProfile:
    """Column profiles of one batch (or of merged batches) and its row count.

    ``columns`` holds one profile per schema column (missing ones are marked ``missing``);
    ``extra`` holds profiles of columns outside the schema (kind inferred, no histogram);
    ``repeats`` counts the rows equal to the row before in every schema column (readings held
    while nothing changed), ``pairs`` the pairs of equal rows anywhere in the batch (None in
    profiles stored before they were kept).
    """

    columns: dict[str, ColumnProfile]
    n_rows: int
    extra: dict[str, ColumnProfile] = field(default_factory=dict)
    repeats: int | None = None
    pairs: int | None = None

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        schema: Schema,
        *,
        edges: Mapping[str, np.ndarray] | None = None,
        bins: int = 32,
        top_k: int = TOP_K,
        workers: int | None = None,
        rows: bool = False,
        batches: Sequence | None = None,
    ) -> BatchProfile:
        """Profile ``df`` column by column; never raises on bad values (they are counted).

        Parameters:
            df: the batch (conformed or not: unreadable values are counted as ``invalid``).
            schema: the columns to profile and their kinds.
            edges: histogram edges per numeric column, usually ``reference.edges()``; a column
                without edges gets ``bins`` quantile edges of its own values.
            bins: number of quantile bins of a reference.
            top_k: categories kept per column before pooling the rest in ``"__other__"``.
            workers: threads profiling columns side by side (numpy and Arrow release the GIL);
                None takes one per core, at most 4; frames under 50,000 rows use one.
            rows: also compare whole rows (``repeats``, ``pairs``), as a reference does: a hash
                per row, about half the time of the rest.
            batches: the batch of each row (in time order), for a reference of several
                batches: each column records the highest null share of one of them
                (``batch_null_max``) and, if categorical, the highest share of one batch's
                values in categories the batches before it lacked (``batch_new_max``).

        Example:
            >>> frame = pd.DataFrame({"x": [None] * 30 + [1.0] * 30})
            >>> schema = Schema.infer(frame.fillna(0.0))
            >>> col = BatchProfile.from_frame(frame, schema, batches=[1] * 30 + [2] * 30)
            >>> col.columns["x"].null_share, col.columns["x"].batch_null_max
            (0.5, 1.0)
        """
        edges = edges or {}

        def one(spec: ColumnSpec) -> ColumnProfile:
            return profile_column(
                _column(df, spec.name), spec, edges=edges.get(spec.name), bins=bins, top_k=top_k
            )

        specs = list(schema.columns)
        threads = min(workers or THREADS, len(specs)) if len(df) >= THREADED_ROWS else 1
        if threads > 1:
            # columns of Python objects hold the GIL while their values are hashed: started
            # first, they run beside the numeric columns (whose numpy loops release it)
            first = sorted(range(len(specs)), key=lambda i: not _holds_gil(df, specs[i].name))
            with ThreadPoolExecutor(threads, thread_name_prefix="profile") as pool:
                done = dict(zip(first, pool.map(one, [specs[i] for i in first]), strict=True))
            profiles = [done[i] for i in range(len(specs))]
        else:
            profiles = [one(spec) for spec in specs]
        columns = {spec.name: col for spec, col in zip(specs, profiles, strict=True)}
        if batches is not None:
            columns = _with_batch_behaviour(columns, df, np.asarray(batches))
        extra = {}
        for name in df.columns:
            if name in schema or name in schema.ignored or not isinstance(df[name], pd.Series):
                continue
            spec = ColumnSpec(str(name), kind_of(df[name]), True)
            extra[str(name)] = profile_column(df[name], spec, top_k=top_k, with_histogram=False)
        if not rows:
            return cls(columns, len(df), extra)
        hashes = row_hashes(df, [spec.name for spec in specs])
        return cls(columns, len(df), extra, repeated_rows(hashes), identical_pairs(hashes))

    @classmethod
    def from_chunks(
        cls,
        chunks: Iterable[pd.DataFrame],
        schema: Schema,
        *,
        edges: Mapping[str, np.ndarray],
        top_k: int = TOP_K,
        workers: int | None = None,
    ) -> BatchProfile:
        """The profile of a batch read in chunks (``data.io.iter_parquet``), merged as they
        arrive: memory holds one chunk and one profile; the result equals ``from_frame`` of the
        whole batch in counts, histograms and categories (moments up to rounding).

        Parameters:
            chunks: the batch's rows, chunk by chunk.
            schema: the columns to profile.
            edges: histogram edges per numeric column (the reference's: chunks need shared bins).
            top_k, workers: as for ``from_frame``.

        Example:
            >>> frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 25})
            >>> schema = Schema.infer(frame)
            >>> parts = (frame.iloc[i : i + 30] for i in range(0, 100, 30))
            >>> edges = {"x": np.array([0.0, 2.0, 4.0])}
            >>> BatchProfile.from_chunks(parts, schema, edges=edges).columns["x"].hist
            (0, 50, 50, 0)
        """
        profile = None
        for chunk in chunks:
            part = cls.from_frame(chunk, schema, edges=edges, top_k=top_k, workers=workers)
            profile = part if profile is None else profile.merge(part)
        if profile is None:
            raise DataError("the batch has no chunks to profile")
        return profile.as_one_batch()

    def as_one_batch(self) -> BatchProfile:
        """This profile, merged from chunks or partitions of one batch, as one batch's: chunks
        are not batches, so no column keeps what one of them showed at most."""
        columns = {
            k: replace(c, batch_null_max=None, batch_new_max=None, batch_moments=None)
            for k, c in self.columns.items()
        }
        return replace(self, columns=columns)

    def edges(self) -> dict[str, np.ndarray]:
        """Histogram edges per numeric column, to profile later batches on the same bins."""
        return {
            name: np.asarray(col.edges, dtype="float64")
            for name, col in self.columns.items()
            if col.edges
        }

    def merge(self, other: BatchProfile) -> BatchProfile:
        """The profile of both batches together (exact for counts, histograms and moments)."""

        def added(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return BatchProfile(
            _merge_maps(self.columns, other.columns),
            self.n_rows + other.n_rows,
            _merge_maps(self.extra, other.extra, strict=False),
            added(self.repeats, other.repeats),  # the rows across the seam are not compared:
            added(self.pairs, other.pairs),  # rates from a merged profile are a little low
        )

    @property
    def repeat_rate(self) -> float | None:
        """The share of rows equal to the row before (None when unknown)."""
        if self.repeats is None or self.n_rows < 2:
            return None
        return self.repeats / (self.n_rows - 1)

    @property
    def pair_rate(self) -> float | None:
        """The chance that two rows are equal (None when unknown)."""
        if self.pairs is None or self.n_rows < 2:
            return None
        return self.pairs / (self.n_rows * (self.n_rows - 1) / 2)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (no numpy types, no NaN)."""
        return {
            "format": FORMAT,
            "n_rows": int(self.n_rows),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            "extra": {name: col.to_dict() for name, col in self.extra.items()},
            "repeats": self.repeats,
            "pairs": self.pairs,
        }

    @classmethod
    def from_dict(cls, d: dict) -> BatchProfile:
        return cls(
            {name: ColumnProfile.from_dict(c) for name, c in d["columns"].items()},
            int(d["n_rows"]),
            {name: ColumnProfile.from_dict(c) for name, c in d.get("extra", {}).items()},
            d.get("repeats"),
            d.get("pairs"),
        )


def _with_batch_behaviour(
    columns: dict[str, ColumnProfile], df: pd.DataFrame, batches: np.ndarray
) -> dict[str, ColumnProfile]:
    """``columns`` with what one batch of ``NULL_BATCH_ROWS`` rows or more showed at most: its
    share of nulls, and of values in categories the batches before it (in row order) lacked;
    and each such batch's rows, nulls, mean and std (``batch_moments``)."""
    sizes = pd.Series(batches).value_counts()
    counted = np.isin(batches, sizes.index[sizes >= NULL_BATCH_ROWS])
    if not counted.any():
        return columns
    out = dict(columns)
    for name, col in columns.items():
        if name not in df.columns:
            continue
        parts = pd.Series(df[name].to_numpy()[counted]).groupby(batches[counted], sort=False)
        moments = tuple(_batch_moments(part, col.kind) for _, part in parts)
        most_nulls = max(nulls / rows for rows, nulls, _, _ in moments)
        out[name] = replace(col, batch_null_max=most_nulls, batch_moments=moments)
        if col.kind == "categorical" and not col.id_like:
            kept = set(col.categories or ()) - {OTHER}
            counts = tuple(
                {str(k): int(v) for k, v in text_counts(part).items() if k in kept}
                for _, part in parts
                if part.notna().any()
            )
            new = _new_in_frame(df[name], batches)
            out[name] = replace(out[name], batch_new_max=new, batch_counts=counts)
    return out


def _batch_moments(part: pd.Series, kind: str) -> BatchMoments:
    """One batch's rows, nulls, and mean and std of its finite values (numeric columns)."""
    nulls = int(part.isna().sum())
    values = pd.to_numeric(part, errors="coerce").to_numpy("float64") if kind == "numeric" else []
    values = values[np.isfinite(values)] if len(values) else values
    if not len(values):
        return (len(part), nulls, None, None)
    return (len(part), nulls, float(values.mean()), float(values.std()))


def _new_in_frame(values: pd.Series, batches: np.ndarray) -> float | None:
    """The highest share of one batch's values (``NULL_BATCH_ROWS`` or more) in categories
    that the batches before it (in row order) did not hold."""
    seen: set = set()
    most = None
    for _, part in values.dropna().groupby(batches[values.notna().to_numpy()], sort=False):
        if seen and len(part) >= NULL_BATCH_ROWS:
            share = float((~part.isin(seen)).mean())
            most = share if most is None else max(most, share)
        seen.update(part.unique())
    return most


def row_hashes(df: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
    """One 64-bit hash per row of ``df`` over ``columns`` (all by default; absent ones are
    ignored): rows with the same values, missing ones included, have the same hash.

    Example:
        >>> h = row_hashes(pd.DataFrame({"a": [1, 1, 2], "b": [None, None, 3]}))
        >>> bool(h[0] == h[1]), bool(h[1] == h[2])
        (True, False)
    """
    frame = df if columns is None else df[[c for c in dict.fromkeys(columns) if c in df.columns]]
    if not len(frame.columns):
        return np.arange(len(df), dtype="uint64")  # nothing to compare: every row its own
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def repeated_rows(hashes: np.ndarray) -> int:
    """Rows whose hash (:func:`row_hashes`) equals the row's before: readings held."""
    return int((hashes[1:] == hashes[:-1]).sum())


def identical_pairs(hashes: np.ndarray) -> int:
    """Pairs of rows with the same hash, anywhere in the frame."""
    _, counts = np.unique(hashes, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _column(df: pd.DataFrame, name: str) -> pd.Series | None:
    if name not in df.columns:
        return None
    series = df[name]
    return series.iloc[:, 0] if isinstance(series, pd.DataFrame) else series


def _holds_gil(df: pd.DataFrame, name: str) -> bool:
    """Whether profiling column ``name`` of ``df`` reads Python objects (``object`` dtype)."""
    series = _column(df, name)
    return series is not None and series.dtype == object


def _merge_maps(
    a: dict[str, ColumnProfile], b: dict[str, ColumnProfile], *, strict: bool = True
) -> dict[str, ColumnProfile]:
    """Merge profiles by name; unless ``strict``, a kind clash keeps the one with more values."""
    merged = dict(a)
    for name, col in b.items():
        if name not in merged:
            merged[name] = col
        elif strict or merged[name].kind == col.kind:
            merged[name] = merged[name].merge(col)
        elif col.values > merged[name].values:
            merged[name] = col
    return merged
