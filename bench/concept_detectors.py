"""Speed and change points of the concept-drift detectors against River's, side by side.

Run: ``.venv/bin/python bench/concept_detectors.py [--rows N] [--repeat K]``. The stream is a
Bernoulli error stream whose error rate goes from 0.1 to 0.3 at its middle (1M values by
default). For each detector it prints the median of K runs of: River one value at a time, ours
one value at a time (``update``), ours on the whole batch (``update_many``), the speed-up of
``update_many`` over River, the first detection at or after the change (ours / River, and the
delay), and the number of detections (ours / River; the ones before the change are false
alarms). KSWIN runs a KS test per value, so it is measured on the first ``--kswin-rows`` values
around the change only; CUSUM has no River counterpart.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from retrainer.checks.concept import ADWIN, CUSUM, DDM, EDDM, HDDMA, HDDMW, KSWIN, PageHinkley

try:
    from river import drift as river_drift
except ImportError:  # River is a test dependency only
    river_drift = None


def river_factory(name: str) -> Callable | None:
    if river_drift is None:
        return None
    return {
        "DDM": river_drift.binary.DDM,
        "EDDM": river_drift.binary.EDDM,
        "HDDMA": river_drift.binary.HDDMA,
        "HDDMW": river_drift.binary.HDDMW,
        "ADWIN": river_drift.ADWIN,
        "PageHinkley": river_drift.PageHinkley,
        "KSWIN": lambda: river_drift.KSWIN(seed=42),
    }.get(name)


def one_at_a_time(detector, xs: list[float]) -> list[int]:
    hits = []
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


def timed(run: Callable[[], list[int]], repeat: int) -> tuple[float, list[int]]:
    times, hits = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        hits = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), list(hits)


def first_after(hits: list[int], change: int) -> str:
    later = [i for i in hits if i >= change]
    return f"{later[0]} (+{later[0] - change})" if later else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kswin-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    half = args.rows // 2
    stream = np.r_[rng.random(half) < 0.1, rng.random(args.rows - half) < 0.3].astype(float)
    detectors = {
        "DDM": DDM,
        "EDDM": EDDM,
        "HDDMA": HDDMA,
        "HDDMW": HDDMW,
        "ADWIN": ADWIN,
        "PageHinkley": PageHinkley,
        "KSWIN": lambda: KSWIN(seed=42),
        "CUSUM": CUSUM,
    }
    header = (
        f"{'detector':<12} {'rows':>8} {'River s':>8} {'update s':>9} {'batch s':>8} "
        f"{'speed-up':>8}  {'first after change: ours / River':<36} {'detections':>11}"
    )
    print(f"Bernoulli error stream, p 0.1 -> 0.3 at the middle; median of {args.repeat} runs")
    print(header)
    print("-" * len(header))
    for name, make in detectors.items():
        xs = stream
        if name == "KSWIN":
            xs = stream[half - args.kswin_rows // 2 : half + args.kswin_rows // 2]
        change = half if name != "KSWIN" else args.kswin_rows // 2
        values = xs.tolist()
        ours_single, single_hits = timed(
            lambda m=make, v=values: one_at_a_time(m(), v), args.repeat
        )
        ours_batch, batch_hits = timed(
            lambda m=make, x=xs: m().update_many(x).tolist(), args.repeat
        )
        assert batch_hits == single_hits, f"{name}: update_many and update disagree"
        theirs = river_factory(name)
        river_text = speed = "-"
        river_hits: list[int] = []
        if theirs is not None:
            river_s, river_hits = timed(
                lambda t=theirs, v=values: one_at_a_time(t(), v), args.repeat
            )
            river_text, speed = f"{river_s:.3f}", f"{river_s / ours_batch:.1f}x"
        first = f"{first_after(batch_hits, change)} / {first_after(river_hits, change)}"
        counts = f"{len(batch_hits)} / {len(river_hits) if theirs else '-'}"
        print(
            f"{name:<12} {xs.size:>8} {river_text:>8} {ours_single:>9.3f} {ours_batch:>8.3f} "
            f"{speed:>8}  {first:<36} {counts:>11}"
        )


if __name__ == "__main__":
    main()
