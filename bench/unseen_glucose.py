"""A new user's weekly files on real data no rule was tuned on: a continuous glucose monitor's
readings every 5 minutes for 6.5 months of 2010 (52,281 readings; Bokeh's sample data, as the
``bokeh_sampledata`` wheel ships it: ``CGM.csv.gz``, public domain), one file a week, worked
through by ``retrainer run --until-idle`` with the project file ``retrainer init --task
regression`` writes. The glucose value the monitor reports is predicted from the sensor's
current (``isig``) and the hour of day, as a calibration model would.

The data holds what such a sensor does: the ratio of glucose to current moves with every
finger-stick calibration and every new sensor (a median of 9-14 mg/dL per unit in the first
three weeks, 6-8 later), the monitor caps glucose at 40 and 400 mg/dL, a week in July has three
days without readings, and in the week of 23 August the current reads ``nil`` in 1,061 of
1,882 readings.

Printed: runs that failed, the batches quarantined and why, the longest stretch retraining was
held back, retrains, the mean absolute error (mg/dL) of the continuously trained model against
the one never retrained, and of the continuously trained one from July on (scored whatever the
earlier decisions: comparable between versions); and how many weeks each check alarmed on.

Run: ``pip download --no-deps bokeh_sampledata -d /tmp/wheels`` once, then ``.venv/bin/python
bench/unseen_glucose.py /tmp/wheels/bokeh_sampledata-*.whl``; about 2 minutes.
"""

from __future__ import annotations

import argparse
import io
import zipfile

import pandas as pd
from unseen_housing import regression_backlog

MEMBER = "bokeh_sampledata/_data/CGM.csv.gz"
LATER_WEEK = 15  # the first week of the "from July" figure (weeks start on Mondays)


def readings(wheel: str) -> pd.DataFrame:
    """The monitor's readings as shipped (``isig`` as text: it holds ``nil``), with a row id,
    the hour of day and the week (1 = the week of 22 March 2010)."""
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(MEMBER)
    frame = pd.read_csv(io.BytesIO(raw), compression="gzip", dtype={"isig": str})
    measured = pd.to_datetime(frame["datetime"])
    monday = (measured - pd.to_timedelta(measured.dt.day_of_week, "D")).dt.normalize()
    week = (monday - monday.min()).dt.days // 7 + 1
    return pd.DataFrame(
        {
            "reading": range(len(frame)),
            "measured": measured,
            "hour": measured.dt.hour,
            "isig": frame["isig"],
            "glucose": frame["glucose"],
            "week": week,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="a downloaded bokeh_sampledata wheel")
    frame = readings(parser.parse_args().wheel)
    weeks = {f"{w:02d}": rows.drop(columns="week") for w, rows in frame.groupby("week")}
    data = {"target": "glucose", "id_column": "reading", "time_column": "measured"}
    later = (set(range(LATER_WEEK, len(weeks) + 1)), f"from week {LATER_WEEK}")
    regression_backlog("glucose monitor", weeks, {**data, "timezone": "UTC"}, "week", later)


if __name__ == "__main__":
    main()
