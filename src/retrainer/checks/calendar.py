"""Columns that are a date part of the project's time column: a batch's year, month or day.

A monthly file's ``year`` is 2001 in every row of 2001. After a reference of 2000 it lies
wholly outside the range, and the range rule read an offset upstream: every month after was
quarantined, and retraining stopped for good. A column equal, in every row of the batch, to a
part of the row's time follows the calendar, and values beyond the reference are time moving
on. The test is made on the batch's own rows: a year sent as ``101`` (C's years since 1900) is
no longer its time's year and stays a finding.

Example:
    >>> import pandas as pd
    >>> batch = pd.DataFrame({
    ...     "time": pd.to_datetime(["2001-02-01", "2001-02-01"], utc=True),
    ...     "year": [2001, 2001], "month": [2.0, 2.0], "sales": [72.0, 98.0],
    ... })
    >>> calendar_columns(batch, "time")
    {'year': 'year', 'month': 'month'}
    >>> calendar_columns(batch.assign(year=[101, 101]), "time")  # C's years since 1900
    {'month': 'month'}

Zeros and ones match too many parts by chance (a flag at midnight is not the hour), so a part
that is 0 or 1 in every row matches only a column the reference saw at 2 or more
(``reference_max``): January's month after a reference of other months, never a flag:

    >>> january = batch.assign(month=[1.0, 1.0], time=batch["time"] - pd.DateOffset(months=1))
    >>> calendar_columns(january.assign(flag=[1, 1]), "time")
    {'year': 'year'}
    >>> seen = {"month": 12.0, "flag": 1.0}
    >>> calendar_columns(january.assign(flag=[1, 1]), "time", reference_max=seen)
    {'year': 'year', 'month': 'month'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

# the parts a calendar column can be, in the order a column matching several is named by
PARTS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "year": lambda t: t.dt.year,
    "month": lambda t: t.dt.month,
    "day": lambda t: t.dt.day,
    "hour": lambda t: t.dt.hour,
    "weekday (Monday 0)": lambda t: t.dt.dayofweek,
    "weekday (Monday 1)": lambda t: t.dt.dayofweek + 1,
    "quarter": lambda t: t.dt.quarter,
    "week": lambda t: t.dt.isocalendar().week,
    "day of the year": lambda t: t.dt.dayofyear,
}


def calendar_columns(
    frame: pd.DataFrame,
    time_column: str | None,
    timezone: str | None = None,
    reference_max: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """Each numeric column of ``frame`` equal in every row (where both are known) to a part of
    ``time_column``'s time in ``timezone`` (the data's zone; UTC without one), with that part;
    ``reference_max``: the reference's largest value per column (see above)."""
    if not time_column or time_column not in frame or not len(frame):
        return {}
    times = frame[time_column]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        return {}
    local = times.dt.tz_convert(timezone or "UTC")
    parts = {name: _floats(part(local)) for name, part in PARTS.items()}
    found = {}
    for column in frame.columns:
        if column == time_column or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = _floats(frame[column])
        for name, part in parts.items():
            known = ~(np.isnan(values) | np.isnan(part))
            if not known.any():
                continue
            # zeros and ones match too much by chance: a flag at midnight is not the hour
            if part[known].max() < 2 and (reference_max or {}).get(column, 0.0) < 2:
                continue
            if np.array_equal(values[known], part[known]):
                found[column] = name
                break
    return found


def _floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan)
