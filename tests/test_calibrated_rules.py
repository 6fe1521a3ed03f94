"""Quality and unit rules calibrated on the reference's own behaviour, on real ELEC2 and HAPT
columns: rounded readings are not stuck, capped readings are not a fill value, a configured
``stuck_run`` is honoured, a small burst of impossible values is caught and its rows set aside
(the rest of the batch proceeds, they are never trained on until released; more than 10 % of
rows quarantines the batch), an affine unit change is named with its inverse as a fix, and a
numeric column sent as text with a unit is stored quarantined and parsed once the fix is
accepted."""

from importlib.resources import files
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from sqlalchemy import select

from retrainer import cli, views
from retrainer.checks.quality import ALPHA, check_quality, run_limit
from retrainer.checks.reference_loop import drift_reference
from retrainer.data.schema import Schema
from retrainer.diagnosis.signals import in_blocks, unusual_share
from retrainer.errors import DataError
from retrainer.profile import BatchProfile
from retrainer.quarantine import held_back
from retrainer.record import SET_ASIDE
from retrainer.retrain import select_window
from retrainer.store.tables import BatchRow, CheckRow, RunRow
from tests.diagnosis_helpers import diagnose, hapt_user

HISTORY, WEEK = 1344, 336


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


def test_unusual_share_against_a_counted_reference_is_fishers_exact_test():
    for count, rows, held, reference in [(3, 22, 3, 349), (3, 22, 0, 349), (30, 90, 2, 4000)]:
        table = [[count, rows - count], [held, reference - held]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue < ALPHA
        assert unusual_share(count, rows, held / reference, ALPHA, reference) == expected
    assert not unusual_share(3, 22, 3 / 349, ALPHA, 349) and unusual_share(3, 22, 3 / 349)


def test_three_unchanged_closes_in_a_month_are_no_fill_value():
    """Intel's daily return was exactly 0 (an unchanged close) on 3 of 22 trading days of July
    2014 and 3 of the 349 days before (River's S&P 500 returns): the month was quarantined as
    "a new default or fill value", the reference's 3 read as a known rate of 0.86 %. A zero the
    reference never held in 3 of 22 rows is still one."""
    river = pytest.importorskip("river")
    frame = pd.read_csv(Path(river.__file__).parent / "datasets" / "sp500.csv.gz")
    columns = ["INTC", "KO", "MSFT"]
    reference = frame[frame["date"] < "2014-07"][columns]
    july = frame[frame["date"].str.startswith("2014-07")][columns]
    assert (reference["INTC"] == 0).sum() == 3 and (july["INTC"] == 0).sum() == 3
    assert not alarms(diagnose(reference, july)[1], "default_value")
    never = reference.assign(INTC=reference["INTC"].replace(0.0, 0.01))
    assert alarms(diagnose(never, july)[1], "default_value")


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


def test_a_whole_batch_at_a_capped_reading_the_reference_holds_for_longer_is_not_stuck():
    """HAPT user 21 (held out by bench/calibrated_rules.py), acc-y capped at its 62nd
    percentile: 90 consecutive rows all at the cap were "holds one value in all 90 rows", a
    stuck sensor, in 5 of 40 batches, although the reference holds the cap for far longer
    runs. A whole batch of one value now needs more rows than twice the reference's longest
    run, as a run inside a batch does; one value where the reference never repeats still
    alarms."""
    rows = hapt_user(21, ("acc-y",))
    cap = float(rows.iloc[:10000]["acc-y"].quantile(0.62))
    capped = rows.clip(upper=cap)
    reference = capped.iloc[:10000]
    for start in (10000, 10270, 10540, 10810, 20530):
        batch = capped.iloc[start : start + 90]
        assert batch["acc-y"].nunique() == 1  # the cap, every row
        results, d = diagnose(reference, batch)
        assert not checks(results, "constant") and not alarms(d, "stuck", "default_value")
    flat = pd.DataFrame({"acc-y": [float(rows["acc-y"].iloc[5])] * 90})
    results, d = diagnose(rows.iloc[:10000], flat)  # not capped: the reference never sits still
    assert checks(results, "constant") and alarms(d, "stuck")


def test_rounded_readings_gathered_round_zero_are_no_fill_value():
    """HAPT user 23 (read first by bench/calibrated_rules.py --splits fresh), readings rounded to
    a tenth of the smallest column's spread: a posture with acc-x near zero put 12-13 of 90 rows
    at exactly 0, "a new default or fill value upstream", although the batch's other rows crowd
    round zero too. A fill value stands alone among readings distributed as before: 0 written
    into a third of another batch's rows is still one."""
    rows = hapt_user(23)
    step = float(rows.iloc[:10000].std().min()) / 10
    rounded = (rows / step).round() * step
    reference = rounded.iloc[:10000]
    for start in (19720, 19990):
        batch = rounded.iloc[start : start + 90]
        assert (batch["acc-x"] == 0).sum() >= 12
        _, d = diagnose(reference, batch)
        assert not alarms(d, "default_value", "stuck"), [a.message for a in d.alarms]
    filled = rounded.iloc[12000:12090].copy()
    filled.iloc[::3, 0] = 0.0
    _, d = diagnose(reference, filled)
    assert alarms(d, "default_value")


def test_in_blocks_is_the_exact_runs_test():
    """Against every placement of 5 of 12 rows: the share that forms r blocks or fewer."""
    from itertools import combinations

    rows, count = 12, 5
    placements = list(combinations(range(rows), count))
    blocks = [1 + sum(b - a > 1 for a, b in zip(p, p[1:], strict=False)) for p in placements]
    for r in (1, 2, 3):
        p = sum(b <= r for b in blocks) / len(placements)
        assert in_blocks(count, r, rows, alpha=p * 1.001) and not in_blocks(count, r, rows, alpha=p)


def test_a_poll_carried_forward_is_no_fill_value():
    """River's TrumpApproval (FiveThirtyEight's daily approval data, 2017-2019; never read by
    the rules' tuning): a pollster's figure is carried forward daily until its next poll. Run
    through `retrainer run` in monthly files, November 2019 was quarantined: Ipsos' 40.57 held
    19 of 26 days, in two blocks of 12 and 7 days, a value the champion's window (everything
    before March 2019) never held, read as "a new default or fill value upstream". The same 19
    values scattered over the month are still one."""
    river = pytest.importorskip("river.datasets")
    polls = pd.read_csv(river.TrumpApproval().path).drop(columns=["five_thirty_eight"])
    day = polls.pop("ordinal_date")
    november = polls[day >= 737364].reset_index(drop=True)  # from 2019-11-01
    reference = polls[day < 737119]  # before 2019-03-01
    ipsos = november["ipsos"] == 40.570679
    assert ipsos.sum() == 19 and (reference["ipsos"] == 40.570679).sum() == 0
    results, d = diagnose(reference, november)
    assert not checks(results, "stuck") and not alarms(d, "default_value", "stuck")
    scattered = november.assign(ipsos=november["ipsos"] + 0.5)  # other readings, then the 19
    scattered.loc[ipsos.sample(frac=1.0, random_state=1).to_numpy(), "ipsos"] = 40.570679
    found = alarms(diagnose(reference, scattered)[1], "default_value")
    assert found and "40.5707" in found[0].message


def test_keyless_rows_held_from_day_to_day_are_no_redelivered_batch():
    """The same polls without their date (a table with no id or time column): on days without a
    new poll a row repeats the day before, 5-8 of a month's 30 rows. As "a re-delivered or
    double-written batch" that quarantined 22 of 33 monthly files and held retraining back for
    13. The reference repeats its rows as often, so they are held readings; a month sent twice,
    or every row written twice in a row, is still a double write."""
    river = pytest.importorskip("river.datasets")
    polls = pd.read_csv(river.TrumpApproval().path).drop(columns=["five_thirty_eight"])
    day = polls.pop("ordinal_date")
    reference = polls[day < 737119].reset_index(drop=True)  # before 2019-03-01
    assert (
        0.1
        < BatchProfile.from_frame(reference, Schema.infer(reference), rows=True).repeat_rate
        < 0.4
    )
    for start in range(737119, 737364, 30):
        month = polls[(day >= start) & (day < start + 30)].reset_index(drop=True)
        assert not alarms(diagnose(reference, month)[1], "duplicates"), start
    twice = pd.concat([month, month], ignore_index=True)
    assert alarms(diagnose(reference, twice)[1], "duplicates")
    stutter = month.loc[month.index.repeat(2)].reset_index(drop=True)
    assert alarms(diagnose(reference, stutter)[1], "duplicates")


def test_rows_of_a_table_of_few_distinct_rows_repeat_by_chance():
    """ACS people without an id (age, schooling, marital status, sex): 90 people hold 3-7 rows
    equal to an earlier one by chance, as the reference's people do; 9 of them sent again in
    their order are a re-delivery."""
    from retrainer.diagnosis.scenarios import DATA

    try:
        people = pd.read_parquet(DATA / "employment_MA_analysis.pq")
    except FileNotFoundError:
        pytest.skip("ACS data not on this machine")
    people = people[["AGEP", "SCHL", "MAR", "SEX"]].apply(pd.to_numeric).iloc[:24000]
    reference = people.iloc[:20000]
    found = []
    for start in range(20000, 24000 - 90, 400):
        batch = people.iloc[start : start + 90].reset_index(drop=True)
        found += alarms(diagnose(reference, batch)[1], "duplicates")
        resent = pd.concat([batch.iloc[:81], batch.iloc[30:39]], ignore_index=True)
        assert alarms(diagnose(reference, resent)[1], "duplicates"), start
    assert found == []


def test_repeated_rows_of_a_reading_that_never_repeats_are_duplicates(elec):
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000].reset_index(drop=True)
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24090].reset_index(drop=True)
    assert BatchProfile.from_frame(reference, Schema.infer(reference), rows=True).repeat_rate < 0.01
    assert not alarms(diagnose(reference, batch)[1], "duplicates")
    batch.iloc[40:45] = batch.iloc[39].to_numpy()  # 5 rows written again right after
    assert alarms(diagnose(reference, batch)[1], "duplicates")


