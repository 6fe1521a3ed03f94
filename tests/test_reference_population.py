"""The champion's reference describes the inputs as they arrive, on real monthly files: Texas
housing sales by city (``tests/fixtures/txhousing_2000_2001.csv``), where a city that reports
no sales has no median price either, so its rows never get a label."""

from pathlib import Path

import pandas as pd
import pytest

from retrainer.checks.batch_level import null_limit
from retrainer.profile import BatchProfile

FIXTURE = Path(__file__).parent / "fixtures" / "txhousing_2000_2001.csv"


@pytest.fixture(scope="module")
def months():
    frame = pd.read_csv(FIXTURE)
    frame["month_start"] = pd.to_datetime(dict(year=frame.year, month=frame.month, day=1))
    frame["row"] = range(len(frame))
    return [rows.reset_index(drop=True) for _, rows in frame.groupby("month_start")]


def housing_project(make_project, columns):
    return make_project(
        data={"target": "median", "id_column": "row", "time_column": "month_start"},
        trainer={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 50, "random_state": 0},
            "task": "regression",
            "window": {"batches": 12},
            "min_rows": 200,
        },
        checks={"concept": {"detector": "page_hinkley"}},
        policy={"triggers": [{"type": "manual"}]},
        gate={"metric": "mae"},
    ), ["row", "month_start", *columns, "median"]


def test_rows_whose_label_never_comes_are_in_the_reference(make_project, months):
    """In 2000, 7 of the 46 cities a month report no sales and no median: those rows are
    unlabelled. Profiled on the labelled rows alone, the reference held no null sales, and
    every later month (the same cities silent) was quarantined as a null share that rose."""
    project, columns = housing_project(make_project, ["city", "month", "sales", "listings"])
    for rows in months[:12]:
        project.ingest(rows[columns], key=f"{rows.month_start[0]:%Y-%m}")
    assert project.cycle().champion == 1
    window = pd.concat(months[:12])
    assert window["median"].isna().sum() > 50  # the rows a label never reaches
    reference = BatchProfile.from_dict(project.champion.reference)
    sales = reference.columns["sales"]
    assert sales.count == len(window) and sales.nulls == window["sales"].isna().sum()
    assert len(sales.moments_by_batch) == 12
    assert set(reference.columns["city"].categories) >= set(window["city"])  # silent ones too
    for rows in months[12:15]:
        project.ingest(rows[columns], key=f"{rows.month_start[0]:%Y-%m}")
    report = project.cycle()
    assert report.quarantined == ()
    assert not [a for a in report.alarms if a["check"] in ("null_rate", "unseen_category")]
    assert null_limit(sales, 1e-3) is None  # the months' shares agree: rows are the unit
