"""The host parity build on a machine with only Python and pip: zig's clang from the mcu extra
takes the place of a system ``cc`` with the same flags, and without either the target says why
it is not checked."""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from retrainer.deploy.gate import check_targets, tools_missing, tools_used
from retrainer.deploy.tinyml import (
    DeployTarget,
    check_parity,
    emulator,
    export_c,
    write_bundle,
    zig,
)
from retrainer.deploy.tinyml.domain import python_reference
from retrainer.deploy.tinyml.host import host_compiler
from retrainer.deploy.tinyml.toolchain import HOST_FLAGS, run_tool, tool_environment
from retrainer.errors import RetrainerError
from tests import SHARED_DATA
from tests.tinyml_helpers import hide_pip_toolchain

FEATURES = [f"feat_{i}" for i in range(1, 7)]
needs_zig = pytest.mark.skipif(
    not zig.available(), reason="the mcu extra is not installed (the test extra has it)"
)


@pytest.fixture(scope="module")
def elec2():
    """2,000 training rows after the Victorian fill values end, the next 1,000 to check on, with
    5 % of the held-out values NaN and a few infinities."""
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv")
    train, test = df.iloc[17_424:19_424], df.iloc[19_424:20_424]
    rng = np.random.default_rng(17)
    rows = test[FEATURES].mask(rng.random((len(test), len(FEATURES))) < 0.05)
    rows.iloc[[3, 50], [1, 4]] = [np.inf, -np.inf]
    holed = train[FEATURES].mask(rng.random((len(train), len(FEATURES))) < 0.05)
    return train[FEATURES], holed, train["target"], rows, test["target"]


@pytest.fixture
def only_python(monkeypatch):
    """PATH holds only the folder of this Python (no cc, no ARM tools, no QEMU)."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert host_compiler() is None or host_compiler().toolchain == zig.TOOLCHAIN


@needs_zig
@pytest.mark.parametrize("kind", ["tree", "linear"])
def test_with_only_python_on_path_parity_runs_on_zig_and_agrees_on_nan_rows(
    elec2, only_python, kind
):
    X_train, holed, y_train, rows, y_test = elec2
    if kind == "tree":  # trained with NaN: each split learned where missing values go
        model = DecisionTreeClassifier(max_depth=8, random_state=0).fit(holed, y_train)
    else:  # refuses NaN and infinity: the C must refuse the same rows
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)
    predictions, refused = python_reference(model, rows)
    result = check_parity(export_c(model), rows, predictions, refused=refused, y=y_test)
    assert (result.toolchain, result.compiler) == ("zig", f"{sys.executable} -m ziglang cc")
    assert result.version == zig.version() and result.flags == HOST_FLAGS
    non_finite = ~np.isfinite(rows.to_numpy()).all(axis=1)
    assert result.n_non_finite == int(non_finite.sum()) > 200
    assert result.agreement == 1.0 and result.n == len(rows)
    if (
        kind == "tree"
    ):  # scikit-learn predicts every NaN row itself; only the infinities are refused
        finite_or_nan = ~np.isinf(rows.to_numpy()).any(axis=1)
        assert result.n_refused == int(refused.sum()) == 2
        nan_rows = rows[non_finite & finite_or_nan]
        assert (model.predict(nan_rows) == predictions[non_finite & finite_or_nan]).all()
    else:
        assert result.n_refused == int(refused.sum()) == int(non_finite.sum())


@needs_zig
def test_zig_builds_the_host_code_without_fused_multiply_adds(tmp_path):
    """-ffp-contract=off reaches clang: a*b+c is rounded twice, as numpy's float32 does."""
    (tmp_path / "fma.c").write_text(
        "#include <stdio.h>\n#include <stdlib.h>\n"
        "int main(int argc, char **argv) {\n"
        "    (void)argc;\n"
        "    float a = strtof(argv[1], NULL), b = strtof(argv[2], NULL);\n"
        "    float c = strtof(argv[3], NULL);\n"
        '    printf("%a\\n", (double)(a * b + c));\n'
        "    return 0;\n}\n"
    )
    a = b = 1.0 + 2.0**-12  # a*b = 1 + 2^-11 + 2^-24: the 2^-24 is lost when rounded to float32
    c = -(1.0 + 2.0**-11)
    reference = float(np.float32(a) * np.float32(b) + np.float32(c))
    command = [sys.executable, "-m", "ziglang", "cc"]

    def run(contract: str) -> float:
        flags = [*HOST_FLAGS] if contract == "off" else [*HOST_FLAGS, "-ffp-contract=fast"]
        run_tool([*command, *flags, "-o", f"fma-{contract}", "fma.c"], cwd=tmp_path, what="fma")
        out = run_tool(
            [tmp_path / f"fma-{contract}", repr(a), repr(b), repr(c)], cwd=tmp_path, what="fma run"
        )
        return float.fromhex(out.strip())

    assert reference == 0.0 and run("off") == reference
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if platform.machine() == "aarch64" or " fma " in cpu:  # the test could tell the difference
        assert run("fast") == 2.0**-24


