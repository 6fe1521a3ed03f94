"""Decisions on real data nobody tuned to: causes found, false alarms, retraining held back.

Two parts, both on real data (ELEC2, HAPT, ACS employment of Massachusetts; see
../shared/data/SOURCES.md):

1. **Causes** (the scenario suite of ``retrainer.diagnosis.scenarios``: profile, quality and
   drift checks, diagnosis and the sequential relation test, as a cycle runs them, without the
   store). Each scenario injects one cause from batch 6 on into a shuffled real stream, at 30
   and at 90 rows per batch (the reference keeps its rows: 1,344 ELEC2, 1,600 HAPT, 4,000
   employment). New cases: affine unit changes, a unit suffix in text, 2 impossible values in a
   batch, labels swapped in a region, and no-change streams with rounded or capped readings.
   Printed: the cause confusion matrix per batch size, how many flipped regions were found
   within 2 labelled batches, and false alarms of the no-change runs.
2. **Unchanged streams through the live loop** (``retrainer.replay``: ingest, cycle, store,
   labels one batch late; HistGradientBoosting with 30 iterations, default checks, drift and
   concept triggers, at most one retrain per 28 days): ELEC2 rows drawn by the time of their
   yearly cycle (weekly batches, 2 years) or weekly cycle (daily batches), and HAPT and
   employment rows without a cycle (daily batches), each with the fixed reference and with the
   seasonality option (``checks.drift.reference``). Printed per run: drift alarms (the drift
   trigger's input) per 100 batches, over all batches and after the first period (a seasonal
   reference needs one period of history), batches with any diagnosed alarm, quarantined
   batches and the longest stretch of consecutive quarantined batches (retraining held back),
   the rows set aside as far-out values (and their batches), and whether the tool suggested
   the seasonal reference.

Held out: thresholds (the sequential test's baseline level 0.2 and ARL 200; the reference
window: 14 days of 7, 14 and 28 tried) were chosen on seeds 0 and 1 of part 1 and on seed 0
of the ELEC2 yearly stream; the figures printed are on seeds 2-4 of part 1 and seed 3 of
part 2 (both printed at the top; part 2 was reported on seed 1 until seed 3 came in). One
design change came after seeing seed 1 of part 2: the quality checks now read the seasonal
reference too (seed 0 showed the same picture: about 20 batches quarantined against the stale
fixed reference, 6 after). In the next session (the reference's dispersion, a reference of 4
batches: 28 days of weekly batches, the same weekday in the last 4 weeks; the out-of-range
rule reading the season's own tail and spikes; chi-square pooling rare categories) only seed 0
of part 2 and synthetic cases were looked at while choosing; seed 1 was run once afterwards.
In the session after that (the dataset verdict's stated false-alarm rate per batch,
``checks.drift.batch_alpha`` 0.01; far-out values inside the contract's range counted as
possible) seeds 0, 1 and 2 of the ELEC2 yearly stream were looked at, so they are tuning
seeds of part 2 since; seed 3 was run once after the changes, with the code before them on
the same seed for comparison. Cases that depend on rules of another branch (affine units,
re-typed text, small bursts, calibrated quality rules) score what this branch's rules do.

Run: ``.venv/bin/python bench/decisions_real.py [--quick] [--rows 90] [--part causes|loop]
[--seed 3]`` (``--seed``: part 2's seed; 3 is the held-out one, 0-2 are tuning seeds).
About 4.5 minutes on 2 shared cores at a quiet moment (part 1 2 min, part 2 2.5), up to 15
under heavy load; ``--quick`` (one held-out seed, shorter streams) about a third of that.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")

from retrainer.diagnosis.scenarios import (  # noqa: E402
    SCENARIOS,
    STREAMS,
    confusion,
    run_scenario,
    seasonal_elec2,
    timed,
)

TUNING_SEEDS, HELD_OUT_SEEDS = (0, 1), (2, 3, 4)
LOOP_TUNING_SEEDS, LOOP_HELD_OUT_SEED = (0, 1, 2), 3
CASES = [name for name, s in SCENARIOS.items() if s.stream in STREAMS]


def causes(seeds: tuple[int, ...], sizes: tuple[int, ...]) -> None:
    for rows in sizes:
        started = time.perf_counter()
        results = []
        for seed in seeds:
            for name in CASES:
                scenario = SCENARIOS[name]
                steps = 12 if scenario.cause else 40
                results.append(
                    run_scenario(None, scenario, steps=steps, at=6, seed=seed, batch_rows=rows)
                )
        injected = [r for r in results if r.cause is not None]
        quiet = [r for r in results if r.cause is None]
        table = confusion(results)
        print(f"\n### {rows} rows per batch (held-out seeds {list(seeds)})\n")
        print("| true \\ diagnosed first | " + " | ".join(table.columns) + " |")
        print("|---" * (len(table.columns) + 1) + "|")
        for cause, row in table.iterrows():
            print(f"| {cause} | " + " | ".join(str(v) for v in row) + " |")
        right = sum(r.right for r in injected)
        print(f"\nright cause first: {right} of {len(injected)}")
        by = {}
        for r in injected:
            by.setdefault(r.scenario, []).append(r)
        print("\n| scenario | what | true cause | ranked first (per seed) | delay |")
        print("|---|---|---|---|---|")
        for name, rs in by.items():
            s = SCENARIOS[name]
            tops = ", ".join(str(r.diagnosed) for r in rs)
            delays = ", ".join("-" if r.delay is None else str(r.delay) for r in rs)
            print(f"| {name} | {s.what} | {s.cause} | {tops} | {delays} |")
        flips = [r for r in injected if r.cause == "changed_relation"]
        # labels arrive one batch late: delay 1 = found on the first labelled batch
        soon = sum(r.right and r.delay is not None and r.delay <= 2 for r in flips)
        print(f"\nchanged relation found within 2 labelled batches: {soon} of {len(flips)} runs")
        batches = sum(r.steps for r in quiet)
        alarms = sum(r.false_alarms for r in quiet)
        print(
            f"no-change runs: {alarms} batches with an alarm in {batches} "
            f"({100 * alarms / batches:.2f} per 100; "
            + ", ".join(
                f"{n} {sum(r.false_alarms for r in quiet if r.scenario == n)}"
                for n in dict.fromkeys(r.scenario for r in quiet)
            )
            + f"); {time.perf_counter() - started:.0f} s"
        )


def settings(reference: dict | None, folder: Path) -> dict:
    checks = {"drift": {"reference": reference}} if reference else {}
    return {
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30, "random_state": 0},
            "window": {"batches": 4},
            "threads": 1,
        },
        "checks": checks,
        "policy": {
            "triggers": [{"type": "drift"}, {"type": "concept"}, {"type": "manual"}],
            "budget": {"max_retrains": 1, "per": "28d"},
        },
        "store": {"url": f"sqlite:///{folder / 'store.db'}", "artifacts": str(folder / "art")},
    }


def loop_run(name: str, frame: pd.DataFrame, period: str, reference: dict | None, first: int):
    from sqlalchemy import select

    from retrainer.project import Project
    from retrainer.quarantine import set_aside_summary
    from retrainer.replay import replay
    from retrainer.store.tables import BatchRow, CheckRow, CycleRow, EventRow

    with tempfile.TemporaryDirectory() as tmp:
        project = Project.from_dict(settings(reference, Path(tmp)), root=Path(tmp))
        started = time.perf_counter()
        replay(project, frame, period=period, history=4)
        seconds = time.perf_counter() - started
        with project.store.session() as s:
            batches = s.scalars(select(BatchRow).order_by(BatchRow.id)).all()[1:]  # not history
            ids = [b.id for b in batches]
            drift = set(
                s.scalars(
                    select(CheckRow.batch_id).where(
                        CheckRow.name == "dataset_drift", CheckRow.alarm.is_(True)
                    )
                )
            )
            causes = {
                e.batch_id: e.data.get("causes") or []
                for e in s.scalars(select(EventRow).where(EventRow.kind == "check"))
            }
            quarantined = [b.status == "quarantined" for b in batches]
            hints = [
                n for c in s.scalars(select(CycleRow)) for n in (c.summary or {}).get("notes", [])
            ]
        aside = set_aside_summary(project) or {"rows": 0, "batches": []}
    after = ids[first:]
    longest = run = 0
    for q in quarantined:
        run = run + 1 if q else 0
        longest = max(longest, run)
    n = len(ids)
    return {
        "stream": name,
        "reference": _label(reference),
        "batches": n,
        "drift /100": round(100 * sum(i in drift for i in ids) / n, 1),
        "drift /100 after 1st period": round(100 * sum(i in drift for i in after) / len(after), 1)
        if after
        else None,
        "any alarm /100": round(100 * sum(bool(causes.get(i)) for i in ids) / n, 1),
        "quarantined": int(sum(quarantined)),
        "longest held back": longest,
        "rows set aside (batches)": f"{aside['rows']} ({len(aside['batches'])})",
        "seasonal hint": "yes" if hints else "no",
        "s": round(seconds),
    }


def _label(reference: dict | None) -> str:
    if not reference:
        return "fixed"
    periods = f" x {reference['periods']} periods" if reference.get("periods", 1) > 1 else ""
    return (
        f"{reference['kind']} {reference.get('period', '')} (window {reference['window']}{periods})"
    )


def unchanged(seed: int, rows: int, quick: bool) -> None:
    years = 1.5 if quick else 2
    days = 21 if quick else 35
    yearly = seasonal_elec2("yearly", int(52 * years) + 4, rows, seed=seed)
    weekly = seasonal_elec2("weekly", days + 4, rows, seed=seed)
    # 4 batches in a reference (a 28-day window of weekly batches; the same weekday in the last
    # 4 weeks): the reference's own dispersion is measured from its batches (1 df per extra batch)
    seasonal_year = {"kind": "seasonal", "period": "365d", "window": "28d", "min_rows": rows}
    seasonal_week = {
        "kind": "seasonal",
        "period": "7d",
        "window": "1d",
        "periods": 4,
        "min_rows": rows,
    }
    runs = [
        ("ELEC2 yearly cycle, weekly batches", yearly, "7D", None, 52),
        ("ELEC2 yearly cycle, weekly batches", yearly, "7D", seasonal_year, 52),
        ("ELEC2 weekly cycle, daily batches", weekly, "1D", None, 7),
        ("ELEC2 weekly cycle, daily batches", weekly, "1D", seasonal_week, 7),
    ]
    for stream in ("hapt", "employment"):
        frame = timed(STREAMS[stream](seed=seed), days + 4, rows)
        target = {"hapt": "label", "employment": "employed"}[stream]
        frame = frame.rename(columns={target: "target"})
        runs += [
            (f"{stream} (no cycle), daily batches", frame, "1D", None, 7),
            (f"{stream} (no cycle), daily batches", frame, "1D", seasonal_week, 7),
        ]
    table = []
    for name, frame, period, reference, first in runs:
        table.append(loop_run(name, frame, period, reference, first))
        print(f"  done: {name}, {_label(reference)} ({table[-1]['s']} s)", flush=True)
    out = pd.DataFrame(table)
    print(f"\n### unchanged streams, live loop, {rows} rows per batch, held-out seed {seed}\n")
    print("| " + " | ".join(out.columns) + " |")
    print("|---" * len(out.columns) + "|")
    for row in out.itertuples(index=False):
        print("| " + " | ".join("-" if v is None else str(v) for v in row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one held-out seed, shorter streams")
    parser.add_argument("--rows", type=int, default=90, help="rows per batch in part 2")
    parser.add_argument("--part", choices=["causes", "loop", "both"], default="both")
    parser.add_argument(
        "--seed",
        type=int,
        default=LOOP_HELD_OUT_SEED,
        help=f"seed of part 2 (default {LOOP_HELD_OUT_SEED}; tuned on {list(LOOP_TUNING_SEEDS)})",
    )
    args = parser.parse_args()
    seeds = HELD_OUT_SEEDS[:1] if args.quick else HELD_OUT_SEEDS
    print(
        f"tuning seeds (not reported): causes {list(TUNING_SEEDS)}, "
        f"loop {list(LOOP_TUNING_SEEDS)}; "
        f"held out (reported): causes {list(seeds)}, loop {LOOP_HELD_OUT_SEED}; "
        f"loop run on seed {args.seed}"
    )
    print(f"numpy {np.__version__}, pandas {pd.__version__}")
    started = time.perf_counter()
    if args.part in ("causes", "both"):
        causes(seeds, (30, 90))
    if args.part in ("loop", "both"):
        unchanged(args.seed, args.rows, args.quick)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
