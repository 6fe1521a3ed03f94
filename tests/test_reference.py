"""Drift references: fixed, rolling and seasonal windows chosen by data time, merged from stored
profiles; the project-file checks; the periodic-drift hint; and the reference in the live loop."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.reference import (
    Candidate,
    ReferenceSpec,
    choose,
    dispersion,
    periodic_drift,
    reference_for,
)
from retrainer.config import Config
from retrainer.data.schema import Schema
from retrainer.errors import ConfigError
from retrainer.profile import BatchProfile

DAY = timedelta(days=1)
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def config(reference):
    return Config.from_dict(
        {
            "data": {"target": "y"},
            "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
            "checks": {"drift": {"reference": reference}},
        }
    )


def spec_of(setting):
    """The ReferenceSpec a project file's checks.drift.reference setting makes."""
    r = config(setting).checks.drift.reference
    return ReferenceSpec(r.kind, r.window, r.period, r.min_rows, r.periods)


@pytest.mark.parametrize(
    ("reference", "error"),
    [
        ({"kind": "seasonal"}, "checks.drift.reference: a seasonal reference needs 'period'"),
        ({"kind": "weekly"}, "checks.drift.reference.kind: Input should be 'fixed', 'rolling'"),
        ({"kind": "rolling", "period": "7d"}, "'period' applies to kind: seasonal only"),
        ({"kind": "seasonal", "period": "7d", "window": "28d"}, "window (28d) must be shorter"),
        ({"kind": "rolling", "window": "soon"}, "checks.drift.reference.window: 'soon' is not"),
        ({"kind": "rolling", "min_rows": 0}, "checks.drift.reference.min_rows"),
    ],
)
def test_a_wrong_reference_is_refused_with_its_key(reference, error):
    with pytest.raises(ConfigError) as err:
        config(reference)
    assert error in str(err.value)


def test_a_valid_reference_is_read_with_durations():
    r = config({"kind": "seasonal", "period": "365d", "window": "2w"}).checks.drift.reference
    assert (r.kind, r.period, r.window) == ("seasonal", 365 * DAY, 14 * DAY)
    assert config({}).checks.drift.reference.kind == "fixed"
    assert "reference" not in config({}).checks.drift.options()  # not a check_drift option


def test_windows_are_chosen_by_data_time():
    history = [Candidate(i, T0 + i * DAY, 50) for i in range(30)]
    at = T0 + 21 * DAY
    rolling = choose(history, at, ReferenceSpec("rolling", 3 * DAY))
    assert [c.batch_id for c in rolling] == [18, 19, 20]
    weekly = choose(history, at, ReferenceSpec("seasonal", 2 * DAY, 7 * DAY))
    assert [c.batch_id for c in weekly] == [13, 14, 15]
    assert choose(history, at, ReferenceSpec("fixed")) == []


def frames(n, seed):
    rng = np.random.default_rng(seed)
    return [
        pd.DataFrame({"x": rng.normal(i, 1.0, 200), "c": rng.choice(["a", "b"], 200)})
        for i in range(n)
    ]


def test_the_reference_is_the_merge_of_the_chosen_batches():
    parts = frames(6, 0)
    schema = Schema.infer(parts[0])
    fixed = BatchProfile.from_frame(parts[0], schema)
    profiles = {
        i: BatchProfile.from_frame(p, schema, edges=fixed.edges()) for i, p in enumerate(parts)
    }
    history = [Candidate(i, T0 + i * DAY, 200) for i in range(5)]
    chosen = reference_for(
        fixed, history, T0 + 5 * DAY, ReferenceSpec("rolling", 2 * DAY), profiles.__getitem__
    )
    expected = BatchProfile.from_frame(pd.concat(parts[3:5]), schema, edges=fixed.edges())
    assert chosen.batches == (3, 4) and chosen.kind == "rolling"
    assert chosen.profile.columns["x"].hist == expected.columns["x"].hist
    assert chosen.profile.columns["c"].categories == expected.columns["c"].categories
    # the merged reference is a working drift reference: batch 5 moved less from 3-4 than from 0
    current = profiles[5]
    near = dataset_drift(check_drift(chosen.profile, current), share=0.5)
    far = dataset_drift(check_drift(fixed, current), share=0.5)
    assert far.alarm and "x" in far.detail["drifted"]
    assert near.statistic <= far.statistic


