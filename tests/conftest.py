"""Shared fixtures: real ELEC2 data and a project on an SQLite file in a temporary folder."""

import pytest

from retrainer.datasets import load_elec2
from retrainer.project import Project


@pytest.fixture(scope="session")
def elec():
    return load_elec2()


def project_settings(**overrides):
    settings = {
        "project": "test",
        "store": {"url": "sqlite:///store.db", "artifacts": "artifacts"},
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 6, "random_state": 0},
            "window": {"batches": 4},
            "min_rows": 200,
        },
        "policy": {
            "triggers": [
                {"type": "schedule", "every": "14d"},
                {"type": "drift"},
                {"type": "concept"},
                {"type": "manual"},
            ],
            "cooldown": "7d",
        },
        "gate": {"metric": "accuracy", "tolerance": 0.01},
    }
    for key, value in overrides.items():
        settings[key] = value
    return settings


@pytest.fixture
def make_project(tmp_path):
    def make(**overrides):
        return Project.from_dict(project_settings(**overrides), root=tmp_path)

    return make