def test_a_profile_keeps_its_repeats_through_merge_and_storage():
    frame = pd.DataFrame({"x": [1.0, 1.0, 2.0, 2.0, 2.0, 3.0], "c": list("aabbbc")})
    schema = Schema.infer(frame)
    whole = BatchProfile.from_frame(frame, schema, rows=True)
    halves = BatchProfile.from_frame(frame.iloc[:3], schema, edges=whole.edges(), rows=True).merge(
        BatchProfile.from_frame(frame.iloc[3:], schema, edges=whole.edges(), rows=True)
    )
    assert BatchProfile.from_frame(frame, schema).merge(halves).repeats is None  # one unknown
    assert (whole.repeats, halves.repeats) == (3, 2)  # the pair across the seam is not seen
    assert (whole.pairs, halves.pairs) == (4, 2)  # one pair of (1, a), three of (2, b)
    assert whole.pair_rate == 4 / 15
    stored = whole.to_dict()
    assert (BatchProfile.from_dict(stored).repeats, BatchProfile.from_dict(stored).pairs) == (3, 4)
    del stored["repeats"], stored["pairs"]  # a profile stored before rows were compared
    assert BatchProfile.from_dict(stored).repeat_rate is None


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


@pytest.mark.parametrize("n", [3, 4, 5])
def test_more_impossible_values_in_a_small_batch_are_still_caught(elec, n):
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    batch = elec[["nswdemand", "nswprice"]].iloc[24000:24030].copy()
    batch.iloc[:n, 0] = 4.0 + np.arange(n)  # 10-17 % of 30 rows: too few inside to test a share
    results, d = diagnose(reference, batch)
    assert d.top == "data_quality" and d.alarms[0].check == "out_of_range_burst"
    assert d.blocking


