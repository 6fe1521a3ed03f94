"""registry.backend mlflow, against a real MLflow tracking server on loopback (SQLite backend).

The server is started once per session (``mlflow server`` with its store and artifacts in a
temporary folder); every test uses a registered model of its own. Skipped without MLflow
(``pip install 'retrainer[mlflow]'``).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer.cli import main
from retrainer.config import Config
from retrainer.datasets import ELEC2_FEATURES
from retrainer.errors import ConfigError
from retrainer.project import Project
from retrainer.replay import replay
from retrainer.store.tables import DecisionRow, EventRow, RunRow
from tests.conftest import project_settings, store_url

mlflow = pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers share its process group: stopped together
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log')}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def fast_failing(monkeypatch):
    """MLflow's HTTP client retries a refused connection for minutes by default."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def _client(uri):
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _project(tmp_path, uri, name):
    settings = project_settings(registry={"backend": "mlflow", "tracking_uri": uri})
    settings["project"] = name
    settings["store"]["url"] = store_url(tmp_path)
    return Project.from_dict(settings, root=tmp_path)


def _by_version(client, name):
    versions = client.search_model_versions(f"name='{name}'")
    return {int(v.tags["retrainer.version"]): v for v in versions}


def _champion_of(client, name) -> int:
    return int(client.get_model_version_by_alias(name, "champion").tags["retrainer.version"])


# ------------------------------------------------------------------------- project file


def test_backend_mlflow_needs_a_tracking_uri():
    with pytest.raises(ConfigError, match="registry: backend mlflow needs tracking_uri"):
        Config.from_dict({"data": {"target": "y"}, "registry": {"backend": "mlflow"}})


def test_backend_mlflow_without_mlflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'retrainer\[mlflow\]'"):
        Config.from_dict(
            {"data": {"target": "y"}, "registry": {"backend": "mlflow", "tracking_uri": "x"}}
        )


def test_the_model_name_defaults_to_the_project_name(tmp_path):
    project = _project(tmp_path, "http://127.0.0.1:9", "churn")
    assert project.registry.mirror.model_name == "churn"
    assert Project.from_dict(project_settings(), root=tmp_path).registry.mirror is None


# ------------------------------------------------------------------------- mirroring


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, tracking_uri, elec):
    name = f"elec-{uuid.uuid4().hex[:8]}"
    project = _project(tmp_path_factory.mktemp("mirrored"), tracking_uri, name)
    replay(project, elec.iloc[: 48 * 7 * 11])  # 4 weeks of history, then 7 weekly cycles
    return project, name


def test_every_finished_run_is_an_mlflow_run_with_window_gate_and_reasons(mirrored, tracking_uri):
    project, name = mirrored
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    logged = {
        int(r.data.tags["retrainer.run_id"]): r
        for r in client.search_runs([experiment.experiment_id], max_results=1000)
    }
    with project.store.session() as s:
        runs = s.scalars(select(RunRow).order_by(RunRow.id)).all()
        reasons = {r.id: s.get(DecisionRow, r.decision_id).reasons for r in runs}
    assert len(runs) >= 2 and sorted(logged) == [r.id for r in runs]
    for run in runs:
        mlrun = logged[run.id].data
        assert mlrun.tags["retrainer.status"] == run.status
        assert mlrun.tags["retrainer.reasons"] == "; ".join(reasons[run.id])
        assert mlrun.tags["retrainer.reason.1"] == reasons[run.id][0]
        assert logged[run.id].info.status == "FINISHED"
        assert int(mlrun.params["window.rows"]) == run.window["rows"]
        assert int(mlrun.params["window.batches"]) == len(run.window["batches"])
        assert mlrun.params["window.to"] == run.window["to"]
        assert "drift.alarms" in mlrun.metrics
        gate = run.metrics["gate"]
        if gate and gate["challenger"] is not None:
            assert mlrun.metrics["gate.challenger"] == pytest.approx(gate["challenger"])
            assert mlrun.tags["retrainer.gate_passed"] == str(gate["passed"]).lower()
        if run.version:
            assert mlrun.params["trainer.estimator"] == "sklearn.tree.DecisionTreeClassifier"
            assert mlrun.params["trainer.params.max_depth"] == "6"


