"""Promoting a version that failed its gate needs force, and the refusal says why it failed;
the CLI, the Python API and the REST route behave alike."""

import json

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from retrainer.cli import main
from retrainer.errors import GateFailedError
from retrainer.project import Project
from retrainer.service import create_app
from retrainer.service.auth import create_token
from tests.conftest import project_settings, store_url

WHY = "cannot export KNeighborsClassifier"


@pytest.fixture
def rejected(tmp_path, elec):
    """A project whose only version failed its gate (its model cannot run on the target)."""
    settings = project_settings(
        deploy_targets={"cortex-m4f": {"flash_kb": 256, "ram_kb": 64, "min_agreement": 0.99}},
        trainer={
            "estimator": "sklearn.neighbors.KNeighborsClassifier",
            "params": {"n_neighbors": 5},
            "min_rows": 200,
        },
    )
    settings["store"]["url"] = store_url(tmp_path)
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    project.ingest(elec.iloc[:1344], key="history")
    assert project.cycle().run["status"] == "rejected"
    assert project.champion is None and project.registry.get(1).metrics["gate_passed"] is False
    return project


def test_the_python_api_refuses_without_force_and_says_why(rejected):
    with pytest.raises(GateFailedError, match=WHY) as refused:
        rejected.promote(1)
    assert "--force" in str(refused.value) and "target cortex-m4f" in str(refused.value)
    assert rejected.champion is None
    assert rejected.promote(1, force=True, reason="tested by hand").version == 1
    assert rejected.champion.version == 1


def test_the_cli_needs_force(rejected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(main, ["promote", "1"])
    assert refused.exit_code == 2
    said = " ".join(refused.output.split())  # the console wraps long lines
    assert WHY in said and "--force" in said
    assert rejected.champion is None
    done = CliRunner().invoke(main, ["promote", "1", "--force"])
    assert done.exit_code == 0, done.output
    assert "champion is now v1 (forced past its failed gate)" in done.output
    assert rejected.champion.version == 1
    again = CliRunner().invoke(main, ["promote", "1", "--force", "--json"])
    assert json.loads(again.stdout)["version"] == 1


def test_the_rest_route_answers_409_without_force(rejected):
    _, token = create_token(rejected.store, "writer", scope="write")
    client = TestClient(create_app(rejected, allowed_hosts=["testserver"]))
    auth = {"Authorization": f"Bearer {token}"}
    refused = client.post("/api/promote", json={"version": 1}, headers=auth)
    assert refused.status_code == 409 and WHY in refused.json()["detail"]
    assert rejected.champion is None
    done = client.post("/api/promote", json={"version": 1, "force": True}, headers=auth)
    assert done.status_code == 200 and rejected.champion.version == 1
    assert rejected.registry.history()[-1]["actor"] == "token:writer"


def test_a_version_that_passed_needs_no_force(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    assert project.registry.get(1).metrics["gate_passed"] is True
    assert project.promote(1).version == 1
