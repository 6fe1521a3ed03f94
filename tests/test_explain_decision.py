"""`retrainer explain decision ID`: triggers fired and suppressed, evidence, reasons in words."""

import json

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer import views
from retrainer.backtest import first_periods
from retrainer.cli import main
from retrainer.errors import NotFoundError
from retrainer.replay import replay
from retrainer.store.tables import CheckRow, DecisionRow, RunRow
from tests.conftest import project_settings, store_url

POLICY = {
    "triggers": [
        {"type": "schedule", "every": "7d"},
        {"type": "concept"},
        {"type": "manual"},
    ],
    "cooldown": "14d",
}
CHECKS = {"concept": {"detector": "PageHinkley", "params": {"threshold": 1}}}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, elec):
    folder = tmp_path_factory.mktemp("explain")
    settings = project_settings(policy=POLICY, checks=CHECKS)
    settings["store"] = {"url": store_url(folder), "artifacts": str(folder / "artifacts")}
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    from retrainer.project import Project

    project = Project.from_yaml(folder / "retrainer.yaml")
    replay(project, first_periods(elec, "timestamp", "7D", 9))
    with project.store.session() as s:
        rows = [
            (d.id, d.cycle_id, d.action, list(d.reasons), list(d.suppressed))
            for d in s.scalars(select(DecisionRow).order_by(DecisionRow.id))
        ]
    return project, folder, rows


def test_a_retrain_lists_its_triggers_evidence_and_run(replayed):
    project, _, rows = replayed
    decision, cycle, _, reasons, _ = next(r for r in rows[1:] if r[2] == "retrain")
    got = views.decision_explanation(project, decision)
    assert got["decision"] == decision and got["cycle"] == cycle and got["action"] == "retrain"
    assert [f["reason"] for f in got["fired"]] == reasons
    assert [f["trigger"] for f in got["fired"]] == [r.split(":")[0] for r in reasons]
    with project.store.session() as s:
        run = s.scalars(select(RunRow).where(RunRow.decision_id == decision)).one()
        concept = s.scalars(
            select(CheckRow).where(CheckRow.cycle_id == cycle, CheckRow.kind == "concept")
        ).all()
        expected = [(c.batch_id, c.name, c.statistic, c.alarm) for c in concept]
        run_id, version = run.id, run.version
    assert got["run"]["run"] == run_id and got["run"]["version"] == version
    evidence = [
        (c["batch"], c["detector"], c["mean"], c["signalled"]) for c in got["evidence"]["concept"]
    ]
    assert evidence == expected
    assert got["words"].startswith(f"Retrain: {len(reasons)} reason(s)")
    assert f"Run {run_id}" in got["words"]
    json.dumps(got)


def test_a_hold_names_the_suppressed_triggers_and_what_held_them(replayed):
    project, _, rows = replayed
    held = [r for r in rows if r[2] == "hold" and any(x.startswith("cooldown") for x in r[3])]
    assert held, "a 7-day schedule under a 14-day cooldown must be held back"
    decision, _, _, reasons, suppressed = held[0]
    got = views.decision_explanation(project, decision)
    assert got["fired"] == [] and got["held_by"] == reasons and got["run"] is None
    assert [s["reason"] for s in got["suppressed"]] == suppressed
    assert {s["why"] for s in got["suppressed"]} == {"; ".join(reasons)}
    assert "schedule" in {s["trigger"] for s in got["suppressed"]}
    assert got["words"].startswith("Hold: ") and "cooldown" in got["words"]


def test_without_an_id_the_latest_decision_and_unknown_ids_fail_clearly(replayed):
    project, _, rows = replayed
    assert views.decision_explanation(project)["decision"] == rows[-1][0]
    with pytest.raises(NotFoundError, match="no decision 9999"):
        views.decision_explanation(project, 9999)


def test_the_command_line_explains_decisions_and_still_batches(replayed):
    project, folder, rows = replayed
    config = str(folder / "retrainer.yaml")
    decision = next(r for r in rows[1:] if r[2] == "retrain")[0]

    def run(*args):
        return CliRunner().invoke(main, ["-c", config, *args])

    data = json.loads(run("explain", "decision", str(decision), "--json").output)
    assert data == json.loads(json.dumps(views.decision_explanation(project, decision)))
    text = run("explain", "decision", str(decision)).output
    assert f"decision {decision}" in text and "fired" in text and "Retrain:" in text
    assert json.loads(run("explain", "decision", "--json").output)["decision"] == rows[-1][0]
    batch = json.loads(run("explain", "3", "--json").output)
    assert batch["batch"] == 3 and batch == json.loads(
        run("explain", "batch", "3", "--json").output
    )
    bad = run("explain", "decision", "x")
    assert bad.exit_code == 2 and "retrainer explain decision [ID]" in bad.output
    missing = run("explain", "decision", "9999")
    assert missing.exit_code == 2 and "no decision 9999" in missing.output
