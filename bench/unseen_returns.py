"""A new user's monthly files on real data no rule was tuned on: daily returns of ten large
S&P 500 stocks, February 2013 to February 2018 (1,257 trading days, as River ships them:
``river.datasets.SP500Stocks``), one file a month (about 21 rows), worked through by ``retrainer
run --until-idle`` with the project file ``retrainer init --task regression`` writes. The next
day's return of an equal-weighted portfolio of the ten is predicted from the day's returns, in
percent.

The data holds what markets do: heavy tails (24 August 2015, when the ten fell 2.3-7.8 %; the
day after the Brexit vote; February 2018), calm years and nervous ones, and a target that the
day's returns hardly predict. Every row is a real trading day: a careful tool quarantines
nothing here, and retraining cannot be expected to help much.

Printed: runs that failed, the batches quarantined and why, the longest stretch retraining was
held back, retrains, the mean absolute error (percentage points) of the continuously trained
model against the one never retrained, and of the continuously trained one from 2016 on (scored
whatever the earlier decisions: comparable between versions); and how many months each check
alarmed on.

Run: ``.venv/bin/python bench/unseen_returns.py`` (River is installed with the ``dev`` extra);
about a minute.
"""

from __future__ import annotations

import tempfile
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import yaml
from unseen_housing import alarmed_months
from unseen_polls import outcome
from unseen_rdatasets import work_through, write_backlog

from retrainer import views
from retrainer.cli import project_template
from retrainer.replay import summarise

LATER = "2016-01"  # the first month of the "from 2016" figure


def days() -> pd.DataFrame:
    """The trading days as River ships them, with the month."""
    spec = find_spec("river")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install river (the data ships in its wheel)")
    frame = pd.read_csv(Path(spec.origin).parent / "datasets" / "sp500.csv.gz")
    return frame.assign(month=frame["date"].str.slice(0, 7))


def main() -> None:
    frame = days()
    months = {month: rows.drop(columns="month") for month, rows in frame.groupby("month")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = yaml.safe_load(project_template("regression"))
        data = {"target": "next_day_return", "time_column": "date"}
        config["data"].update(data, timezone="America/New_York")
        write_backlog(folder, months, config, per_cycle=None)
        project = work_through(folder, "S&P 500 returns")
        summary = summarise(project, 0, len(frame), None, 0, None)
        outcome(f"{len(months)} months, a file a month", project, summary)
        perf = views.performance(project)
        print(f"scored by both models: {len(sorted(views.scored_by_both(perf)))} months")
        later = {k + 1 for k, month in enumerate(months) if month >= LATER}
        value = views.overall(perf, "champion", later)
        shown = "n/a (no model scored)" if value is None else f"{value:.3f}"
        print(f"continuously trained, from {LATER}: mae {shown}")
        print(f"months with an alarm, by check: {alarmed_months(project)}")


if __name__ == "__main__":
    main()