def test_every_version_is_an_mlflow_version_and_champion_follows(mirrored, tracking_uri, elec):
    project, name = mirrored
    client = _client(tracking_uri)
    mirrored_versions = _by_version(client, name)
    assert sorted(mirrored_versions) == [v.version for v in project.models]
    for version in project.models:
        assert mirrored_versions[version.version].tags["retrainer.artifact"] == version.artifact
    assert _champion_of(client, name) == project.champion.version


def test_a_server_loading_champion_predicts_what_retrainer_champion_predicts(
    mirrored, tracking_uri, elec, monkeypatch
):
    project, name = mirrored
    # MLflow 3 asks for this flag before deserializing any format, skops included
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = elec.iloc[48 * 7 * 11 : 48 * 7 * 12][project.features()]
    expected = project.load_model().predict(rows)
    np.testing.assert_array_equal(np.asarray(served.predict(rows)), expected)
    flavour = served.metadata.flavors["sklearn"]
    assert flavour["serialization_format"] == "skops"


def test_rollback_and_promote_move_the_mlflow_alias(mirrored, tracking_uri):
    project, name = mirrored
    client = _client(tracking_uri)
    before = project.champion.version
    back = project.rollback(reason="test").version
    assert back != before and _champion_of(client, name) == back
    project.promote(before, reason="test again", force=True)
    assert _champion_of(client, name) == before


def test_challenger_follows_and_an_alias_mlflow_cannot_hold_blocks_nothing(mirrored, tracking_uri):
    project, name = mirrored
    client = _client(tracking_uri)
    first = project.models[0].version
    project.registry.set_alias("challenger", first, reason="test")
    mv = client.get_model_version_by_alias(name, "challenger")
    assert int(mv.tags["retrainer.version"]) == first
    project.registry.set_alias("a.first", first, reason="sorted before champion")
    result = project.registry.mirror.sync()
    assert result.error is None and result.skipped == ["a.first"]
    assert _champion_of(client, name) == project.champion.version


def test_an_mlflow_outage_leaves_a_pending_sync_and_the_next_sync_catches_up(
    tmp_path, tracking_uri, elec, fast_failing, capsys
):
    name = f"outage-{uuid.uuid4().hex[:8]}"
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    project = _project(tmp_path, down, name)
    with pytest.warns(RuntimeWarning, match="not in step with retrainer"):
        replay(project, elec.iloc[: 48 * 7 * 6])
    assert project.champion is not None  # the cycles went on; retrainer's registry is whole
    assert project.registry.verify() == []
    state = project.get_state("mlflow")
    assert state["pending"] and "Connection" in state["error"]
    with project.store.session() as s:
        kinds = [e.kind for e in s.scalars(select(EventRow).where(EventRow.kind.like("mlflow%")))]
    assert kinds and set(kinds) == {"mlflow_pending"}
    shown = project.status()["mlflow_pending"]["line"]  # status and the CLI say it
    assert shown.startswith("MLflow sync pending since ") and "Connection" in shown

    project.registry.mirror.tracking_uri = tracking_uri  # the server is back
    project.registry.mirror._client = None
    result = project.registry.mirror.sync()
    assert result.error is None
    client = _client(tracking_uri)
    assert sorted(_by_version(client, name)) == [v.version for v in project.models]
    assert _champion_of(client, name) == project.champion.version
    assert project.get_state("mlflow")["pending"] is None
    assert project.status()["mlflow_pending"] is None
    with project.store.session() as s:
        last = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(1)).one()
    assert last.kind == "mlflow_synced"
    assert project.registry.mirror.sync().versions == []  # idempotent: nothing twice
    assert "View run" not in capsys.readouterr().out  # stdout stays the command's (--json)


# ------------------------------------------------------------------------- import-champion


def _team_model(elec):
    from sklearn.linear_model import LogisticRegression

    rows = elec.iloc[: 48 * 7 * 4]
    return LogisticRegression(max_iter=500).fit(rows[ELEC2_FEATURES], rows["target"])


def _log_team_model(uri, name, model, fmt):
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, serialization_format=fmt
        )
    version = info.registered_model_version
    _client(uri).set_registered_model_alias(name, "champion", version)
    return version