def test_a_week_of_price_spikes_that_continues_the_tail_is_drift_not_glitches(elec):
    """10 % of a batch beyond a calm month's maximum, most just beyond it and none two widths
    out (a real week of spikes: seeds 3-5 of the ELEC2 yearly stream held retraining back on
    such weeks), is the tail of a moving distribution; the same share two to three widths out,
    with nothing in between, stands apart from the range: glitches."""
    reference = elec[["nswdemand", "nswprice"]].iloc[20000:24000]
    low, high = reference["nswprice"].min(), reference["nswprice"].max()
    rows = np.arange(0, 90, 10)  # 9 of 90
    tail = reference.sample(90, random_state=0)  # the inside unchanged
    tail.iloc[rows, 1] = high + (high - low) * np.linspace(0.05, 1.3, rows.size)
    d = diagnose(reference, tail)[1]
    assert not alarms(d, "out_of_range_burst") and not d.blocking
    glitches = tail.copy()
    glitches.iloc[rows, 1] = high + (high - low) * np.linspace(2.2, 3.0, rows.size)
    d = diagnose(reference, glitches)[1]
    assert d.top == "data_quality" and d.alarms[0].check == "out_of_range_burst"


def _last_run(project):
    with project.store.session() as s:
        run = s.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(1)).one()
        return run.window, run.version


