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

from importlib.util import find_spec
from pathlib import Path

import pandas as pd
from unseen_housing import regression_backlog

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
    data = {"target": "next_day_return", "time_column": "date", "timezone": "America/New_York"}
    later = ({k + 1 for k, month in enumerate(months) if month >= LATER}, f"from {LATER}")
    regression_backlog("S&P 500 returns", months, data, "month", later)


if __name__ == "__main__":
    main()
