"""Challengers on a Dask LocalCluster: one task each, the best by validation metric, and models
identical to the ones trained in this process (ELEC2, scikit-learn as the reference)."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import accuracy_score
from sklearn.tree import DecisionTreeClassifier

from retrainer.cli import main
from retrainer.compute import challengers, select_challenger, train_challenger
from retrainer.config import Config, TrainerSettings
from retrainer.datasets import ELEC2_FEATURES
from retrainer.errors import ConfigError, TrainingError
from retrainer.project import Project
from retrainer.training import Trainer
from tests.conftest import project_settings, store_url

distributed = pytest.importorskip("distributed")

TREE = "sklearn.tree.DecisionTreeClassifier"
GRID = {"max_depth": [1, 3, 12], "min_samples_leaf": [1, 50]}


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes: models and frames really cross process boundaries."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def window(elec):
    rows = elec.iloc[:4000]
    return rows[ELEC2_FEATURES], rows["target"]


def _settings(**extra) -> TrainerSettings:
    return TrainerSettings(estimator=TREE, params={"random_state": 0}, **extra)


def _sklearn_scores(X, y, validation=0.2):
    """Each grid point fitted by scikit-learn on the first 80 % and scored on the last 20 %."""
    n_val = round(len(X) * validation)
    scores = []
    for depth in GRID["max_depth"]:
        for leaf in GRID["min_samples_leaf"]:
            tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf, random_state=0)
            tree.fit(X.iloc[:-n_val], y.iloc[:-n_val])
            scores.append(accuracy_score(y.iloc[-n_val:], tree.predict(X.iloc[-n_val:])))
    return scores


def test_the_challengers_are_the_grid_then_the_candidates():
    settings = _settings(
        search=GRID,
        candidates=[{"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 2}}],
    )
    found = challengers(settings)
    assert len(found) == 7
    assert [t.params for t in found[:2]] == [
        {"random_state": 0, "max_depth": 1, "min_samples_leaf": 1},
        {"random_state": 0, "max_depth": 1, "min_samples_leaf": 50},
    ]
    assert found[-1] == Trainer("sklearn.linear_model.LogisticRegression", {"C": 2})
    assert challengers(_settings()) == [Trainer(TREE, {"random_state": 0})]


def test_the_grid_picks_the_best_validation_score(window):
    X, y = window
    picked = select_challenger(challengers(_settings(search=GRID)), X, y, metric="accuracy")
    expected = _sklearn_scores(X, y)
    assert picked.scores == pytest.approx(expected, abs=1e-12)
    best = int(np.argmax(expected))
    assert picked.to_dict()["winner"] == best
    assert expected[best] > min(expected) + 0.02  # the choice matters on this window
    # the winner is refitted on all the training rows
    reference = DecisionTreeClassifier(**picked.trainer.params).fit(X, y)
    assert (picked.model.predict(X) == reference.predict(X)).all()
    assert picked.backend == "local"


def test_a_loss_metric_picks_the_smallest(window):
    X, y = window
    trainers = [Trainer("sklearn.dummy.DummyRegressor"), Trainer("sklearn.linear_model.Ridge")]
    picked = select_challenger(trainers, X, y.astype(float), metric="mae")
    assert picked.scores[1] < picked.scores[0]
    assert picked.trainer.estimator == "sklearn.linear_model.Ridge"


def test_on_the_cluster_one_task_per_challenger_and_the_same_choice(client, window):
    X, y = window
    trainers = challengers(_settings(search=GRID))
    local = select_challenger(trainers, X, y, metric="accuracy")
    with distributed.get_task_stream(client) as stream:
        remote = select_challenger(trainers, X, y, metric="accuracy", client=client)
    keys = [str(task["key"]) for task in stream.data]
    assert sum("_score" in k for k in keys) == len(trainers) == 6
    assert sum("_fit" in k for k in keys) == 1  # the winner's refit
    assert len({task["worker"] for task in stream.data}) == 2  # both workers got tasks
    assert remote.backend == "dask"
    assert remote.scores == local.scores
    assert remote.trainer == local.trainer
    assert (remote.model.predict(X) == local.model.predict(X)).all()


def test_a_failing_challenger_is_recorded_and_skipped(window):
    X, y = window
    trainers = [Trainer(TREE, {"max_depth": 2}), Trainer(TREE, {"no_such_param": 1})]
    picked = select_challenger(trainers, X, y, metric="accuracy")
    assert picked.trainer == trainers[0]
    assert picked.scores[1] is None
    assert "refused them" in picked.errors[1]
    with pytest.raises(TrainingError, match="every challenger failed"):
        select_challenger(trainers[1:] * 2, X, y, metric="accuracy")


def test_compute_settings_are_validated():
    with pytest.raises(ConfigError) as caught:
        Config.from_dict(
            {
                "data": {"target": "y"},
                "trainer": {"estimator": TREE, "search": {"max_depth": [], "criterion": ["gini"]}},
                "compute": {"scheduler": "tcp://scheduler:8786"},
            }
        )
    text = str(caught.value)
    assert "trainer.search: give at least one value to try for max_depth" in text
    assert "compute: 'scheduler' needs 'backend: dask'" in text
    with pytest.raises(ConfigError, match="compute.workers: Input should be greater"):
        Config.from_dict({"data": {"target": "y"}, "compute": {"backend": "dask", "workers": 0}})
    with pytest.raises(ConfigError, match="the grid has 81 points; at most 64"):
        grid = {name: [1, 2, 3] for name in ("a", "b", "c", "d")}
        Config.from_dict({"data": {"target": "y"}, "trainer": {"estimator": TREE, "search": grid}})
    config = Config.from_dict({"data": {"target": "y"}})
    assert (config.compute.backend, config.compute.scheduler) == ("local", None)


def _trained_project(make_project, elec, **compute):
    project = make_project(
        trainer={
            "estimator": TREE,
            "params": {"random_state": 0},
            "search": {"max_depth": [2, 8]},
            "window": {"batches": 4},
            "min_rows": 200,
        },
        compute=compute,
    )
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    return project


def test_a_cluster_trained_champion_predicts_like_a_local_one(
    cluster, make_project, elec, tmp_path_factory
):
    remote = _trained_project(
        make_project, elec, backend="dask", scheduler=cluster.scheduler_address
    )
    from retrainer.project import Project

    local_settings = project_settings(
        trainer=remote.config.trainer.model_dump(), compute={"backend": "local"}
    )
    local = Project.from_dict(local_settings, root=tmp_path_factory.mktemp("local"))
    local.ingest(elec.iloc[:1344], key="history")
    local.cycle()
    assert remote.champion is not None and local.champion is not None
    lineage = remote.champion.lineage
    assert lineage["challengers"]["backend"] == "dask"
    assert local.champion.lineage["challengers"]["backend"] == "local"
    assert (
        lineage["challengers"]["challengers"]
        == local.champion.lineage["challengers"]["challengers"]
    )
    winner = lineage["challengers"]["winner"]
    scores = [c["score"] for c in lineage["challengers"]["challengers"]]
    assert winner == int(np.argmax(scores))
    assert lineage["trainer"]["params"]["max_depth"] == [2, 8][winner]
    rows = elec.iloc[1344:3000][ELEC2_FEATURES]
    # both champions come back from the registry's skops artifacts
    a, b = remote.load_model().predict(rows), local.load_model().predict(rows)
    assert (a == b).all()
    assert len(set(a)) == 2


def test_train_challenger_starts_a_local_cluster_when_no_scheduler(window):
    X, y = window
    config = Config.from_dict(
        {
            "data": {"target": "target"},
            "trainer": {"estimator": TREE, "params": {"max_depth": 3, "random_state": 0}},
            "compute": {"backend": "dask", "workers": 1},
        }
    )
    picked = train_challenger(config, X, y)
    assert picked.backend == "dask"
    reference = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    assert (picked.model.predict(X) == reference.predict(X)).all()


def test_cycle_on_a_scheduler_from_the_command_line(cluster, elec, tmp_path):
    settings = project_settings()
    settings["store"]["url"] = store_url(tmp_path)
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    Project.from_yaml(tmp_path / "retrainer.yaml").ingest(elec.iloc[:1344], key="history")
    args = ["-c", str(tmp_path / "retrainer.yaml"), "cycle", "--json"]
    result = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"]["status"] == "succeeded"
    champion = Project.from_yaml(tmp_path / "retrainer.yaml").champion
    assert champion.lineage["challengers"]["backend"] == "dask"
