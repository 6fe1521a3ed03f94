"""When to retrain, priced, for regressors: every policy against the hindsight optimum on real
regression data no policy was tuned on (the policies' settings were chosen on classifiers).

A regressor's errors are its absolute errors (``gate.metric: mae``): a retrain costs ``cost``
of absolute error summed over predictions, in the target's unit. Costs are stated per data set
as multiples of one batch's absolute error of a fresh model (the median over the stream of each
boundary's candidate on its first batch), so that the three costs mean the same on every data
set: a retrain worth a fifth of a batch's errors, two batches', twenty batches'.

Data (the score matrix as ``retrainer backtest --optimal`` builds it: HistGradientBoosting
regressor, window of 4 labelled batches, labels one batch late, 4 batches of history; every
retrain through the simulated gate on mae):

- ``demand``: ELEC2's New South Wales demand (``nswdemand``) from the period of the day, the NSW
  and Victorian prices, Victoria's demand and the transfer, in weeks (the classification bench's
  data set, a new target);
- ``seattle``: Seattle's daily maximum temperature 2012-2015 from precipitation, the minimum
  temperature and wind, in calendar months (``vega_datasets`` wheel);
- ``housing``: Texas cities' monthly median sale price 2000-2015 from the city, the month, sales,
  volume, listings and inventory (``plotnine`` wheel's ``txhousing``; rows without a price left
  out).

Run: ``.venv/bin/python bench/cost_regressors.py [--data demand,seattle,housing]
[--plotnine WHEEL] [--out DIR]``; ``pip download --no-deps plotnine -d /tmp/wheels`` for the
housing data if ``plotnine`` is not installed.
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from backtest_cost import SHORT as CLASSIFIERS
from backtest_cost import priced, shown, summary

from retrainer.datasets import load_elec2
from retrainer.replay import split_periods
from retrainer.schedule.compare import default_policies
from retrainer.schedule.gated import Gate
from retrainer.schedule.scores import cached_scores
from retrainer.training import Trainer

TRAINER = Trainer(
    "sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 100, "random_state": 0}
)
FACTORS = (0.2, 2.0, 20.0)  # a retrain's cost in batches of a fresh model's absolute error
SHORT = {k: v for k, v in CLASSIFIERS.items() if k != "DDM trigger"}  # DDM reads 0/1 errors


def demand() -> list:
    frame = load_elec2()
    features = ["period", "nswprice", "vicprice", "vicdemand", "transfer"]
    return [
        (p[features].reset_index(drop=True), p["nswdemand"].to_numpy())
        for p in split_periods(frame, "timestamp", "7D")
    ]


def seattle() -> list:
    frame = pd.read_csv(resources.files("vega_datasets") / "_data" / "seattle-weather.csv")
    month = frame["date"].str[:7].to_numpy()
    X = frame[["precipitation", "temp_min", "wind"]].astype(float)
    y = frame["temp_max"].to_numpy(dtype=float)
    return [(X[month == m].reset_index(drop=True), y[month == m]) for m in sorted(set(month))]


def housing(wheel: str | None) -> list:
    if wheel:
        with zipfile.ZipFile(wheel) as archive:
            frame = pd.read_csv(archive.open("plotnine/data/txhousing.csv"))
    else:
        import plotnine

        frame = pd.read_csv(Path(plotnine.__file__).parent / "data" / "txhousing.csv")
    frame = frame[frame["median"].notna()]
    features = ["city", "month", "sales", "volume", "listings", "inventory"]
    months = frame["year"] * 12 + frame["month"]
    return [
        (frame.loc[months == m, features].reset_index(drop=True), frame.loc[months == m, "median"])
        for m in sorted(months.unique())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demand,seattle,housing")
    parser.add_argument("--plotnine", help="a downloaded plotnine wheel (for housing)")
    parser.add_argument("--out", type=Path, default=Path("out/bench-cost-regressors"))
    args = parser.parse_args()
    loaders = {"demand": demand, "seattle": seattle, "housing": lambda: housing(args.plotnine)}
    keys = list(SHORT.values())
    print(
        "| data | cost (x batch) | optimum: total (retrains, mae) | "
        + " | ".join(keys)
        + " |\n"
        + "|---" * (len(keys) + 3)
        + "|"
    )
    totals = []
    for name in args.data.split(","):
        batches = [(X, np.asarray(y, dtype=float)) for X, y in loaders[name]()]
        started = time.perf_counter()
        m, _, cached = cached_scores(
            batches,
            TRAINER,
            folder=args.out,
            history=4,
            window=4,
            jobs=None,
            metric="mae",
            on_model=shown(name),
        )
        took = time.perf_counter() - started
        print(
            f"{name}: {m.batches} batches, {int(m.rows.sum()):,} rows; matrix "
            f"{'cached' if cached else 'built'} in {took:.0f} s",
            file=sys.stderr,
        )
        batch = float(np.median(np.diag(m.errors)))
        gate = Gate(m)
        policies = default_policies("mae")
        for factor in FACTORS:
            cost = factor * batch
            table = priced(m, cost, policies, gate=gate)
            cells = {r["policy"]: r for r in table}
            cells["best fixed"] = table[1]
            opt = table[0]
            totals.append(
                {"optimum": opt["total cost"]} | {k: cells[k]["total cost"] for k in SHORT}
            )
            line = [f"{cells[k]['vs optimum']:.3f} ({cells[k]['retrains']})" for k in SHORT]
            print(
                f"| {name} | {factor:g} ({cost:,.4g}) | {opt['total cost']:,.4g} "
                f"({opt['retrains']}, {opt['mae']:.4g}) | " + " | ".join(line) + " |",
                flush=True,
            )
    summary("regressors", totals)


if __name__ == "__main__":
    main()
