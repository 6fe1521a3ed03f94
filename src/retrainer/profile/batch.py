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
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retrainer.data.schema import ColumnSpec, Schema, kind_of
from retrainer.errors import DataError
from retrainer.profile.column import TOP_K, ColumnProfile, profile_column

FORMAT = 1
THREADS = min(4, os.cpu_count() or 1)
THREADED_ROWS = 50_000  # smaller frames: starting threads costs more than it saves


@dataclass(frozen=True)
class BatchProfile:
    """Column profiles of one batch (or of merged batches) and its row count.

    ``columns`` holds one profile per schema column (missing ones are marked ``missing``);
    ``extra`` holds profiles of columns outside the schema (kind inferred, no histogram).
    """

    columns: dict[str, ColumnProfile]
    n_rows: int
    extra: dict[str, ColumnProfile] = field(default_factory=dict)

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
        extra = {}
        for name in df.columns:
            if name in schema or name in schema.ignored or not isinstance(df[name], pd.Series):
                continue
            spec = ColumnSpec(str(name), kind_of(df[name]), True)
            extra[str(name)] = profile_column(df[name], spec, top_k=top_k, with_histogram=False)
        return cls(columns, len(df), extra)

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
        return profile

    def edges(self) -> dict[str, np.ndarray]:
        """Histogram edges per numeric column, to profile later batches on the same bins."""
        return {
            name: np.asarray(col.edges, dtype="float64")
            for name, col in self.columns.items()
            if col.edges
        }

    def merge(self, other: BatchProfile) -> BatchProfile:
        """The profile of both batches together (exact for counts, histograms and moments)."""
        return BatchProfile(
            _merge_maps(self.columns, other.columns),
            self.n_rows + other.n_rows,
            _merge_maps(self.extra, other.extra, strict=False),
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (no numpy types, no NaN)."""
        return {
            "format": FORMAT,
            "n_rows": int(self.n_rows),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            "extra": {name: col.to_dict() for name, col in self.extra.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> BatchProfile:
        return cls(
            {name: ColumnProfile.from_dict(c) for name, c in d["columns"].items()},
            int(d["n_rows"]),
            {name: ColumnProfile.from_dict(c) for name, c in d.get("extra", {}).items()},
        )


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
