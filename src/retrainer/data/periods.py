"""Cut a frame into consecutive periods of its time column (the replay's weeks).

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-09"])})
    >>> [len(p) for p in split_periods(frame, "t", "7D")]
    [2, 1]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.errors import DataError

__all__ = ["split_periods"]


def split_periods(frame: pd.DataFrame, time_column: str, period: str) -> list[pd.DataFrame]:
    """Cut a frame into consecutive periods of its time column (e.g. ``"7D"``).

    >>> from retrainer.datasets import load_elec2
    >>> [len(p) for p in split_periods(load_elec2().iloc[:1000], "timestamp", "7D")]
    [336, 336, 328]
    """
    if time_column not in frame:
        raise DataError(f"replay: no time column {time_column!r} in {list(frame.columns)}")
    times = frame[time_column]
    start = times.min()
    index = ((times - start) // pd.Timedelta(period)).to_numpy()
    return [frame[index == i] for i in np.unique(index)]