def test_a_seasonal_reference_falls_back_to_rolling_then_fixed():
    parts = frames(3, 1)
    schema = Schema.infer(parts[0])
    fixed = BatchProfile.from_frame(parts[0], schema)
    profile = BatchProfile.from_frame(parts[1], schema, edges=fixed.edges())
    history = [Candidate(i, T0 + i * DAY, 200) for i in range(3)]
    spec = ReferenceSpec("seasonal", 2 * DAY, 365 * DAY)
    rolled = reference_for(fixed, history, T0 + 3 * DAY, spec, lambda i: profile)
    assert rolled.kind == "rolling" and "0 rows within 2 days around 365 days before" in rolled.note
    fixed_back = reference_for(fixed, history, T0 + 30 * DAY, spec, lambda i: profile)
    assert fixed_back.kind == "fixed" and fixed_back.profile is fixed


def test_the_hint_fits_its_window_to_small_batches_so_the_seasonal_reference_takes_hold():
    """Monthly batches of ~30 rows (a daily weather series): the default 28-day window holds one
    batch, fewer than min_rows 200, and would fall back to the fixed reference; the hint's
    setting holds last year's month and its neighbours, and the reference takes hold."""
    months = [T0 + timedelta(days=30 * i) for i in range(24)]
    cycle = [10 + 8 * math.sin(2 * math.pi * 30 * i / 365) for i in range(24)]
    hint = periodic_drift(months, {"temp": cycle}, [True] * 24, [30] * 24).hint()
    assert "fewer than 200" in hint and hint.endswith(
        "set checks.drift.reference: {kind: seasonal, period: 365d, window: 90d, min_rows: 54}"
    ), hint
    setting = yaml.safe_load(hint.rsplit("set checks.drift.reference: ", 1)[1])
    parts = frames(2, 1)
    schema = Schema.infer(parts[0])
    fixed = BatchProfile.from_frame(parts[0], schema)
    profile = BatchProfile.from_frame(parts[1].head(30), schema, edges=fixed.edges())
    history = [Candidate(i, t, 30) for i, t in enumerate(months)]
    at = months[-1] + timedelta(days=30)
    chosen = reference_for(fixed, history, at, spec_of(setting), lambda i: profile)
    assert chosen.kind == "seasonal" and chosen.batches == (11, 12, 13), chosen.note
    default = spec_of({"kind": "seasonal", "period": "365d"})
    default = reference_for(fixed, history, at, default, lambda i: profile)
    assert default.kind == "fixed", default.note
    days = [T0 + timedelta(days=i) for i in range(30)]
    week = [math.cos(2 * math.pi * i / 7) for i in range(30)]
    big = periodic_drift(days, {"x": week}, [True] * 30, [1000] * 30).hint()
    assert big.endswith("{kind: seasonal, period: 7d, window: 1d}") and "quarter" in big, big
    month_ends = list(pd.date_range("2012-01-31", periods=24, freq="ME").to_pydatetime())
    steps_of_31_days = periodic_drift(month_ends, {"temp": cycle}, [True] * 24, [31] * 24)
    assert steps_of_31_days.hint().endswith("window: 93d, min_rows: 55}")
    monthly_big = periodic_drift(months, {"temp": cycle}, [True] * 24, [3000] * 24).hint()
    assert monthly_big.endswith("set checks.drift.reference.kind: seasonal, period: 365d")


