"""The champion's reference describes the inputs as they arrive, on real monthly files: Texas
housing sales by city (``tests/fixtures/txhousing_2000_2001.csv``), where a city that reports
no sales has no median price either, so its rows never get a label."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from retrainer.checks.batch_level import null_limit
from retrainer.checks.quality import check_quality
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile
from retrainer.store.tables import CheckRow

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


def ingest(project, columns, months):
    for rows in months:
        project.ingest(rows[columns], key=f"{rows.month_start[0]:%Y-%m}")


def started(make_project, months, columns):
    """A project whose champion learnt 2000 (its 12 monthly files)."""
    project, columns = housing_project(make_project, columns)
    ingest(project, columns, months[:12])
    assert project.cycle().champion == 1
    return project, columns


def test_rows_whose_label_never_comes_are_in_the_reference(make_project, months):
    """In 2000, 7 of the 46 cities a month report no sales and no median: those rows are
    unlabelled. Profiled on the labelled rows alone, the reference held no null sales, and
    every later month (the same cities silent) was quarantined as a null share that rose."""
    project, columns = started(make_project, months, ["city", "month", "sales", "listings"])
    window = pd.concat(months[:12])
    assert window["median"].isna().sum() > 50  # the rows a label never reaches
    reference = BatchProfile.from_dict(project.champion.reference)
    sales = reference.columns["sales"]
    assert sales.count == len(window) and sales.nulls == window["sales"].isna().sum()
    assert len(sales.moments_by_batch) == 12
    assert set(reference.columns["city"].categories) >= set(window["city"])  # silent ones too
    ingest(project, columns, months[12:15])
    report = project.cycle()
    assert report.quarantined == ()
    assert not [a for a in report.alarms if a["check"] in ("null_rate", "unseen_category")]
    assert null_limit(sales, 1e-3) is None  # the months' shares agree: rows are the unit


def test_a_year_column_follows_the_calendar_and_a_year_since_1900_does_not(make_project, months):
    """With ``year`` among the features, every month of 2001 lay wholly outside the reference's
    [2000, 2000] and was quarantined as an offset upstream: retraining stopped for good. Equal
    in every row to its time's year, it is the calendar moving on; sent as 101 (C's years since
    1900), it is no longer its time's year and is still an upstream change."""
    project, columns = started(make_project, months, ["city", "year", "month", "sales"])
    ingest(project, columns, months[12:14])
    report = project.cycle()
    assert report.quarantined == ()
    # a date part moves by design: no finding of any kind (the drift test skips it too)
    assert not [a for a in report.alarms if a["column"] in ("year", "month")]
    with project.store.session() as s:
        year = s.scalars(
            select(CheckRow).where(
                CheckRow.batch_id == report.batches[0],
                CheckRow.name == "out_of_range",
                CheckRow.column == "year",
            )
        ).one()
        assert year.detail["calendar"] == "year" and "calendar moved on" in year.detail["message"]
    since_1900 = months[15][columns].assign(year=101)
    bad = project.ingest(since_1900, key="2001-04").id
    report = project.cycle()
    assert report.quarantined == (bad,)
    assert [a["cause"] for a in report.alarms if a["column"] == "year"] == ["upstream_change"]


def test_a_declared_range_is_honoured_for_a_calendar_column(months):
    """The calendar lifts the reference's range only; a contract that says 2000 at most still
    alarms on 2001."""
    reference_rows = pd.concat(months[:12])[["year", "sales"]]
    inferred = Schema.infer(reference_rows).columns  # types only, as ``schema: inferred``
    schema = Schema([replace(c, min=None, max=None) for c in inferred])
    calendar = {"year": "year"}

    def year_alarm(schema):
        reference = BatchProfile.from_frame(reference_rows, schema)
        rows = months[12][["year", "sales"]]
        batch = BatchProfile.from_frame(rows, schema, edges=reference.edges())
        results = check_quality(reference, batch, schema, calendar=calendar)
        return next(r for r in results if r.name == "out_of_range" and r.column == "year").alarm

    assert not year_alarm(schema)
    contract = Schema(
        [replace(c, min=1990.0, max=2000.0) if c.name == "year" else c for c in schema.columns]
    )
    assert year_alarm(contract)


def test_the_multivariate_check_leaves_the_date_parts_out(make_project, months):
    """A monthly file's month and year are one value per batch: read as rows beside a
    reference of 12 months, MMD told every month from it (p at its floor, 1 in 201)."""
    project, columns = started(make_project, months, ["city", "year", "month", "sales"])
    ingest(project, columns, months[12:16])  # January (its month is 1, as a flag's) to April
    report = project.cycle()
    with project.store.session() as s:
        checks = s.scalars(
            select(CheckRow).where(CheckRow.batch_id.in_(report.batches), CheckRow.name == "mmd")
        ).all()
    assert len(checks) == 4
    assert [c.alarm for c in checks] == [False] * 4, [c.p_value for c in checks]
