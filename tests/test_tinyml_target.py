"""Deploy targets, the gate-style target check, and deploy bundles."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from retrainer.deploy.tinyml import (
    DeployTarget,
    check_target,
    footprint,
    latency,
    verify_bundle,
    write_bundle,
)
from retrainer.errors import ConfigError, IntegrityError, RetrainerError
from tests import SHARED_DATA
from tests.tinyml_helpers import hide_pip_toolchain

FEATURES = [f"feat_{i}" for i in range(1, 7)]
needs_cross = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc not installed (CI installs gcc-arm-none-eabi)",
)


@pytest.fixture(scope="module")
def elec2():
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv")
    train, recent = df.iloc[17_424:27_424], df.iloc[27_424:29_424]
    return train[FEATURES], train["target"], recent[FEATURES], recent["target"]


def test_target_from_project_file_entry():
    target = DeployTarget.from_dict(
        "cortex-m4f", {"flash_kb": 256, "ram_kb": 64, "max_latency_ms": 10, "min_agreement": 0.99}
    )
    assert target.flash_bytes == 262_144 and target.max_latency_ms == 10
    assert target.to_dict()["cpu"] == "cortex-m4"
    with pytest.raises(ConfigError) as err:
        DeployTarget.from_dict("bad", {"flash_kb": -1, "ram": 64})
    assert err.value.problems == [
        "deploy_targets.bad.ram: unknown key",
        "deploy_targets.bad.ram_kb: required",
    ]
    with pytest.raises(ConfigError, match="min_agreement"):
        DeployTarget("x", 256, 64, min_agreement=1.5)
    with pytest.raises(ConfigError, match="cpu"):
        DeployTarget("x", 256, 64, cpu="cortex-m4; rm -rf /")
    assert target.board_rows == 500
    for rows in (0, 2.5, True):
        with pytest.raises(ConfigError, match="board_rows"):
            DeployTarget("x", 256, 64, board_rows=rows)


@needs_cross
def test_gate_passes_a_small_tree_and_fails_a_big_forest(elec2, tmp_path):
    X_train, y_train, X_recent, y_recent = elec2
    target = DeployTarget("cortex-m4f", flash_kb=64, ram_kb=16)
    tree = DecisionTreeClassifier(max_depth=8, random_state=0).fit(X_train, y_train)
    report = check_target(tree, target, X_recent, y_recent, workdir=tmp_path)
    assert report.passed, report.reasons
    assert report.reasons == ()
    assert report.parity.agreement == 1.0
    assert report.parity.c_accuracy == pytest.approx(tree.score(X_recent, y_recent))
    assert report.footprint.fits
    assert (tmp_path / "parity" / "model.c").exists()
    assert report.to_dict()["footprint"]["flash_budget_bytes"] == 65_536

    forest = RandomForestClassifier(n_estimators=40, random_state=0).fit(X_train, y_train)
    failed = check_target(forest, target, X_recent, y_recent)
    assert not failed.passed
    assert failed.parity.agreement >= 0.999  # it is correct, just too big
    assert len(failed.reasons) == 1 and failed.reasons[0].startswith("footprint: flash")
    assert "B over" in failed.reasons[0]


needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed (CI installs both)",
)


@needs_qemu
def test_latency_budget_is_measured_on_the_emulated_board(elec2):
    X_train, y_train, X_recent, y_recent = elec2
    counts = {}
    for depth in (2, 10):
        tree = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X_train, y_train)
        target = DeployTarget("m4", flash_kb=256, ram_kb=64, max_latency_ms=10)
        report = check_target(tree, target, X_recent, y_recent)
        assert report.passed, report.reasons
        assert report.latency.board == "mps2-an386" and report.latency.n == target.board_rows == 500
        assert report.latency.agreement == 1.0
        counts[depth] = report.latency.instructions_per_prediction
    # A tree walk costs a handful of instructions per level: deeper trees cost more.
    assert 10 < counts[2] < counts[10] < 10 * 40
    tight = DeployTarget("m4", flash_kb=256, ram_kb=64, max_latency_ms=1e-4, clock_mhz=16)
    report = check_target(tree, tight, X_recent, y_recent)
    assert not report.passed
    assert len(report.reasons) == 1 and report.reasons[0].startswith("latency: estimated")
    expected_ms = counts[10] * 1.5 / 16_000
    assert report.latency.estimated_ms == pytest.approx(expected_ms)


@needs_cross
def test_latency_budget_without_emulator_is_not_a_pass(elec2, monkeypatch):
    X_train, y_train, X_recent, y_recent = elec2
    real_find_tool = latency.find_tool
    hide_pip_toolchain(monkeypatch)
    monkeypatch.setattr(
        latency,
        "find_tool",
        lambda name: None if name == "qemu-system-arm" else real_find_tool(name),
    )
    tree = DecisionTreeClassifier(max_depth=4).fit(X_train, y_train)
    target = DeployTarget("m4", flash_kb=256, ram_kb=64, max_latency_ms=10)
    report = check_target(tree, target, X_recent, y_recent)
    assert not report.passed
    assert report.reasons == (
        "latency: budget 10 ms not measured (qemu-system-arm not found: install "
        "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm, "
        "or pip install 'retrainer[mcu]')",
    )


def test_gate_fails_an_unexportable_model(elec2):
    X_train, y_train, X_recent, y_recent = elec2
    target = DeployTarget("m4", flash_kb=256, ram_kb=64)
    knn = KNeighborsClassifier().fit(X_train, y_train)
    report = check_target(knn, target, X_recent, y_recent)
    assert not report.passed and report.reasons[0].startswith("export: cannot export KNeighbors")


@pytest.mark.skipif(
    shutil.which("cc") is None, reason="no system cc: with the mcu extra hidden, no parity build"
)
def test_gate_fails_a_target_it_cannot_measure(elec2, monkeypatch):
    X_train, y_train, X_recent, y_recent = elec2
    target = DeployTarget("m4", flash_kb=256, ram_kb=64)
    tree = DecisionTreeClassifier(max_depth=4).fit(X_train, y_train)
    # The cross-compiler is absent (the host compiler stays, for parity).
    real_find_tool = footprint.find_tool
    hide_pip_toolchain(monkeypatch)
    monkeypatch.setattr(
        footprint,
        "find_tool",
        lambda name: None if name.startswith("arm-none-eabi") else real_find_tool(name),
    )
    report = check_target(tree, target, X_recent, y_recent)
    assert report.parity.agreement == 1.0
    assert not report.passed
    assert report.reasons == (
        "footprint: not measured (arm-none-eabi-gcc not found: install "
        "gcc-arm-none-eabi and libnewlib-arm-none-eabi, or pip install 'retrainer[mcu]')",
    )


@needs_cross
def test_bundle_is_verifiable_and_compiles(elec2, tmp_path):
    X_train, y_train, X_recent, y_recent = elec2
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(X_train, y_train)
    report = check_target(tree, DeployTarget("m4", 256, 64), X_recent, y_recent)
    bundle = write_bundle(report, tmp_path / "bundles", version="7")
    manifest = verify_bundle(bundle.path)
    assert manifest["version"] == "7" and manifest["parity"]["agreement"] == 1.0
    assert manifest["footprint"]["flash_bytes"] == report.footprint.flash_bytes
    # The version header is valid C carrying the version and the source hash.
    (bundle.path / "main.c").write_text(
        '#include <stdio.h>\n#include "model.h"\n#include "model_version.h"\n'
        'int main(void) { puts(MODEL_MODEL_VERSION " " MODEL_SOURCE_SHA256); return 0; }\n'
    )
    out = subprocess.run(
        ["cc", "-std=c99", "-o", "fw", "main.c", "model.c", "-lm"], cwd=bundle.path, check=True
    )
    assert out.returncode == 0
    printed = subprocess.run(["./fw"], cwd=bundle.path, capture_output=True, text=True).stdout
    assert printed.split() == ["7", manifest["files"]["model.c"]["sha256"]]
    for extra in ("main.c", "fw"):
        (bundle.path / extra).unlink()
    # One flipped byte is caught and named.
    source = bundle.path / "model.c"
    data = bytearray(source.read_bytes())
    data[-5] ^= 1
    source.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.c does not match"):
        verify_bundle(bundle.path)
    with pytest.raises(RetrainerError, match="already exists"):
        write_bundle(report, tmp_path / "bundles", version="7")
    with pytest.raises(RetrainerError, match="version"):
        write_bundle(report, tmp_path / "bundles", version='8"; evil')


def test_failed_report_is_not_bundled(elec2, tmp_path):
    X_train, y_train, X_recent, y_recent = elec2
    knn = KNeighborsClassifier().fit(X_train, y_train)
    report = check_target(knn, DeployTarget("m4", 256, 64), X_recent, y_recent)
    with pytest.raises(RetrainerError, match="refusing to bundle"):
        write_bundle(report, tmp_path, version="1")
    assert list(tmp_path.iterdir()) == []
