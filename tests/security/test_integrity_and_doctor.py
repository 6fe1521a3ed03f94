"""S9 and ``retrainer doctor``: a damaged, missing or swapped artifact is refused by name.

A registered model's file is flipped by one byte, truncated, swapped for another model's file,
or deleted: loading it raises IntegrityError naming the version, a cycle never serves it, and
``doctor`` (Python and CLI, ``--json``) reports it by version. ``doctor --repair`` deletes
orphans and temp files (never a referenced artifact, never anything outside the folder), marks
a run whose process is gone as failed and restores private modes.
"""

import json
import os

import pytest
from click.testing import CliRunner
from sklearn.tree import DecisionTreeClassifier

from retrainer.cli import main
from retrainer.doctor import doctor
from retrainer.errors import IntegrityError
from retrainer.store.tables import ModelVersionRow, RunRow


def fitted(seed: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=seed).fit([[0], [1], [2], [3]], [0, 1, seed % 2, 1])


@pytest.fixture
def project(make_project):
    project = make_project()
    for seed in (1, 2):
        project.registry.register(fitted(seed), lineage={}, metrics={"gate_passed": True})
    project.registry.promote(2, reason="test")
    return project


def damage(project, how: str) -> None:
    path = project.artifacts.path(project.registry.get(2).artifact)
    data = path.read_bytes()
    if how == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "swap":
        path.write_bytes(project.artifacts.path(project.registry.get(1).artifact).read_bytes())
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flip", "truncate", "swap", "delete"])
def test_a_damaged_model_is_refused_and_reported_by_version(project, how):
    damage(project, how)
    with pytest.raises(IntegrityError, match="model version 2"):
        project.registry.load(2)
    with pytest.raises(IntegrityError, match="model version 2"):
        project.load_model()
    report = doctor(project)
    assert [(f.kind, f.subject) for f in report.problems] == [
        ("missing_artifact" if how == "delete" else "corrupt_artifact", "model version 2")
    ]
    assert not doctor(project, repair=True, grace=0).ok  # never "repaired" by deleting
    assert project.registry.get(2).artifact  # the row is kept for a restore


def test_the_cli_reports_in_json_and_exits_1(project, tmp_path):
    from tests.conftest import project_settings, store_url

    settings = project_settings()
    settings["store"]["url"] = store_url(tmp_path)  # the fixture's store, from a project file
    (tmp_path / "retrainer.yaml").write_text(json.dumps(settings))
    damage(project, "flip")
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "retrainer.yaml"), "doctor", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["findings"][0]["subject"] == "model version 2"


def test_repair_removes_orphans_and_temp_files_only(project, tmp_path):
    orphan = project.artifacts.put_bytes(b"an orphan")
    shard = project.artifacts.path(orphan).parent
    temp = shard / ".tmp-abc123"
    temp.write_bytes(b"half")
    canary = tmp_path.parent / f"canary-{tmp_path.name}"
    canary.write_bytes(b"outside")
    with project.store.session() as s:  # a tampered row must not make doctor touch the canary
        s.add(RunRow(key="decision:999", window={"owner": {}}))  # no live owner
    kinds = sorted(f.kind for f in doctor(project).problems)
    assert kinds == ["orphan_artifact", "stuck_run", "temp_file"]
    young = doctor(project, repair=True)  # inside the grace period: kept
    assert project.artifacts.exists(orphan) and temp.exists()
    assert sorted(f.kind for f in young.problems) == ["orphan_artifact", "temp_file"]
    repaired = doctor(project, repair=True, grace=0)
    assert all(f.repaired for f in repaired.findings if f.severity != "info")
    assert not project.artifacts.exists(orphan) and not temp.exists()
    assert canary.read_bytes() == b"outside"
    for v in (1, 2):
        project.registry.load(v)
    with project.store.session() as s:
        run = s.query(RunRow).filter_by(key="decision:999").one()
        assert run.status == "failed" and run.error.startswith("interrupted")
    assert doctor(project).ok


def test_modes_are_restored(project):
    path = project.artifacts.path(project.registry.get(1).artifact)
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    assert {f.kind for f in doctor(project).problems} == {"file_mode"}
    doctor(project, repair=True)
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_dangling_and_ungated_aliases_are_reported(project):
    project.registry.register(fitted(3), lineage={}, metrics={"gate_passed": False})
    project.registry.promote(3, reason="by hand")
    report = doctor(project)
    assert [(f.kind, f.severity) for f in report.problems] == [("ungated_alias", "warning")]
    with project.store.session() as s:
        s.get(ModelVersionRow, 3).artifact = "0" * 64
    assert "missing_artifact" in {f.kind for f in doctor(project).problems}


def repoint_to_pickle(project, version: int) -> str:
    """Point a version's row at a hash-valid pickle (the file is what its hash says)."""
    import pickle

    sha = project.artifacts.put_bytes(pickle.dumps(fitted(9), protocol=4))
    with project.store.session() as s:
        s.get(ModelVersionRow, version).artifact = sha
    return sha


def test_a_version_repointed_to_a_hash_valid_pickle_is_found_and_refused(project, tmp_path):
    from retrainer.errors import StoreError

    repoint_to_pickle(project, 1)
    report = doctor(project)
    assert [(f.kind, f.subject) for f in report.problems] == [
        ("unloadable_model", "model version 1")
    ]
    assert "pickle" in report.problems[0].message
    with pytest.raises(StoreError, match="model version 1: .*pickle"):
        project.registry.load(1)
    with pytest.raises(StoreError, match="model version 1"):
        project.promote(1)
    assert project.champion.version == 2  # the alias did not move
    repoint_to_pickle(project, 2)  # the champion itself: the cycle names the version
    project._models.clear()
    with pytest.raises(StoreError, match="model version 2"):
        project.load_model()
    (tmp_path / "retrainer.yaml").write_text(
        "data: {target: target, id_column: id}\n"
        f"store: {{url: '{project.config.store_url}', artifacts: '{project.artifacts.root}'}}\n"
    )
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "retrainer.yaml"), "promote", "1"])
    assert result.exit_code == 2 and "model version 1" in result.output


def test_bundle_staging_folders_left_by_a_kill_are_reported_and_cleaned(project):
    bundles = project.bundle_folder()
    staging = bundles / ".esp32-2.k3j4h5"
    staging.mkdir(parents=True)
    (staging / "model.h").write_text("/* half written */")
    (bundles / "esp32-2").mkdir()  # a finished bundle is not touched
    report = doctor(project)
    assert [(f.kind, f.subject) for f in report.problems] == [("bundle_staging", str(staging))]
    assert staging.exists()
    assert doctor(project, repair=True, grace=0).ok
    assert not staging.exists() and (bundles / "esp32-2").is_dir()
    assert doctor(project).ok