def test_periodic_drift_is_recognised_and_a_trend_or_noise_is_not():
    days = [T0 + timedelta(days=30 * i) for i in range(24)]
    cycle = [10 + 8 * math.sin(2 * math.pi * 30 * i / 365) for i in range(24)]
    found = periodic_drift(days, {"temp": cycle, "other": [1.0] * 24}, [True] * 24)
    assert found.period == "365d" and found.column == "temp" and found.r2 > 0.99
    assert "checks.drift.reference.kind: seasonal, period: 365d" in found.hint()
    trend = [float(i) for i in range(24)]
    assert periodic_drift(days, {"x": trend}, [True] * 24) is None
    noise = list(np.random.default_rng(0).normal(size=24))
    assert periodic_drift(days, {"x": noise}, [True] * 24) is None
    hourly = [T0 + timedelta(days=i) for i in range(40)]
    week = [math.cos(2 * math.pi * i / 7) for i in range(40)]
    assert periodic_drift(hourly, {"x": week}, [True] * 40).period == "7d"
    assert periodic_drift(hourly, {"x": week}, [True] * 30 + [False] * 10) is None
    half = [True] * 30 + [True, False] * 5  # a retrained champion drifts every other batch
    assert periodic_drift(hourly, {"x": week}, half).period == "7d"