def _burst_project(make_project, elec, rows, far, calm=False, **settings):
    """A project with a champion and one batch of ``rows`` ELEC2 rows whose ``far`` rows hold
    impossible nswdemand values (5x the normalised maximum and up), checked by a cycle;
    ``calm``: the batch's features drawn from the reference's rows (no drift around them)."""
    project = make_project(**settings)
    project.ingest(elec.iloc[:HISTORY], key="history")
    assert project.cycle().champion == 1
    batch = elec.iloc[HISTORY : HISTORY + rows].copy()
    if calm:
        features = [c for c in batch.columns if c not in ("id", "timestamp", "target")]
        batch[features] = elec.iloc[:HISTORY].sample(rows, random_state=0)[features].to_numpy()
    batch.loc[batch.index[far], "nswdemand"] = 5.0 + 0.5 * np.arange(len(far))
    bad = project.ingest(batch, key="burst").id
    return project, bad, project.cycle()


@pytest.mark.parametrize("rows", [30, 90])
def test_2_impossible_values_set_their_rows_aside_and_the_rest_proceeds(
    make_project, elec, monkeypatch, rows
):
    project, bad, report = _burst_project(make_project, elec, rows, [4, 19])
    assert report.quarantined == ()  # the batch proceeds
    assert project.set_aside(bad) == [4, 19]
    diagnosis = project.diagnosis(bad)  # still diagnosed as impossible values, as a warning
    alarm = diagnosis["alarms"][0]
    assert diagnosis["top"] == "data_quality" and alarm["check"] == "out_of_range_burst"
    assert alarm["severity"] == "warning" and not alarm["blocking"]
    shown = f"2 rows of {rows} set aside (column 'nswdemand', e.g. row 4: 5, row 19: 5.5)"
    assert shown in alarm["message"]
    assert f"`retrainer release {bad} --reason ...` if they are real" in alarm["message"]
    assert held_back(project) is None  # retraining was not held back
    status = views.status(project)
    assert status["set_aside"]["batches"] == [bad] and status["set_aside"]["rows"] == 2
    assert any(e["kind"] == "set_aside" for e in status["events"])
    with project.store.session() as s:
        row = s.get(BatchRow, bad)
        assert row.status == "processed" and "2 row(s) set aside" in row.note
        stored = project.batch_frame(row)  # nothing sent is lost
        assert len(stored) == rows and stored["nswdemand"].iloc[[4, 19]].tolist() == [5.0, 5.5]
        assert len(project.batch_frame(row, kept_only=True)) == rows - 2
        assert project.batch_frame(row, labelled_only=True)["nswdemand"].max() <= 1.0
        far = s.scalars(
            select(CheckRow).where(CheckRow.batch_id == bad, CheckRow.name == "out_of_range")
        ).all()
        assert [c.detail.get("set_aside") for c in far if c.column == "nswdemand"] == [[4, 19]]
    evaluated = [e for e in report.evaluations if e["batch"] == bad]
    assert evaluated and all(e["n"] == rows - 2 for e in evaluated)  # scored without the 2

    project.request_retrain("retrain on the batch")
    project.cycle()
    window, version = _last_run(project)
    assert bad in window["batches"] and window["rows"] == HISTORY + rows - 2
    trained = BatchProfile.from_dict(project.registry.get(version).reference)
    assert trained.columns["nswdemand"].max < 1  # the impossible values were not trained on

    monkeypatch.setattr(cli, "_project", lambda ctx: project)
    released = CliRunner().invoke(cli.main, ["release", str(bad), "--reason", "real readings"])
    assert released.exit_code == 0, released.output
    assert f"batch {bad}: 2 set-aside row(s) released by user: real readings" in released.output
    assert project.set_aside(bad) == [] and views.status(project)["set_aside"] is None
    project.request_retrain("retrain with the released rows")
    project.cycle()
    window, version = _last_run(project)
    assert window["rows"] == HISTORY + rows
    trained = BatchProfile.from_dict(project.registry.get(version).reference)
    assert trained.columns["nswdemand"].max == 5.5


