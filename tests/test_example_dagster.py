"""examples/dagster: the asset runs one cycle in Dagster and fails the run when the cycle fails
(Dagster's own in-process ``materialize``; skipped without ``dagster``)."""

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from retrainer.project import Project
from tests.conftest import project_settings, store_url

dg = pytest.importorskip("dagster")
EXAMPLE = Path(__file__).parents[1] / "examples" / "dagster" / "retrainer_dagster.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("retrainer_dagster", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_file(folder: Path, **overrides) -> Path:
    settings = project_settings(**overrides)
    settings["store"]["url"] = store_url(folder)
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return folder / "retrainer.yaml"


def materialize(example, path: Path):
    resource = example.RetrainerProject(project_file=str(path))
    return dg.materialize(
        [example.retrainer_cycle], resources={"retrainer": resource}, raise_on_error=False
    )


def metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_definitions_load(example):
    dg.Definitions.validate_loadable(example.defs)
    assert example.defs.resolve_job_def("retrainer_job").name == "retrainer_job"


def test_a_cycle_materializes_with_its_decision(example, tmp_path, elec):
    path = project_file(tmp_path)
    Project.from_yaml(path).ingest(elec.iloc[:1344], key="four-weeks")
    result = materialize(example, path)
    assert result.success
    seen = metadata(result)
    assert seen["decision"] == "retrain" and seen["run"] == "succeeded"
    assert seen["champion"] == Project.from_yaml(path).champion.version == 1


def test_a_failed_retrain_fails_the_run(example, tmp_path, elec):
    trainer = project_settings()["trainer"] | {"params": {"max_depth": -3}}  # sklearn refuses
    path = project_file(tmp_path, trainer=trainer)
    Project.from_yaml(path).ingest(elec.iloc[:1344], key="four-weeks")
    result = materialize(example, path)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    text = str(failure.step_failure_data.user_failure_data.description)
    assert "the retrain of cycle 1 failed" in text and "max_depth" in text
    assert Project.from_yaml(path).champion is None


def test_a_project_that_cannot_open_its_store_fails_the_run(example, tmp_path):
    broken = tmp_path / "retrainer.yaml"
    broken.write_text("data: {target: y}\nstore: {url: 'nosuchdialect://x'}\n")
    result = materialize(example, broken)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    text = str(failure.step_failure_data.user_failure_data.description)
    assert text.startswith("the retrainer cycle failed: cannot open store")


def test_it_pulls_an_sql_source_first(example, tmp_path, elec):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    elec.iloc[:1344].assign(loaded_at=start).to_sql("readings", engine, index=False)
    later = elec.iloc[1344:1400].assign(loaded_at=start + timedelta(hours=1))
    later.to_sql("readings", engine, index=False, if_exists="append")
    engine.dispose()
    source = {
        "sql": "select * from readings where loaded_at > :since",
        "url": url,
        "watermark": "loaded_at",
        "start": "1970-01-01",
    }
    data = project_settings()["data"] | {"source": source, "timezone": "UTC"}
    path = project_file(tmp_path, data=data)
    result = materialize(example, path)
    assert result.success and metadata(result)["batches"] == 1
    assert Project.from_yaml(path).champion.version == 1
