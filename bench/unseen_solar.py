"""A new user's weekly files on real data no rule was tuned on: a typical meteorological year
(TMY3, NREL) of hourly solar and weather readings, as the ``pvlib`` wheel ships it
(``723170TYA.CSV``: Greensboro, North Carolina; ``703165TY.csv``: Sand Point, Alaska; and
the older TMY2 ``12839.tm2``: Miami, Florida, 1961-1990, in its own units and codes), one file
a week, worked through by ``retrainer run --until-idle`` with the project file ``retrainer init
--task regression`` writes. The global horizontal irradiance is predicted from the
extraterrestrial irradiance (the sun's position), the hour, the cloud cover and the weather
readings, as a nowcast would.

The data holds what such a station does: the irradiance is 0 for the whole night, nights grow
from 9 hours in June to 15 in December (Alaska: 6 to 17), cloud cover is read in tenths, relative
humidity in whole percent, a reading capped at its maximum (100 % humidity, 10 tenths of cloud),
and each month comes from another year (1980-2005), so the months join at seams.

Printed: runs that failed, the batches quarantined and why, the longest stretch retraining was
held back, retrains, the mean absolute error (W/m^2) of the continuously trained model against
the one never retrained, and of the continuously trained one from July on (scored whatever the
earlier decisions: comparable between versions); and how many weeks each check alarmed on.

Run: ``pip download --no-deps pvlib -d /tmp/wheels`` once, then ``.venv/bin/python
bench/unseen_solar.py /tmp/wheels/pvlib-*.whl [greensboro|sandpoint|miami]`` (or no wheel
with ``pvlib`` installed; Miami's TMY2 file needs it installed, for its reader); about 3
minutes a station.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
from unseen_housing import regression_backlog

STATIONS = {"greensboro": "723170TYA.CSV", "sandpoint": "703165TY.csv", "miami": "12839.tm2"}
# TMY2 (Miami): the same readings in the file's own units and codes, read by pvlib's reader of
# its fixed-width lines: tenths of a degree and of m/s, visibility in tenths of a km with 9999
# for none, a ceiling of 77777 when unlimited, aerosol depth in thousandths
TMY2_COLUMNS = {
    "ETR": "etr",
    "ETRN": "etrn",
    "TotCld": "total_cloud",
    "OpqCld": "opaque_cloud",
    "DryBulb": "dry_bulb",
    "DewPoint": "dew_point",
    "RHum": "humidity",
    "Pressure": "pressure",
    "Wdir": "wind_dir",
    "Wspd": "wind_speed",
    "Hvis": "visibility",
    "CeilHgt": "ceiling",
    "Pwat": "water",
    "AOD": "aod",
    "GHI": "ghi",
}
COLUMNS = {
    "ETR (W/m^2)": "etr",
    "ETRN (W/m^2)": "etrn",
    "TotCld (tenths)": "total_cloud",
    "OpqCld (tenths)": "opaque_cloud",
    "Dry-bulb (C)": "dry_bulb",
    "Dew-point (C)": "dew_point",
    "RHum (%)": "humidity",
    "Pressure (mbar)": "pressure",
    "Wdir (degrees)": "wind_dir",
    "Wspd (m/s)": "wind_speed",
    "Hvis (m)": "visibility",
    "CeilHgt (m)": "ceiling",
    "Pwat (cm)": "water",
    "AOD (unitless)": "aod",
    "Alb (unitless)": "albedo",
    "GHI (W/m^2)": "ghi",
}
LATER_WEEK = 27  # the first week of the "from July" figure


def hours(wheel: str | None, station: str) -> tuple[pd.DataFrame, str]:
    """The station's hours in one nominal year (TMY months come from different years), with a
    row id, the hour ending, the hour of day and the week; and their time zone (local standard
    time, as TMY files are written)."""
    member = f"pvlib/data/{STATIONS[station]}"
    if wheel:
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read(member).decode()
    else:
        spec = find_spec("pvlib")
        if spec is None or spec.origin is None:
            raise SystemExit("pass a downloaded pvlib wheel (see the module's doc)")
        text = (Path(spec.origin).parent / "data" / STATIONS[station]).read_text()
    if STATIONS[station].endswith(".tm2"):
        return _tmy2(text)
    raw = pd.read_csv(io.StringIO(text), skiprows=1)
    day = pd.to_datetime(raw["Date (MM/DD/YYYY)"], format="%m/%d/%Y").map(
        lambda d: d.replace(year=1990)
    )
    hour = raw["Time (HH:MM)"].str.slice(0, 2).astype(int)
    frame = raw[list(COLUMNS)].rename(columns=COLUMNS)
    frame.insert(0, "row", range(len(frame)))
    frame.insert(1, "measured", day + pd.to_timedelta(hour, "h"))
    frame.insert(2, "hour", hour)
    frame["week"] = ((day - day.min()).dt.days // 7).clip(upper=51) + 1
    offset = float(text.split(",")[3])  # the header's UTC offset of local standard time
    return frame, f"Etc/GMT{-offset:+.0f}"  # POSIX signs: UTC-5 is Etc/GMT+5


def _tmy2(text: str) -> tuple[pd.DataFrame, str]:
    """:func:`hours` of a TMY2 file (pvlib reads its fixed-width lines)."""
    if find_spec("pvlib") is None:
        raise SystemExit("a TMY2 station needs pvlib installed: .venv/bin/pip install pvlib")
    from pvlib.iotools import read_tmy2

    with tempfile.NamedTemporaryFile("w", suffix=".tm2") as file:
        file.write(text)
        file.flush()
        raw, meta = read_tmy2(file.name)
    hour = raw["hour"].astype(int)  # the hour ending, 1-24, as TMY3's rows
    day = pd.to_datetime(
        {"year": 1990, "month": raw["month"], "day": raw["day"]}, errors="raise"
    ).reset_index(drop=True)
    frame = raw[list(TMY2_COLUMNS)].rename(columns=TMY2_COLUMNS).reset_index(drop=True)
    frame.insert(0, "row", range(len(frame)))
    frame.insert(1, "measured", day + pd.to_timedelta(hour.to_numpy(), "h"))
    frame.insert(2, "hour", hour.to_numpy())
    frame["week"] = ((day - day.min()).dt.days // 7).clip(upper=51) + 1
    return frame, f"Etc/GMT{-meta['TZ']:+.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", nargs="?", help="a downloaded pvlib wheel")
    parser.add_argument("stations", nargs="*", help=f"of {', '.join(STATIONS)} (default: all)")
    args = parser.parse_args()
    if args.wheel in STATIONS:  # no wheel: pvlib installed
        args.wheel, args.stations = None, [args.wheel, *args.stations]
    unknown = set(args.stations) - set(STATIONS)
    if unknown:
        parser.error(f"no station {', '.join(sorted(unknown))}: one of {', '.join(STATIONS)}")
    for station in args.stations or STATIONS:
        weekly_regression(station, *hours(args.wheel, station))


def weekly_regression(station: str, frame: pd.DataFrame, timezone: str) -> None:
    weeks = {f"{w:02d}": rows.drop(columns="week") for w, rows in frame.groupby("week")}
    data = {"target": "ghi", "id_column": "row", "time_column": "measured", "timezone": timezone}
    later = (set(range(LATER_WEEK, 53)), f"from week {LATER_WEEK}")
    regression_backlog(f"solar, {station}", weeks, data, "week", later)


if __name__ == "__main__":
    main()