def test_a_rolling_reference_built_from_stored_batches_leaves_set_aside_rows_out(
    make_project, elec
):
    rolling = {"drift": {"reference": {"kind": "rolling", "window": "28d", "min_rows": 30}}}
    project, bad, _ = _burst_project(make_project, elec, 90, [4, 19], checks=rolling)
    assert project.set_aside(bad) == [4, 19]
    later = project.ingest(elec.iloc[HISTORY + 90 : HISTORY + 180], key="later").id
    fixed = BatchProfile.from_dict(project.champion.reference)
    new_champion = SimpleNamespace(version=99)  # the stored profiles are on another's edges
    chosen = drift_reference(project, later, new_champion, fixed)
    assert chosen.kind == "rolling" and bad in chosen.batches
    assert chosen.profile.columns["nswdemand"].max < 1  # read again, without the 2 rows


def test_far_out_values_in_10_percent_of_rows_are_set_aside(make_project, elec):
    far = list(range(0, 90, 10))  # 9 of 90
    project, bad, report = _burst_project(make_project, elec, 90, far, calm=True)
    assert report.quarantined == () and project.set_aside(bad) == far


@pytest.mark.parametrize("n", [10, 13, 30], ids=["10 of 90 (11 %)", "13 (14 %)", "30 (33 %)"])
def test_far_out_values_in_more_than_10_percent_of_rows_quarantine_the_batch(make_project, elec, n):
    far = list(np.linspace(0, 89, n).astype(int))
    project, bad, report = _burst_project(make_project, elec, 90, far, calm=True)
    assert report.quarantined == (bad,) and project.set_aside(bad) == []
    diagnosis = project.diagnosis(bad)  # a burst of far-out values, too many to set aside
    assert diagnosis["top"] == "data_quality"
    assert diagnosis["alarms"][0]["check"] == "out_of_range_burst"
    assert diagnosis["alarms"][0]["blocking"]
    assert bad not in [b.id for b in select_window(project)]


REAL = 20_000  # ELEC2 rows after the Victorian fill: every column is a real reading


def _spike_project(make_project, elec, columns, far=(4, 19, 33)):
    """A project with a champion on real ELEC2 rows and one 90-row batch whose ``far`` rows
    hold values 3-4 reference widths above the range in each of ``columns``, checked."""
    project = make_project()
    project.ingest(elec.iloc[REAL : REAL + HISTORY], key="history")
    assert project.cycle().champion == 1
    reference = elec.iloc[REAL : REAL + HISTORY]
    batch = elec.iloc[REAL + HISTORY : REAL + HISTORY + 90].copy()
    for column in columns:
        low, high = reference[column].min(), reference[column].max()
        spike = high + (high - low) * np.linspace(3, 4, len(far))
        batch.loc[batch.index[list(far)], column] = spike
    bad = project.ingest(batch, key="spike").id
    return project, bad, project.cycle()


