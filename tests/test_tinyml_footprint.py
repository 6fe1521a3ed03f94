"""Footprint of exported models cross-compiled for Cortex-M with the real arm-none-eabi gcc."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from retrainer.deploy.tinyml import DeployTarget, export_c, measure_footprint
from tests import SHARED_DATA
from tests.tinyml_helpers import hide_pip_toolchain

FEATURES = [f"feat_{i}" for i in range(1, 7)]
needs_cross = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-size") is None,
    reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi; CI installs it)",
)
M4 = DeployTarget("cortex-m4f", flash_kb=256, ram_kb=64)


@pytest.fixture(scope="module")
def elec2():
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv").iloc[17_424:27_424]
    return df[FEATURES], df["target"]


@needs_cross
def test_small_tree_fits_cortex_m4(elec2, tmp_path):
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(*elec2)
    fp = measure_footprint(export_c(tree), M4, workdir=tmp_path)
    assert fp.measured and fp.fits is True and fp.reason == ""
    assert 0 < fp.model_flash_bytes < fp.flash_bytes < 256 * 1024
    assert fp.flash_excess_bytes < 0 and fp.ram_excess_bytes < 0
    assert fp.stack_bytes > 0 and fp.ram_bytes >= fp.stack_bytes
    # Independent check of the size accounting: the threshold table in the ELF holds one
    # float32 per decision node of scikit-learn's tree.
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "--print-size", "firmware.elf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes = {
        fields[3]: int(fields[1], 16)
        for fields in (line.split() for line in symbols.splitlines())
        if len(fields) == 4
    }
    decision_nodes = tree.tree_.node_count - tree.get_n_leaves()
    assert sizes["model_threshold"] == 4 * decision_nodes
    assert fp.model_flash_bytes >= 4 * decision_nodes


@needs_cross
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_overflow_path_links_only_the_double_routines_it_needs(elec2, tmp_path):
    """The double path scales by multiplying with float32 reciprocals (no software double
    division) and an MLP's layers alternate between two buffers (no copies: GCC makes them
    newlib's ``memcpy``)."""
    for name, model in (
        ("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("mlp", make_pipeline(StandardScaler(), MLPClassifier((16, 8), max_iter=50))),
    ):
        export = export_c(model.fit(*elec2))
        assert measure_footprint(export, M4, workdir=tmp_path / name).measured
        symbols = subprocess.run(
            ["arm-none-eabi-nm", "firmware.elf"],
            cwd=tmp_path / name,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert {"__aeabi_dmul", "__aeabi_dadd"} <= set(symbols), name  # the double path
        assert not {"__aeabi_ddiv", "memcpy"} & set(symbols), name


@needs_cross
def test_big_forest_fails_small_budget_and_says_by_how_much(elec2):
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(*elec2)
    tiny = DeployTarget("tiny", flash_kb=16, ram_kb=4)
    fp = measure_footprint(export_c(forest), tiny)
    assert fp.measured and fp.fits is False
    assert fp.flash_excess_bytes == fp.flash_bytes - 16 * 1024 > 100 * 1024
    assert f"{fp.flash_excess_bytes} B over" in fp.reason
    assert "RAM" not in fp.reason  # the forest lives in flash; RAM holds only votes and stack


@needs_cross
def test_soft_float_cortex_m0_builds(elec2):
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(*elec2)
    m0 = DeployTarget("m0", flash_kb=32, ram_kb=8, cpu="cortex-m0", float_abi="soft")
    fp = measure_footprint(export_c(tree), m0)
    assert fp.measured and fp.fits
    assert "-mcpu=cortex-m0" in fp.compiler and "-mfpu" not in fp.compiler


def test_missing_cross_compiler_is_not_a_pass(elec2, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    hide_pip_toolchain(monkeypatch)
    tree = DecisionTreeClassifier(max_depth=2).fit(*elec2)
    fp = measure_footprint(export_c(tree), M4)
    assert fp.measured is False and fp.fits is None
    assert fp.reason.startswith("arm-none-eabi-gcc not found")
    assert fp.to_dict()["flash_excess_bytes"] is None
