"""Quarantine per batch, conditions that persist, and the "retraining held back" line."""

import html

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer import views
from retrainer.cli import main
from retrainer.project import Project
from retrainer.quarantine import held_back
from retrainer.service.dashboard import overview
from retrainer.store.tables import BatchRow, EventRow
from tests.conftest import project_settings, store_url

WEEK = 48 * 7


def _broken(elec, week):
    frame = elec.iloc[week * WEEK : (week + 1) * WEEK].copy()
    frame.loc[frame.index[::3], "nswdemand"] = float("nan")
    return frame


@pytest.fixture
def started(tmp_path, elec):
    def make(**quarantine):
        trainer = project_settings()["trainer"] | {"window": {"batches": 20}}
        settings = project_settings(trainer=trainer, quarantine=quarantine)
        settings["store"]["url"] = store_url(tmp_path)
        (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
        project = Project.from_yaml(tmp_path / "retrainer.yaml")
        project.ingest(elec.iloc[: 4 * WEEK], key="history")
        assert project.cycle().champion == 1
        return project

    return make


def _statuses(project):
    with project.store.session() as s:
        return {b.id: b.status for b in s.scalars(select(BatchRow))}


def test_a_persisting_condition_alerts_once_and_says_how_long_retraining_is_held_back(
    started, elec, tmp_path
):
    project = started(persist_batches=3, on_persist="alert")
    ids = [project.ingest(_broken(elec, 4 + i), key=f"broken-{i}").id for i in range(4)]
    report = project.cycle()
    assert report.quarantined == tuple(ids)
    with project.store.session() as s:
        alerts = s.scalars(select(EventRow).where(EventRow.kind == "alert")).all()
        assert len(alerts) == 1 and "persisted for 3 consecutive batches" in alerts[0].message
        assert alerts[0].data["batches"] == ids[:3]
    held = held_back(project)
    assert held["batches"] == 4 and held["first_batch"] == ids[0]
    assert held["by"] == ["data_quality: nulls (column 'nswdemand')"]
    since = elec["timestamp"].iloc[5 * WEEK - 1].date().isoformat()  # the first one's data time
    assert held["line"].startswith(f"Retraining held back for 4 batches (since {since}, batch 2)")
    assert views.status(project)["held_back"] == held
    shown = CliRunner().invoke(main, ["--config", str(tmp_path / "retrainer.yaml"), "status"])
    assert "".join(held["line"].split()) in "".join(shown.output.split())  # wrapped to the screen
    assert html.escape(held["line"]) in project.report(tmp_path / "report.html").read_text()
    assert held["line"] in overview(project)["health"]["words"]
    fresh = views.freshness(project)  # the overview's one sentence says it too
    assert fresh["state"] == "held" and fresh["sentence"].startswith(
        f"Retraining is held back by 4 quarantined batch(es) in a row since {since} "
        "(data_quality: nulls (column 'nswdemand'))"
    )
    project.ingest(elec.iloc[8 * WEEK : 9 * WEEK], key="clean")
    project.cycle()
    assert held_back(project) is None  # the newest batch was trained on
    assert views.freshness(project)["state"] == "fresh"


def test_a_clean_batch_breaks_the_streak(started, elec):
    project = started(persist_batches=3, on_persist="adopt")
    project.ingest(_broken(elec, 4), key="broken-0")
    project.ingest(_broken(elec, 5), key="broken-1")
    project.ingest(elec.iloc[6 * WEEK : 7 * WEEK], key="clean")
    project.ingest(_broken(elec, 7), key="broken-2")
    report = project.cycle()
    assert len(report.quarantined) == 3  # never 3 in a row: nothing adopted
    assert held_back(project)["batches"] == 1


def test_an_adopted_condition_releases_its_batches_and_retrains_on_them(started, elec):
    project = started(persist_batches=3, on_persist="adopt")
    ids = [project.ingest(_broken(elec, 4 + i), key=f"broken-{i}").id for i in range(4)]
    report = project.cycle()
    assert report.quarantined == tuple(ids[:2])  # reported as set aside when checked
    assert set(_statuses(project).values()) == {"processed"}  # the first two were released
    assert report.decision["action"] == "retrain"
    assert any("as the new normal" in r for r in report.decision["reasons"])
    assert set(ids) <= set(report.run["window"]["batches"])
    assert held_back(project) is None
    assert project.get_state("quarantine")["adopted"] == {}  # the new champion's reference has it
