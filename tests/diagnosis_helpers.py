"""Helper of the rule tests: a batch diagnosed against a reference frame, as a cycle checks it."""

import pandas as pd
import pytest

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import check_quality
from retrainer.data.schema import Schema
from retrainer.diagnosis import batch_signals, diagnose_batch
from retrainer.profile import BatchProfile


def diagnose(reference_frame, batch, previous_last=None, **quality):
    """The quality and drift checks of ``batch`` against ``reference_frame`` (``quality``: the
    quality checks' options; ``previous_last``: per column, the last value of the batch
    before) and their diagnosis."""
    schema = Schema.infer(reference_frame)
    reference = BatchProfile.from_frame(reference_frame, schema, rows=True)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = [
        *check_quality(reference, current, schema, **quality),
        *check_drift(reference, current),
    ]
    signals = batch_signals(
        batch.reset_index(drop=True), list(reference_frame.columns), previous_last=previous_last
    )
    return results, diagnose_batch(results, reference, current, signals)


def seattle_weather() -> pd.DataFrame:
    """Seattle's daily weather 2012-2015 (NOAA, shipped in the ``vega_datasets`` wheel)."""
    from importlib.resources import files

    frame = pd.read_csv(files("vega_datasets") / "_data" / "seattle-weather.csv")
    return frame.assign(date=pd.to_datetime(frame["date"]))


def hapt_user(user: int, columns=("acc-x", "acc-y", "gyro-z")) -> pd.DataFrame:
    """One HAPT user's ``columns`` in recording order (the test is skipped without the data)."""
    from retrainer.diagnosis.scenarios import DATA

    try:
        frame = pd.read_csv(DATA / "hapt_accgyro_50hz.csv.gz", usecols=["user", *columns])
    except FileNotFoundError:
        pytest.skip("HAPT data not on this machine")
    return frame[frame["user"] == user][list(columns)].reset_index(drop=True)
