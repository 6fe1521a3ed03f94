"""Profiles and checks of large inputs as partitioned reductions on a Dask cluster.

A large input (a folder of Parquet files, a glob, or a Dask DataFrame) is profiled one partition
at a time on the workers, each partition on the same histogram edges, and the partition profiles
are merged in a tree (``BatchProfile.merge``). The result equals the single-process profile of
the whole input exactly for every count (rows, nulls, invalid, out-of-range, histograms, category
counts up to ``top_k`` categories), min and max; moments and bin sums agree to floating-point
rounding. Three statistics only describe partitions: ``max_run`` and ``disorder`` (runs and
descents across a partition boundary are not seen) and ``distinct``. Without reference edges a
first pass takes quantile edges from a mergeable sketch (rank error at most 1 / 2000 of the rows,
see ``quantile_edges_partitioned``); counts on those edges are still exact.

Checks (quality, drift) then run on the merged profile, as for any batch.

Example:
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> from retrainer.data.schema import Schema
    >>> frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 25, "c": ["a", "b"] * 50})
    >>> schema = Schema.infer(frame)
    >>> edges = {"x": [0.0, 2.0, 4.0]}
    >>> parts = profile_partitioned(dd.from_pandas(frame, npartitions=4), schema, edges=edges)
    >>> parts.n_rows, parts.columns["x"].hist, parts.columns["c"].categories
    (100, (0, 50, 50, 0), {'a': 50, 'b': 50})
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import check_quality
from retrainer.checks.result import CheckResult
from retrainer.data.schema import Schema
from retrainer.errors import ConfigError, DataError
from retrainer.profile.batch import BatchProfile
from retrainer.profile.column import TOP_K

__all__ = [
    "PartitionedCheck",
    "check_partitioned",
    "dask_client",
    "profile_partitioned",
    "quantile_edges_partitioned",
    "read_frame",
]


def _require_dask():
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ConfigError(
            ["compute: dask needs Dask: pip install 'retrainer[dask]'"], "compute"
        ) from exc
    return dd


def read_frame(source: Any, *, columns: Sequence[str] | None = None):
    """A Dask DataFrame over a large input, one partition per file or row group.

    Parameters:
        source: a Dask DataFrame, a pandas DataFrame (split in partitions of 250,000 rows), a
            folder of Parquet files, a glob (``data/*.parquet``, ``data/*.csv``), or one file.
        columns: read only these columns (Parquet).
    """
    dd = _require_dask()
    if isinstance(source, pd.DataFrame):
        source = dd.from_pandas(source, chunksize=250_000, sort=False)
    if isinstance(source, dd.DataFrame):
        return source if columns is None else source[list(columns)]
    text = str(source)
    cols = None if columns is None else list(columns)
    if Path(text).is_dir():
        if not any(Path(text).glob("**/*.parquet")):
            raise DataError(f"{text}: the folder holds no .parquet files")
        return dd.read_parquet(text, columns=cols)
    matches = sorted(glob.glob(text))
    if not matches:
        raise DataError(f"{text}: no file matches")
    if all(m.endswith((".csv", ".csv.gz")) for m in matches):
        frame = dd.read_csv(matches, blocksize="64MB")
        return frame if cols is None else frame[cols]
    if all(m.endswith((".parquet", ".parq", ".pq")) for m in matches):
        return dd.read_parquet(matches, columns=cols)
    raise DataError(f"{text}: expected Parquet or CSV files, found {matches[:3]}")


@contextmanager
def dask_client(
    scheduler: str | None = None, *, workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Any]:
    """A Dask client: connected to ``scheduler`` (``tcp://host:8786``), or to a new LocalCluster
    of ``workers`` processes (``threads_per_worker`` threads each) that is closed with the block.

    Parameters:
        scheduler: the address of a running scheduler; None starts a LocalCluster.
        workers: worker processes of the LocalCluster (default: one per core).
        threads_per_worker: threads of each LocalCluster worker.
    """
    _require_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=threads_per_worker, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _compute(graph: Any, client: Any | None) -> Any:
    if client is not None:
        return client.compute(graph).result()
    return graph.compute()


SKETCH_POINTS = 2000


def _sketch(part: pd.DataFrame, names: Sequence[str], points: int) -> dict[str, tuple]:
    """Per column: ``points`` values at evenly spaced ranks, each standing for n / points rows."""
    out = {}
    for name in names:
        values = pd.to_numeric(part[name], errors="coerce").to_numpy(dtype="float64")
        values = np.sort(values[np.isfinite(values)])
        if values.size > points:
            ranks = ((np.arange(points) + 0.5) * values.size / points).astype(np.int64)
            sample = np.concatenate([[values[0]], values[ranks], [values[-1]]])
            weights = np.concatenate([[0.0], np.full(points, values.size / points), [0.0]])
            out[name] = (sample, weights)
        elif values.size:
            out[name] = (values, np.ones(values.size))
    return out


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    index = np.searchsorted(cumulative, q * cumulative[-1], side="left")
    found = values[np.minimum(index, values.size - 1)]
    found[0], found[-1] = values[0], values[-1]  # the exact min and max
    return found


def quantile_edges_partitioned(
    frame: Any, schema: Schema, *, bins: int = 32, client: Any | None = None
) -> dict[str, np.ndarray]:
    """Histogram edges of every numeric schema column from a mergeable quantile sketch.

    Each partition keeps ``SKETCH_POINTS`` values at evenly spaced ranks (plus its min and max);
    the merged sketch's quantiles are within ``1 / SKETCH_POINTS`` of the rows (0.05 %) of the
    exact ranks, and the first and last edges are the exact min and max.

    Parameters:
        frame: the Dask DataFrame.
        schema: the columns and their kinds.
        bins: quantile bins per column.
        client: the Dask client (None: Dask's default scheduler).
    """
    from dask import delayed

    names = [c.name for c in schema.columns if c.kind == "numeric" and c.name in frame.columns]
    if not names:
        return {}
    sketches = [delayed(_sketch)(part, names, SKETCH_POINTS) for part in frame[names].to_delayed()]
    parts = _compute(delayed(list)(sketches), client)
    q = np.linspace(0.0, 1.0, bins + 1)
    edges = {}
    for name in names:
        found = [sketch[name] for sketch in parts if name in sketch]
        if found:
            values = np.concatenate([v for v, _ in found])
            weights = np.concatenate([w for _, w in found])
            edges[name] = np.unique(_weighted_quantiles(values, weights, q))
    return edges


def _profile_part(
    part: pd.DataFrame, schema: Schema, edges: Mapping[str, np.ndarray], top_k: int
) -> BatchProfile:
    return BatchProfile.from_frame(part, schema, edges=edges, top_k=top_k)


def _merge(a: BatchProfile, b: BatchProfile) -> BatchProfile:
    return a.merge(b)


def profile_partitioned(
    source: Any,
    schema: Schema,
    *,
    edges: Mapping[str, Sequence[float]] | None = None,
    bins: int = 32,
    top_k: int = TOP_K,
    client: Any | None = None,
) -> BatchProfile:
    """The profile of a large input: one profile per partition, merged in a tree.

    Parameters:
        source: a Dask DataFrame, a Parquet folder or a glob (see ``read_frame``).
        schema: the columns to profile and their kinds.
        edges: histogram edges per numeric column (a reference's ``edges()``); None takes
            ``bins`` approximate quantile edges in a first pass.
        bins: quantile bins when ``edges`` is None.
        top_k: categories kept per column.
        client: the Dask client (None: Dask's default scheduler).
    """
    from dask import delayed

    frame = read_frame(source)
    if edges is None:
        edges = quantile_edges_partitioned(frame, schema, bins=bins, client=client)
    edges = {name: np.asarray(e, dtype="float64") for name, e in edges.items()}
    level = [delayed(_profile_part)(part, schema, edges, top_k) for part in frame.to_delayed()]
    if not level:
        raise DataError("the input has no partitions")
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [delayed(_merge)(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return _compute(level[0], client).as_one_batch()


@dataclass(frozen=True)
class PartitionedCheck:
    """The merged profile of a large input and the quality and drift checks run on it.

    Parameters:
        profile: the merged profile (on the reference's edges).
        results: quality results, then drift results.
        partitions: how many partitions were profiled.
    """

    profile: BatchProfile
    results: tuple[CheckResult, ...]
    partitions: int

    @property
    def alarms(self) -> list[CheckResult]:
        """The results that raised an alarm."""
        return [r for r in self.results if r.alarm]

    @classmethod
    def of(
        cls,
        profile: BatchProfile,
        reference: BatchProfile,
        schema: Schema,
        partitions: int,
        *,
        quality: Mapping[str, Any] | None = None,
        drift: Mapping[str, Any] | None = None,
    ) -> PartitionedCheck:
        """Run the quality and drift checks of a merged profile against the reference."""
        results = [
            *check_quality(reference, profile, schema, **dict(quality or {})),
            *check_drift(reference, profile, **dict(drift or {})),
        ]
        return cls(profile, tuple(results), partitions)

    def to_dict(self) -> dict:
        """A JSON-friendly dict (profile, results, partition count)."""
        return {
            "profile": self.profile.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "partitions": self.partitions,
        }


def check_partitioned(
    source: Any,
    reference: BatchProfile,
    schema: Schema,
    *,
    client: Any | None = None,
    quality: Mapping[str, Any] | None = None,
    drift: Mapping[str, Any] | None = None,
) -> PartitionedCheck:
    """Profile a large input on the reference's edges, then check it (quality and drift).

    Parameters:
        source: a Dask DataFrame, a Parquet folder or a glob (see ``read_frame``).
        reference: the reference profile (its edges bin the input).
        schema: the schema of the reference.
        client: the Dask client (None: Dask's default scheduler).
        quality: keyword options of ``check_quality``.
        drift: keyword options of ``check_drift``.
    """
    frame = read_frame(source)
    profile = profile_partitioned(
        frame, schema, edges=reference.edges(), top_k=_top_k(reference), client=client
    )
    return PartitionedCheck.of(
        profile, reference, schema, frame.npartitions, quality=quality, drift=drift
    )


def _top_k(profile: BatchProfile) -> int:
    return next((c.top_k for c in profile.columns.values()), TOP_K)
