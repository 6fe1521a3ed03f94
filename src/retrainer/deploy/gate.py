"""The deploy part of the gate: a challenger must fit every declared microcontroller target.

For each target of the project file (``deploy_targets``) the model is exported to C, compiled on
the host and compared with Python on the held-out rows, cross-compiled for the target and
measured. A target that fails, or could not be measured, fails the gate. A target whose tools
(host C compiler, ARM cross-compiler, QEMU for a latency budget; or the ``mcu`` extra's zig and
unicorn in their place) are not installed on this machine is not checked at all: it is
recorded as skipped with the command that installs them, gets no bundle, and does not fail
the gate (:func:`tools_missing`).

Example:
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml import DeployTarget
    >>> X = np.linspace(0, 1, 40).reshape(-1, 1); y = (X[:, 0] > 0.5).astype(int)
    >>> tree = DecisionTreeClassifier().fit(X, y)
    >>> outcome = check_targets([DeployTarget("m4", 256, 64)], tree, X, y)
    >>> outcome.passed  # checked and fits, or skipped: no cross-compiler on this machine
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrainer.data.schema import Schema
from retrainer.deploy.tinyml import (
    DeployTarget,
    TargetReport,
    check_target,
    emulator,
    export_c,
    write_bundle,
    zig,
)
from retrainer.deploy.tinyml.footprint import CROSS_CC, CROSS_SIZE, cross_toolchain
from retrainer.deploy.tinyml.host import host_compiler
from retrainer.deploy.tinyml.latency import QEMU, board_emulator, tools_cover
from retrainer.deploy.tinyml.telemetry import TelemetryLayout
from retrainer.deploy.tinyml.toolchain import install_command, missing_tools
from retrainer.errors import DataError, RetrainerError
from retrainer.profile.batch import BatchProfile


@dataclass(frozen=True)
class TargetsOutcome:
    """Reports per checked target, whether all passed, one reason line per failure, and the
    targets skipped for missing tools (name -> why, with the install command)."""

    reports: dict[str, TargetReport] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports.values())

    @property
    def reasons(self) -> list[str]:
        return [f"target {n}: {why}" for n, r in self.reports.items() for why in r.reasons]

    def to_dict(self) -> dict[str, Any]:
        skipped = {n: {"passed": None, "skipped": why} for n, why in self.skipped.items()}
        return {name: report.to_dict() for name, report in self.reports.items()} | skipped


def tools_missing(target: DeployTarget) -> str | None:
    """Why ``target`` cannot be checked on this machine (a missing tool, and the command that
    installs it), or None when it can: a host C compiler (``cc``, else zig from the ``mcu``
    extra) for parity, and a cross toolchain (and an emulator when the target has a latency
    budget) from the system or the ``mcu`` extra.

    Examples
    --------
    >>> import os
    >>> path = os.environ["PATH"]
    >>> os.environ["PATH"] = ""
    >>> why = tools_missing(DeployTarget("m4", 256, 64))
    >>> os.environ["PATH"] = path
    >>> why is None or why.split(" (install")[0] == (
    ...     "deploy target m4 not checked: cc, arm-none-eabi-gcc, arm-none-eabi-size not found")
    True
    """
    tools = ["cc", CROSS_CC, CROSS_SIZE] + ([QEMU] if target.max_latency_ms is not None else [])
    missing = missing_tools(tools)
    if not missing or (host_compiler() is not None and tools_cover(target)):
        return None
    pip = "" if zig.available() and emulator.available() else "; or pip install 'retrainer[mcu]'"
    return (
        f"deploy target {target.name} not checked: {', '.join(missing)} not found "
        f"(install: {install_command(missing)}{pip})"
    )


def tools_used(target: DeployTarget) -> str:
    """Which tools check ``target`` on this machine (the parity build's host compiler, the
    image's cross toolchain, the board's emulator), or why it is not checked: one line.

    Examples
    --------
    >>> tools_used(DeployTarget("m4", 256, 64)).startswith("deploy target m4")
    True
    """
    why = tools_missing(target)
    host = host_compiler()
    if why is not None or host is None:
        return why or f"deploy target {target.name} not checked: no host C compiler"
    cross = cross_toolchain()
    board = board_emulator(target, cross) or "no emulator (no latency budget)"
    return (
        f"deploy target {target.name}: parity built by {host.version} ({host.portable}), "
        f"image by {cross}, board run on {board}"
    )


def check_targets(
    targets: Sequence[DeployTarget],
    model: Any,
    X: Any,
    y: Any = None,
    *,
    feature_names: Sequence[str] | None = None,
) -> TargetsOutcome:
    """Check ``model`` against every target on the rows ``X`` (and labels ``y``)."""
    names = list(feature_names) if feature_names is not None else None
    reports, skipped = {}, {}
    for t in targets:
        why = tools_missing(t)
        if why is None:
            reports[t.name] = check_target(model, t, X, y, feature_names=names)
            continue
        try:  # a model that cannot become C fails whatever is installed
            export_c(model, feature_names=names)
            skipped[t.name] = why
        except RetrainerError as exc:
            reports[t.name] = TargetReport(t, type(model).__name__, False, (f"export: {exc}",))
    return TargetsOutcome(reports, skipped)


def write_bundles(
    outcome: TargetsOutcome,
    directory: Path,
    version: int,
    *,
    reference: BatchProfile | dict | None = None,
    schema: Schema | None = None,
) -> dict[str, str]:
    """Write one deploy bundle per passed target; returns target -> bundle folder.

    With the version's ``reference`` profile (and ``schema`` for the range bounds) each bundle
    also holds the device telemetry sketch configured from the reference's bin edges; a model
    whose features cannot be sketched (non-numeric) is bundled without it.
    """
    written = {}
    for name, report in outcome.reports.items():
        if not report.passed:
            continue
        layout = None
        if reference is not None and report.export is not None:
            export = report.export
            try:
                layout = TelemetryLayout.build(
                    reference,
                    export.feature_names,
                    version=version,
                    classes=export.classes,
                    schema=schema,
                    name=export.name,
                )
            except DataError:
                layout = None
        bundle = write_bundle(report, directory, version=str(version), telemetry=layout)
        written[name] = str(bundle.path)
    return written