def test_a_spike_that_correlated_columns_share_is_a_joint_excursion_kept_as_drift(
    make_project, elec
):
    project, bad, report = _spike_project(make_project, elec, ["nswprice", "vicprice"])
    assert report.quarantined == () and project.set_aside(bad) == []  # the rows are kept
    diagnosis = project.diagnosis(bad)
    joint = [a for a in diagnosis["alarms"] if a["check"] == "joint_excursion"]
    assert {a["column"] for a in joint} == {"nswprice", "vicprice"}
    assert not any(a["blocking"] for a in diagnosis["alarms"])
    assert joint[0]["cause"] == "covariate_drift"
    assert "'vicprice' beyond its range in 3 of them" in next(
        a["message"] for a in joint if a["column"] == "nswprice"
    )
    assert held_back(project) is None


def test_a_spike_in_one_column_stays_a_fault_set_aside(make_project, elec):
    project, bad, report = _spike_project(make_project, elec, ["nswprice"])
    assert report.quarantined == () and project.set_aside(bad) == [4, 19, 33]
    alarm = project.diagnosis(bad)["alarms"][0]
    assert alarm["check"] == "out_of_range_burst" and alarm["cause"] == "data_quality"


def _burst(column):
    from retrainer.diagnosis import ACTIONS, Alarm

    return Alarm("data_quality", ACTIONS["data_quality"], "error", "out_of_range_burst", column, "")


def test_a_partner_out_of_range_all_week_or_on_the_wrong_side_explains_no_burst(elec):
    from retrainer.diagnosis.joint import joint_excursion

    numeric = ["nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
    reference = elec.iloc[REAL : REAL + HISTORY][numeric]
    edges = {c: np.quantile(reference[c], np.linspace(0, 1, 11)) for c in numeric}
    batch = elec.iloc[REAL + HISTORY : REAL + HISTORY + 90][numeric].reset_index(drop=True)
    span = reference.max() - reference.min()
    batch.loc[[4, 19, 33], "nswprice"] = reference["nswprice"].max() + 3 * span["nswprice"]
    shared = batch.copy()
    shared.loc[[4, 19, 33], "vicprice"] = reference["vicprice"].max() + 0.1 * span["vicprice"]
    assert joint_excursion(_burst("nswprice"), shared, edges, reference) is not None
    hot = shared.copy()  # demand beyond its range in most rows: no evidence for 3 of them
    hot["vicprice"] = reference["vicprice"].max() + 0.1 * span["vicprice"]
    assert joint_excursion(_burst("nswprice"), hot, edges, reference) is None
    wrong = batch.copy()  # transfer falls with prices: above its range it contradicts them
    wrong.loc[[4, 19, 33], "transfer"] = reference["transfer"].max() + 0.1 * span["transfer"]
    assert joint_excursion(_burst("nswprice"), wrong, edges, reference) is None
    falling = batch.copy()
    falling.loc[[4, 19, 33], "transfer"] = reference["transfer"].min() - 0.1 * span["transfer"]
    assert joint_excursion(_burst("nswprice"), falling, edges, reference) is not None


def test_rows_drawn_towards_high_prices_are_kept_as_drift_not_quarantined_as_units(
    make_project, elec
):
    """30 real rows of the weeks after the reference, drawn towards high Victorian prices: both
    prices looked like a unit change of the reference and the batch was quarantined; demand
    and transfer drifted with them, so the cycle reads it as rows selected differently."""
    project = make_project()
    project.ingest(elec.iloc[REAL : REAL + HISTORY], key="history")
    assert project.cycle().champion == 1
    pool = elec.iloc[REAL + HISTORY :]
    z = (pool["vicprice"] - pool["vicprice"].mean()) / pool["vicprice"].std()
    weights = np.exp(2 * z.to_numpy())
    picked = np.random.default_rng(0).choice(len(pool), 30, replace=False, p=weights / sum(weights))
    bad = project.ingest(pool.iloc[np.sort(picked)], key="high prices").id
    assert project.cycle().quarantined == ()
    diagnosis = project.diagnosis(bad)
    assert diagnosis["top"] == "covariate_drift" and not diagnosis["fix"]
    selected = {a["column"] for a in diagnosis["alarms"] if a["check"] == "selected_rows"}
    assert selected == {"nswprice", "vicprice"}


def test_rows_set_aside_are_dropped_by_position_whatever_the_index(make_project):
    project = make_project()
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}, index=[7, 7, 3, 3])
    assert project.without_set_aside(frame, 1).equals(frame)  # nothing set aside
    project.set_state(SET_ASIDE, {"1": {"rows": [1, 2], "columns": {"x": [1, 2]}}})
    assert project.without_set_aside(frame, 1)["x"].tolist() == [1.0, 4.0]
    assert project.without_set_aside(frame, 2).equals(frame)  # another batch's rows


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
    batch.iloc[[2, 17], 0] = "#VALUE!"  # one word among numbers: a missing-value marker
    _, d = diagnose(reference, batch)
    found = alarms(d, "missing_marker")
    assert found and "rows (0-based) 2, 17" in found[0].message
    assert d.fix["missing_values"] == {"nswdemand": ["#VALUE!"]}
    batch.iloc[9, 0] = "#REF!"  # two words: unreadable values, no fix guessed
    _, d = diagnose(reference, batch)
    found = alarms(d, "bad_values")
    assert found and "rows (0-based) 2, 9, 17" in found[0].message and not d.fix


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