def test_without_zig_and_without_cc_the_target_says_why_it_is_not_checked(
    elec2, monkeypatch, tmp_path
):
    X_train, _, y_train, rows, y_test = elec2
    hide_pip_toolchain(monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing at all
    target = DeployTarget("cortex-m4f", 256, 64, max_latency_ms=10)
    why = (
        "deploy target cortex-m4f not checked: cc, arm-none-eabi-gcc, arm-none-eabi-size, "
        "qemu-system-arm not found (install: apt-get install gcc gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi qemu-system-arm; or pip install 'retrainer[mcu]')"
    )
    assert tools_missing(target) == why == tools_used(target)
    model = DecisionTreeClassifier(max_depth=4).fit(X_train, y_train)
    outcome = check_targets([target], model, rows, y_test)
    assert outcome.skipped == {"cortex-m4f": why} and outcome.reports == {}
    assert outcome.passed  # skipped, not failed: nothing unverified ships either
    predictions, refused = python_reference(model, rows)
    with pytest.raises(
        RetrainerError, match=r"no host C compiler: install gcc .* 'retrainer\[mcu\]'"
    ):
        check_parity(export_c(model), rows, predictions, refused=refused)


@needs_zig
@pytest.mark.skipif(not emulator.available(), reason="unicorn (the mcu extra) is not installed")
def test_with_only_python_on_path_the_whole_gate_runs_from_pip(
    elec2, only_python, monkeypatch, tmp_path
):
    X_train, holed, y_train, rows, y_test = elec2
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    model = DecisionTreeClassifier(max_depth=8, random_state=0).fit(holed, y_train)
    target = DeployTarget("cortex-m4f", 256, 64, max_latency_ms=10)
    assert tools_missing(target) is None
    assert tools_used(target) == (
        f"deploy target cortex-m4f: parity built by {zig.version()} (python3 -m ziglang cc), "
        "image by zig, board run on unicorn"
    )
    outcome = check_targets([target], model, rows, y_test)
    report = outcome.reports["cortex-m4f"]
    assert report.passed, report.reasons
    assert (report.parity.toolchain, report.parity.agreement) == ("zig", 1.0)
    assert report.footprint.toolchain == "zig" and report.footprint.flash_bytes > 0
    assert (report.latency.emulator, report.latency.agreement) == ("unicorn", 1.0)
    bundle = write_bundle(report, tmp_path / "bundles", version="1")
    host = bundle.manifest["build"]["host"]
    assert (host["toolchain"], host["compiler"]) == ("zig", "python3 -m ziglang cc")
    assert host["version"] == zig.version() and host["flags"] == list(HOST_FLAGS)
    assert "HOST_CC = python3 -m ziglang cc\n" in (bundle.path / "Makefile").read_text()
    assert list(project.iterdir()) == []  # zig keeps its cache elsewhere, not in the project


def test_zig_keeps_its_cache_in_its_own_folder_or_a_temporary_one():
    home = {"HOME": "/home/someone", "PATH": "/usr/bin"}
    assert tool_environment(home) is None  # zig's default: ~/.cache/zig
    assert tool_environment({"ZIG_GLOBAL_CACHE_DIR": "/var/cache/zig"}) is None
    without_home = tool_environment({"PATH": "/usr/bin"})
    cache = Path(without_home["ZIG_GLOBAL_CACHE_DIR"])
    assert cache.parent == Path(tempfile.gettempdir())
    assert cache.name.startswith("retrainer-zig-cache-") and without_home["PATH"] == "/usr/bin"


@needs_zig
def test_zig_runs_for_a_process_without_a_home(monkeypatch, tmp_path):
    """A service account without HOME: zig alone stops ("unable to resolve zig cache
    directory"); through run_tool it gets a cache folder in the temporary directory."""
    for name in ("HOME", "XDG_CACHE_HOME", "ZIG_GLOBAL_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "one.c").write_text("int one(void) { return 1; }\n")
    command = [sys.executable, "-m", "ziglang", "cc", *HOST_FLAGS, "-c", "one.c"]
    alone = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert alone.returncode != 0 and "cache" in alone.stderr
    run_tool(command, cwd=tmp_path, what="host compile")
    assert (tmp_path / "one.o").exists()
