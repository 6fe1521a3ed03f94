"""`retrainer demo` (what `make run` runs) on a bare machine and with the ARM tools; the summary
never crashes on a missing figure."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrainer.cli import _render_summary

RETRAINER = str(Path(sys.executable).parent / "retrainer")


def demo(out: Path, path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path}
    args = [RETRAINER, "demo", "--fresh", "--weeks", "7", "--out", str(out), "--json"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)


def test_the_demo_runs_with_every_program_hidden_from_path(tmp_path):
    # only the venv's bin: no cc, no arm-none-eabi-gcc, no qemu-system-arm
    done = demo(tmp_path / "bare", str(Path(RETRAINER).parent))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["promotions"] >= 1 and summary["continuously_trained"] is not None
    (note,) = summary["notes"]  # one line for the one target
    assert note.startswith("deploy target cortex-m4f not checked: cc, arm-none-eabi-gcc")
    assert note.endswith(
        "(install: apt-get install gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
    )
    skipped = [m for m in summary["microcontroller"] if m["skipped"]]
    assert [m["target"] for m in skipped] == ["cortex-m4f"]
    config, version = str(tmp_path / "bare" / "retrainer.yaml"), str(skipped[0]["version"])
    export = [RETRAINER, "-c", config, "export", version, "--target", "cortex-m4f", "--out", "fw"]
    done = subprocess.run(export, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "not checked: cc, arm-none-eabi-gcc" in " ".join(
        done.stderr.split()
    )


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
            }
        ],
        "notes": [],
    }
    _render_summary(summary)
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at 80 columns
    assert "continuously trained (retrainer) │ n/a" in printed
    assert "C agrees with Python on n/a" in printed and "n/a ms per prediction" in printed
