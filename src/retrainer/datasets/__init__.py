"""Real data sets shipped inside the package.

ELEC2: M. Harries, "SPLICE-2 Comparative Evaluation: Electricity Pricing", UNSW tech. report,
1999 (via scikit-multiflow 0.4.1, BSD-3-Clause).

Example:
    >>> elec = load_elec2()
    >>> elec.shape, str(elec["timestamp"].iloc[48])
    ((45312, 9), '1996-05-08 00:00:00+00:00')
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

ELEC2_FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def load_elec2() -> pd.DataFrame:
    """ELEC2: 45,312 half-hours of the NSW electricity market (7 May 1996 on), real drift.

    Columns: ``id`` (row number), ``timestamp`` (UTC), six min-max normalised features and
    ``target`` (1 = price up against the 24 h moving average). Rows 0-17,423 carry constant fill
    values for ``vicprice``, ``vicdemand`` and ``transfer``: a real upstream change.
    """
    with resources.files(__package__).joinpath("elec2.csv.gz").open("rb") as handle:
        raw = pd.read_csv(handle, compression="gzip")
    raw.columns = [*ELEC2_FEATURES, "target"]
    rows = pd.RangeIndex(len(raw))
    start = pd.Timestamp("1996-05-07", tz="UTC")
    timestamp = start + pd.to_timedelta(rows // 48, unit="D") + pd.to_timedelta(rows % 48 * 30, "m")
    frame = raw.assign(id=rows.to_numpy(), timestamp=timestamp)
    return frame[["id", "timestamp", *ELEC2_FEATURES, "target"]]
