"""A regression project through the loop, on small generated data (a daily temperature-like
target with a season)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from retrainer import views
from retrainer.backtest import backtest
from retrainer.cli import _cycle_line, main
from retrainer.errors import DataError
from retrainer.report import write_report
from retrainer.schedule.scores import ScoreMatrix
from retrainer.store.tables import BatchRow, CheckRow, EventRow
from tests.conftest import REGRESSION, project_settings


def _days(start: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = np.arange(start, start + n)
    low = 8 + 6 * np.sin(2 * np.pi * day / 365) + rng.normal(0, 2, n)
    return pd.DataFrame(
        {
            "id": day,
            "timestamp": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(day, "D"),
            "low": low,
            "wind": rng.gamma(2, 2, n),
            "target": low + 7 + rng.normal(0, 1.5, n),
        }
    )


@pytest.fixture
def project(make_project):
    project = make_project(**REGRESSION)
    for k in range(3):
        project.ingest(_days(30 * k, 30, k), key=f"m{k}")
    project.cycle()
    assert project.champion.version == 1
    return project


def test_a_retrain_with_no_new_labelled_row_is_skipped_not_registered(project):
    project.request_retrain("once more")
    report = project.cycle()
    assert report.run["status"] == "skipped"
    assert "no labelled row since version 1 was trained" in report.run["message"]
    assert [v.version for v in project.models] == [1]  # no copy of the champion registered

    project.ingest(_days(90, 30, 3), key="m3")
    project.request_retrain("new rows")
    assert project.cycle().run["status"] in ("succeeded", "rejected")
    assert [v.version for v in project.models] == [1, 2]


def test_a_skipped_run_says_why_in_the_run_line_and_the_explanation(project):
    project.request_retrain("once more")
    report = project.cycle().to_dict()
    # it said "retrain (run skipped)" and "Run 2: skipped, not promoted."
    line = _cycle_line(report, 0)
    assert "retrain (run skipped: no labelled row since version 1 was trained" in line
    words = views.decision_explanation(project)["words"]
    assert f"Run {report['run']['run_id']}: skipped: no labelled row since version 1" in words
    assert "not promoted" not in words


def test_a_backtest_without_data_says_elec2_lacks_the_projects_columns(tmp_path):
    settings = project_settings(**REGRESSION)
    settings["data"] = {"target": "temp_max", "id_column": "id", "time_column": "event_time"}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "retrainer.yaml"), "backtest"])
    assert result.exit_code == 2
    # it said "backtest: no time column 'event_time' in ['id', 'timestamp', 'period', ...]"
    assert "without --data the backtest replays ELEC2" in result.output
    assert "data.target 'temp_max', data.time_column 'event_time'" in result.output
    assert "--data FILE" in result.output


def test_backtest_optimal_prices_a_regressor_in_its_absolute_errors(tmp_path):
    settings = project_settings(**REGRESSION)
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    history = _days(0, 140, 0)
    history.loc[history["id"] >= 70, "target"] += 6.0  # the relation moves halfway
    history.loc[[10, 50, 100], "target"] = np.nan  # labels that never came
    history.to_csv(tmp_path / "history.csv", index=False)
    args = ["-c", str(tmp_path / "retrainer.yaml"), "backtest", "--optimal", "--jobs", "1"]
    args += ["--cost", "20", "--cost", "2000", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--data", str(tmp_path / "history.csv"), "--json"])
    # it priced every policy in "errors" of exact equality ("60 errors ... accuracy 0.0"),
    # then refused regressors
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["unit"] == "absolute error" and got["gate"].startswith("mae, ")
    assert got["unlabelled rows"] == 3  # it failed with "Input y contains NaN"
    cheap, dear = ({r["policy"]: r for r in part["table"]} for part in got["costs"])
    for table in (cheap, dear):
        best = table["optimal (hindsight)"]["total cost"]
        assert all(r["total cost"] >= best - 1e-6 for r in table.values())
        assert "DDM trigger" not in table and "ADWIN trigger" in table  # DDM reads 0/1 errors
        assert all("mae" in r and "accuracy" not in r for r in table.values())
    never, best = cheap["never retrained"], cheap["optimal (hindsight)"]
    assert abs(never["mae"] - never["errors"] / (140 - 28 - 2)) < 1e-3  # after 4 weeks of history
    assert best["retrains"] >= 1 and best["mae"] < never["mae"] - 0.5  # the optimum follows
    assert dear["optimal (hindsight)"]["retrains"] == 0  # a retrain dearer than all errors
    text = CliRunner().invoke(main, [*args, "--data", str(tmp_path / "history.csv")]).output
    assert "retrain cost 20 absolute error" in text and " mae " in text
    # without --cost a regressor's costs are in batches of a fresh model's absolute error
    # (about 21 degrees a week here: a classifier's 50, 500 and 5,000 are 2, 24 and 240 weeks)
    plain = [a for a in args if a not in ("--cost", "20", "2000")]
    chosen = CliRunner().invoke(main, [*plain, "--data", str(tmp_path / "history.csv"), "--json"])
    got = json.loads(chosen.output)
    matrix = ScoreMatrix.load(got["scores"])
    batch = np.median(np.diag(matrix.errors))
    assert [p["cost"] for p in got["costs"]] == pytest.approx(
        [0.2 * batch, 2 * batch, 20 * batch], rel=5e-3
    )
    assert "batches of a fresh model's absolute error" in got["chosen costs"]

    settings["gate"] = {"metric": "r2"}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    refused = CliRunner().invoke(main, [*args, "--data", str(tmp_path / "history.csv")])
    assert refused.exit_code == 2, refused.output
    assert "r2 is not a sum of row errors" in refused.output


def test_the_performance_trigger_on_mae_tests_the_rise_against_both_sides_noise(make_project):
    """30-row months of an unchanged stream: an MAE of 30 rows moves by about +-0.5 (two
    standard errors), which a raw 0.05 rise took for a drop in about half the months."""
    settings = REGRESSION | {"policy": {"triggers": [{"type": "performance", "max_drop": 0.05}]}}
    project = make_project(**settings)
    for k in range(6):
        project.ingest(_days(30 * k, 30, k), key=f"m{k}")
    project.cycle()
    assert project.champion.metrics["holdout_spread"] > 0  # the holdout's row losses
    fired = raw = 0
    for k in range(6, 18):
        project.ingest(_days(30 * k, 30, k), key=f"m{k}")
        report = project.cycle()
        fired += report.decision["action"] == "retrain"
        evaluated = [e for e in report.evaluations if e["role"] == "champion"]
        raw += evaluated[-1]["value"] > project.champion.metrics["holdout"] + 0.05
    assert fired <= 1 and raw >= 3
    broken = _days(540, 30, 18)
    broken["target"] += 4.0  # the relation moved: errors of about 4 degrees
    project.ingest(broken, key="broken")
    report = project.cycle()
    assert report.decision["action"] == "retrain"
    assert "rose more than 0.05" in report.decision["reasons"][0]
    assert "one-sided z-test" in report.decision["reasons"][0]


def test_the_reports_alarms_name_their_batch(project, tmp_path):
    for k in (3, 4):  # two batches of one cycle, each with its own unit change in 'wind'
        days = _days(30 * k, 30, k)
        days["wind"] *= 10 * k
        project.ingest(days, key=f"m{k}")
    report = project.cycle()
    assert report.batches == (4, 5)
    rows = views.recent_alarms(project)
    assert {(r["batch"], r["batch_time"]) for r in rows} == {
        (4, "2020-04-29T00:00"),
        (5, "2020-05-29T00:00"),
    }
    # the table read "cycle 2, 2020-05-29" on every row: one row per batch, none saying which
    page = write_report(project, tmp_path / "report.html").read_text()
    table = page.split("<h2>Latest alarms: batch, cause and action</h2>")[1].split("</table>")[0]
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head[:4] == ["cycle", "cycle clock", "batch", "batch time"]
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in table.split("<tr>")[1:]]
    units = [row for row in cells if row[head.index("cause")] == "upstream_change"]
    assert sorted(row[2:4] for row in units) == [
        ["4", "2020-04-29T00:00"],
        ["5", "2020-05-29T00:00"],
    ]


def test_the_reports_headline_says_on_which_batches_both_lines_are(project, tmp_path):
    for k in (3, 4, 5):
        days = _days(30 * k, 30, k)
        if k == 4:
            days["wind"] *= 40  # a unit change upstream: quarantined, not scored
        project.ingest(days, key=f"m{k}")
    project.cycle()
    with project.store.session() as s:  # a batch scored for the champion only
        gone = s.scalars(
            select(CheckRow).where(
                CheckRow.kind == "performance",
                CheckRow.batch_id == 6,
                CheckRow.detail["role"].as_string() == "baseline",
            )
        ).one()
        s.delete(gone)
    perf = views.performance(project)
    assert views.scored_by_both(perf) == {4}
    champion = views.overall(perf, "champion", {4})
    baseline = views.overall(perf, "baseline", {4})
    assert champion != views.overall(perf, "champion")
    page = write_report(project, tmp_path / "report.html").read_text()
    # it said "mae, continuously trained 2.340 / never retrained 2.327", each on its own batches
    assert (
        f"mae on 1 of 6 batches, the same for both lines (not scored: 1 quarantined, and those "
        f"without labels or before the first model): continuously trained {champion:.3f} / "
        f"never retrained {baseline:.3f}"
    ) in page


def test_the_backtest_reads_naive_times_as_ingest_does(make_project, tmp_path):
    history = pd.concat([_days(30 * k, 30, k) for k in range(6)], ignore_index=True)
    morning = history["timestamp"] + pd.Timedelta(hours=6)  # a time of day: midnights are dates
    history["timestamp"] = morning.dt.strftime("%Y-%m-%d %H:%M")  # local, naive
    settings = project_settings(**REGRESSION)
    with pytest.raises(DataError, match="set data.timezone"):  # as ingest: ambiguous
        backtest(history, settings, {}, folder=tmp_path / "bt", period="30D", history=3)
    zone = {**settings["data"], "timezone": "America/Los_Angeles"}
    backtest(
        history, {**settings, "data": zone}, {}, folder=tmp_path / "bt", period="30D", history=3
    )
    live = make_project(**{**REGRESSION, "data": zone})
    live.ingest(history, key="all")
    with live.store.session() as s:
        expected = s.scalars(select(BatchRow.data_time)).one()
    engine = create_engine(f"sqlite:///{tmp_path / 'bt' / 'every-14d' / 'store.db'}")
    with engine.connect() as connection:
        latest = connection.scalar(select(func.max(BatchRow.data_time)))
    engine.dispose()
    # both read "2020-06-28 06:00" in Los Angeles (UTC-7 in summer), not as UTC
    assert _utc(latest) == _utc(expected) and _utc(latest).hour == 13


def _utc(when) -> pd.Timestamp:
    when = pd.Timestamp(when)  # SQLite hands times back without their offset (UTC)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


def test_a_column_not_recorded_yet_is_left_out_of_the_model_until_it_is(make_project):
    """A real history often starts before a column was recorded (baseball's sacrifice flies
    from 1954): scikit-learn's HistGradientBoosting cannot bin a column with no value and
    failed the first retrain ("window shape cannot be larger than input array shape"). The
    model leaves the column out, predicts like a model fitted without it, and a later window
    that has the column trains on it."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    hgb = "sklearn.ensemble.HistGradientBoostingRegressor"
    project = make_project(**{**REGRESSION, "trainer": {**REGRESSION["trainer"], "estimator": hgb,
                                                        "window": {"batches": 2}}})  # fmt: skip
    early = [_days(30 * k, 30, k).assign(gauge=np.nan) for k in range(3)]
    for k, batch in enumerate(early):
        project.ingest(batch, key=f"m{k}")
    project.cycle()
    assert project.champion.version == 1, project.status()["last_decision"]

    window = pd.concat(early[1:])
    alone = HistGradientBoostingRegressor().fit(window[["low", "wind"]], window["target"])
    later = _days(90, 30, 3).assign(gauge=lambda d: d["low"] * 2)
    champion = project.registry.load(project.champion.version)  # read back from the store
    np.testing.assert_array_equal(
        champion.predict(later[["low", "wind", "gauge"]]), alone.predict(later[["low", "wind"]])
    )

    for k in range(3, 6):
        project.ingest(_days(30 * k, 30, k).assign(gauge=lambda d: d["low"] * 2), key=f"m{k}")
    project.request_retrain("the gauge is recorded now")
    project.cycle()
    newest = project.registry.load(max(v.version for v in project.registry.versions()))
    assert newest.n_features_in_ == 3 and not hasattr(newest, "named_steps")


