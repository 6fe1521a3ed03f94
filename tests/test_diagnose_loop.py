"""The diagnosis in the live loop on real ELEC2 weeks: broken batches are quarantined and stay
out of training windows until released; an upstream rename is stored, diagnosed, mapped by an
accepted fix at ingest, and released; the command line explains, accepts and releases."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer.cli import main
from retrainer.errors import DataError, NotFoundError
from retrainer.retrain import select_window
from retrainer.store.tables import RunRow
from tests.conftest import DATABASE_URL, store_url

HISTORY, WEEK = 1344, 336


def week(elec, i):
    return elec.iloc[HISTORY + i * WEEK : HISTORY + (i + 1) * WEEK].copy()


@pytest.fixture
def started(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:HISTORY], key="history")
    assert project.cycle().champion == 1
    return project


def window_ids(project):
    return [b.id for b in select_window(project)]


def test_a_quality_batch_never_enters_a_training_window_unless_released(started, elec):
    project = started
    broken = week(elec, 0)
    broken.loc[broken.index[::3], "nswdemand"] = np.nan
    bad = project.ingest(broken, key="broken").id
    report = project.cycle()
    assert report.quarantined == (bad,) and report.decision["action"] != "retrain"
    diagnosis = project.diagnosis(bad)
    assert diagnosis["top"] == "data_quality" and diagnosis["causes"][0]["columns"] == ["nswdemand"]
    assert diagnosis["alarms"][0]["blocking"]
    project.ingest(week(elec, 1), key="clean")
    project.request_retrain("retrain after the broken week")
    assert project.cycle().run["status"] in ("succeeded", "rejected")
    with project.store.session() as s:
        run = s.scalars(select(RunRow).order_by(RunRow.id.desc())).first()
        assert bad not in run.window["batches"] and len(run.window["batches"]) >= 2
    assert bad not in window_ids(project)
    with pytest.raises(DataError, match=r"stays quarantined.*null_rate \(nswdemand\)"):
        project.release(bad, "nulls are expected for that substation")  # checks re-run
    assert bad not in window_ids(project)
    released = project.release(bad, "nulls are expected for that substation", force=True)
    assert released["status"] == "processed" and bad in window_ids(project)
    assert any("null_rate (nswdemand)" in a for a in released["quality_alarms"])
    with pytest.raises(DataError, match="not quarantined"):
        project.release(bad, "twice")


def test_a_rename_is_stored_diagnosed_mapped_at_ingest_and_released(started, elec):
    project = started
    renamed = week(elec, 0).rename(columns={"nswdemand": "nswdemand_v2"})
    first = project.ingest(renamed, key="renamed").id  # stored, not refused
    assert project.cycle().quarantined == (first,)
    diagnosis = project.diagnosis(first)
    assert diagnosis["top"] == "upstream_change"
    assert diagnosis["fix"] == {"rename": {"nswdemand_v2": "nswdemand"}}
    with pytest.raises(NotFoundError, match="proposes no fix"):
        project.accept_fix(project.ingest(week(elec, 5), key="other").id)
    assert project.accept_fix(first, reason="producer v2") == diagnosis["fix"]
    assert project.fixes() == {"rename": {"nswdemand_v2": "nswdemand"}}
    later = week(elec, 1).rename(columns={"nswdemand": "nswdemand_v2"})
    second = project.ingest(later, key="renamed-2").id
    report = project.cycle()
    assert second not in report.quarantined
    assert project.release(first, "mapped by the accepted rename")["quality_alarms"] == []
    with project.store.session() as s:
        from retrainer.store.tables import BatchRow

        frame = project.batch_frame(s.get(BatchRow, first))
    assert "nswdemand" in frame and "nswdemand_v2" not in frame
    np.testing.assert_array_equal(frame["nswdemand"], week(elec, 0)["nswdemand"])


def test_the_command_line_explains_accepts_and_releases(tmp_path, elec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = {
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 5}},
    }
    if DATABASE_URL:
        settings["store"] = {"url": store_url(tmp_path)}
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    elec.iloc[:HISTORY].to_csv(tmp_path / "history.csv", index=False)
    scaled = week(elec, 0).assign(nswprice=lambda d: d["nswprice"] * 1000)
    scaled.to_csv(tmp_path / "scaled.csv", index=False)

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    assert run("ingest", "history.csv").exit_code == 0 and run("cycle").exit_code == 0
    assert run("ingest", "scaled.csv").exit_code == 0 and run("cycle").exit_code == 0
    text = run("explain").output
    assert "upstream change" in text and "nswprice" in text and "x1000" in text
    assert "retrainer accept-fix 2" in text
    data = json.loads(run("explain", "2", "--json").output)
    assert data["fix"] == {"scale": {"nswprice": 0.001}} and data["causes"][0]["blocking"]
    assert "scale:" in run("accept-fix", "2").output
    assert json.loads(run("release", "2", "--reason", "rescaled", "--json").output)["status"] == (
        "processed"
    )
    bad = run("release", "2", "--reason", "again")
    assert bad.exit_code == 2 and "not quarantined" in bad.output


def test_a_window_of_small_batches_reaches_back_to_its_min_rows(make_project, elec):
    def project_with(min_rows):  # the same store, another project file
        window = {"batches": 4, "min_rows": min_rows}
        trainer = {"estimator": "sklearn.tree.DecisionTreeClassifier", "window": window}
        return make_project(trainer={**trainer, "params": {"max_depth": 4}, "min_rows": 100})

    project = project_with(500)
    history = project.ingest(elec.iloc[:HISTORY], key="history").id
    small = [
        project.ingest(elec.iloc[HISTORY + 30 * i : HISTORY + 30 * (i + 1)], key=f"day{i}").id
        for i in range(6)
    ]
    assert window_ids(project) == [history, *small]  # 6 x 30 rows < 500: the history joins
    assert window_ids(project_with(150)) == small[-5:]  # the newest batches that hold 150 rows
    project = project_with(100)
    assert window_ids(project) == small[-4:]  # 120 rows: the window's 4 batches are enough
    project.request_retrain("small batches")
    project.cycle()
    with project.store.session() as s:
        run = s.scalars(select(RunRow).order_by(RunRow.id.desc())).first()
        assert run.window["batches"] == small[-4:] and run.window["rows"] == 120


def test_a_window_of_batches_and_days_takes_the_longer(make_project, elec):
    """The template's ``{batches: 4, days: 28}``: daily batches train on 28 days, not 4; with
    only ``days`` the days count alone; without a time column (a backlog arrives at one moment)
    the days are not read beside the batches."""

    def ids_with(window, **data):
        trainer = {"estimator": "sklearn.tree.DecisionTreeClassifier", "window": window}
        settings = {"target": "target", "id_column": "id", "time_column": "timestamp", **data}
        return window_ids(make_project(trainer=trainer, data=settings))

    project = make_project()
    days = [project.ingest(elec.iloc[48 * i : 48 * (i + 1)], key=f"day{i}").id for i in range(10)]
    assert ids_with({"batches": 4, "days": 7}) == days[-7:]
    assert ids_with({"batches": 4, "days": 2}) == days[-4:]
    assert ids_with({"days": 2}) == days[-2:]
    assert ids_with({"batches": 4, "days": 7}, time_column=None) == days[-4:]


def test_the_batch_before_is_the_newest_accepted_one_and_an_unreadable_one_is_none(
    make_project, elec
):
    """A series goes on from the last value of the newest batch before that was not
    quarantined; when that batch's rows cannot be read, there is no batch before (the rules
    judge the batch as they did before), and nothing fails."""
    from retrainer.diagnosis.loop import previous_last
    from retrainer.store.tables import BatchRow

    project = make_project()
    first = project.ingest(elec.iloc[:336], key="week 1").id
    second = project.ingest(elec.iloc[336:672], key="week 2").id
    third = project.ingest(elec.iloc[672:1008], key="week 3").id
    assert previous_last(project, third, ["nswprice"]) == {
        "nswprice": float(elec["nswprice"].iloc[671])
    }
    with project.store.session() as s:
        s.get(BatchRow, second).status = "quarantined"
        artifact = s.get(BatchRow, first).artifact
    assert previous_last(project, third, ["nswprice"]) == {
        "nswprice": float(elec["nswprice"].iloc[335])
    }
    project.artifacts.path(artifact).unlink()
    assert previous_last(project, third, ["nswprice"]) == {}
