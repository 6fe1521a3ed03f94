"""Scale-out compute: large inputs profiled and checked as partitioned reductions (streamed in
this process, or on a Dask cluster), and challengers trained one task each."""

from retrainer.compute.backend import check_large, compute_client
from retrainer.compute.challengers import (
    Selection,
    challengers,
    select_challenger,
    train_challenger,
)
from retrainer.compute.partitioned import (
    PartitionedCheck,
    check_partitioned,
    dask_client,
    profile_partitioned,
    quantile_edges_partitioned,
    read_frame,
)
from retrainer.compute.streamed import iter_chunks, profile_streamed

__all__ = [
    "PartitionedCheck",
    "Selection",
    "challengers",
    "check_large",
    "check_partitioned",
    "compute_client",
    "dask_client",
    "iter_chunks",
    "profile_partitioned",
    "profile_streamed",
    "quantile_edges_partitioned",
    "read_frame",
    "select_challenger",
    "train_challenger",
]
