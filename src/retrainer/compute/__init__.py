"""Scale-out compute: profiles and checks of large inputs as partitioned reductions on Dask."""

from retrainer.compute.partitioned import (
    PartitionedCheck,
    check_partitioned,
    dask_client,
    profile_partitioned,
    quantile_edges_partitioned,
    read_frame,
)

__all__ = [
    "PartitionedCheck",
    "check_partitioned",
    "dask_client",
    "profile_partitioned",
    "quantile_edges_partitioned",
    "read_frame",
]
