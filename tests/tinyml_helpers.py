"""Helpers of the TinyML telemetry and fleet tests: a bundled version, the sketch on the host."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from retrainer.datasets import ELEC2_FEATURES
from retrainer.deploy.tinyml import DeployTarget, TargetReport, export_c, write_bundle
from retrainer.deploy.tinyml.host import host_compiler
from retrainer.deploy.tinyml.telemetry import TelemetryLayout
from retrainer.deploy.tinyml.toolchain import C_FLAGS, run_tool
from retrainer.profile.batch import BatchProfile

FEATURES = list(ELEC2_FEATURES)
TARGET = "cortex-m4f"
TARGETS = {TARGET: {"flash_kb": 256, "ram_kb": 64}}

# The parity build runs with the system cc, else zig from the mcu extra (which the test extra has).
needs_host_compiler = pytest.mark.skipif(
    host_compiler() is None, reason="no host C compiler (cc, or zig: pip install 'retrainer[mcu]')"
)

MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
#include "model_telemetry.h"

static model_telemetry_t sketch;

int main(int argc, char **argv)
{
    float x[MODEL_TELEMETRY_N_FEATURES];
    uint8_t out[MODEL_TELEMETRY_REPORT_BYTES];
    size_t n;
    if (argc != 3 || model_telemetry_init(&sketch, argv[1], (uint32_t)atol(argv[2])) != 0) {
        return 3;
    }
    while (fread(x, sizeof(float), MODEL_TELEMETRY_N_FEATURES, stdin) ==
           MODEL_TELEMETRY_N_FEATURES) {
        model_telemetry_observe(&sketch, x, model_predict(x));
    }
    n = model_telemetry_report(&sketch, out, sizeof(out));
    fwrite(out, 1, n, stdout);
    return n == MODEL_TELEMETRY_REPORT_BYTES ? 0 : 4;
}
"""


def build_sketch(folder: Path, files: dict[str, str]) -> Path:
    """Compile a bundle's model and telemetry sketch with the host cc and a stdin driver."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if name.endswith((".c", ".h")):
            (folder / name).write_text(text)
    (folder / "main.c").write_text(MAIN)
    sources = ["main.c", "model.c", "model_telemetry.c"]
    run_tool(
        ["cc", "-O2", *C_FLAGS, "-Werror", "-o", "sketch", *sources, "-lm"],
        cwd=folder,
        what="host compile",
    )
    return folder / "sketch"


def run_sketch(binary: Path, X, device: str = "dev-1", sequence: int = 0) -> bytes:
    """Feed the rows of ``X`` (as float32, the device's type) and return the report bytes."""
    import subprocess

    rows = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    done = subprocess.run(
        [str(binary), device, str(sequence)],
        input=rows.tobytes(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def bundled_version(project, frame) -> tuple[int, TelemetryLayout, DecisionTreeClassifier, Path]:
    """Register and promote a tree trained on ``frame`` with a bundle (and telemetry sketch)."""
    model = DecisionTreeClassifier(max_depth=6, random_state=0).fit(
        frame[FEATURES], frame["target"]
    )
    reference = BatchProfile.from_frame(frame[FEATURES], project.schema())
    version = project.registry.register(
        model, lineage={"features": FEATURES}, metrics={}, reference=reference.to_dict()
    ).version
    project.registry.promote(version, reason="test")
    export = export_c(model, feature_names=FEATURES)
    layout = TelemetryLayout.build(
        reference, FEATURES, version=version, classes=export.classes, schema=project.schema()
    )
    report = TargetReport(
        DeployTarget(TARGET, 256, 64), "DecisionTreeClassifier", True, (), export=export
    )
    bundle = write_bundle(report, project.bundle_folder(), version=str(version), telemetry=layout)
    return version, layout, model, bundle.path


def hide_pip_toolchain(monkeypatch) -> None:
    """Act as if the ``mcu`` extra (zig, unicorn) were not installed."""
    from retrainer.deploy.tinyml import emulator, zig

    monkeypatch.setattr(zig, "available", lambda: False)
    monkeypatch.setattr(emulator, "available", lambda: False)
