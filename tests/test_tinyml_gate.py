"""The gate with microcontroller targets: a challenger is promoted only if its C fits and agrees."""

import shutil

import pytest

from retrainer.deploy.gate import tools_missing
from retrainer.deploy.tinyml import DeployTarget, verify_bundle
from tests.tinyml_helpers import hide_pip_toolchain

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc not installed (CI installs it)",
)
# GNU and QEMU, or the mcu extra's zig and unicorn (with zig's cc when there is no system cc)
needs_gate_tools = pytest.mark.skipif(
    tools_missing(DeployTarget("m4", 256, 64)) is not None,
    reason="neither arm-none-eabi-gcc nor the mcu extra is installed",
)


def targets(flash_kb):
    return {"cortex-m4f": {"flash_kb": flash_kb, "ram_kb": 64, "min_agreement": 0.99}}


@needs_gate_tools
def test_a_fitting_model_is_promoted_with_a_verified_bundle(make_project, elec):
    project = make_project(deploy_targets=targets(256))
    project.ingest(elec.iloc[:1344], key="history")
    report = project.cycle()
    assert report.run["status"] == "succeeded", report.run["message"]
    deploy = project.champion.lineage["deploy"]["cortex-m4f"]
    assert deploy["passed"] and deploy["parity"]["agreement"] == 1.0
    assert 0 < deploy["footprint"]["flash_bytes"] <= 256 * 1024
    bundle = project.bundle_folder() / "cortex-m4f-1"
    assert verify_bundle(bundle)["version"] == "1"


@needs_gate_tools
def test_a_model_over_the_flash_budget_is_not_promoted_and_says_by_how_much(make_project, elec):
    project = make_project(deploy_targets=targets(0.1))  # 102 B: less than any image
    project.ingest(elec.iloc[:1344], key="history")
    report = project.cycle()
    assert report.run["status"] == "rejected"
    assert "target cortex-m4f: footprint: flash" in report.run["message"]
    assert "B over" in report.run["message"]
    assert project.champion is None
    assert not (project.bundle_folder() / "cortex-m4f-1").exists()


def hide_arm_tools(monkeypatch, tmp_path):
    """PATH without the ARM cross-compiler and QEMU (the host C compiler stays), and no mcu
    extra."""
    hide_pip_toolchain(monkeypatch)
    shown = tmp_path / "bin"
    shown.mkdir()
    host_cc = shutil.which("cc")
    if host_cc is not None:
        (shown / "cc").symlink_to(host_cc)
    monkeypatch.setenv("PATH", str(shown))


def test_without_the_arm_tools_the_target_is_skipped_not_failed(
    make_project, elec, monkeypatch, tmp_path
):
    hide_arm_tools(monkeypatch, tmp_path)
    project = make_project(deploy_targets=targets(256))
    project.ingest(elec.iloc[:1344], key="history")
    report = project.cycle()
    assert report.run["status"] == "succeeded", report.run["message"]
    deploy = project.champion.lineage["deploy"]["cortex-m4f"]
    assert deploy["passed"] is None
    assert "arm-none-eabi-gcc, arm-none-eabi-size not found" in deploy["skipped"]
    assert "gcc-arm-none-eabi libnewlib-arm-none-eabi" in deploy["skipped"]  # after gcc: no cc
    assert "not checked" not in report.run["message"]  # said once by the CLI, not per run
    assert not (project.bundle_folder() / "cortex-m4f-1").exists()  # nothing unverified ships


def test_a_latency_budget_without_qemu_names_qemu_too(monkeypatch, tmp_path):
    from retrainer.deploy.gate import tools_missing
    from retrainer.deploy.tinyml import DeployTarget

    hide_arm_tools(monkeypatch, tmp_path)
    without_budget = tools_missing(DeployTarget("m4", 256, 64))
    with_budget = tools_missing(DeployTarget("m4", 256, 64, max_latency_ms=5))
    assert "qemu" not in without_budget
    assert "qemu-system-arm not found" in with_budget
    assert with_budget.endswith("qemu-system-arm; or pip install 'retrainer[mcu]')")


@needs_arm
def test_with_the_arm_tools_on_path_the_target_is_measured(make_project, elec):
    from retrainer.deploy.gate import tools_missing

    project = make_project(deploy_targets=targets(256))
    assert tools_missing(project.config.targets()[0]) is None
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    deploy = project.champion.lineage["deploy"]["cortex-m4f"]
    assert "skipped" not in deploy and deploy["footprint"]["measured"]


def test_an_unexportable_model_fails_the_gate(make_project, elec):
    trainer = {
        "estimator": "sklearn.neighbors.KNeighborsClassifier",
        "params": {"n_neighbors": 5},
        "min_rows": 200,
    }
    project = make_project(deploy_targets=targets(256), trainer=trainer)
    project.ingest(elec.iloc[:1344], key="history")
    report = project.cycle()
    assert report.run["status"] == "rejected"
    assert "cannot export KNeighborsClassifier" in report.run["message"]


def test_an_unexportable_model_fails_the_gate_without_the_arm_tools_too(
    make_project, elec, monkeypatch, tmp_path
):
    hide_arm_tools(monkeypatch, tmp_path)
    trainer = {"estimator": "sklearn.neighbors.KNeighborsClassifier", "min_rows": 200}
    project = make_project(deploy_targets=targets(256), trainer=trainer)
    project.ingest(elec.iloc[:1344], key="history")
    report = project.cycle()
    assert report.run["status"] == "rejected"
    assert "cannot export KNeighborsClassifier" in report.run["message"]


@needs_arm
def test_export_copies_a_verified_bundle(make_project, elec, tmp_path, monkeypatch):
    import json

    import yaml
    from click.testing import CliRunner

    from retrainer.cli import main
    from tests.conftest import project_settings

    settings = project_settings(deploy_targets=targets(256))
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    monkeypatch.chdir(tmp_path)
    elec.iloc[:1344].to_csv(tmp_path / "history.csv", index=False)
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", "history.csv"]).exit_code == 0
    assert runner.invoke(main, ["cycle"]).exit_code == 0
    result = runner.invoke(main, ["export", "1", "--target", "cortex-m4f", "--out", "fw", "--json"])
    assert result.exit_code == 0, result.output
    copied = json.loads(result.stdout)
    assert verify_bundle(copied["bundle"])["version"] == "1"
    assert runner.invoke(main, ["export", "1", "--target", "nope", "--out", "fw"]).exit_code == 2


def test_target_names_cannot_become_paths(make_project):
    from retrainer.errors import ConfigError

    with pytest.raises(ConfigError, match="a target name is letters"):
        make_project(deploy_targets={"../evil": {"flash_kb": 1, "ram_kb": 1}})