def weekly_days(n, rows=150, seed=0):
    """Daily batches whose input follows a strong weekly cycle and nothing else changes."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(n):
        x = rng.normal(3 * math.sin(2 * math.pi * day / 7), 1.0, rows)
        z = rng.normal(size=rows)
        at = pd.Timestamp("2021-01-04", tz="UTC") + pd.Timedelta(days=day)
        out.append(
            pd.DataFrame(
                {
                    "id": np.arange(day * rows, (day + 1) * rows),
                    "timestamp": at + pd.to_timedelta(np.arange(rows) * 60, unit="s"),
                    "x": x,
                    "z": z,
                    "target": (x + z > 0).astype(int),
                }
            )
        )
    return out


def replay_days(project, days):
    project.ingest(pd.concat(days[:7]), key="history")
    project.cycle()
    reports = []
    for i, day in enumerate(days[7:]):
        project.ingest(day, key=f"day-{i}")
        reports.append(project.cycle())
    return reports


def drift_alarms(reports):
    return [any(a["check"] == "drift" for a in r.alarms) for r in reports]


def test_in_the_loop_a_seasonal_reference_quiets_a_weekly_cycle_and_the_fixed_one_hints(
    make_project, tmp_path
):
    days = weekly_days(7 + 16)
    fixed = make_project(policy={"triggers": [{"type": "manual"}]})
    reports = replay_days(fixed, days)
    seasonal = make_project(
        store={"url": f"sqlite:///{tmp_path / 's.db'}", "artifacts": str(tmp_path / "s")},
        policy={"triggers": [{"type": "manual"}]},
        checks={"drift": {"reference": {"kind": "seasonal", "period": "7d", "window": "1d",
                                         "min_rows": 100}}},
    )  # fmt: skip
    seasonal_reports = replay_days(seasonal, days)
    with seasonal.store.session() as s:
        from sqlalchemy import select

        from retrainer.store.tables import CheckRow

        notes = [
            r.detail["reference"]
            for r in s.scalars(select(CheckRow).where(CheckRow.name == "dataset_drift"))
        ]
    assert any(n.startswith("seasonal reference: 1 batches") for n in notes), notes
    # after one period of history (the first 7 days fall back to a rolling reference)
    quiet, loud = drift_alarms(seasonal_reports)[7:], drift_alarms(reports)[7:]
    assert sum(quiet) <= 1 and sum(loud) >= 5, (quiet, loud)
    assert any("~7d cycle" in n for r in reports for n in r.notes), [r.notes for r in reports]
    assert not any(r.notes for r in seasonal_reports)
    assert "~7d cycle" in fixed.status()["hint"] and seasonal.status()["hint"] is None
    assert "Hint: drift in" in fixed.report(tmp_path / "fixed.html").read_text()


def test_retrainer_run_prints_the_seasonality_hint_once(tmp_path, monkeypatch):
    """A backlog of days with a weekly cycle through `retrainer run`: the hint is printed once,
    however many cycles repeat it, and `retrainer status` keeps it."""
    from click.testing import CliRunner

    from retrainer.cli import main
    from tests.conftest import project_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    days = weekly_days(7 + 16)
    pd.concat(days[:7]).to_csv(tmp_path / "in" / "00-history.csv", index=False)
    for i, day in enumerate(days[7:], start=1):
        day.to_csv(tmp_path / "in" / f"{i:02d}.csv", index=False)
    settings = project_settings(run={"max_batches_per_cycle": 2})
    settings["store"] = {"url": f"sqlite:///{tmp_path / 'store.db'}", "artifacts": "a"}
    settings["data"]["source"] = "in"
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "9"])
    assert result.exit_code == 0, result.output
    hints = [x for x in result.stdout.splitlines() if x.strip().startswith("hint:")]
    assert len(hints) == 1 and "~7d cycle" in hints[0], result.stdout
    status = CliRunner().invoke(main, ["status"])
    assert "hint: drift in" in status.stdout and "period: 7d" in status.stdout, status.stdout


def test_a_seasonal_reference_can_span_several_periods():
    history = [Candidate(i, T0 + i * DAY, 50) for i in range(40)]
    at = T0 + 35 * DAY
    spec = ReferenceSpec("seasonal", DAY, 7 * DAY, periods=4)
    assert [c.batch_id for c in choose(history, at, spec)] == [7, 14, 21, 28]
    assert config({"kind": "seasonal", "period": "7d", "window": "1d", "periods": 4})


def _clustered(rng, weeks, rows, spread):
    """Weekly batches whose own level moves by ``spread`` sd from week to week (real series:
    each week has events of its own), nothing else changing."""
    return [pd.DataFrame({"x": rng.normal(rng.normal(0, spread), 1.0, rows)}) for _ in range(weeks)]


def test_dispersion_is_one_for_independent_batches_and_measures_clustering():
    rng = np.random.default_rng(3)
    iid = _clustered(rng, 4, 300, 0.0)
    schema = Schema.infer(iid[0])
    first = BatchProfile.from_frame(pd.concat(iid), schema)
    profiles = [BatchProfile.from_frame(w, schema, edges=first.edges()) for w in iid]
    assert dispersion(profiles)["x"] < 1.3
    moving = _clustered(rng, 4, 300, 0.6)
    profiles = [BatchProfile.from_frame(w, schema, edges=first.edges()) for w in moving]
    assert dispersion(profiles)["x"] > 2.0
    assert dispersion(profiles[:1]) == {}  # one batch says nothing about its neighbours


def test_the_dispersion_of_the_reference_keeps_false_alarms_near_alpha_on_clustered_weeks():
    """Weeks that differ by events of their own (the level moves 0.15 sd from week to week, 90
    rows a week): against 4 neighbouring weeks, the plain KS alarms far above alpha; counting
    rows as 1 / dispersion keeps it at alpha, and a shift of 1 sd is still found."""
    rng = np.random.default_rng(11)
    plain = deflated = found = 0
    runs = 200
    for _ in range(runs):
        ref_weeks = _clustered(rng, 4, 90, 0.15)
        batch = _clustered(rng, 1, 90, 0.15)[0]
        schema = Schema.infer(ref_weeks[0])
        edges = BatchProfile.from_frame(pd.concat(ref_weeks), schema).edges()
        parts = [BatchProfile.from_frame(w, schema, edges=edges) for w in ref_weeks]
        reference = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
        phi = dispersion(parts)
        current = BatchProfile.from_frame(batch, schema, edges=edges)
        shifted = BatchProfile.from_frame(batch + 1.0, schema, edges=edges)
        plain += check_drift(reference, current, min_psi=0)[0].alarm
        deflated += check_drift(reference, current, min_psi=0, dispersion=phi)[0].alarm
        found += check_drift(reference, shifted, min_psi=0, dispersion=phi)[0].alarm
    assert plain / runs > 0.1
    assert deflated / runs <= 0.05
    assert found / runs > 0.85


def test_the_fixed_reference_measures_its_batches_dispersion_from_their_moments():
    """A champion's reference is one profile of its window with each batch's moments: its
    dispersion agrees with the one measured from a profile per batch (SciPy's one-way ANOVA F
    on the rows), and a column with one value a batch counts a batch as one row."""
    from scipy import stats

    from retrainer.checks.reference import fixed_reference

    rng = np.random.default_rng(5)
    weeks = _clustered(rng, 4, 300, 0.6)
    for k, week in enumerate(weeks):
        week["listings"] = float(100 + 7 * k)  # one value a batch
    frame = pd.concat(weeks, ignore_index=True)
    schema = Schema.infer(frame)
    fixed = BatchProfile.from_frame(frame, schema, batches=np.repeat(range(4), 300))
    measured = fixed_reference(fixed).dispersion
    assert measured["x"] == pytest.approx(stats.f_oneway(*(w["x"] for w in weeks)).statistic)
    assert measured["listings"] == 300.0  # the mean batch size: the design effect's bound
    assert fixed_reference(BatchProfile.from_frame(weeks[0], schema)).dispersion == {}
    ninth = BatchProfile.from_frame(weeks[0].assign(listings=128.0), schema, edges=fixed.edges())
    drift = {r.column: r for r in check_drift(fixed, ninth, dispersion=measured)}
    plain = {r.column: r for r in check_drift(fixed, ninth)}
    assert plain["listings"].alarm and not drift["listings"].alarm


def _days_of_shops(rng, days, rows, spread):
    """Days whose shares of 4 shops move from day to day (Dirichlet with concentration
    ``spread``; None: every day the same shares, rows drawn independently)."""
    base = np.array([0.4, 0.3, 0.2, 0.1])
    out = []
    for _ in range(days):
        shares = base if spread is None else rng.dirichlet(base * spread)
        out.append(pd.DataFrame({"shop": rng.choice(list("abcd"), size=rows, p=shares)}))
    return out


def test_the_fixed_reference_measures_a_categorical_columns_dispersion_from_its_batches():
    """A champion's reference keeps each batch's category counts: its dispersion of a
    categorical column is Pearson's chi-square of homogeneity over its degrees of freedom
    (SciPy's), the same as measured from a profile per batch, and about 1 for independent days.
    Against 4 days whose mix of shops moves, the plain test alarms on ordinary days far above
    alpha; counting rows as 1 / dispersion, with p from the F tail of an estimated dispersion,
    keeps it near alpha (chi-square's tail alone: about 12 %), and a shop closing is found."""
    from scipy import stats

    from retrainer.checks.reference import fixed_reference

    rng = np.random.default_rng(7)
    days = _days_of_shops(rng, 4, 300, 40.0)
    frame = pd.concat(days, ignore_index=True)
    schema = Schema.infer(frame)
    fixed = BatchProfile.from_frame(frame, schema, batches=np.repeat(range(4), 300))
    table = pd.crosstab(np.repeat(range(4), 300), frame["shop"]).to_numpy()
    chi2 = stats.chi2_contingency(table, correction=False)
    measured = fixed_reference(fixed).dispersion["shop"]
    assert measured == pytest.approx(chi2.statistic / chi2.dof)
    assert fixed_reference(fixed).dispersion_df == {"shop": chi2.dof}
    per_day = [BatchProfile.from_frame(d, schema, edges=fixed.edges()) for d in days]
    assert dispersion(per_day)["shop"] == pytest.approx(measured)
    iid = pd.concat(_days_of_shops(rng, 4, 300, None), ignore_index=True)
    same = BatchProfile.from_frame(iid, schema, batches=np.repeat(range(4), 300))
    assert fixed_reference(same).dispersion["shop"] < 2.0

    plain = deflated = found = 0
    runs = 200
    for _ in range(runs):
        reference = pd.concat(_days_of_shops(rng, 4, 90, 40.0), ignore_index=True)
        fixed = BatchProfile.from_frame(reference, schema, batches=np.repeat(range(4), 90))
        chosen = fixed_reference(fixed)
        spread = {"dispersion": chosen.dispersion, "dispersion_df": chosen.dispersion_df}
        day = _days_of_shops(rng, 1, 90, 40.0)[0]
        current = BatchProfile.from_frame(day, schema, edges=fixed.edges())
        closed = BatchProfile.from_frame(day.replace("a", "b"), schema, edges=fixed.edges())
        plain += check_drift(fixed, current, min_psi=0)[0].alarm
        deflated += check_drift(fixed, current, min_psi=0, **spread)[0].alarm
        found += check_drift(fixed, closed, min_psi=0, **spread)[0].alarm
    assert plain / runs > 0.3
    assert deflated / runs <= 0.08
    assert found / runs > 0.9
