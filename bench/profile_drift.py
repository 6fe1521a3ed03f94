"""Throughput of profiling and checking: 1M rows x 10 columns (7 numeric, 3 categorical).

Run: ``.venv/bin/python bench/profile_drift.py [--rows N] [--repeat K]``. Prints the median time
of K runs per step and the rows per second it implies (the checks read profiles only, so their
time does not grow with the rows).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from retrainer.checks import check_drift, check_quality, dataset_drift
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A synthetic batch: 7 numeric columns (some NaN and inf) and 3 categorical ones."""
    rng = np.random.default_rng(seed)
    data = {f"num{i}": rng.normal(shift * i, 1.0 + 0.1 * i, rows) for i in range(7)}
    data["num0"][rng.random(rows) < 0.01] = np.nan
    data["num1"][rng.random(rows) < 0.001] = np.inf
    data["cat0"] = rng.choice(["a", "b", "c", "d"], rows)
    data["cat1"] = rng.choice([f"k{i}" for i in range(200)], rows)
    data["cat2"] = pd.array(rng.choice(["x", "y", None], rows), dtype="str")
    return pd.DataFrame(data)


def median_seconds(step: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ref, cur = frame(args.rows, 0), frame(args.rows, 1, shift=0.01)
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    current = BatchProfile.from_frame(cur, schema, edges=reference.edges())

    def checks(batch: BatchProfile) -> None:
        check_quality(reference, batch, schema)
        dataset_drift(check_drift(reference, batch))

    def end_to_end() -> None:
        checks(BatchProfile.from_frame(schema.conform(cur), schema, edges=reference.edges()))

    steps = {
        "schema.conform": lambda: schema.conform(cur),
        "profile reference (quantile edges)": lambda: BatchProfile.from_frame(ref, schema),
        "profile batch (reference edges)": lambda: BatchProfile.from_frame(
            cur, schema, edges=reference.edges()
        ),
        "merge two profiles": lambda: reference.merge(current),
        "quality + drift checks (profiles)": lambda: checks(current),
        "end to end: conform, profile, check": end_to_end,
    }
    print(f"{args.rows:,} rows x {ref.shape[1]} columns, median of {args.repeat} runs")
    print(f"{'step':<38}{'seconds':>10}{'rows/s':>16}")
    for name, step in steps.items():
        seconds = median_seconds(step, args.repeat)
        rate = f"{args.rows / seconds:,.0f}"
        print(f"{name:<38}{seconds:>10.4f}{rate:>16}")


if __name__ == "__main__":
    main()
