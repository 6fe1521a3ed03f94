"""Profiles of large inputs in one process, one Parquet row group (or CSV chunk) at a time.

The ``local`` compute backend: the same partition profiles as on Dask (``profile_partitioned``),
merged as they arrive, so memory holds one chunk and one profile, never the whole input. Counts,
histograms and categories equal the profile of the whole input read at once; without reference
edges a first pass takes the same quantile sketch as on Dask.

Example:
    >>> import pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 25, "c": ["a", "b"] * 50})
    >>> schema = Schema.infer(frame)
    >>> edges = {"x": [0.0, 2.0, 4.0]}
    >>> profile, chunks = profile_streamed(frame, schema, edges=edges, chunk_rows=30)
    >>> chunks, profile.n_rows, profile.columns["x"].hist, profile.columns["c"].categories
    (4, 100, (0, 50, 50, 0), {'a': 50, 'b': 50})
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.data.io import iter_parquet
from retrainer.data.schema import Schema
from retrainer.errors import DataError
from retrainer.profile.batch import BatchProfile
from retrainer.profile.column import TOP_K

__all__ = ["iter_chunks", "profile_streamed"]

CHUNK_ROWS = 250_000


def _files(source: str) -> list[str]:
    if Path(source).is_dir():
        found = sorted(str(p) for p in Path(source).glob("**/*.parquet"))
        if not found:
            raise DataError(f"{source}: the folder holds no .parquet files")
        return found
    found = sorted(glob.glob(source))
    if not found:
        raise DataError(f"{source}: no file matches")
    return found


def iter_chunks(
    source: Any, *, columns: Sequence[str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The rows of a large input as DataFrames of at most ``chunk_rows`` rows, read lazily.

    Parameters:
        source: a pandas or Dask DataFrame (one partition at a time), a folder of Parquet
            files, a glob (``data/*.parquet``, ``data/*.csv``), or one file.
        columns: read only these columns.
        chunk_rows: rows per chunk (Parquet: within a row group; CSV: per read).
    """
    cols = None if columns is None else list(columns)
    if isinstance(source, pd.DataFrame):
        frame = source if cols is None else source[cols]
        for start in range(0, max(len(frame), 1), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]
        return
    if hasattr(source, "to_delayed"):  # a Dask DataFrame
        for part in (source if cols is None else source[cols]).to_delayed():
            yield part.compute()
        return
    for name in _files(str(source)):
        if name.endswith((".csv", ".csv.gz")):
            yield from pd.read_csv(name, usecols=cols, chunksize=chunk_rows)
        elif name.endswith((".parquet", ".parq", ".pq")):  # one row group at a time, no pre-buffer
            yield from iter_parquet(name, columns=cols, batch_rows=chunk_rows)
        else:
            raise DataError(f"{name}: expected Parquet or CSV, not {Path(name).suffix!r}")


def _quantile_edges(
    source: Any, schema: Schema, *, bins: int, chunk_rows: int
) -> dict[str, np.ndarray]:
    from retrainer.compute.partitioned import SKETCH_POINTS, _sketch, _weighted_quantiles

    names = [c.name for c in schema.columns if c.kind == "numeric"]
    found: dict[str, list[tuple]] = {name: [] for name in names}
    for chunk in iter_chunks(source, chunk_rows=chunk_rows):
        present = [name for name in names if name in chunk.columns]
        for name, sketch in _sketch(chunk, present, SKETCH_POINTS).items():
            found[name].append(sketch)
    q = np.linspace(0.0, 1.0, bins + 1)
    return {
        name: np.unique(
            _weighted_quantiles(
                np.concatenate([v for v, _ in parts]), np.concatenate([w for _, w in parts]), q
            )
        )
        for name, parts in found.items()
        if parts
    }


def profile_streamed(
    source: Any,
    schema: Schema,
    *,
    edges: Mapping[str, Sequence[float]] | None = None,
    bins: int = 32,
    top_k: int = TOP_K,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[BatchProfile, int]:
    """The profile of a large input read chunk by chunk in this process, and the chunk count.

    Parameters:
        source: see ``iter_chunks``.
        schema: the columns to profile and their kinds.
        edges: histogram edges per numeric column (a reference's ``edges()``); None takes
            ``bins`` approximate quantile edges in a first pass (the sketch of
            ``quantile_edges_partitioned``).
        bins: quantile bins when ``edges`` is None.
        top_k: categories kept per column.
        chunk_rows: rows per chunk.
    """
    if edges is None:
        edges = _quantile_edges(source, schema, bins=bins, chunk_rows=chunk_rows)
    edges = {name: np.asarray(e, dtype="float64") for name, e in edges.items()}
    profile, chunks = None, 0
    for chunk in iter_chunks(source, chunk_rows=chunk_rows):
        part = BatchProfile.from_frame(chunk, schema, edges=edges, top_k=top_k)
        profile = part if profile is None else profile.merge(part)
        chunks += 1
    if profile is None:
        raise DataError("the input has no rows")
    return profile.as_one_batch(), chunks
