"""The diagnosis rules on real data: each cause is named, with its evidence and a fix that
undoes the injected change; statistics are checked against SciPy and pandas."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.quality import check_quality
from retrainer.checks.result import CheckResult
from retrainer.data.schema import Schema
from retrainer.datasets import ELEC2_FEATURES
from retrainer.diagnosis import Alarm, batch_signals, diagnose, diagnose_batch, rank, relation_alarm
from retrainer.diagnosis.fixes import apply_fixes, merge_fixes
from retrainer.diagnosis.scenarios import elec2_fill_case, run_scenario
from retrainer.diagnosis.unit_cases import UNIT_CASES
from retrainer.errors import DataError
from retrainer.profile import BatchProfile
from tests.diagnosis_helpers import diagnose as diagnose_frames
from tests.diagnosis_helpers import seattle_weather

WEEK = 336
REAL = 17_424  # ELEC2's first row with real Victorian values


@pytest.fixture(scope="module")
def stream(elec):
    """ELEC2 rows after the Victorian data starts, shuffled: a reference and clean batches."""
    rows = elec.iloc[REAL : REAL + 12 * WEEK][["id", *ELEC2_FEATURES, "target"]]
    rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    ref = rows.iloc[: 4 * WEEK][ELEC2_FEATURES]
    schema = Schema.infer(ref)
    return rows, schema, BatchProfile.from_frame(ref, schema)


def diagnosed(stream, batch):
    rows, schema, reference = stream
    features = [c for c in batch.columns if c not in ("id", "target")]
    current = BatchProfile.from_frame(batch[features], schema, edges=reference.edges())
    drift = check_drift(reference, current)
    results = [*check_quality(reference, current, schema), *drift, dataset_drift(drift)]
    signals = batch_signals(batch, ELEC2_FEATURES, keys=["id"], expected_rows=WEEK)
    return diagnose_batch(results, reference, current, signals)


def clean(stream, i=5):
    return stream[0].iloc[i * WEEK : (i + 1) * WEEK].reset_index(drop=True)


def test_a_clean_batch_has_no_cause(stream):
    for i in range(4, 12):
        d = diagnosed(stream, clean(stream, i))
        assert d.top is None and not d.alarms, d.explain()


def test_x1000_is_a_unit_change_and_the_fix_undoes_it(stream):
    batch = clean(stream)
    broken = batch.assign(nswprice=batch["nswprice"] * 1000)
    d = diagnosed(stream, broken)
    assert d.top == "upstream_change" and d.alarms[0].check == "scale"
    assert d.alarms[0].blocking and d.causes[0].columns == ("nswprice",)
    assert d.fix == {"scale": {"nswprice": 0.001}}
    np.testing.assert_allclose(apply_fixes(broken, d.fix)["nswprice"], batch["nswprice"])


def test_a_rename_proposes_the_mapping_back(stream):
    broken = clean(stream).rename(columns={"nswdemand": "demand_v2"})
    d = diagnosed(stream, broken)
    assert d.top == "upstream_change" and d.alarms[0].check == "rename"
    assert d.fix == {"rename": {"demand_v2": "nswdemand"}}
    assert not any(a.check == "extra_column" for a in d.alarms)  # explained by the rename
    assert list(apply_fixes(broken, d.fix).columns) == list(clean(stream).columns)


def test_a_scattered_fill_value_is_upstream_and_a_frozen_run_is_quality(stream):
    rng = np.random.default_rng(0)
    batch = clean(stream)
    filled = batch.copy()
    filled.loc[rng.choice(WEEK, 100, replace=False), "transfer"] = -1.0
    d = diagnosed(stream, filled)
    assert (d.top, d.alarms[0].check, d.fix) == (
        "upstream_change",
        "default_value",
        {"missing_values": {"transfer": [-1.0]}},
    )
    assert apply_fixes(filled, d.fix)["transfer"].isna().sum() == 100
    assert "-1, spread over the batch" in d.alarms[0].message
    outage = batch.copy()
    outage.loc[100:199, "transfer"] = -1.0  # an outage filled with the code: one stretch
    d = diagnosed(stream, outage)
    assert (d.top, d.alarms[0].check) == ("upstream_change", "default_value")
    assert "-1, in one stretch of consecutive rows" in d.alarms[0].message
    frozen = batch.copy()
    frozen.loc[150:, "nswdemand"] = frozen.loc[150, "nswdemand"]
    d = diagnosed(stream, frozen)
    assert (d.top, d.alarms[0].check, d.fix) == ("data_quality", "stuck", {})
    assert "186 consecutive rows" in d.alarms[0].message


def test_nulls_duplicates_and_truncation_are_quality(stream):
    batch = clean(stream)
    nulls = batch.assign(nswprice=batch["nswprice"].mask(batch.index % 3 == 0))
    doubled = pd.concat([batch.iloc[:236], batch.iloc[:100]], ignore_index=True)
    for broken, check in [
        (nulls, "nulls"),
        (doubled, "duplicates"),
        (batch.iloc[:50], "truncated"),
    ]:
        d = diagnosed(stream, broken)
        assert d.top == "data_quality" and d.alarms[0].check == check
        assert d.blocking


def test_a_burst_of_wild_values_is_quality_not_drift(stream):
    batch = clean(stream)
    batch.loc[batch.index[::12], "vicdemand"] = 40.0
    d = diagnosed(stream, batch)
    assert d.top == "data_quality" and d.alarms[0].check == "out_of_range_burst"


def test_an_input_shift_with_real_labels_is_covariate_drift(stream):
    rows = stream[0].iloc[4 * WEEK :]
    high = rows.sort_values("nswdemand").iloc[-WEEK:].reset_index(drop=True)
    d = diagnosed(stream, high)
    assert d.top == "covariate_drift" and "nswdemand" in d.causes[0].columns
    assert not d.blocking and d.causes[0].confidence <= 0.8


def test_elec2_real_fill_change_is_upstream_with_the_three_columns():
    d = elec2_fill_case()
    assert d.top == "upstream_change"
    assert set(d.causes[0].columns) == {"vicprice", "vicdemand", "transfer"}
    assert all(a.check == "fill_ended" for a in d.alarms if a.cause == "upstream_change")
    assert "changed_relation" not in {c.cause for c in d.causes}
    assert "0.003467" in d.alarms[0].message or "0.422915" in d.alarms[0].message


def test_relation_alarm_uses_a_one_sided_two_proportion_test():
    error, n, expected, n0 = 0.34, 336, 0.22, 300
    alarm = relation_alarm(error, n, expected, n0)
    table = np.array([[error * n, (1 - error) * n], [expected * n0, (1 - expected) * n0]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert alarm.evidence[0]["p_value"] == pytest.approx(chi2.pvalue / 2, rel=1e-6)
    assert alarm.cause == "changed_relation" and not alarm.blocking
    assert relation_alarm(0.24, n, expected, n0) is None  # inside the noise
    explained = relation_alarm(error, n, expected, n0, shift=0.4)
    assert explained.confidence < alarm.confidence and "may explain it" in explained.message


def test_ranking_is_noisy_or_and_covariate_drift_never_outranks_structure():
    quality = Alarm("data_quality", "q", "error", "nulls", "a", "nulls", 0.6)
    drifts = [Alarm("covariate_drift", "w", "warning", "drift", c, "moved", 0.8) for c in "bcd"]
    d = rank([*drifts, quality, quality])
    assert [c.cause for c in d.causes] == ["data_quality", "covariate_drift"]
    assert d.causes[0].confidence == pytest.approx(1 - 0.4 * 0.4)
    assert d.causes[1].confidence == pytest.approx(0.8)


def test_results_alone_still_get_causes():
    results = [
        CheckResult("quality", "missing_column", "x", True, "error", detail={"renamed_to": "y"}),
        CheckResult("quality", "extra_column", "y", True, "warning"),
        CheckResult("quality", "null_rate", "z", True, "error", message="z: 40% nulls"),
    ]
    alarms = diagnose(results)
    assert [(a.cause, a.check) for a in alarms] == [
        ("upstream_change", "rename"),
        ("data_quality", "nulls"),
    ]
    assert Alarm.from_dict(alarms[0].to_dict()) == alarms[0]


def test_signals_match_pandas():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=500), 1)
    x[200:260] = 7.5
    frame = pd.DataFrame({"id": np.r_[np.arange(480), np.arange(20)], "x": x})
    s = batch_signals(frame, ["x"], keys=["id"])
    runs = frame.groupby((frame["x"] != frame["x"].shift()).cumsum())["x"].agg(["size", "first"])
    longest = runs.loc[runs["size"].idxmax()]
    assert s.duplicates == int(frame["id"].duplicated().sum()) == 20
    assert (s.columns["x"].run, s.columns["x"].run_value) == (longest["size"], longest["first"])
    counts = frame["x"].value_counts()
    assert (s.columns["x"].mode, s.columns["x"].mode_count) == (counts.index[0], counts.iloc[0])
    keyless = pd.DataFrame(  # rows are known by their values: nulls and text included
        {"x": rng.integers(0, 3, 300).astype(float), "c": rng.choice(["a", "b", None], 300)}
    )
    keyless.loc[::7, "x"] = np.nan
    s = batch_signals(keyless, ["x"])
    assert s.duplicates == int(keyless.duplicated().sum()) > 250
    filled = keyless.astype(object).fillna("-")
    same = (filled == filled.shift()).all(axis=1)
    assert s.repeats == int(same.sum())


def test_fixes_merge_and_refuse_scaling_text():
    assert merge_fixes({"scale": {"a": 2.0}}, {"scale": {"a": 3.0}}) == {"scale": {"a": 3.0}}
    with pytest.raises(DataError, match="unknown fix 'units'"):
        merge_fixes({"units": {}})
    with pytest.raises(DataError, match="column 'c'"):
        apply_fixes(pd.DataFrame({"c": ["a", "b"]}), {"scale": {"c": 10.0}}, "b.csv")


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_rows_drawn_towards_older_people_are_drift_not_swapped_codes(seed):
    """ACS batches drawn towards older people shift the marital status (and military service)
    shares, and their codes sorted by share paired up as if swapped: "recode MAR" in 12 of 12
    runs; with no children in a batch, military service's code '0' vanished as if renamed '2'
    (seed 5). With the age column drifted too, that is a selection of rows: drift."""
    try:
        result = run_scenario(
            None, UNIT_CASES["employment-age-shift"], steps=9, at=6, seed=seed, batch_rows=90
        )
    except FileNotFoundError:
        pytest.skip("ACS employment data not on this machine")
    assert result.diagnosed == "covariate_drift" and "recode" not in result.checks


def test_two_exchanged_codes_with_nothing_else_moved_are_still_a_recode():
    rng = np.random.default_rng(0)
    codes = rng.choice(["1", "2", "5"], 4000, p=[0.65, 0.1, 0.25])
    reference = pd.DataFrame({"age": rng.uniform(18, 90, 4000), "mar": codes})
    batch = reference.sample(90, random_state=1).replace({"mar": {"1": "5", "5": "1"}})
    d = diagnose_frames(reference, batch)[1]
    assert d.top == "upstream_change" and d.alarms[0].check == "recode"
    assert "consistent with the reference's" in d.alarms[0].message


@pytest.mark.parametrize("seed", [0, 1])
def test_a_real_plateau_in_rows_of_another_regime_is_drift_not_a_fill_value(elec, seed):
    """ELEC2's transfer sat at 0.500526 for weeks after the Victorian data starts. A batch
    drawn half from those weeks (a seasonal stream's week) held it in 51 % of its rows and was
    quarantined as "a new default or fill value upstream", though prices moved with it. A value
    that is no fill-like number (decimals, inside the range) stands as a fill value only while
    no other column drifted; written into half of a clean batch, it still does."""
    later = elec.iloc[30_000:32_000][ELEC2_FEATURES].sample(frac=1.0, random_state=0)
    reference, rest = later.iloc[:1344], later.iloc[1344:]
    early = elec.iloc[REAL : REAL + WEEK][ELEC2_FEATURES]
    plateau = early[np.isclose(early["transfer"], 0.500526)]
    half = [plateau.sample(46, random_state=seed), rest.sample(44, random_state=seed)]
    selected = pd.concat(half)
    d = diagnose_frames(reference, selected.sample(frac=1.0, random_state=seed))[1]
    assert d.top == "covariate_drift" and "default_value" not in [a.check for a in d.alarms]
    filled = rest.sample(90, random_state=seed).reset_index(drop=True)
    filled.loc[np.random.default_rng(seed).choice(90, 50, replace=False), "transfer"] = 0.500526
    d = diagnose_frames(reference, filled)[1]
    assert d.top == "upstream_change" and d.alarms[0].check == "default_value"


def test_a_week_of_low_demand_with_every_price_moved_is_drift_not_kilometres_to_miles():
    """A seasonal ELEC2 week (seed 11 of the yearly stream) against the 4 weeks before: its
    vicdemand lies on x0.621 of theirs (KS p 0.31) and was quarantined as kilometres to miles,
    while prices, NSW demand and transfer drifted with it. A factor that a change of level
    could mimic stands only while no other column drifted (sent alone, such a map is still
    named: ``test_affine_units``)."""
    from retrainer.data.periods import split_periods
    from retrainer.diagnosis.scenarios import seasonal_elec2

    weeks = split_periods(seasonal_elec2("yearly", 108, 90, seed=11), "timestamp", "7D")
    reference = pd.concat(weeks[45:49])[ELEC2_FEATURES]
    d = diagnose_frames(reference, weeks[52][ELEC2_FEATURES])[1]
    assert d.top == "covariate_drift" and "scale" not in [a.check for a in d.alarms]
    assert {"nswprice", "vicprice", "vicdemand"} <= {a.column for a in d.alarms}


@pytest.mark.parametrize(
    "column, factor, offset", [("transfer", 2500.0, -300.0), ("nswdemand", 8000.0, 2000.0)]
)
def test_a_unit_change_in_a_week_whose_other_columns_drifted_stays_a_unit_change(
    column, factor, offset
):
    """The same seasonal week as above (prices, demand and transfer drifted against the 4 weeks
    before it) with one column sent in MW: a map far from 1 is no selection of rows, and stays
    an upstream change beside the other columns' drift (only a factor near 1 gives way)."""
    from retrainer.data.periods import split_periods
    from retrainer.diagnosis.scenarios import seasonal_elec2

    weeks = split_periods(seasonal_elec2("yearly", 108, 90, seed=11), "timestamp", "7D")
    reference = pd.concat(weeks[45:49])[ELEC2_FEATURES]
    week = weeks[52][ELEC2_FEATURES]
    d = diagnose_frames(reference, week.assign(**{column: week[column] * factor + offset}))[1]
    assert d.top == "upstream_change" and d.alarms[0].column == column
    assert d.alarms[0].check in ("scale", "affine") and column in next(iter(d.fix.values()))
    drifted = {a.column for a in d.alarms if a.cause == "covariate_drift"}
    assert len(drifted - {column}) >= 3  # the week's own drift, reported beside it


def test_a_column_drifts_for_the_diagnosis_below_1_percent_over_the_columns_tested():
    """At most 1 in 100 unchanged batches gets a drift reading, however many columns: a p-value
    below 0.001, and below 0.01 over the columns tested (Bonferroni). 16 ACS columns at 0.001
    each gave one in 25-50 unchanged batches an alarm."""

    def top(p: float, tests: int) -> str | None:
        detail = {"tests": tests, "p_adjusted": min(1.0, p * tests)}
        r = CheckResult("drift", "chi2", "MIL", True, "warning", p_value=p, detail=detail)
        return diagnose_batch([r]).top

    assert top(0.0008, 6) == "covariate_drift"
    assert top(0.0008, 16) is None
    assert top(0.0005, 16) == "covariate_drift"
    assert top(0.0012, 1) is None  # 0.001 per column still holds for few columns


def test_the_drift_check_names_the_family_it_adjusted_over(stream):
    rows, schema, reference = stream
    batch = rows.iloc[4 * WEEK : 4 * WEEK + 90][ELEC2_FEATURES]
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = check_drift(reference, current)
    tested = [r for r in results if r.p_value is not None]
    assert tested and {r.detail["tests"] for r in tested} == {len(tested)}


def test_rain_after_a_dry_summer_is_no_unit_change_but_a_scaled_wet_month_is():
    """Seattle's real October 2012 (rain on 18 of 31 days) against its dry August and
    September (rain on 3 of 61, at most 0.3 mm), merged from batch profiles as a rolling
    reference is: the spread grew 128-fold and the mean near zero cannot confirm the factor,
    so it was quarantined as "x100 the reference". A scale keeps zeros zeros; October's are
    gone. A wet month x100 keeps its zeros and is still named."""
    weather = seattle_weather()
    columns = ["precipitation", "temp_max", "temp_min", "wind"]
    month = weather["date"].dt.strftime("%Y-%m")
    champion = weather[month <= "2012-09"][columns]
    schema = Schema.infer(champion)
    edges = BatchProfile.from_frame(champion, schema).edges()
    dry = [BatchProfile.from_frame(weather[month == m][columns], schema, edges=edges)
           for m in ("2012-08", "2012-09")]  # fmt: skip
    reference = dry[0].merge(dry[1])
    october = weather[month == "2012-10"][columns].reset_index(drop=True)

    def diagnosed(batch: pd.DataFrame):
        current = BatchProfile.from_frame(batch, schema, edges=edges)
        results = [*check_quality(reference, current, schema), *check_drift(reference, current)]
        return diagnose_batch(results, reference, current, batch_signals(batch, columns))

    d = diagnosed(october)
    assert "scale" not in [a.check for a in d.alarms] and d.top != "upstream_change", d.alarms
    wet = weather[month == "2012-11"][columns].reset_index(drop=True)
    _, scaled = diagnose_frames(wet, wet.assign(precipitation=wet["precipitation"] * 100))
    assert scaled.top == "upstream_change" and scaled.fix == {"scale": {"precipitation": 0.01}}


def test_two_near_even_codes_whose_shares_moved_partway_are_not_swapped():
    """Baseball's 2003 season (real player statistics): the American League's share of players
    fell from about 51 % of the reference to 39 %. Exchanged, the codes came a little closer
    (chi-square p 0.001 -> 0.012) and the batch was quarantined as "categories are swapped
    ('AL' -> 'NL')"; a swap explains a change, it does not just shrink it. Here the same in
    mirror (38 % to 53 %, p 0.0007 -> 0.054); exchanged codes still are a swap."""
    rng = np.random.default_rng(3)
    league = np.repeat(["AL", "NL"], [500, 800])
    reference = pd.DataFrame({"games": rng.gamma(4, 25, 1300), "lg": rng.permutation(league)})
    moved = pd.DataFrame(
        {"games": rng.gamma(4, 25, 141), "lg": rng.permutation(np.repeat(["AL", "NL"], [75, 66]))}
    )
    d = diagnose_frames(reference, moved)[1]
    assert "recode" not in [a.check for a in d.alarms] and d.top != "upstream_change"
    swapped = moved.assign(lg=rng.permutation(np.repeat(["AL", "NL"], [87, 54])))
    d = diagnose_frames(reference, swapped)[1]
    assert d.top == "upstream_change" and d.alarms[0].check == "recode"


@pytest.mark.parametrize("known", [3, 200])
def test_values_beyond_a_range_of_a_few_values_are_no_unit_change(known):
    """Early films: 3 budgets known in the champion's window ([0, 2250]) and then a film with a
    budget of 30,000 was "100% outside the reference range ... an offset or unit change
    upstream", and the next one "x100 the reference". Beyond the range of 3 values, 1 value lies
    half the time; beyond the range of 200, 30 values never do, and that stays upstream."""
    rng = np.random.default_rng(0)
    length = rng.gamma(4, 20, 400)
    budget = np.full(400, np.nan)
    budget[:known] = rng.gamma(2, 500, known)
    reference = pd.DataFrame({"length": length, "budget": budget})
    costly = np.full(30, np.nan)
    costly[: 1 if known == 3 else 30] = 30_000 + rng.gamma(2, 1000, 1 if known == 3 else 30)
    batch = pd.DataFrame({"length": rng.gamma(4, 20, 30), "budget": costly})
    alarms = diagnose_frames(reference, batch)[1].alarms
    upstream = [a for a in alarms if a.column == "budget" and a.cause == "upstream_change"]
    assert bool(upstream) is (known == 200), [a.message for a in alarms]


@pytest.mark.parametrize("known", [9, 300])
def test_codes_of_a_column_mostly_null_in_the_reference_are_neither_recoded_nor_new(known):
    """A film's rating code, recorded for 9 films of the champion's window (7 'PG', 2 'PG-13'),
    then 15 'PG-13' and 7 'R': "categories are re-coded ('PG-13' -> 'PG', 'R' -> 'PG-13')"; a
    later year's 1 'NC-17' of 3 codes was "new codes upstream". 9 codes make no shares to read;
    300 do, and the same batch is then re-coded."""
    rng = np.random.default_rng(0)
    codes = np.full(2000, None, dtype=object)
    codes[:known] = rng.choice(["PG", "PG-13"], known, p=[7 / 9, 2 / 9])
    reference = pd.DataFrame({"length": rng.gamma(4, 20, 2000), "mpaa": codes})
    rated = np.full(600, None, dtype=object)
    rated[:22] = ["PG-13"] * 15 + ["R"] * 7
    batch = pd.DataFrame({"length": rng.gamma(4, 20, 600), "mpaa": rated})
    alarms = diagnose_frames(reference, batch)[1].alarms
    checks = {a.check for a in alarms if a.column == "mpaa"}
    assert ("recode" in checks) is (known == 300) and "new_categories" not in checks
    rated[:22] = None
    rated[:3] = ["NC-17", "PG", "PG"]
    alarms = diagnose_frames(reference, batch.assign(mpaa=rated))[1].alarms
    assert not [a for a in alarms if a.check == "new_categories"], alarms
    rated[:12] = ["NC-17"] * 6 + ["PG"] * 6  # half the codes new: against 300 codes, upstream
    alarms = diagnose_frames(reference, batch.assign(mpaa=rated))[1].alarms
    assert bool([a for a in alarms if a.check == "new_categories"]) is (known == 300), alarms


def test_no_new_code_in_a_reference_still_allows_three_in_its_size():
    """Good-Turing's share of new codes is 0 for a reference without codes seen once (300
    ratings in 2 codes), and 1 'NC-17' among a year's 3 codes blocked the batch. Seeing no new
    code in 300 values is consistent with a rate up to 3 in 300 (the rule of three): 1 in 3
    values is not beyond it, 20 in 100 are."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"mpaa": rng.choice(["PG", "R"], 300), "x": rng.normal(size=300)})
    for new, of in ((1, 3), (20, 100)):
        codes = ["NC-17"] * new + list(rng.choice(["PG", "R"], of - new))
        batch = pd.DataFrame({"mpaa": codes, "x": rng.normal(size=of)})
        alarms = diagnose_frames(reference, batch)[1].alarms
        assert bool([a for a in alarms if a.check == "new_categories"]) is (new == 20), alarms


# Sand Point, Alaska (NREL TMY3, as the pvlib wheel ships it): the albedo is one figure a
# month; its weeks 29-34 (the champion's window) and week 35, which ends on 1-2 September
ALBEDO_WEEKS = [{0.12: 168}, {0.12: 168}, {0.11: 120, 0.12: 48}] + [{0.11: 168}] * 3


def _albedo_rows(counts: dict, rng) -> pd.DataFrame:
    values = np.concatenate([np.full(n, v) for v, n in counts.items()])
    return pd.DataFrame({"albedo": values, "wind": rng.gamma(4.0, 1.3, values.size).round(1)})


@pytest.mark.parametrize(("september", "burst"), [(0.14, False), (1.4, True)])
def test_a_column_that_steps_between_batches_steps_within_one_too(september, burst):
    """48 rows at the next month's albedo (0.14) were "a burst of glitches" and quarantined
    the week; the week after, 168 rows at 0.14, passed. 48 rows at 1.4 (beyond any albedo) are
    still a burst."""
    rng = np.random.default_rng(0)
    weeks = [_albedo_rows(counts, rng) for counts in ALBEDO_WEEKS]
    frame = pd.concat(weeks, ignore_index=True)
    schema = Schema.infer(frame)
    ids = np.repeat(np.arange(len(weeks)), [len(w) for w in weeks])
    reference = BatchProfile.from_frame(frame, schema, rows=True, batches=ids)
    batch = _albedo_rows({0.11: 120, september: 48}, rng)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    drift = check_drift(reference, current)
    results = [*check_quality(reference, current, schema), *drift, dataset_drift(drift)]
    d = diagnose_batch(results, reference, current, batch_signals(batch, ["albedo", "wind"]))
    bursts = [a for a in d.alarms if a.check == "out_of_range_burst"]
    assert bool(bursts) is burst and bool(d.blocking) is burst, d.explain()


# The same 545 men each year (R's Ecdat ``Males``, from the NLS Youth): married and union
# members (no, yes) by year, 1981-1984 (the champion's window) and 1985
MARRIED = [(388, 157), (350, 195), (301, 244), (272, 273), (250, 295)]
UNION = [(409, 136), (405, 140), (411, 134), (408, 137), (423, 122)]


def _panel_year(married: tuple[int, int], union: tuple[int, int]) -> pd.DataFrame:
    def column(counts):
        return np.repeat(["no", "yes"], counts)

    return pd.DataFrame({"married": column(married), "union": column(union)})


@pytest.mark.parametrize("swap_union", [False, True])
def test_a_share_the_reference_years_were_moving_is_no_swap(swap_union):
    """As the men aged, 'married' went 29, 36, 45, 50 % and then 54 %: past the reference's
    mirror image, and "categories are swapped ('no' -> 'yes', 'yes' -> 'no')" quarantined the
    year. A swapped 'union' (25 % every year, then 78 %) is still a swap."""
    years = [_panel_year(m, u) for m, u in zip(MARRIED[:4], UNION[:4], strict=True)]
    frame = pd.concat(years, ignore_index=True)
    schema = Schema.infer(frame)
    ids = np.repeat(np.arange(4), [len(y) for y in years])
    reference = BatchProfile.from_frame(frame, schema, rows=True, batches=ids)
    batch = _panel_year(MARRIED[4], UNION[4])
    if swap_union:
        batch["union"] = batch["union"].map({"no": "yes", "yes": "no"})
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = check_quality(reference, current, schema)
    d = diagnose_batch(results, reference, current)
    recoded = {a.column for a in d.alarms if a.check == "recode"}
    assert recoded == ({"union"} if swap_union else set()), d.explain()


def test_a_fill_code_below_the_commonest_value_is_still_a_fill_value():
    """A code for a missing reading need not be a batch's commonest value: Seattle's dry July
    and August 2015 (real NOAA days, 0 mm on most) with 9999 for the precipitation of 2 in 3
    days over three weeks, as a station observed only now and then writes its gaps (Miami's
    TMY2 file: visibility 9999 in 2 of 3 hours of a week's two days). Only the commonest value
    was read, so the batch was named covariate drift of the temperatures and nothing more; it
    is a fill value, and the fix reads it as missing."""
    weather = seattle_weather()
    columns = ["precipitation", "temp_max", "temp_min", "wind"]
    year = weather["date"].dt.year
    reference = weather[year.isin([2013, 2014])][columns].reset_index(drop=True)
    summer = weather[(year == 2015) & weather["date"].dt.month.isin([7, 8])]
    batch = summer[columns].reset_index(drop=True)
    gaps = [i for i in range(20, 41) if i % 3]
    batch.loc[gaps, "precipitation"] = 9999.0
    assert (batch["precipitation"] == 0).sum() > len(gaps)  # 9999 is not the commonest value
    _, d = diagnose_frames(reference, batch)
    fill = [a for a in d.alarms if a.column == "precipitation"]
    assert fill and fill[0].check == "default_value", d.explain()
    assert d.fix == {"missing_values": {"precipitation": [9999.0]}}
    assert apply_fixes(batch, d.fix)["precipitation"].isna().sum() == len(gaps)