def test_a_level_that_goes_on_from_the_batch_before_is_no_unit_change():
    """Daily dollar exchange rates left their reference's range month after month from May
    1981 (R's Ecdat ``Garch``): 73 of 89 months were quarantined as "an offset or unit change
    upstream" or "impossible values", and the champion of early 1981 was kept for six years.
    Here Seattle's hourly temperatures (vega_datasets): a July week lies wholly above a
    January reference. Going on from the last hour of the week before, it is a warning, not an
    upstream change; the same week in Celsius, or with no accepted batch before it, is one."""
    frame = pd.read_csv(files("vega_datasets") / "_data" / "seattle-temps.csv")
    temps = frame.assign(date=pd.to_datetime(frame["date"]), temp=frame["temp"].astype(float))
    january, july = temps.iloc[: 28 * 24], temps.iloc[185 * 24 : 192 * 24]
    before = {"temp": float(temps["temp"].iloc[185 * 24 - 1])}
    celsius = july.assign(temp=(july["temp"] - 32) * 5 / 9)
    cases = [(july, before, False), (july, None, True), (celsius, before, True)]
    for batch, last, blocked in cases:
        found = diagnose(january, batch, previous_last=last)[1]
        errors = [a for a in found.alarms if a.severity == "error"]
        assert bool(errors) is blocked, [a.message for a in found.alarms]
        if not blocked:
            assert "goes on from the batch before" in found.alarms[0].message


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


def test_a_floor_price_just_below_the_references_minimum_is_a_reading_not_a_fill(elec):
    """14 of 90 rows at one price a little under the reference month's minimum (ELEC2's
    vicprice at its floor: fixed-reference runs quarantined such weeks as 'a new default or
    fill value'); a whole -1 or a value far beyond the range in as many rows is a fill value."""
    reference = elec[["nswdemand", "vicprice"]].iloc[30000:31344]
    low, high = reference["vicprice"].min(), reference["vicprice"].max()
    rows = np.arange(0, 90, 6)[:14]
    for value, fill in [(low - 0.05 * (high - low), False), (-1.0, True), (high * 9, True)]:
        batch = reference.sample(90, random_state=3)
        batch.iloc[rows, 1] = round(value, 6)
        found = alarms(diagnose(reference, batch)[1], "default_value")
        assert bool(found) == fill, value
