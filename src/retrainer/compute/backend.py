"""The ``compute:`` section at work: a Dask client from it, and checks of large inputs on it.

``compute: {backend: local}`` (the default) profiles a large input in this process, one row
group at a time (``profile_streamed``); ``compute: {backend: dask}`` profiles it as partitioned
reductions on a cluster (``profile_partitioned``): the running scheduler at ``scheduler``, or a
LocalCluster of ``workers`` processes started for the job. Both give the same profile (counts and
histograms exactly) and so the same checks.

Example:
    >>> import pandas as pd
    >>> from retrainer.config import ComputeSettings
    >>> from retrainer.data.schema import Schema
    >>> from retrainer.profile import BatchProfile
    >>> frame = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5] * 25, "c": ["a", "b"] * 50})
    >>> schema = Schema.infer(frame)
    >>> reference = BatchProfile.from_frame(frame, schema)
    >>> checked = check_large(frame.assign(x=frame.x + 9), reference, schema, ComputeSettings())
    >>> checked.profile.n_rows, sorted({a.column for a in checked.alarms})
    (100, ['x'])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from retrainer.compute.partitioned import PartitionedCheck, _top_k, check_partitioned, dask_client
from retrainer.compute.streamed import profile_streamed
from retrainer.data.schema import Schema
from retrainer.profile.batch import BatchProfile

if TYPE_CHECKING:
    from retrainer.config import ComputeSettings

__all__ = ["check_large", "compute_client"]


@contextmanager
def compute_client(settings: ComputeSettings) -> Iterator[Any]:
    """A Dask client for ``compute: {backend: dask}``: connected to ``settings.scheduler``, or to
    a LocalCluster of ``settings.workers`` x ``settings.threads_per_worker`` closed with the block.

    Parameters:
        settings: the ``compute`` section.
    """
    with dask_client(
        settings.scheduler,
        workers=settings.workers,
        threads_per_worker=settings.threads_per_worker,
    ) as client:
        yield client


def check_large(
    source: Any,
    reference: BatchProfile,
    schema: Schema,
    settings: ComputeSettings,
    *,
    quality: Mapping[str, Any] | None = None,
    drift: Mapping[str, Any] | None = None,
) -> PartitionedCheck:
    """Profile a large input on the reference's edges where ``settings`` say, then check it.

    Parameters:
        source: a pandas or Dask DataFrame, a Parquet folder or a glob.
        reference: the reference profile (its edges bin the input).
        schema: the schema of the reference.
        settings: the ``compute`` section (``local`` streams; ``dask`` runs on the cluster).
        quality: keyword options of ``check_quality``.
        drift: keyword options of ``check_drift``.
    """
    if settings.backend == "dask":
        with compute_client(settings) as client:
            return check_partitioned(
                source, reference, schema, client=client, quality=quality, drift=drift
            )
    profile, chunks = profile_streamed(
        source, schema, edges=reference.edges(), top_k=_top_k(reference)
    )
    return PartitionedCheck.of(profile, reference, schema, chunks, quality=quality, drift=drift)
