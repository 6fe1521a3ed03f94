"""Quality checks on real ELEC2 batches with injected and real upstream problems."""

import numpy as np
import pandas as pd
import pytest

from retrainer.checks import check_drift, check_quality
from retrainer.checks.result import CheckResult
from retrainer.data.schema import Schema
from retrainer.diagnosis import diagnose
from retrainer.errors import DataError
from retrainer.profile import BatchProfile
from tests import SHARED_DATA

ELEC2 = f"{SHARED_DATA}/elec2.csv"
WEEK = 48 * 7
CHANGE = 17424  # first row of real Victorian data (vicprice = feat_4)


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return pd.read_csv(ELEC2)


@pytest.fixture(scope="module")
def setup(elec2):
    ref = elec2.iloc[: 4 * WEEK]
    schema = Schema.infer(ref, exclude=["target"])
    return schema, BatchProfile.from_frame(ref, schema)


def _check(setup, batch: pd.DataFrame) -> list[CheckResult]:
    schema, reference = setup
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    return check_quality(reference, current, schema)


def _alarms(results) -> set[tuple[str, str, str]]:
    return {(r.name, r.column, r.severity) for r in results if r.alarm}


def test_next_week_before_the_upstream_change_is_clean(setup, elec2):
    results = _check(setup, elec2.iloc[4 * WEEK : 5 * WEEK])
    assert not any(r.alarm and r.severity == "error" for r in results)
    names = {(r.name, r.column) for r in results}
    assert {
        ("missing_column", "feat_1"),
        ("null_rate", "feat_1"),
        ("out_of_range", "feat_4"),
    } <= names
    assert all(r.kind == "quality" and r.status == "ok" for r in results)


def test_real_vicprice_change_is_out_of_range(setup, elec2):
    results = _check(setup, elec2.iloc[CHANGE : CHANGE + WEEK])
    vic = next(r for r in results if r.name == "out_of_range" and r.column == "feat_4")
    assert vic.alarm and vic.severity == "warning"
    assert vic.statistic > 0.95
    assert "column 'feat_4'" in vic.message and "[0.003467, 0.003467]" in vic.message


def test_renamed_column_is_an_upstream_change_with_a_guess(setup, elec2):
    batch = elec2.iloc[4 * WEEK : 5 * WEEK].rename(columns={"feat_3": "feat_3_v2"})
    results = _check(setup, batch)
    assert _alarms(results) >= {
        ("missing_column", "feat_3", "error"),
        ("extra_column", "feat_3_v2", "warning"),
    }
    missing = next(r for r in results if r.name == "missing_column" and r.alarm)
    assert "probable rename to 'feat_3_v2' (same stats)" in missing.message
    assert not any(r.column == "feat_3" and r.name != "missing_column" for r in results)
    alarms = diagnose(results)
    assert alarms[0].cause == "upstream_change" and alarms[0].blocking


def test_unrelated_extra_column_is_not_a_rename(setup, elec2):
    batch = elec2.iloc[4 * WEEK : 5 * WEEK].drop(columns=["feat_3"]).assign(noise=1.0)
    missing = next(r for r in _check(setup, batch) if r.name == "missing_column" and r.alarm)
    assert "rename" not in missing.message


def test_thirty_percent_nulls_is_a_quality_error_not_drift(setup, elec2):
    batch = elec2.iloc[4 * WEEK : 6 * WEEK].copy()
    rng = np.random.default_rng(0)
    batch.loc[rng.random(len(batch)) < 0.3, "feat_3"] = np.nan
    results = _check(setup, batch)
    null = next(r for r in results if r.name == "null_rate" and r.column == "feat_3")
    assert null.alarm and null.severity == "error"
    assert null.statistic == pytest.approx(0.3, abs=0.03)
    assert "null share rose" in null.message and "column 'feat_3'" in null.message
    schema, reference = setup
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    clean = BatchProfile.from_frame(
        elec2.iloc[4 * WEEK : 6 * WEEK], schema, edges=reference.edges()
    )
    ks = {r.column: r.p_value for r in check_drift(reference, current) if r.name == "ks"}
    ks_clean = {r.column: r.p_value for r in check_drift(reference, clean) if r.name == "ks"}
    assert (ks["feat_3"] < 0.05) == (ks_clean["feat_3"] < 0.05)


def test_string_in_numeric_column(setup, elec2):
    schema, _ = setup
    batch = elec2.iloc[4 * WEEK : 5 * WEEK].reset_index(drop=True).astype({"feat_2": object})
    batch.loc[17, "feat_2"] = "abc"
    with pytest.raises(DataError, match="column 'feat_2': row 17 has 'abc', expected a number"):
        schema.conform(batch)
    results = _check(setup, batch)
    change = next(r for r in results if r.name == "type_change" and r.column == "feat_2")
    assert change.alarm and change.severity == "error"
    assert "1 of 336 values" in change.message and "'abc'" in change.message


