"""Quality and unit rules calibrated on the reference's own behaviour, on real ELEC2 and HAPT
columns: rounded readings are not stuck, capped readings are not a fill value, a configured
``stuck_run`` is honoured, a small burst of impossible values is caught and its rows set aside
(the rest of the batch proceeds; a large share quarantines the batch), an affine unit change is named with its inverse as a fix, and a numeric column sent as text with
a unit is stored quarantined and parsed once the fix is accepted."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import select

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import ALPHA, check_quality, run_limit
from retrainer.data.schema import Schema
from retrainer.diagnosis import batch_signals, diagnose_batch
from retrainer.diagnosis.signals import unusual_share
from retrainer.errors import DataError
from retrainer.profile import BatchProfile
from retrainer.quarantine import held_back
from retrainer.retrain import select_window
from retrainer.store.tables import BatchRow, CheckRow, RunRow

HISTORY, WEEK = 1344, 336


def diagnose(reference_frame, batch, **quality):
    schema = Schema.infer(reference_frame)
    reference = BatchProfile.from_frame(reference_frame, schema)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = [
        *check_quality(reference, current, schema, **quality),
        *check_drift(reference, current),
    ]
    signals = batch_signals(batch.reset_index(drop=True), list(reference_frame.columns))
    return results, diagnose_batch(results, reference, current, signals)


def checks(results, name):
    return [r for r in results if r.name == name and r.alarm]


def alarms(diagnosis, *names):
    return [a for a in diagnosis.alarms if a.check in names]


# ------------------------------------------------------------------------ calibration
def test_run_limit_holds_its_false_alarm_rate_on_a_simulated_repeat_process():
    rng = np.random.default_rng(0)
    q, rows, trials = 0.6, 30, 20000
    limit = run_limit(q, rows)
    repeat = rng.random((trials, rows)) < q
    repeat[:, 0] = False
    longest = np.zeros(trials, int)
    current = np.zeros(trials, int)
    for i in range(rows):
        current = np.where(repeat[:, i], current + 1, 1)
        longest = np.maximum(longest, current)
    assert (longest >= limit).mean() <= ALPHA
    assert (longest >= limit - 4).mean() > ALPHA  # not needlessly loose


def test_unusual_share_is_the_binomial_tail():
    for count, rows, p in [(12, 30, 0.38), (25, 30, 0.38), (3, 90, 0.001)]:
        expected = stats.binomtest(count, rows, p, alternative="greater").pvalue < ALPHA
        assert unusual_share(count, rows, p) == expected


# ------------------------------------------------------------------------ stuck and fill
def test_rounded_readings_are_not_stuck(elec):
    rounded = elec[["nswdemand", "vicprice"]].round(2)  # whole "degrees": 100 levels
    reference = rounded.iloc[24000:30000]
    stuck = []
    for start in range(30000, 30000 + 300 * 30, 30):
        results, d = diagnose(reference, rounded.iloc[start : start + 30], stuck_run=3)
        stuck += checks(results, "stuck") + checks(results, "constant")
        stuck += alarms(d, "stuck")
    assert stuck == []
    frozen = rounded.iloc[40000:40030].copy()
    frozen.iloc[5:29, 0] = frozen.iloc[5, 0]  # a frozen sensor: 24 rows, one value
    results, d = diagnose(reference, frozen, stuck_run=3)
    assert checks(results, "stuck") and d.alarms[0].check == "stuck"


def test_a_configured_stuck_run_is_honoured(elec):
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24030].copy()
    high = round(float(reference["nswdemand"].quantile(0.99)), 2)
    batch.iloc[10:15, 0] = high  # a heat wave: 5 rows at one high reading
    results, d = diagnose(reference, batch, stuck_run=20)
    assert not checks(results, "stuck") and not alarms(d, "stuck", "default_value")
    batch.iloc[5:27, 0] = high  # 22 rows: beyond stuck_run
    results, d = diagnose(reference, batch, stuck_run=20)
    assert alarms(d, "stuck")


def test_capped_readings_are_not_a_fill_value(elec):
    price = elec[["nswprice", "nswdemand"]].copy()
    cap = float(price["nswprice"].iloc[20000:24000].quantile(0.62))
    price["nswprice"] = price["nswprice"].clip(upper=cap)  # the instrument maximum, 38 %
    reference = price.iloc[20000:24000]
    share = (reference["nswprice"] == cap).mean()
    assert 0.35 < share < 0.41
    fills, capped = [], 0
    for start in range(24000, 24000 + 300 * 30, 30):
        batch = price.iloc[start : start + 30]
        capped += (batch["nswprice"] == cap).mean() >= 0.6
        fills += alarms(diagnose(reference, batch)[1], "default_value", "stuck")
    assert capped >= 10 and fills == []  # hot spells at the cap: drift at most, no fill value
    batch = price.iloc[30000:30030].copy()
    batch.iloc[::3, 0] = -1.0  # a real new fill value in a third of the rows
    found = alarms(diagnose(reference, batch)[1], "default_value")
    assert found and found[0].fix == {"missing_values": {"nswprice": [-1.0]}}


# ------------------------------------------------------------------------ bursts
def test_a_small_burst_of_impossible_values_is_caught_by_count(elec):
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24090].copy()
    batch.iloc[[7, 40], 0] = 4.0  # 2 of 90 (2.2 %, under the 5 % share limit), far out
    results, d = diagnose(reference, batch)
    assert checks(results, "out_of_range")[0].detail["far"] == 2
    assert d.top == "data_quality" and d.alarms[0].check == "out_of_range_burst"
    assert d.blocking


def _runs(project):
    with project.store.session() as s:
        return [r.window for r in s.scalars(select(RunRow).order_by(RunRow.id))]


def test_a_2_of_30_burst_sets_its_rows_aside_and_the_rest_proceeds(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:HISTORY], key="history")
    assert project.cycle().champion == 1
    batch = elec.iloc[HISTORY : HISTORY + 30].copy()
    batch.loc[batch.index[[4, 19]], "nswdemand"] = 5.0  # impossible, 5x the normalised maximum
    bad = project.ingest(batch, key="burst")
    report = project.cycle()
    assert report.quarantined == ()  # the batch proceeds
    assert project.set_aside(bad.id) == [4, 19]
    diagnosis = project.diagnosis(bad.id)
    alarm = diagnosis["alarms"][0]
    assert diagnosis["top"] == "data_quality" and alarm["check"] == "out_of_range_burst"
    assert alarm["severity"] == "warning" and not alarm["blocking"]
    assert (
        "2 rows of 30 set aside (column 'nswdemand', e.g. row 4: 5, row 19: 5)"
        in (alarm["message"])
    )
    assert f"`retrainer release {bad.id}` if they are real" in alarm["message"]
    assert held_back(project) is None  # retraining was not held back
    with project.store.session() as s:
        row = s.get(BatchRow, bad.id)
        assert row.status == "processed" and "2 row(s) set aside" in row.note
        stored = project.batch_frame(row)  # nothing sent is lost
        assert len(stored) == 30 and stored["nswdemand"].iloc[[4, 19]].tolist() == [5.0, 5.0]
        far = s.scalars(
            select(CheckRow).where(CheckRow.batch_id == bad.id, CheckRow.name == "out_of_range")
        ).all()
        assert [c.detail.get("set_aside") for c in far if c.column == "nswdemand"] == [[4, 19]]
    evaluated = [e for e in report.evaluations if e["batch"] == bad.id]
    assert evaluated and all(e["n"] == 28 for e in evaluated)  # scored without the 2 rows
    project.request_retrain("retrain on the batch")
    project.cycle()
    window = _runs(project)[-1]
    assert bad.id in window["batches"] and window["rows"] == HISTORY + 28
    project.release(bad.id, "the readings were real")
    assert project.set_aside(bad.id) == []
    project.request_retrain("retrain with the released rows")
    project.cycle()
    assert _runs(project)[-1]["rows"] == HISTORY + 30


def test_far_out_values_in_40_percent_of_rows_quarantine_the_whole_batch(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:HISTORY], key="history")
    assert project.cycle().champion == 1
    batch = elec.iloc[HISTORY : HISTORY + 30].copy()
    batch.loc[batch.index[::5], "nswdemand"] = 5.0  # 6 of 30 (20 %): more than a few rows
    batch.loc[batch.index[1::5], "nswdemand"] = 5.0  # and 6 more: 40 %
    bad = project.ingest(batch, key="burst").id
    assert project.cycle().quarantined == (bad,)
    assert project.set_aside(bad) == []
    assert bad not in [b.id for b in select_window(project)]


# ------------------------------------------------------------------------ units
def celsius(elec):
    """ELEC2 with nswdemand rescaled to a plausible Celsius range (-5..30)."""
    return elec.assign(nswdemand=elec["nswdemand"] * 35.0 - 5.0)


def test_celsius_to_fahrenheit_is_an_upstream_change_with_the_transform_named(make_project, elec):
    data = celsius(elec)
    project = make_project()
    project.ingest(data.iloc[:HISTORY], key="history")
    project.cycle()
    week = data.iloc[HISTORY : HISTORY + WEEK].copy()
    week["nswdemand"] = week["nswdemand"] * 1.8 + 32
    first = project.ingest(week, key="fahrenheit").id
    assert project.cycle().quarantined == (first,)
    diagnosis = project.diagnosis(first)
    assert diagnosis["top"] == "upstream_change"
    alarm = diagnosis["alarms"][0]
    assert alarm["check"] == "affine" and "Celsius to Fahrenheit" in alarm["message"]
    drifted = [c["columns"] for c in diagnosis["causes"] if c["cause"] == "covariate_drift"]
    assert "nswdemand" not in sum(drifted, [])
    a, b = diagnosis["fix"]["affine"]["nswdemand"]
    assert a == pytest.approx(1 / 1.8) and b == pytest.approx(-32 / 1.8)
    project.accept_fix(first, reason="the producer switched to Fahrenheit")
    later = data.iloc[HISTORY + WEEK : HISTORY + 2 * WEEK].copy()
    later["nswdemand"] = later["nswdemand"] * 1.8 + 32
    second = project.ingest(later, key="fahrenheit-2").id
    assert second not in project.cycle().quarantined
    stored = project.batch_frame(project_row(project, second))
    np.testing.assert_allclose(
        stored["nswdemand"], data["nswdemand"].iloc[HISTORY + WEEK : HISTORY + 2 * WEEK]
    )


@pytest.mark.parametrize("shift", [0.02, 0.08])
def test_a_small_mean_shift_is_not_a_unit_change(elec, shift):
    data = celsius(elec)[["nswdemand", "nswprice"]].iloc[20000:30000]
    reference = data.sample(4000, random_state=0)
    named = []
    for seed in range(40):
        batch = data.sample(90, random_state=seed + 1)
        batch["nswdemand"] += shift * 35.0
        named += alarms(diagnose(reference, batch)[1], "affine", "scale")
    assert named == []


def project_row(project, batch_id):
    with project.store.session() as s:
        row = s.get(BatchRow, batch_id)
        s.expunge(row)
        return row


def test_a_hpa_text_batch_is_stored_quarantined_and_accept_fix_parses_it(make_project, elec):
    data = elec.assign(nswdemand=elec["nswdemand"] * 80.0 + 970.0)  # hPa, 970..1050
    project = make_project()
    project.ingest(data.iloc[:HISTORY], key="history")
    project.cycle()
    week = data.iloc[HISTORY : HISTORY + WEEK].copy()
    week["nswdemand"] = week["nswdemand"].map(lambda v: f"{v:.1f} hPa").astype(object)
    week.iloc[3, week.columns.get_loc("nswdemand")] = "101470 Pa"  # one row in pascal
    first = project.ingest(week, key="text").id  # stored, not refused
    assert project.cycle().quarantined == (first,)
    diagnosis = project.diagnosis(first)
    alarm = diagnosis["alarms"][0]
    assert diagnosis["top"] == "upstream_change" and alarm["check"] == "retyped"
    assert "'hPa' in 335 rows" in alarm["message"] and "rows (0-based) 0, 1, 2" in alarm["message"]
    assert diagnosis["fix"] == {
        "parse_units": {"nswdemand": {"hPa": [1.0, 0.0], "Pa": [0.01, 0.0]}}
    }
    stored = project.batch_frame(project_row(project, first))
    assert stored["nswdemand"].iloc[0] == week["nswdemand"].iloc[0]  # nothing sent is lost
    project.accept_fix(first, reason="the producer adds the unit")
    later = data.iloc[HISTORY + WEEK : HISTORY + 2 * WEEK].copy()
    expected = later["nswdemand"].round(1).to_numpy()
    later["nswdemand"] = later["nswdemand"].map(lambda v: f"{v:.1f} hPa").astype(object)
    second = project.ingest(later, key="text-2").id
    assert second not in project.cycle().quarantined
    parsed = project.batch_frame(project_row(project, second))["nswdemand"]
    np.testing.assert_allclose(parsed.to_numpy(), expected)
    assert project.release(first, "parsed by the accepted fix")["quality_alarms"] == []
    released = project.batch_frame(project_row(project, first))["nswdemand"]
    assert released.dtype == "float64" and released.iloc[3] == pytest.approx(1014.7)


def test_release_re_runs_the_quality_checks_on_the_parsed_rows(make_project, elec):
    data = elec.assign(nswdemand=elec["nswdemand"] * 80.0 + 970.0)  # hPa, 970..1050
    project = make_project()
    project.ingest(data.iloc[:HISTORY], key="history")
    project.cycle()
    week = data.iloc[HISTORY : HISTORY + WEEK].copy()
    week["nswdemand"] = week["nswdemand"].map(lambda v: f"{v:.1f} hPa").astype(object)
    week.iloc[[5, 9], week.columns.get_loc("nswdemand")] = "99999.0 hPa"  # a sensor fault
    first = project.ingest(week, key="text").id
    assert project.cycle().quarantined == (first,)
    project.accept_fix(first, reason="the producer adds the unit")
    with pytest.raises(DataError, match=r"stays quarantined.*out_of_range \(nswdemand\)"):
        project.release(first, "parsed by the accepted fix")  # parsed, then checked again
    assert project_row(project, first).status == "quarantined"
    forced = project.release(first, "a person checked the rows", force=True)
    assert forced["status"] == "processed" and forced["quality_alarms"]


def test_unreadable_rows_are_named(elec):
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24030].astype(object)
    batch.iloc[[2, 17], 0] = "#VALUE!"
    _, d = diagnose(reference, batch)
    found = alarms(d, "bad_values")
    assert found and "rows (0-based) 2, 17" in found[0].message


def test_a_hapt_gain_of_1000_is_a_scale_change_not_drift(hapt_sample):
    reference = hapt_sample.iloc[:10000]
    batch = hapt_sample.iloc[:10000].sample(90, random_state=1)  # the reference's regime
    batch["acc-x"] = batch["acc-x"] * 1000  # g to milli-g
    _, d = diagnose(reference, batch)
    assert alarms(d, "scale") and d.fix["scale"]["acc-x"] == pytest.approx(0.001)


@pytest.fixture(scope="module")
def hapt_sample():
    path = "/work/shared/data/hapt_accgyro_50hz.csv.gz"
    try:
        frame = pd.read_csv(path, nrows=20000)
    except FileNotFoundError:
        pytest.skip("HAPT data not on this machine")
    return frame[["acc-x", "acc-y", "gyro-x"]]


def test_mixed_unreadable_values_are_stored_as_sent_and_quarantined(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:HISTORY], key="history")
    project.cycle()
    week = elec.iloc[HISTORY : HISTORY + 30].copy()
    values = [0.5, "n/a", b"\xff raw", "x" * 1000, 7, None] * 5
    week["nswprice"] = pd.Series(values, index=week.index, dtype=object)
    bad = project.ingest(week, key="mixed").id
    assert project.cycle().quarantined == (bad,)
    stored = project.batch_frame(project_row(project, bad))["nswprice"]
    assert stored.iloc[3] == "x" * 1000 and stored.iloc[2] == "\\xff raw"
    assert project.diagnosis(bad)["alarms"][0]["check"] in ("retyped", "bad_values")


def test_far_values_inside_a_contract_range_are_no_burst(elec):
    from dataclasses import replace

    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24090].copy()
    batch.iloc[[7, 40], 0] = 4.0
    inferred = Schema.infer(reference)
    for high, expected in [(10.0, False), (3.0, True)]:  # the contract allows up to `high`
        columns = tuple(
            replace(c, min=0.0, max=high) if c.name == "nswdemand" else c for c in inferred.columns
        )
        schema = replace(inferred, columns=columns)
        ref = BatchProfile.from_frame(reference, schema)
        cur = BatchProfile.from_frame(batch, schema, edges=ref.edges())
        found = checks(check_quality(ref, cur, schema), "out_of_range")
        assert bool(found) == expected
