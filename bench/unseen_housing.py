"""A new user's monthly files on real data no rule was tuned on: Texas home sales by city,
January 2000 to July 2015 (R's ggplot2 ``txhousing``, from the Real Estate Center at Texas A&M
University; 8,602 rows, 46 cities a month), one file a month, worked through by ``retrainer run
--until-idle`` with the project file ``retrainer init --task regression`` writes. A city's median
sale price is predicted from the city, the month, its sales, their volume, the listings and the
months of inventory; ``--with-year`` adds the year, as many users would.

The history holds, as recorded: cities that report nothing for months (no sales and so no
median: rows whose label never comes; 7 of 46 cities a month in 2000), listings and inventory
missing for a third of the cities in 2002-2007, the 2008 crash, and a last month that some
cities had not yet reported.

Printed: runs that failed, the batches quarantined and why, the longest stretch retraining was
held back, retrains, the mean absolute error of the continuously trained model against the one
never retrained (on the months both were scored on), and of the continuously trained one from
2005 on (scored whatever the earlier decisions: comparable between versions); and how many
months each check alarmed on.

Run: the data ships in the ``plotnine`` package's wheel. ``pip download --no-deps plotnine -d
/tmp/wheels`` once, then ``.venv/bin/python bench/unseen_housing.py /tmp/wheels/plotnine-*.whl
[--with-year] [--files-per-cycle N]`` (or no path with ``plotnine`` installed); about 2 minutes
with 8 files a cycle (as the README's tables), 11 with 1 (``0``: the project's default).
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import func, select
from unseen_polls import outcome
from unseen_rdatasets import work_through, write_backlog

from retrainer import views
from retrainer.cli import project_template
from retrainer.replay import summarise
from retrainer.store.tables import CheckRow

MEMBER = "plotnine/data/txhousing.csv"
LATER = 2005  # the first year of the "from 2005" figure


def sales(wheel: str | None) -> pd.DataFrame:
    """The monthly rows, with a row id and the month's first day as their time."""
    if wheel:
        with zipfile.ZipFile(wheel) as archive:
            frame = pd.read_csv(archive.open(MEMBER))
    else:
        spec = find_spec("plotnine")
        if spec is None or spec.origin is None:
            raise SystemExit("pass a downloaded plotnine wheel (see the module's doc)")
        frame = pd.read_csv(Path(spec.origin).parent / "data" / "txhousing.csv")
    frame["month_start"] = pd.to_datetime(dict(year=frame.year, month=frame.month, day=1))
    frame["row"] = range(len(frame))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", nargs="?", help="a downloaded plotnine wheel")
    parser.add_argument("--with-year", action="store_true", help="the year among the features")
    parser.add_argument(
        "--files-per-cycle", type=int, default=8, help="8 as the README's tables; 0: the default"
    )
    parser.add_argument(
        "--cost", type=float, help="policy.cost's retrain, in dollars of absolute error"
    )
    args = parser.parse_args()
    frame = sales(args.wheel)
    year = ["year"] if args.with_year else []
    columns = ["row", "month_start", "city", *year, "month", "sales", "volume", "listings"]
    columns += ["inventory", "median"]
    name = f"Texas housing{' with the year' if year else ''}"
    per_cycle = args.files_per_cycle or None
    monthly_regression(name, frame[columns], "median", LATER, per_cycle, args.cost)


def monthly_regression(
    name: str,
    frame: pd.DataFrame,
    target: str,
    later: int,
    per_cycle: int | None,
    cost: float | None = None,
) -> None:
    """``frame`` (ids in ``row``, times in ``month_start``) as a file a month, worked through as
    a regression of ``target`` with the project file ``init --task regression`` writes,
    ``per_cycle`` files a cycle (None: the default), ``cost`` as its ``policy.cost`` (None: its
    triggers); prints what the module doc says, the error from the year ``later`` on."""
    months = list(frame.groupby("month_start"))
    files = {f"{m:%Y-%m}": rows for m, rows in months}
    data = {"target": target, "id_column": "row", "time_column": "month_start"}
    scored = {k + 1 for k, (month, _) in enumerate(months) if month.year >= later}
    span = f"{months[0][0].year}-{months[-1][0].year}"
    regression_backlog(name, files, data, "month", (scored, f"{later} on"), span, per_cycle, cost)


def regression_backlog(
    name: str,
    files: dict[str, pd.DataFrame],
    data: dict,
    period: str,
    later: tuple[set[int], str],
    span: str = "",
    per_cycle: int | None = None,
    cost: float | None = None,
) -> None:
    """``files`` (name -> rows, a file a ``period``) worked through by ``retrainer run
    --until-idle`` as a regression with the project file ``init --task regression`` writes and
    ``data`` over its data section, ``per_cycle`` files a cycle (None: the default), ``cost`` its
    ``policy.cost`` retrain (the cost trigger decides alone; None: the template's triggers).
    Prints the runs that failed, what was quarantined, the retrains and errors, the error of
    the continuously trained model on the batches ``later`` names (1-based, with their words),
    and how many batches each check alarmed on."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = yaml.safe_load(project_template("regression"))
        config["data"].update(data)
        if cost is not None:
            config["policy"] = {"cost": {"retrain": cost}} | {
                k: v for k, v in config["policy"].items() if k != "triggers"
            }
        write_backlog(folder, files, config, per_cycle=per_cycle)
        project = work_through(folder, name)
        rows = sum(map(len, files.values()))
        title = f"{span or f'{len(files)} {period}s'}, a file a {period}"
        outcome(title, project, summarise(project, 0, rows, None, 0.0, None))
        perf = views.performance(project)
        print(f"scored by both models: {len(sorted(views.scored_by_both(perf)))} {period}s")
        value = views.overall(perf, "champion", later[0])
        shown = "n/a (no model scored)" if value is None else f"{value:,.4g}"
        print(f"continuously trained, {later[1]}: mae {shown}")
        print(f"{period}s with an alarm, by check: {alarmed_months(project)}")


def alarmed_months(project) -> str:
    """How many batches each check alarmed on (a concept detector, MMD, a column's KS...)."""
    with project.store.session() as s:
        rows = s.execute(
            select(CheckRow.name, func.count(func.distinct(CheckRow.batch_id)))
            .where(CheckRow.alarm.is_(True))
            .group_by(CheckRow.name)
        ).all()
    return ", ".join(f"{name} {count}" for name, count in sorted(rows)) or "none"


if __name__ == "__main__":
    main()
