"""A serving system's own predictions: joined to stored batches by id (posted later or sent in
the batch), idempotent, checked, and scored against the labels next to the champion's."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import accuracy_score

from retrainer.cli import main
from retrainer.errors import DataError, NotFoundError
from retrainer.store.tables import PredictionSetRow
from tests.conftest import project_settings, store_url

WEEK = 336


@pytest.fixture
def project(make_project, elec):
    """A champion trained on four weeks; week 5 arrives without labels."""
    project = make_project()
    project.ingest(elec.iloc[: 4 * WEEK], key="history")
    project.cycle()
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK].drop(columns="target"), key="week-5")
    return project


def week5(elec):
    return elec.iloc[4 * WEEK : 5 * WEEK]


def served_by_a_rule(elec):
    """What a simple serving rule predicted for week 5: the previous half-hour's label."""
    rows = week5(elec)
    return rows[["id"]].assign(prediction=elec["target"].shift(1).iloc[rows.index].to_numpy())


def scored(project, cycle):
    return {e["role"]: e for e in cycle.evaluations}


def test_posted_predictions_are_scored_on_the_rows_served(project, elec):
    served = served_by_a_rule(elec).iloc[::2]  # the serving log covers every second row
    strangers = served.head(3).assign(id=[-1, -2, -3])
    report = project.ingest_predictions(pd.concat([served, strangers]), key="log-1")
    assert (report.matched, report.unmatched, report.batches) == (len(served), 3, (2,))
    assert report.version == project.champion.version == 1
    again = project.ingest_predictions(pd.concat([served, strangers]), key="log-1")
    assert again.new is False and again.matched == 0
    project.ingest_labels(week5(elec)[["id", "target"]], key="labels-5")
    by_role = scored(project, project.cycle())
    truth = week5(elec).set_index("id").loc[served["id"], "target"].to_numpy()
    assert by_role["serving"]["n"] == len(served)
    assert by_role["serving"]["value"] == pytest.approx(accuracy_score(truth, served["prediction"]))
    assert by_role["champion"]["n"] == WEEK  # the champion's own predictions: every row


def test_a_second_log_adds_rows_and_keeps_the_first_prediction(project, elec):
    served = served_by_a_rule(elec)
    project.ingest_predictions(served.iloc[:100], key="a")
    flipped = served.iloc[50:200].assign(prediction=1 - served["prediction"].iloc[50:200])
    project.ingest_predictions(flipped, key="b")
    with project.store.session() as s:
        (pset,) = s.query(PredictionSetRow).filter_by(role="serving").all()
        table = project.artifacts.get_frame(pset.artifact)
    assert table["row"].tolist() == list(range(200))
    expected = np.concatenate([served["prediction"].iloc[:100], flipped["prediction"].iloc[50:]])
    assert table["prediction"].to_numpy() == pytest.approx(expected)


def test_a_batch_can_carry_its_served_prediction(make_project, elec):
    project = make_project(
        data={
            "target": "target",
            "id_column": "id",
            "time_column": "timestamp",
            "prediction": "served",
        }
    )
    project.ingest(elec.iloc[: 4 * WEEK], key="history")
    project.cycle()
    rows = week5(elec)
    served = served_by_a_rule(elec)["prediction"].to_numpy()
    project.ingest(rows.drop(columns="target").assign(served=served), key="week-5")
    project.ingest_labels(rows[["id", "target"]], key="labels-5")
    by_role = scored(project, project.cycle())
    assert by_role["serving"]["n"] == WEEK
    assert by_role["serving"]["value"] == pytest.approx(accuracy_score(rows["target"], served))
    assert "served" not in project.features()


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t: t.drop(columns="prediction"), r"missing column\(s\) \['prediction'\]"),
        (lambda t: t.assign(id=1), "id 1 appears more than once"),
        (lambda t: t.assign(score=1.5), r"'score' must be a probability in \[0, 1\] \(row 0\)"),
        (lambda t: t.assign(prediction=np.nan), "column 'prediction' is empty in row 0"),
        (
            lambda t: t.assign(**{"score:0": 0.4, "score:1": 0.6}),
            r"v1 is no multi-class model; its served score is one column, 'score'",
        ),
    ],
)
def test_bad_predictions_are_refused_by_name(project, elec, change, message):
    with pytest.raises(DataError, match=message):
        project.ingest_predictions(change(served_by_a_rule(elec)), source="serving.csv")


def test_an_unknown_serving_version_is_refused(project, elec):
    with pytest.raises(NotFoundError, match="model version 9 does not exist"):
        project.ingest_predictions(served_by_a_rule(elec), version=9)


def test_the_command_line_ingests_served_predictions(project, elec, tmp_path, monkeypatch):
    settings = project_settings(store={"url": store_url(tmp_path), "artifacts": "artifacts"})
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    served_by_a_rule(elec).to_csv(tmp_path / "served.csv", index=False)
    monkeypatch.chdir(tmp_path)
    args = ["ingest", "--predictions", "served.csv", "--version", "1", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert (report["matched"], report["version"]) == (WEEK, 1)
