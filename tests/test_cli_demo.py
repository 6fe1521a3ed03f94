"""`retrainer demo` (what `make run` runs) on a bare machine (with and without the mcu extra)
and with the ARM tools; the summary never crashes on a missing figure."""

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from retrainer.cli import _render_summary
from retrainer.deploy.tinyml import emulator, zig

RETRAINER = str(Path(sys.executable).parent / "retrainer")
MCU = zig.available() and emulator.available()  # pip install "retrainer[mcu]"


def demo(out: Path, path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path}
    args = [RETRAINER, "demo", "--fresh", "--weeks", "7", "--out", str(out), "--json"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)


def test_the_demo_runs_with_every_program_hidden_from_path(tmp_path):
    # only the venv's bin: no cc, no arm-none-eabi-gcc, no qemu-system-arm. With the mcu extra
    # (the test extra has it) zig and unicorn check the target; without it, it is skipped.
    bare = str(Path(RETRAINER).parent)
    done = demo(tmp_path / "bare", bare)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["promotions"] >= 1 and summary["continuously_trained"] is not None
    (target,) = summary["microcontroller"]
    config, version = str(tmp_path / "bare" / "retrainer.yaml"), str(target["version"])
    export = [RETRAINER, "-c", config, "export", version, "--target", "cortex-m4f", "--out", "fw"]
    exported = subprocess.run(
        export, env={**os.environ, "PATH": bare}, capture_output=True, text=True, cwd=tmp_path
    )
    if MCU:
        assert summary["notes"] == []
        assert target["skipped"] is None and target["passed"] and target["agreement"] == 1.0
        assert target["host_compiler"].startswith("zig ") and target["flash_bytes"] > 0
        assert (target["cross_toolchain"], target["emulator"]) == ("zig", "unicorn")
        assert exported.returncode == 0, exported.stderr
        manifest = tmp_path / "fw" / f"cortex-m4f-{version}" / "manifest.json"
        host = json.loads(manifest.read_text())["build"]["host"]
        assert (host["toolchain"], host["compiler"]) == ("zig", "python3 -m ziglang cc")
        return
    (note,) = summary["notes"]  # one line for the one target
    assert note.startswith("deploy target cortex-m4f not checked: cc, arm-none-eabi-gcc")
    assert note.endswith(
        "(install: apt-get install gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm;"
        " or pip install 'retrainer[mcu]')"
    )
    assert target["skipped"] == note
    assert exported.returncode == 2
    assert "not checked: cc, arm-none-eabi-gcc" in " ".join(exported.stderr.split())


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="the ARM tools are not installed (CI installs them from .ci/apt-packages.txt)",
)
def test_the_demo_measures_the_target_where_the_tools_exist(tmp_path):
    done = demo(tmp_path / "arm", os.environ["PATH"])
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["notes"] == []
    (target,) = summary["microcontroller"]
    assert target["skipped"] is None and target["flash_bytes"] > 0
    assert (target["cross_toolchain"], target["emulator"]) == ("gnu", "qemu")  # the reference
    if shutil.which("cc") is not None:  # the system compiler comes first
        assert not target["host_compiler"].startswith("zig")


# A bare machine without the mcu extra, on one that has it: the extra's modules cannot be found.
WITHOUT_MCU = "import sys; sys.modules['ziglang'] = sys.modules['unicorn'] = None; "


def test_doctor_says_why_the_target_is_not_checked_without_cc_and_the_mcu_extra(tmp_path):
    # with the mcu extra, doctor names the tools instead (tests/test_tinyml_host.py)
    config = tmp_path / "retrainer.yaml"
    config.write_text(resources.files("retrainer").joinpath("examples/elec2.yaml").read_text())
    done = subprocess.run(
        [sys.executable, "-c", f"{WITHOUT_MCU}from retrainer.cli import main; main()"]
        + ["-c", str(config), "doctor", "--json"],
        env={**os.environ, "PATH": str(Path(RETRAINER).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (tools,) = [f for f in json.loads(done.stdout)["findings"] if f["kind"] == "deploy_tools"]
    assert (tools["severity"], tools["subject"]) == ("info", "deploy target cortex-m4f")
    assert tools["message"] == (
        "deploy target cortex-m4f not checked: cc, arm-none-eabi-gcc, arm-none-eabi-size, "
        "qemu-system-arm not found (install: apt-get install gcc gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi qemu-system-arm; or pip install 'retrainer[mcu]')"
    )


def test_the_summary_prints_missing_figures_as_n_a(capsys):
    summary = {
        "metric": "accuracy",
        "batches": 3,
        "rows_scored": 0,
        "seconds": 1.0,
        "alarms": {},
        "decisions": {"hold": 3},
        "reasons": {},
        "examples": [],
        "retrains": 1,
        "promotions": 0,
        "rejected": 1,
        "continuously_trained": None,
        "never_retrained": None,
        "previous_label": None,
        "report": None,
        "microcontroller": [
            {
                "target": "m4",
                "version": 1,
                "model": "DecisionTreeClassifier",
                "skipped": None,
                "agreement": None,
                "rows": None,
                "flash_bytes": None,
                "ram_bytes": None,
                "ms_per_prediction": None,
                "host_compiler": "zig 0.17.1",
                "cross_toolchain": None,
                "emulator": None,
            }
        ],
        "notes": [],
    }
    _render_summary(summary)
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at 80 columns
    assert "continuously trained (retrainer) │ n/a" in printed
    assert "C agrees with Python on n/a" in printed and "n/a ms per prediction" in printed
    assert "(host compiler zig 0.17.1, image by n/a, board on n/a)" in printed
