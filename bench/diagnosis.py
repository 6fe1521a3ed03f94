"""Diagnosis on the scenario suite: which cause ranks first, how fast, and false alarms.

Clean real streams (ELEC2 after the Victorian data starts, HAPT smartphone sensors, ACS
employment 2015; rows shuffled so nothing changes by construction) get one cause injected from
batch 6 on (see ``retrainer.diagnosis.scenarios``). Printed: each scenario, the confusion matrix
true cause x first-ranked diagnosed cause, the detection delay in batches, the false alarms of
the no-change runs per 100 batches, and ELEC2's real upstream change (row 17,424).

``--units``: the affine unit rule instead, at 30 and 90 rows per batch (the reference keeps its
rows): the held-out cases of ``retrainer.diagnosis.unit_cases`` (unit changes it must name and
real drift it must leave alone) on held-out seeds 2-4; those and ``FRESH_CASES`` (written
after the first held-out run, before the one change it led to) on seeds 5-7; the cases it was
tuned on (``hapt-affine``, ``elec2-affine`` and the shift cases) on seeds 0-1, each with
whether the transform was named.

``--units --seeds 11 12 13``: every unit case (held out and fresh) on the seeds given only.

Run: .venv/bin/python bench/diagnosis.py [--units [--seeds N ...]]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from retrainer.diagnosis.scenarios import (  # noqa: E402
    SCENARIOS,
    confusion,
    elec2_fill_case,
    run_scenario,
    run_suite,
)
from retrainer.diagnosis.unit_cases import FRESH_CASES, UNIT_CASES  # noqa: E402

TUNED = ("hapt-affine", "elec2-affine", "elec2-shift", "hapt-shift", "employment-shift")


def _matrix(results) -> None:
    table = confusion(results)
    print("| true \\ diagnosed first | " + " | ".join(table.columns) + " |")
    print("|---" * (len(table.columns) + 1) + "|")
    for cause, row in table.iterrows():
        print(f"| {cause} | " + " | ".join(str(v) for v in row) + " |")


def _named(r) -> bool:
    """Whether the first-ranked cause came with a named unit change (and its fix)."""
    return r.diagnosed == "upstream_change" and bool({"scale", "affine"} & set(r.checks))


def units(rows_per_batch=(30, 90), seeds: tuple[int, ...] = ()) -> None:
    """The affine unit rule on its held-out and its tuning cases (``seeds``: every unit case,
    held out and fresh, on those seeds only)."""
    parts = [
        ("held out", UNIT_CASES, (2, 3, 4)),
        ("fresh held out (after one change)", {**UNIT_CASES, **FRESH_CASES}, (5, 6, 7)),
        ("tuned on", {n: SCENARIOS[n] for n in TUNED}, (0, 1)),
    ]
    if seeds:
        parts = [("every unit case", {**UNIT_CASES, **FRESH_CASES}, seeds)]
    for rows in rows_per_batch:
        for title, cases, seeds in parts:
            started = time.perf_counter()
            results, by_case = [], {}
            for name, scenario in cases.items():
                for seed in seeds:
                    r = run_scenario(None, scenario, steps=9, at=6, seed=seed, batch_rows=rows)
                    results.append(r)
                    by_case.setdefault(name, []).append(r)
            print(f"\n### {title}: {rows} rows per batch, seeds {list(seeds)}\n")
            _matrix(results)
            right = sum(r.right for r in results)
            print(f"\nright cause first: {right} of {len(results)}\n")
            named = sum(_named(r) for r in results if r.cause == "upstream_change")
            n_units = sum(r.cause == "upstream_change" for r in results)
            print(f"unit changes with the transform named and a fix proposed: {named} of {n_units}")
            wrong = sum(_named(r) for r in results if r.cause == "covariate_drift")
            drifts = sum(r.cause == "covariate_drift" for r in results)
            print(f"real drift called a unit change (scale or affine): {wrong} of {drifts}\n")
            print("| case | what | true cause | ranked first (per seed) | rules, columns |")
            print("|---|---|---|---|---|")
            for name, rs in by_case.items():
                tops = ", ".join(str(r.diagnosed) for r in rs)
                columns = ", ".join(
                    "/".join(r.checks) + " " + "/".join(r.columns) if r.columns else "-" for r in rs
                )
                print(f"| {name} | {cases[name].what} | {cases[name].cause} | {tops} | {columns} |")
            print(f"\n{time.perf_counter() - started:.0f} s")


def main() -> None:
    started = time.perf_counter()
    results = run_suite(quiet_steps=100)
    seconds = time.perf_counter() - started
    injected = [r for r in results if r.cause is not None]
    quiet = [r for r in results if r.cause is None]
    print("| scenario | injected from batch 6 | true cause | ranked first | delay (batches) |")
    print("|---|---|---|---|---|")
    for r in injected:
        mark = "" if r.right else " (wrong)"
        delay = "-" if r.delay is None else str(r.delay)
        what = SCENARIOS[r.scenario].what
        print(f"| {r.scenario} | {what} | {r.cause} | {r.diagnosed}{mark} | {delay} |")
    table = confusion(results)
    print("\nconfusion matrix, true cause (rows) x first-ranked diagnosed cause (columns):\n")
    _matrix(results)
    right = sum(r.right for r in injected)
    print(f"\nright cause first: {right} of {len(injected)} ({100 * right / len(injected):.0f}%)")
    for cause in table.index:
        delays = [r.delay for r in injected if r.cause == cause and r.right]
        if delays:
            print(
                f"  {cause}: mean delay {sum(delays) / len(delays):.2f} batches, max {max(delays)}"
            )
    batches = sum(r.steps for r in quiet)
    alarms = sum(r.false_alarms for r in quiet)
    print(
        f"no-change runs: {alarms} alarms in {batches} batches "
        f"({100 * alarms / batches:.2f} per 100 batches; "
        + ", ".join(f"{r.scenario} {r.false_alarms}/{r.steps}" for r in quiet)
        + ")"
    )
    print(f"suite time: {seconds:.1f} s\n")
    print("ELEC2's real upstream change (the week holding row 17,424, against the 4 weeks before):")
    for line in elec2_fill_case().explain():
        print("  " + line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", action="store_true", help="the affine unit rule's cases")
    parser.add_argument("--seeds", type=int, nargs="+", default=[], help="with --units")
    args = parser.parse_args()
    if args.units:
        units(seeds=tuple(args.seeds))
    else:
        main()
