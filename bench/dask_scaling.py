"""Profile and check generated Parquet with 1, 2 and 4 Dask workers vs the single-process path.

Writes ``--rows`` rows x ``--columns`` columns (4/5 numeric, 1/5 categorical; drifted halfway)
as Parquet files of ``--file-rows`` rows, profiles the first file as the reference, then times
quality + drift checks of the whole folder: single-process (``compute: local``: one row group at
a time with pyarrow, profiles merged as they arrive, so memory holds one chunk) and
``check_partitioned`` on a LocalCluster of N worker processes (one thread each). Peak memory is
the largest ``ru_maxrss`` of the process doing the work (each worker for Dask, imports
included). Pass ``--scheduler tcp://host:8786`` to time a running cluster instead (the Parquet
folder must then be readable by its workers, e.g. on shared storage: ``--out``).

    python bench/dask_scaling.py                       # 2M rows, a few minutes on 2 cores
    python bench/dask_scaling.py --rows 50_000_000     # the issue's 50M x 25 (about 8 GB on disk)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import check_quality
from retrainer.compute import check_partitioned, dask_client
from retrainer.compute.streamed import profile_streamed
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile

ROW = "{:<26}{:>8}{:>10}{:>14}{:>16}{:>8}"


def _rate(rows: int, seconds: float, peak: float) -> tuple[str, str]:
    return f"{rows / seconds:,.0f}", f"{peak:.0f}"


def generate(folder: Path, rows: int, columns: int, file_rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_cat = max(1, columns // 5)
    categories = np.array(["a", "b", "c", "d", "e"])
    cumulative = np.cumsum([0.4, 0.3, 0.15, 0.1, 0.05])
    for i, start in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - start)
        shift = 0.3 if start >= rows // 2 else 0.0
        data = {
            f"x{j:02d}": rng.normal(shift * (j % 3), 1.0 + j / 10, n)
            for j in range(columns - n_cat)
        }
        data["x00"][rng.random(n) < 0.01] = np.nan
        for j in range(n_cat):
            codes = np.minimum(np.searchsorted(cumulative, rng.random(n)), len(categories) - 1)
            data[f"c{j:02d}"] = pa.array(categories[codes], type=pa.string())
        pq.write_table(pa.table(data), folder / f"part-{i:05d}.parquet")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _single(folder: str, queue) -> None:
    files = sorted(Path(folder).glob("*.parquet"))
    reference_rows = pd.read_parquet(files[0])
    schema = Schema.infer(reference_rows)
    reference = BatchProfile.from_frame(reference_rows, schema)
    start = time.perf_counter()
    current, _ = profile_streamed(folder, schema, edges=reference.edges())
    results = [*check_quality(reference, current, schema), *check_drift(reference, current)]
    seconds = time.perf_counter() - start
    queue.put((seconds, _peak_mb(), current.n_rows, sum(r.alarm for r in results)))


def single_process(folder: Path) -> tuple[float, float, int, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_single, args=(str(folder), queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def on_dask(folder: Path, workers: int | None, scheduler: str | None) -> tuple:
    files = sorted(folder.glob("*.parquet"))
    reference_rows = pd.read_parquet(files[0])
    schema = Schema.infer(reference_rows)
    reference = BatchProfile.from_frame(reference_rows, schema)
    with dask_client(scheduler, workers=workers) as client:
        n_workers = len(client.scheduler_info()["workers"])
        start = time.perf_counter()
        checked = check_partitioned(folder, reference, schema, client=client)
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_mb)
    return seconds, max(peaks.values()), checked.profile.n_rows, len(checked.alarms), n_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=2_000_000)
    parser.add_argument("--columns", type=int, default=25)
    parser.add_argument("--file-rows", type=int, default=250_000)
    parser.add_argument("--workers", default="1,2,4", help="LocalCluster sizes to time")
    parser.add_argument("--scheduler", help="time this running cluster instead of LocalClusters")
    parser.add_argument("--out", type=Path, help="where to write the Parquet (default: a temp dir)")
    args = parser.parse_args()

    folder = args.out or Path(tempfile.mkdtemp(prefix="retrainer-dask-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    generate(folder, args.rows, args.columns, args.file_rows)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
    print(
        f"{args.rows:,} rows x {args.columns} columns, {len(list(folder.glob('*.parquet')))} "
        f"Parquet files ({size:.0f} MB) written in {time.perf_counter() - start:.1f} s; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    print(ROW.format("path", "workers", "seconds", "rows/s", "peak MB/worker", "alarms"))
    try:
        seconds, peak, rows, alarms = single_process(folder)
        name = "single process (streamed)"
        print(
            ROW.format(name, 1, f"{seconds:.2f}", *_rate(rows, seconds, peak), alarms), flush=True
        )
        sizes = [None] if args.scheduler else [int(w) for w in args.workers.split(",")]
        for workers in sizes:
            seconds, peak, rows, alarms, n = on_dask(folder, workers, args.scheduler)
            name = "dask (scheduler)" if args.scheduler else "dask LocalCluster"
            print(
                ROW.format(name, n, f"{seconds:.2f}", *_rate(rows, seconds, peak), alarms),
                flush=True,
            )
    finally:
        if args.out is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
