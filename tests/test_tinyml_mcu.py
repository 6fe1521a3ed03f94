"""The Cortex-M toolchain from pip (``retrainer[mcu]``): zig builds the image, unicorn runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from retrainer.deploy.tinyml import (
    DeployTarget,
    check_target,
    emulator,
    export_c,
    footprint,
    latency,
    measure_footprint,
    measure_latency,
    verify_bundle,
    write_bundle,
    zig,
)
from retrainer.deploy.tinyml.domain import python_reference
from retrainer.deploy.tinyml.footprint import compile_for_target
from retrainer.errors import RetrainerError
from tests import SHARED_DATA

FEATURES = [f"feat_{i}" for i in range(1, 7)]
M4 = DeployTarget("cortex-m4f", flash_kb=256, ram_kb=64)
M0 = DeployTarget("cortex-m0", flash_kb=64, ram_kb=8, cpu="cortex-m0", float_abi="soft")
needs_mcu = pytest.mark.skipif(
    not (zig.available() and emulator.available()),
    reason="the mcu extra is not installed (pip install 'retrainer[mcu]'; the test extra has it)",
)
needs_gnu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc and qemu-system-arm not installed (CI installs them)",
)
MODELS = {
    "DecisionTree": lambda: DecisionTreeClassifier(max_depth=8, random_state=0),
    "RandomForest": lambda: RandomForestClassifier(10, max_depth=6, random_state=0),
    "HistGradientBoosting": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "GaussianNB": GaussianNB,
    "Scaler+LogisticRegression": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "Scaler+MLP tanh": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((8,), activation="tanh", max_iter=300, random_state=0)
    ),
    "DecisionTreeRegressor": lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
    "Scaler+Ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
}


@pytest.fixture(scope="module")
def elec2():
    """Train on 3,000 ELEC2 rows; check on the next 300 later ones plus 12 with NaN or inf."""
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv")
    train, recent = df.iloc[17_424:20_424], df.iloc[27_424:27_724]
    edges = recent[FEATURES].iloc[:12].copy()
    edges.iloc[:4, 1] = np.nan
    edges.iloc[4:8, 2] = np.inf
    edges.iloc[8:, 0] = -np.inf
    return train, pd.concat([recent[FEATURES], edges], ignore_index=True)


def fitted(name: str, train: pd.DataFrame):
    target = "feat_5" if name.endswith(("Regressor", "Ridge")) else "target"
    inputs = [f for f in FEATURES if f != target]
    return MODELS[name]().fit(train[inputs], train[target]), inputs


@needs_mcu
@pytest.mark.parametrize("name", list(MODELS))
def test_zig_image_on_unicorn_agrees_with_scikit_learn(name, elec2, tmp_path):
    train, rows = elec2
    model, inputs = fitted(name, train)
    predictions, refused = python_reference(model, rows[inputs])
    export = export_c(model, feature_names=inputs)
    lat = measure_latency(
        export, M4, rows[inputs], predictions, refused=refused, toolchain="zig", workdir=tmp_path
    )
    assert (lat.measured, lat.emulator, lat.toolchain) == (True, "unicorn", "zig"), lat.reason
    assert lat.n == len(rows) and lat.agreement == 1.0
    assert lat.instructions_per_prediction > 10
    fp = measure_footprint(export, M4, toolchain="zig")
    assert fp.measured and fp.fits and fp.toolchain == "zig"
    assert 0 < fp.model_flash_bytes < fp.flash_bytes and fp.stack_bytes > 0


@needs_mcu
@pytest.mark.parametrize("name", ["DecisionTree", "DecisionTreeRegressor"])
def test_soft_float_cortex_m0_on_unicorn(name, elec2):
    """No FPU: floats in integer registers (a regressor's result in r0), soft arithmetic."""
    train, rows = elec2
    model, inputs = fitted(name, train)
    predictions, refused = python_reference(model, rows[inputs])
    lat = measure_latency(
        export_c(model, feature_names=inputs), M0, rows[inputs], predictions, refused=refused,
        toolchain="zig",
    )  # fmt: skip
    assert lat.measured and lat.board == "unicorn CORTEX_M0", lat.reason
    assert lat.agreement == 1.0


@needs_mcu
def test_instruction_count_follows_the_tree_path(elec2, tmp_path):
    """Counted per call: a tree's count grows with the depth of the row's leaf."""
    train, rows = elec2
    model, inputs = fitted("DecisionTree", train)
    X = rows[inputs].iloc[:300]
    export = export_c(model, feature_names=inputs)
    obj = compile_for_target(export, M4, tmp_path, toolchain="zig")
    elf = footprint.link_image(export, M4, tmp_path / "board.elf", obj, "zig")
    run = emulator.run_predictions(elf, export.predict_function, X.to_numpy(np.float32))
    depth = np.asarray(model.decision_path(X).sum(axis=1)).ravel()
    assert np.array_equal(run.outputs, np.searchsorted(model.classes_, model.predict(X)))
    means = [run.instructions[depth == d].mean() for d in np.unique(depth)]
    assert np.all(np.diff(means) > 0) and len(means) >= 3
    assert run.max_stack_bytes > 0
    with pytest.raises(RetrainerError, match="has no function no_such_predict"):
        emulator.run_predictions(elf, "no_such_predict", X.to_numpy(np.float32))


@needs_mcu
@needs_gnu
@pytest.mark.parametrize(
    "name", ["DecisionTree", "RandomForest", "HistGradientBoosting", "Scaler+MLP tanh"]
)
def test_unicorn_counts_what_qemu_counts_on_the_gnu_image(name, elec2, monkeypatch):
    """Same GNU machine code: unicorn's count per call is QEMU's icount within the harness's
    few instructions (QEMU's window also holds the call and a timer read). Instructions of an
    IT block whose condition fails count too: a per-instruction code hook missed them (about
    one per node in a forest)."""
    train, rows = elec2
    model, inputs = fitted(name, train)
    X = rows[inputs].iloc[:200]
    predictions = model.predict(X)
    export = export_c(model, feature_names=inputs)
    on_qemu = measure_latency(export, M4, X, predictions, toolchain="gnu")
    real = latency.find_tool
    monkeypatch.setattr(latency, "find_tool", lambda t: None if t == "qemu-system-arm" else real(t))
    on_unicorn = measure_latency(export, M4, X, predictions, toolchain="gnu")
    assert (on_qemu.emulator, on_unicorn.emulator) == ("qemu", "unicorn")
    assert on_qemu.agreement == on_unicorn.agreement == 1.0
    gap = on_qemu.instructions_per_prediction - on_unicorn.instructions_per_prediction
    assert 0 <= gap <= 8


@needs_mcu
def test_without_gnu_the_gate_builds_with_zig_and_the_bundle_says_so(elec2, monkeypatch, tmp_path):
    train, rows = elec2
    model, inputs = fitted("DecisionTree", train)
    real_fp, real_lat = footprint.find_tool, latency.find_tool
    monkeypatch.setattr(
        footprint, "find_tool", lambda t: None if t.startswith("arm-none") else real_fp(t)
    )
    monkeypatch.setattr(
        latency, "find_tool", lambda t: None if t.startswith(("arm-none", "qemu")) else real_lat(t)
    )
    target = DeployTarget("m4", 256, 64, max_latency_ms=5)
    report = check_target(
        model, target, rows[inputs], feature_names=inputs, workdir=tmp_path / "check"
    )
    assert report.passed, report.reasons
    assert report.footprint.toolchain == "zig" and report.footprint.compiler.startswith("zig ")
    assert (report.latency.emulator, report.latency.agreement) == ("unicorn", 1.0)
    bundle = write_bundle(report, tmp_path / "bundles", version="1")
    cross = verify_bundle(bundle.path)["build"]["cross"]
    assert cross["toolchain"] == "zig" and cross["compiler"] == "python3 -m ziglang cc"
    assert "-ffp-contract=off" in cross["flags"]
    assert "ZIG_LIB :=" in (bundle.path / "Makefile").read_text()
    if shutil.which("make") and shutil.which("python3"):
        # the bundle alone, with its recorded zig flags, builds the model for the target
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # zig's Python
        subprocess.run(
            ["make", "-s", "cross"],
            cwd=bundle.path,
            env={**os.environ, "PATH": path},
            check=True,
            timeout=300,
        )
        verified = tmp_path / "check" / "cross" / "model.o"
        code = _code(verified)
        assert any(name.startswith(".text") for name in code)
        assert _code(bundle.path / "build-cross" / "model.o") == code


@needs_mcu
def test_an_fpu_zig_does_not_know_is_named(elec2, tmp_path):
    train, _ = elec2
    model, inputs = fitted("DecisionTree", train)
    odd = DeployTarget("odd", 256, 64, fpu="fpv9-magic")
    with pytest.raises(RetrainerError, match="fpu 'fpv9-magic' has no zig cpu feature"):
        compile_for_target(export_c(model, feature_names=inputs), odd, tmp_path, toolchain="zig")
    assert not list(tmp_path.iterdir())


def _code(obj: Path) -> dict[str, bytes]:
    """The bytes of an object's code and data sections (debug sections name paths)."""
    from elftools.elf.elffile import ELFFile

    with open(obj, "rb") as handle:
        return {
            section.name: section.data()
            for section in ELFFile(handle).iter_sections()
            if section.name.startswith((".text", ".rodata", ".data", ".bss"))
        }