def test_infinite_values_are_an_error(setup, elec2):
    batch = elec2.iloc[4 * WEEK : 5 * WEEK].copy()
    batch.iloc[3, 1] = np.inf
    batch.iloc[4, 1] = -np.inf
    results = _check(setup, batch)
    inf = next(r for r in results if r.name == "non_finite" and r.alarm)
    assert inf.alarm and inf.column == "feat_2" and "2 of 336 values are +-inf" in inf.message
    assert not any(r.alarm for r in results if r.name == "non_finite" and r.column != "feat_2")


def test_unseen_categories_and_id_like_columns():
    ref = pd.DataFrame({"region": ["NSW", "VIC"] * 50, "user": [f"u{i}" for i in range(100)]})
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    batch = pd.DataFrame({"region": ["NSW", "QLD", "QLD", None], "user": ["u1", "z", "y", "x"]})
    current = BatchProfile.from_frame(batch, schema)
    results = {(r.name, r.column): r for r in check_quality(reference, current, schema)}
    unseen = results[("unseen_category", "region")]
    assert unseen.alarm and unseen.severity == "warning"
    assert unseen.detail["unseen"] == ["QLD"] and unseen.statistic == pytest.approx(2 / 3)
    user = results[("unseen_category", "user")]
    assert not user.alarm and user.status == "excluded_id_like"


def test_results_serialise(setup, elec2):
    import json

    results = _check(setup, elec2.iloc[CHANGE : CHANGE + 10])
    json.dumps([r.to_dict() for r in results], allow_nan=False)


def _spiky(rng, rows, spikes):
    values = rng.normal(size=rows)
    values[rng.choice(rows, spikes, replace=False)] = 20.0  # a price spike, far beyond calm
    return pd.DataFrame({"x": values})


def test_out_of_range_reads_the_seasons_own_spikes_and_tail():
    """A champion trained in a calm season (range about -3..3: 20 is far out); the seasonal
    reference, profiled on the champion's edges, has its own spikes and tail. A batch with as
    many spikes as its season is not a quality alarm; a burst well beyond them is, and against
    the champion's own reference 2 spikes still are."""
    rng = np.random.default_rng(5)
    calm = pd.DataFrame({"x": rng.normal(size=1000)})
    schema = Schema.infer(calm)
    champion = BatchProfile.from_frame(calm, schema)
    edges = champion.edges()
    season = BatchProfile.from_frame(_spiky(rng, 360, 4), schema, edges=edges)
    assert season.columns["x"].far == 4

    def out_of_range(reference, batch):
        profile = BatchProfile.from_frame(batch, schema, edges=edges)
        results = check_quality(reference, profile, schema)
        return next(r for r in results if r.name == "out_of_range" and r.column == "x").alarm

    assert not out_of_range(season, _spiky(rng, 90, 2))
    assert out_of_range(season, _spiky(rng, 90, 9))
    assert out_of_range(champion, _spiky(rng, 90, 2))


def test_far_values_inside_the_contract_are_possible_and_a_burst_beyond_it_is_not():
    """Regression (issue 13, unchanged ELEC2 at 90 rows): the contract inferred from the first
    data holds a real price spike; a calm champion made two later spikes below that spike "far
    out", and one reading just under the contract's minimum (elsewhere in the batch) counted
    as the batch leaving the contract, so the batch was quarantined as an instrument fault.
    Far values count only outside the declared range; 2 impossible readings in 30 rows (beyond
    it) still alarm."""
    rng = np.random.default_rng(3)
    first = pd.DataFrame({"x": np.r_[rng.normal(size=999), 25.0]})  # the contract: [min, 25]
    schema = Schema.infer(first)
    low = schema.columns[0].min
    champion = BatchProfile.from_frame(pd.DataFrame({"x": rng.normal(size=360)}), schema)
    edges = champion.edges()

    def out_of_range(values):
        profile = BatchProfile.from_frame(pd.DataFrame({"x": values}), schema, edges=edges)
        results = check_quality(champion, profile, schema)
        return next(r for r in results if r.name == "out_of_range")

    spikes = np.r_[rng.normal(size=87).clip(low, None), 20.0, 22.0, low - 0.01]
    r = out_of_range(spikes)
    assert profile_far(spikes, edges) == 2 and not r.alarm and r.detail["far"] == 1
    fault = np.r_[rng.normal(size=28).clip(low, None), 200.0, 260.0]
    assert out_of_range(fault).alarm and out_of_range(fault).detail["far"] == 2


def profile_far(values, edges):
    schema = Schema.infer(pd.DataFrame({"x": values}))
    return (
        BatchProfile.from_frame(pd.DataFrame({"x": values}), schema, edges=edges).columns["x"].far
    )