def _project_file(tmp_path, uri, name):
    settings = project_settings(registry={"backend": "mlflow", "tracking_uri": uri})
    settings["project"] = name
    settings["store"]["url"] = store_url(tmp_path)
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_import_champion_adopts_a_skops_mlflow_model(tmp_path, tracking_uri, elec):
    name = f"team-{uuid.uuid4().hex[:8]}"
    model = _team_model(elec)
    mlflow_version = _log_team_model(tracking_uri, name, model, "skops")
    path = _project_file(tmp_path, tracking_uri, name)
    result = CliRunner().invoke(
        main, ["-c", str(path), "import-champion", f"models:/{name}@champion"]
    )
    assert result.exit_code == 0, result.output
    project = Project.from_yaml(path)
    assert project.champion.version == 1
    assert project.champion.lineage["imported"]["version"] == str(mlflow_version)
    rows = elec.iloc[48 * 7 * 4 : 48 * 7 * 5][ELEC2_FEATURES]
    np.testing.assert_array_equal(project.load_model().predict(rows), model.predict(rows))
    client = _client(tracking_uri)
    assert list(_by_version(client, name)) == [1]  # the MLflow version stands for it: no copy
    assert client.get_model_version_by_alias(name, "champion").version == str(mlflow_version)
    again = CliRunner().invoke(main, ["-c", str(path), "import-champion", f"models:/{name}/1"])
    assert again.exit_code == 2 and "already has a champion" in again.output


def test_import_champion_refuses_pickle_unless_trusted(tmp_path, tracking_uri, elec):
    name = f"legacy-{uuid.uuid4().hex[:8]}"
    model = _team_model(elec)
    _log_team_model(tracking_uri, name, model, "cloudpickle")
    path = _project_file(tmp_path, tracking_uri, f"other-{name}")
    args = ["-c", str(path), "import-champion", f"models:/{name}@champion"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "cloudpickle" in refused.output and "--trust-pickle" in refused.output
    assert "runs whatever code" in refused.output
    assert Project.from_yaml(path).models == []  # nothing registered
    trusted = CliRunner().invoke(main, [*args, "--trust-pickle"])
    assert trusted.exit_code == 0, trusted.output
    project = Project.from_yaml(path)
    assert project.champion.artifact_format == "skops"  # stored safely from now on
    rows = elec.iloc[48 * 7 * 4 : 48 * 7 * 5][ELEC2_FEATURES]
    np.testing.assert_array_equal(project.load_model().predict(rows), model.predict(rows))
    # the project mirrors to its own model: the adopted champion is logged there as skops
    client = _client(tracking_uri)
    assert _champion_of(client, f"other-{name}") == 1


def test_import_champion_refuses_a_uri_that_is_not_a_registered_model(tmp_path, tracking_uri):
    path = _project_file(tmp_path, tracking_uri, "x")
    result = CliRunner().invoke(main, ["-c", str(path), "import-champion", "runs:/abc/model"])
    assert result.exit_code == 2 and "models:/<name>@<alias>" in result.output


def test_a_skops_model_is_checked_against_retrainers_allowlist_not_its_own(tmp_path):
    """An MLmodel file can list any type as trusted; retrainer ignores that list."""
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    from retrainer.artifacts import ArtifactStore
    from retrainer.errors import UnsafeArtifactError
    from retrainer.integrations.mlflow_registry import _read_model
    from retrainer.registry import Registry
    from retrainer.store.db import Store

    hostile = FunctionTransformer(func=os.system).fit([[0]])
    listed = skops.io.get_untrusted_types(data=skops.io.dumps(hostile))
    assert any("system" in t for t in listed)
    mlflow.sklearn.save_model(
        hostile,
        str(tmp_path / "model"),
        serialization_format="skops",
        skops_trusted_types=listed,
        pip_requirements=[],
    )
    registry = Registry(Store("sqlite://"), ArtifactStore(tmp_path / "artifacts"))
    with pytest.raises(UnsafeArtifactError, match="system"):
        _read_model(tmp_path / "model", "models:/x/1", trust_pickle=False, registry=registry)


def test_only_the_sklearn_flavour_is_imported(tmp_path):
    from retrainer.errors import RetrainerError
    from retrainer.integrations.mlflow_registry import _read_model

    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {"python_function": {"loader_module": "x"}, "pytorch": {}}})
    )
    with pytest.raises(RetrainerError, match=r"flavours \['python_function', 'pytorch'\]"):
        _read_model(tmp_path, "models:/x/1", trust_pickle=True, registry=None)


def test_the_readme_project_file_is_valid(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## MLflow: runs, versions and the champion alias", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = Config.from_dict(yaml.safe_load(block), root=tmp_path)
    assert config.registry.backend == "mlflow" and config.registry.model_name == "churn"
