"""The command line on real ELEC2 files: init, ingest, cycle, status, models, promote, rollback,
report; --json everywhere; errors exit with code 2 and a message."""

import json

import pytest
import yaml
from click.testing import CliRunner

from retrainer.cli import main
from tests.conftest import DATABASE_URL, store_url


@pytest.fixture
def workdir(tmp_path, elec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "batches").mkdir(parents=True)
    (tmp_path / "data" / "labels").mkdir(parents=True)
    elec.iloc[:1344].to_csv(tmp_path / "data" / "batches" / "000-history.csv", index=False)
    for week in range(1, 4):
        part = elec.iloc[1344 + (week - 1) * 336 : 1344 + week * 336]
        part.drop(columns="target").to_parquet(
            tmp_path / "data" / "batches" / f"{week:03d}.parquet"
        )
        part[["id", "target"]].to_csv(tmp_path / "data" / "labels" / f"{week:03d}.csv", index=False)
    return tmp_path


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def configure(path):
    settings = yaml.safe_load(path.read_text())
    settings["data"].update(
        target="target", id_column="id", time_column="timestamp", labels="data/labels"
    )
    settings["trainer"].update(
        estimator="sklearn.tree.DecisionTreeClassifier", params={"max_depth": 5}
    )
    if DATABASE_URL:
        settings["store"]["url"] = store_url(path.parent)
    path.write_text(yaml.safe_dump(settings))


def test_init_for_a_regression_writes_a_project_that_loads(workdir):
    from retrainer.errors import ConfigError
    from retrainer.project import Project

    assert invoke("init", "--task", "regression").exit_code == 0
    text = (workdir / "retrainer.yaml").read_text()
    assert "# drift detector on the champion's error stream" in text  # comments kept
    assert "task: regression           # or classification;" in text  # not "or regression"
    config = Project.from_yaml(workdir / "retrainer.yaml").config
    assert config.trainer.task == "regression" and config.gate.metric == "mae"
    assert config.trainer.estimator.endswith("HistGradientBoostingRegressor")
    assert config.checks.concept.detector == "PageHinkley"
    performance = next(t for t in config.policy.triggers if t.type == "performance")
    assert performance.max_drop == pytest.approx(0.1) and performance.relative_drop
    settings = yaml.safe_load(text)
    settings["policy"]["triggers"][4]["max_drop"] = "ten%"
    (workdir / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError, match="max_drop 'ten%' is no percentage"):
        Project.from_yaml(workdir / "retrainer.yaml")
    settings["policy"]["triggers"][4]["max_drop"] = "10%"
    settings["checks"]["concept"]["detector"] = "ddm"  # what init wrote before --task
    (workdir / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError, match="DDM reads a 0/1 error stream"):
        Project.from_yaml(workdir / "retrainer.yaml")


def test_the_whole_loop_from_the_command_line(workdir):
    assert invoke("init").exit_code == 0
    assert "target: label" in (workdir / "retrainer.yaml").read_text()
    assert invoke("init").exit_code == 2  # refuses to overwrite
    configure(workdir / "retrainer.yaml")

    result = invoke("ingest", "data/batches/000-history.csv", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["n_labelled"] == 1344

    first = json.loads(invoke("cycle", "--json").stdout)
    assert first["decision"]["action"] == "retrain" and first["champion"] == 1

    batches = json.loads(invoke("ingest", "data/batches", "--json").stdout)
    assert [b["new"] for b in batches] == [False, True, True, True]
    labels = json.loads(invoke("ingest", "--labels", "data/labels", "--json").stdout)
    assert sum(x["matched"] for x in labels) == 3 * 336

    invoke("retrain", "--reason", "testing the manual trigger")
    second = json.loads(invoke("cycle", "--json").stdout)
    assert second["decision"]["action"] == "retrain"
    assert any(r.startswith("manual") for r in second["decision"]["reasons"])
    assert len(second["evaluations"]) == 6  # three weeks, scored as champion and as baseline

    status = json.loads(invoke("status", "--json").stdout)
    assert status["batches"]["total"] == 4 and status["labelled_rows"] == 1344 + 3 * 336
    models = json.loads(invoke("models", "--json").stdout)
    assert [m["version"] for m in models] == [1, 2]

    human = invoke("models")
    assert "version" in human.output and human.exit_code == 0
    lines = human.output.splitlines()  # one line a version, in an 80-column terminal
    assert [line.split()[0] for line in lines[2:]] == ["1", "2"]
    assert max(map(len, lines)) <= 80 and "bootstrap" in lines[2]
    assert "champion" in invoke("status").output

    if status["champion"]["version"] == 2:
        assert json.loads(invoke("rollback", "--json").stdout)["version"] == 1
    assert json.loads(invoke("promote", "2", "--json").stdout)["version"] == 2
    report = json.loads(invoke("report", "--json").stdout)["report"]
    assert (workdir / "report.html").exists() and report.endswith("report.html")


def test_run_watches_the_source_and_stops(workdir):
    invoke("init")
    configure(workdir / "retrainer.yaml")
    settings = yaml.safe_load((workdir / "retrainer.yaml").read_text())
    settings["data"]["source"] = "data/batches"
    (workdir / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = invoke("run", "--interval", "0.01", "--max-cycles", "1", "--json")
    assert result.exit_code == 0, result.output
    cycle = json.loads(result.stdout)
    assert len(cycle["batches"]) == 1 and cycle["champion"] == 1  # a file a cycle, as live


def test_errors_exit_2_with_a_message(workdir):
    (workdir / "retrainer.yaml").write_text("data: {target: y}\ngate: {metric: nope}\n")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "gate.metric" in result.output
    invoke("init", "--force")
    configure(workdir / "retrainer.yaml")
    (workdir / "bad.csv").write_text("")
    result = CliRunner().invoke(main, ["ingest", "bad.csv"])
    assert result.exit_code == 2 and "bad.csv" in result.output
    assert CliRunner().invoke(main, ["promote", "7"]).exit_code == 2


def test_ctrl_c_stops_run_cleanly_between_steps(workdir):
    import signal
    import subprocess
    import sys
    import time

    invoke("init")
    configure(workdir / "retrainer.yaml")
    settings = yaml.safe_load((workdir / "retrainer.yaml").read_text())
    settings["data"]["source"] = "data/batches"
    # the 4 files in the first cycle, as before a file a cycle became the default: the signal
    # then lands in its steps on a loaded machine too (3 s were enough for 1 file of 4 there)
    settings["run"] = {"max_batches_per_cycle": 4}
    (workdir / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    command = [sys.executable, "-m", "retrainer.cli", "run", "--interval", "0.2", "--json"]
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (workdir / ".retrainer" / "store.db").exists():
        time.sleep(0.2)
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "stopped after" in err
    assert "Traceback" not in err
    from sqlalchemy import select

    from retrainer.project import Project
    from retrainer.store.tables import CycleRow

    project = Project.from_yaml(workdir / "retrainer.yaml")
    with project.store.session() as s:
        states = list(s.scalars(select(CycleRow.status)))
    assert "running" not in states  # the signal waited for the step to end
    assert project.status()["batches"]["total"] == 4
