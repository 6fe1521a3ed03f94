"""When to retrain, priced: every policy against the hindsight optimum on real and synthetic
streams, at three retrain costs.

Run: ``.venv/bin/python bench/backtest_cost.py [--data elec2,sea,...] [--costs 50,500,5000]
[--tune] [--out DIR]``. For each data set the score matrix (a candidate trained at every batch
boundary with the shipped ELEC2 trainer, HistGradientBoosting, window of 4 labelled batches,
labels one batch late; each scored on every later batch) is built once and cached under
``--out``; every policy is then simulated on it: a retrain is paid for, and puts the candidate
of that boundary in service only if it passes the live gate (the project's default: its gate
copy, fitted without the newest 20 % of the window, not worse than the champion on those rows,
paired bootstrap at 95 %, inconclusive promotes), as live. The optimum in hindsight skips the
gate. Total cost = errors + retrains x cost.

Data: ELEC2 (weekly batches); River's SEA, Agrawal, STAGGER, Hyperplane (3-4 abrupt concepts,
500 rows a week, seed 0); HAPT (2.56 s windows of the whole file in recording order, users one
after another, 200 windows a batch); ACS employment, Massachusetts 2015-2018 (NannyML's files in
order, 5,000 rows a batch). ``--tune`` grid-searches the parameters of ours and of UPF on the
tuning sets (SEA, STAGGER, HAPT and the first half of ELEC2's weeks) only; the held-out sets
(the second half of ELEC2, Agrawal, Hyperplane, ACS) are reported separately, and the whole of
ELEC2 last. "ours, live" is ours seeing only what the live loop records (the serving model's
and the first model's errors, a fresh model's at each retrain): what the live trigger does.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from retrainer.datasets import load_elec2
from retrainer.replay import split_periods
from retrainer.schedule.compare import compare, default_policies
from retrainer.schedule.gated import Gate
from retrainer.schedule.optimal import optimal_schedule
from retrainer.schedule.policies import UPF, GainForecast, simulate
from retrainer.schedule.scores import cached_scores
from retrainer.training import Trainer

DATA = os.environ.get("RETRAINER_SHARED_DATA", "/work/shared/data")
TUNING = ("sea", "stagger", "hapt", "elec2-first")
HELD_OUT = ("elec2-second", "agrawal", "hyperplane", "acs")
WHOLE = ("elec2",)  # its first half was tuned on
SHORT = {
    "best fixed": "best fixed (hindsight)",
    "DDM trigger": "DDM",
    "ADWIN trigger": "ADWIN",
    "CARA-T": "CARA-T",
    "CARA-CT": "CARA-CT",
    "CARA-P": "CARA-P",
    "UPF": "UPF",
    "ours (gain forecast)": "ours",
    "ours (live information)": "ours, live",
}


def by_time(frame: pd.DataFrame, target: str, drop: list[str]) -> list:
    periods = split_periods(frame, "timestamp", "7D")
    features = [c for c in frame.columns if c not in (target, *drop)]
    return [(p[features].reset_index(drop=True), p[target].to_numpy()) for p in periods]


def by_rows(X: pd.DataFrame, y: np.ndarray, size: int) -> list:
    return [
        (X.iloc[i : i + size].reset_index(drop=True), y[i : i + size])
        for i in range(0, len(X) - size + 1, size)
    ]


def hapt(size: int = 200) -> list:
    axes = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]
    df = pd.read_csv(f"{DATA}/hapt_accgyro_50hz.csv.gz")
    signal, label, exp = df[axes].to_numpy(), df["label"].to_numpy(), df["experiment"].to_numpy()
    rows, labels = [], []
    for start in range(0, len(df) - 128, 64):
        w = slice(start, start + 128)
        if not 1 <= label[start] <= 6 or (label[w] != label[start]).any():
            continue
        if exp[start + 127] != exp[start]:
            continue
        x = signal[w]
        rows.append(np.concatenate([x.mean(0), x.std(0), np.abs(np.diff(x, axis=0)).mean(0)]))
        labels.append(int(label[start]))
    names = [f"{s}_{a}" for s in ("mean", "std", "mad") for a in axes]
    return by_rows(pd.DataFrame(rows, columns=names), np.asarray(labels), size)


def acs(size: int = 5000) -> list:
    ref = pd.read_parquet(f"{DATA}/employment_MA_reference.pq")
    ana = pd.read_parquet(f"{DATA}/employment_MA_analysis.pq").merge(
        pd.read_parquet(f"{DATA}/employment_MA_analysis_target.pq"), on="id"
    )
    frame = pd.concat([ref, ana], ignore_index=True)
    drop = ["id", "employed", "year", "prediction", "predicted_probability"]
    X = frame.drop(columns=drop).apply(pd.to_numeric, errors="coerce").astype(float)
    return by_rows(X, frame["employed"].astype(int).to_numpy(), size)


def load(name: str) -> list:
    if name == "elec2":
        return by_time(load_elec2(), "target", ["id", "timestamp"])
    if name == "hapt":
        return hapt()
    if name == "acs":
        return acs()
    from retrainer.datasets.synthetic import drift_stream

    return by_time(drift_stream(name, seed=0).frame, "target", ["id", "timestamp"])


def matrices(names: list[str], out: Path) -> dict:
    example = yaml.safe_load(
        resources.files("retrainer").joinpath("examples/elec2.yaml").read_text()
    )
    t = example["trainer"]
    trainer = Trainer(t["estimator"], t["params"])
    found = {}
    for name in names:
        if name.startswith("elec2-"):  # a half of ELEC2's matrix
            whole = found.get("elec2") or matrices(["elec2"], out)["elec2"]
            half = whole.batches // 2
            found[name] = whole.part(0, half) if name == "elec2-first" else whole.part(half)
            part = found[name]
            print(f"{name}: {part.batches} batches of ELEC2's, {int(part.rows.sum()):,} rows")
            continue
        started = time.perf_counter()
        m, path, cached = cached_scores(
            load(name), trainer, folder=out, history=4, window=4, jobs=None, on_model=shown(name)
        )
        took = time.perf_counter() - started
        what = "cached" if cached else "built"
        rows = int(m.rows.sum())
        print(f"{name}: {m.batches} batches, {rows:,} rows; matrix {what} in {took:.1f} s")
        found[name] = m
    return found


def shown(name: str):
    """Progress of a cold matrix build, on one line of standard error."""

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{name}: {done}/{total} candidates scored", end=end, file=sys.stderr, flush=True)

    return show


GATES: dict[int, Gate] = {}


def gate_for(m) -> Gate:
    """One gate per matrix, so that its verdicts are reused across policies and costs."""
    return GATES.setdefault(id(m), Gate(m))


def ratio(m, cost: float, policy) -> float:
    best = optimal_schedule(m.errors, cost, m.rows).total
    run = simulate(m.errors, m.rows, policy, cost=cost, label_delay=m.label_delay, gate=gate_for(m))
    return run.schedule.total / best


def tune(found: dict, costs: list[float]) -> dict:
    """Parameters of ours and of UPF with the least mean ratio to the optimum on ``found``."""
    grids = {
        "ours": [
            dict(horizon=h, z=z, recent=r)
            for h, z, r in itertools.product((4, 8, 16, 26, 52), (0.5, 1.0, 2.0), (1, 2, 4))
        ],
        "upf": [
            dict(horizon=h, quantile=q)
            for h, q in itertools.product((8, 13, 26, 52), (0.25, 0.5, 0.75))
        ],
    }
    make = {"ours": GainForecast, "upf": UPF}
    chosen = {}
    for key, grid in grids.items():
        scores = [
            np.mean([ratio(m, c, make[key](**p)) for m in found.values() for c in costs])
            for p in grid
        ]
        chosen[key] = grid[int(np.argmin(scores))]
        print(
            f"tuned {key}: {chosen[key]} (mean ratio to the optimum {min(scores):.3f})", flush=True
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=",".join(TUNING + HELD_OUT + WHOLE))
    parser.add_argument("--costs", default="50,500,5000")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("out/bench-cost"))
    args = parser.parse_args()
    costs = [float(c) for c in args.costs.split(",")]
    names = args.data.split(",")
    found = matrices(names, args.out)
    tuned = tune({n: found[n] for n in names if n in TUNING}, costs) if args.tune else {}
    keys = list(SHORT.values())
    groups = (("tuning", TUNING), ("held out", HELD_OUT), ("whole (first half tuned on)", WHOLE))
    for group, members in groups:
        rows = [n for n in names if n in members]
        if not rows:
            continue
        print(f"\n{group}: total cost / optimum's total cost (retrains in brackets)\n")
        print(
            "| data | cost | optimum: total (retrains, accuracy) | " + " | ".join(keys) + " | s |"
        )
        print("|---" * (len(keys) + 4) + "|")
        for name in rows:
            m = found[name]
            for cost in costs:
                started = time.perf_counter()
                table = compare(
                    m.errors,
                    m.rows,
                    cost=cost,
                    label_delay=m.label_delay,
                    bits=m.bits,
                    policies=default_policies(**tuned),
                    gate=gate_for(m),
                )
                took = time.perf_counter() - started
                cells = {r["policy"]: r for r in table}
                opt = table[0]
                cells["best fixed"] = table[1]
                line = [f"{cells[k]['vs optimum']:.3f} ({cells[k]['retrains']})" for k in SHORT]
                print(
                    f"| {name} | {cost:g} | {opt['total cost']:,.0f} ({opt['retrains']}, "
                    f"{opt['accuracy']:.4f}) | " + " | ".join(line) + f" | {took:.0f} |",
                    flush=True,
                )
    print(f"\nscore matrices cached under {args.out}")


if __name__ == "__main__":
    main()
