"""Columns that are a date part of the project's time column: a batch's year, month or day.

A monthly file's ``year`` is 2001 in every row of 2001. After a reference of 2000 it lies
wholly outside the range, and the range rule read an offset upstream: every month after was
quarantined, and retraining stopped for good. A column equal, in every row of the batch, to a
part of the row's time follows the calendar, and values beyond the reference are time moving
on. The test is made on the batch's own rows: a year sent as ``101`` (C's years since 1900) is
no longer its time's year and stays a finding.

Example:
    >>> import pandas as pd
    >>> from retrainer.profile import BatchProfile
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
(``reference``): January's month after a reference of other months, never a flag:

    >>> january = batch.assign(month=[1.0, 1.0], time=batch["time"] - pd.DateOffset(months=1))
    >>> calendar_columns(january.assign(flag=[1, 1]), "time")
    {'year': 'year'}
    >>> from retrainer.data.schema import Schema
    >>> year = pd.DataFrame({"month": [float(m) for m in range(1, 13)], "flag": [1.0] * 12})
    >>> seen = BatchProfile.from_frame(year, Schema.infer(year))
    >>> calendar_columns(january.assign(flag=[1, 1]), "time", reference=seen)
    {'year': 'year', 'month': 'month'}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from retrainer.profile import BatchProfile

HEAD = 64  # rows a column is first compared on

# the parts a calendar column can be, in the order a column matching several is named by
PARTS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "year": lambda t: t.dt.year,
    "month": lambda t: t.dt.month,
    "day": lambda t: t.dt.day,
    "hour": lambda t: t.dt.hour,
    "weekday (Monday 0)": lambda t: t.dt.day_of_week,
    "weekday (Monday 1)": lambda t: t.dt.day_of_week + 1,
    "quarter": lambda t: t.dt.quarter,
    "week": lambda t: t.dt.isocalendar().week,
    "day of the year": lambda t: t.dt.day_of_year,
}


def calendar_columns(
    frame: pd.DataFrame,
    time_column: str | None,
    timezone: str | None = None,
    reference: BatchProfile | None = None,
) -> dict[str, str]:
    """Each numeric column of ``frame`` equal in every row (where both are known) to a part of
    ``time_column``'s time in ``timezone`` (the data's zone; UTC without one), with that part;
    ``reference``: the profile whose largest values admit a part of zeros and ones (see above).

    A column is compared in full only with the parts it equals on the first ``HEAD`` rows, so
    a batch's other columns cost a few comparisons each."""
    if not time_column or time_column not in frame or not len(frame):
        return {}
    times = frame[time_column]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        return {}
    local = times.dt.tz_convert(timezone or "UTC")
    head = {name: _floats(part(local.iloc[:HEAD])) for name, part in PARTS.items()}
    parts: dict[str, np.ndarray] = {}  # the whole batch's, computed when a column needs one
    seen = reference.columns if reference is not None else {}
    found = {}
    for column in frame.columns:
        if column == time_column or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = _floats(frame[column])
        for name in [name for name in PARTS if _agree(values[:HEAD], head[name])]:
            if name not in parts:
                parts[name] = _floats(PARTS[name](local))
            part = parts[name]
            known = ~(np.isnan(values) | np.isnan(part))
            if not known.any():
                continue
            # zeros and ones match too much by chance: a flag at midnight is not the hour
            reached = seen[column].max if column in seen else None
            if part[known].max() < 2 and (reached is None or reached < 2):
                continue
            if np.array_equal(values[known], part[known]):
                found[column] = name
                break
    return found


def _agree(values: np.ndarray, part: np.ndarray) -> bool:
    """Equal where both are known (or nothing known to tell them apart)."""
    known = ~(np.isnan(values) | np.isnan(part))
    return bool(np.array_equal(values[known], part[known]))


def _floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan)
