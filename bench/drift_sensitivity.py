"""The smallest change the drift verdict flags, per batch size, with the default and with
``sensitivity="significance"``.

For each size n (reference and batch both n rows, 10 categories for categorical columns) it
prints the test the verdict runs and its minimum detectable effect: for numbers, the smallest
shift of a normal mean in reference standard deviations; for categories, the smallest Cramer's
V. It then checks the numeric figure by simulation: the share of ``--seeds`` seeded batches
whose mean is shifted by exactly that amount that alarm (at least about half: a p-value test's
figure is the shift whose expected statistic reaches the critical value; a distance's is its
threshold, which sampling noise puts a batch above about half of the time).

Run: ``.venv/bin/python bench/drift_sensitivity.py [--sizes 30 100 ...] [--seeds 40]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from retrainer.checks.drift import check_drift
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile

SIZES = (30, 100, 300, 1_000, 3_000, 10_000, 100_000, 1_000_000)


def verdicts(n: int, shift: float, seed: int, sensitivity: str, categories: int = 10):
    """The numeric and the categorical verdict of one seeded pair of frames."""
    rng = np.random.default_rng(seed)
    labels = [f"c{k}" for k in range(categories)]
    ref = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(labels, n)})
    cur = pd.DataFrame({"x": rng.normal(shift, 1.0, size=n), "c": rng.choice(labels, n)})
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    current = BatchProfile.from_frame(cur, schema, edges=reference.edges())
    numeric, categorical = check_drift(reference, current, sensitivity=sensitivity)
    return numeric, categorical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args()
    print(
        "Smallest change flagged, reference and batch of n rows each; numeric: shift of a normal "
        "mean in sd (alarm share of the verdict at exactly that shift, "
        f"{args.seeds} seeds); categorical: Cramer's V over 10 categories\n"
    )
    head = ["rows", "sensitivity", "numeric test", "shift sd", "alarms at it", "categ. test", "V"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n in args.sizes:
        for sensitivity in ("effect", "significance"):
            numeric, categorical = verdicts(n, 0.0, 0, sensitivity)
            shift = numeric.detail["min_detectable_shift_sd"]
            seeds = args.seeds if n <= 100_000 else max(4, args.seeds // 10)
            hits = [verdicts(n, shift, 1 + s, sensitivity)[0].alarm for s in range(seeds)]
            print(
                f"| {n:,} | {sensitivity} | {numeric.name} | {shift:.3g} | "
                f"{np.mean(hits):.0%} of {seeds} | {categorical.name} | "
                f"{categorical.detail['min_detectable_effect']:.3g} |"
            )


if __name__ == "__main__":
    main()
