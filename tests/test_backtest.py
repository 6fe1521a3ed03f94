"""Backtest of policies through the live loop, and the loop's concept checks and estimates."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import accuracy_score, mean_squared_error
from sqlalchemy import select

from retrainer.backtest import backtest, first_periods, load_policy
from retrainer.errors import ConfigError
from retrainer.project import Project
from retrainer.store.tables import CheckRow, PredictionSetRow, StateRow

SETTINGS = {
    "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    "trainer": {
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 6, "random_state": 0},
        "window": {"batches": 4},
        "min_rows": 200,
    },
    "checks": {"concept": {"detector": "PageHinkley", "params": {"threshold": 20}}},
    "gate": {"metric": "accuracy", "tolerance": 0.01},
}
WATCHED = {
    "policy": {
        "triggers": [
            {"type": "concept"},
            {"type": "performance", "source": "estimated", "max_drop": 0.05},
        ],
        "dedup": "21d",
        "budget": {"max_retrains": 1, "per": "14d"},
    },
    "checks": {"concept": {"detector": "DDM", "arl": 500}},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory, elec):
    folder = tmp_path_factory.mktemp("backtest")
    frame = first_periods(elec, "timestamp", "7D", 10)
    out = backtest(frame, SETTINGS, {"watched": WATCHED}, folder=folder, plot=folder / "bt.png")
    return out, folder, frame


def open_store(folder, name, checks=None):
    settings = dict(SETTINGS, checks=checks or SETTINGS["checks"])
    settings["store"] = {"url": f"sqlite:///{folder / name / 'store.db'}", "artifacts": "artifacts"}
    return Project.from_dict(settings, root=folder / name)


def test_every_policy_is_ranked_with_its_numbers(result):
    out, folder, _ = result
    names = [p.name for p in out.policies]
    assert names == ["every 14d", "never", "watched"]
    table = out.table()
    values = [row["accuracy"] for row in table]
    assert values == sorted(values, reverse=True) and [r["rank"] for r in table] == [1, 2, 3]
    by_name = {p.name: p for p in out.policies}
    assert by_name["never"].retrains == 0 and by_name["every 14d"].retrains >= 3
    for p in out.policies:
        assert p.promoted + p.led_nowhere == p.retrains
        assert len(p.series) == out.batches - 1  # every streamed week is scored
    assert (folder / "bt.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps(out.to_dict())


def test_never_is_the_first_model_scored_by_scikit_learn(result, elec):
    out, folder, frame = result
    project = open_store(folder, "every-14d")
    model = project.load_model(1)
    scored = frame[frame["timestamp"] >= frame["timestamp"].min() + np.timedelta64(28, "D")]
    features = project.features(scored)
    expected = accuracy_score(scored["target"], model.predict(scored[features]))
    never = next(p for p in out.policies if p.name == "never")
    assert never.mean == pytest.approx(expected)


def test_the_loop_records_concept_checks_and_estimates(result):
    out, folder, _ = result
    project = open_store(folder, "watched", WATCHED["checks"])
    with project.store.session() as s:
        concept = s.scalars(select(CheckRow).where(CheckRow.kind == "concept")).all()
        estimated = s.scalars(select(CheckRow).where(CheckRow.name == "accuracy_estimated")).all()
        state = s.get(StateRow, "detector").value
        champion_sets = s.scalars(
            select(PredictionSetRow).where(PredictionSetRow.role == "champion")
        ).all()
        details = [(c.batch_id, dict(c.detail), c.statistic, c.alarm) for c in concept]
        estimates = [dict(e.detail) for e in estimated]
    assert state["detector"] == "DDM"
    assert len(details) == len(champion_sets)  # one concept check per scored champion batch
    for _, detail, statistic, alarm in details:
        assert detail["stream"] == "error" and alarm == bool(detail["positions"])
        assert 0 <= statistic <= 1
    assert len(estimates) == out.batches - 1 and {e["role"] for e in estimates} == {"estimated"}
    assert all(e["lower"] <= e["value"] <= e["upper"] for e in estimates)
    for version in project.models:
        assert version.metrics["estimator"]["method"] == "cbpe"
        assert project.artifacts.exists(version.metrics["estimator"]["artifact"])
        assert version.metrics["concept"]["detector"] == "DDM"
        assert version.metrics["concept"]["arl"] >= 500


def test_the_concept_check_reads_the_stored_errors(result):
    _, folder, _ = result
    project = open_store(folder, "every-14d")
    with project.store.session() as s:
        rows = s.execute(
            select(CheckRow, PredictionSetRow)
            .join(PredictionSetRow, PredictionSetRow.batch_id == CheckRow.batch_id)
            .where(CheckRow.kind == "concept", PredictionSetRow.role == "champion")
        ).all()
        pairs = [(c.statistic, c.name, p.artifact, p.batch_id) for c, p in rows]
        from retrainer.store.tables import BatchRow

        frames = {b: project.batch_frame(s.get(BatchRow, b)) for *_, b in pairs}
    assert pairs
    for statistic, name, artifact, batch in pairs:
        predicted = project.artifacts.get_frame(artifact)["prediction"]
        error = 1 - accuracy_score(frames[batch]["target"], predicted)
        assert name == "PageHinkley" and statistic == pytest.approx(error)


def test_policy_files_are_validated_and_named(tmp_path):
    good = tmp_path / "calm.yaml"
    good.write_text(yaml.safe_dump({"policy": {"triggers": [{"type": "drift"}]}, "project": "x"}))
    assert load_policy(good) == ("calm", {"policy": {"triggers": [{"type": "drift"}]}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("triggers: [{type: sometimes}]\n")
    with pytest.raises(ConfigError, match="policy.triggers.0.type"):
        load_policy(bad)


@pytest.mark.slow
def test_regression_feeds_the_squared_error_to_adwin_and_estimates_rmse(make_project, elec):
    from retrainer.replay import replay

    project = make_project(
        data={"target": "nswdemand", "id_column": "id", "time_column": "timestamp"},
        trainer={
            "estimator": "sklearn.linear_model.Ridge",
            "task": "regression",
            "window": {"batches": 4},
            "min_rows": 200,
        },
        checks={"concept": {"detector": "ADWIN", "loss": "squared"}},
        gate={"metric": "rmse", "tolerance": 0.01},
    )
    frame = first_periods(elec.drop(columns=["target"]), "timestamp", "7D", 7)
    replay(project, frame)
    with project.store.session() as s:
        concept = s.scalars(select(CheckRow).where(CheckRow.kind == "concept")).all()
        estimated = s.scalars(select(CheckRow).where(CheckRow.name == "rmse_estimated")).all()
        checks = [(c.name, c.statistic, c.batch_id) for c in concept]
        sets = {
            p.batch_id: p.artifact
            for p in s.scalars(select(PredictionSetRow).where(PredictionSetRow.role == "champion"))
        }
        from retrainer.store.tables import BatchRow

        frames = {b: project.batch_frame(s.get(BatchRow, b)) for _, _, b in checks}
        assert estimated and all(e.detail["method"] == "dle" for e in estimated)
    for name, statistic, batch in checks:
        predicted = project.artifacts.get_frame(sets[batch])["prediction"]
        assert name == "ADWIN"
        assert statistic == pytest.approx(mean_squared_error(frames[batch]["nswdemand"], predicted))


@pytest.mark.slow
def test_cli_backtest_prints_the_table_as_json(tmp_path, elec):
    config = tmp_path / "retrainer.yaml"
    config.write_text(yaml.safe_dump(SETTINGS | {"policy": {"triggers": [{"type": "concept"}]}}))
    data = tmp_path / "history.csv"
    first_periods(elec, "timestamp", "7D", 7).to_csv(data, index=False)
    policy = tmp_path / "drift.yaml"
    policy.write_text("triggers: [{type: drift}]\ncooldown: 7d\n")
    from retrainer.cli import main

    args = ["-c", str(config), "backtest", "--policies", str(policy), "--data", str(data)]
    args += ["--out", str(tmp_path / "out"), "--json"]
    outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == 0, outcome.output
    table = json.loads(outcome.output)["table"]
    assert {r["policy"] for r in table} == {"every 14d", "never", "configured", "drift"}
    assert (tmp_path / "out" / "backtest.png").exists()