def test_a_text_column_not_recorded_in_the_first_batch_is_typed_by_its_first_values(
    make_project,
):
    """The first batch fixes the schema's kinds; a column with no value in it (a film's rating
    code before ratings existed) was read as numeric, and every later batch with a code was
    quarantined as "unreadable values (e.g. 'PG')": retraining held back for 46 of 113 years
    of films. Its first values now give its kind, once, with an event."""
    project = make_project(**REGRESSION)
    for k in range(3):
        project.ingest(_days(30 * k, 30, k).assign(code=np.nan), key=f"m{k}")  # as CSV reads it
    project.cycle()
    assert project.champion.version == 1
    assert project.schema()["code"].typed is False

    codes = np.array(["A", "B", None])
    for k in range(3, 6):
        batch = _days(30 * k, 30, k)
        project.ingest(batch.assign(code=codes[np.arange(30) % 3]), key=f"m{k}")
    assert project.schema()["code"].kind == "categorical" and project.schema()["code"].typed
    with project.store.session() as s:
        events = s.scalars(select(EventRow.message).where(EventRow.kind == "schema")).all()
    assert events == ["column 'code' is categorical: its first values came in m3"]
    project.cycle()
    with project.store.session() as s:
        statuses = s.scalars(select(BatchRow.status).where(BatchRow.id > 3)).all()
    assert statuses == ["processed"] * 3, project.status()["last_decision"]
    with project.store.session() as s:
        typed = s.scalars(
            select(CheckRow).where(CheckRow.name == "type_change", CheckRow.column == "code")
        ).all()
    assert typed and not any(c.alarm for c in typed)
