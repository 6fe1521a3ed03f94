"""Check a model against a deploy target: export to C, parity on real rows, footprint."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.deploy.tinyml.domain import python_reference
from retrainer.deploy.tinyml.export import CExport, export_c
from retrainer.deploy.tinyml.footprint import (
    Footprint,
    compile_for_target,
    cross_toolchain,
    measure_footprint,
)
from retrainer.deploy.tinyml.latency import Latency, measure_latency
from retrainer.deploy.tinyml.parity import ParityResult, check_parity
from retrainer.deploy.tinyml.target import DeployTarget
from retrainer.errors import RetrainerError


@dataclass(frozen=True)
class TargetReport:
    """Whether a model may ship to a deploy target, and why not.

    ``passed`` is True only when the model exported, its C agrees with Python on at least
    ``target.min_agreement`` of the rows (on the host and on the emulated board), the
    cross-compiled image was measured and fits flash and RAM, and, when the target has a latency
    budget, the estimated latency was measured and fits it. Anything that could not be checked
    (no cross-compiler, no emulator for a latency budget) is a reason, never a silent pass.

    Parameters
    ----------
    target
        The deploy target.
    model_type
        What was exported.
    passed
        The verdict.
    reasons
        One line per failed or unmeasured check (empty when passed).
    parity, footprint, latency
        The measurements (None when the step could not run).
    export
        The C export (None when the model could not be exported).
    """

    target: DeployTarget
    model_type: str
    passed: bool
    reasons: tuple[str, ...]
    parity: ParityResult | None = None
    footprint: Footprint | None = None
    latency: Latency | None = None
    export: CExport | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (C text left out; the export's file hashes are in)."""
        return {
            "target": self.target.to_dict(),
            "model_type": self.model_type,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "parity": None if self.parity is None else self.parity.to_dict(),
            "footprint": None if self.footprint is None else self.footprint.to_dict(),
            "latency": None if self.latency is None else self.latency.to_dict(),
            "export": None if self.export is None else self.export.to_dict(),
        }


def check_target(
    model: Any,
    target: DeployTarget,
    X: Any,
    y: Any = None,
    *,
    name: str = "model",
    feature_names: Sequence[str] | None = None,
    workdir: str | Path | None = None,
) -> TargetReport:
    """Export ``model`` to C; check parity on ``X`` (accuracy on ``y``), footprint and latency.

    Python's reference is taken per row (:func:`~retrainer.deploy.tinyml.domain.python_reference`):
    rows with NaN or infinity are compared too, a row Python refuses must be refused by the C.
    The model is cross-compiled once, by GNU when ``arm-none-eabi-gcc`` is installed, else by
    zig from pip (``retrainer[mcu]``): the footprint image and the emulated board link the same
    object, and the host parity build runs alongside the cross builds. The board runs the first
    ``target.board_rows`` rows; the host runs all of them.

    Parameters
    ----------
    model
        The fitted challenger.
    target
        The deploy target with its budgets.
    X, y
        Recent rows (and labels) to compare C and Python on.
    name, feature_names
        Passed to :func:`export_c`.
    workdir
        Directory to keep the builds in (``parity/``, ``cross/``, ``footprint/``,
        ``latency/``); default temporary.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X, y = [[0.0], [0.1], [0.5], [1.0]], [0, 0, 1, 1]
    >>> tree = DecisionTreeClassifier().fit(X, y)
    >>> report = check_target(tree, DeployTarget("m4", flash_kb=256, ram_kb=64), X, y)
    >>> report.parity.agreement
    1.0
    >>> report.passed or report.reasons[0].startswith("footprint: not measured")
    True
    """
    model_type = type(model).__name__
    try:
        export = export_c(model, name=name, feature_names=feature_names)
    except RetrainerError as exc:
        return TargetReport(target, model_type, False, (f"export: {exc}",))
    python = python_reference(model, X)
    if workdir is not None:
        return _check(export, target, X, y, python, Path(workdir))
    with tempfile.TemporaryDirectory(prefix="retrainer-target-") as tmp:
        return _check(export, target, X, y, python, Path(tmp))


def _check(
    export: CExport,
    target: DeployTarget,
    X: Any,
    y: Any,
    python: tuple[np.ndarray, np.ndarray],
    work: Path,
) -> TargetReport:
    reasons: list[str] = []
    predictions, refused = python
    with ThreadPoolExecutor(max_workers=1) as host:
        parity_run = host.submit(
            check_parity,
            export,
            X,
            predictions,
            refused=refused,
            y=y,
            workdir=work / "parity",
        )
        footprint, latency, cross_reasons = _cross(export, target, X, python, work)
        parity = None
        try:
            parity = parity_run.result()
        except RetrainerError as exc:
            reasons.append(f"parity: {exc}")
    if parity is not None and parity.agreement < target.min_agreement:
        reasons.append(
            f"parity: C agrees with Python on {parity.agreement:.4f} of {parity.n} rows "
            f"< min_agreement {target.min_agreement} ({parity.n_disagreements} differ)"
        )
    reasons += cross_reasons
    return TargetReport(
        target=target,
        model_type=export.model_type,
        passed=not reasons,
        reasons=tuple(reasons),
        parity=parity,
        footprint=footprint,
        latency=latency,
        export=export,
    )


def _cross(
    export: CExport,
    target: DeployTarget,
    X: Any,
    python: tuple[np.ndarray, np.ndarray],
    work: Path,
) -> tuple[Footprint | None, Latency | None, list[str]]:
    """Footprint and board run from one cross-compiled object; the reasons they fail."""
    reasons: list[str] = []
    footprint = latency = None
    toolchain = cross_toolchain()
    try:
        model_object = compile_for_target(export, target, work / "cross", toolchain=toolchain)
    except RetrainerError as exc:
        return None, None, [f"footprint: {exc}"]
    try:
        footprint = measure_footprint(
            export,
            target,
            workdir=work / "footprint",
            model_object=model_object,
            toolchain=toolchain,
        )
    except RetrainerError as exc:
        reasons.append(f"footprint: {exc}")
    if footprint is not None and not footprint.measured:
        reasons.append(f"footprint: not measured ({footprint.reason})")
    elif footprint is not None and not footprint.fits:
        reasons.append(f"footprint: {footprint.reason}")
    try:
        latency = measure_latency(
            export,
            target,
            X,
            python[0],
            refused=python[1],
            workdir=work / "latency",
            model_object=model_object,
            toolchain=toolchain,
        )
    except RetrainerError as exc:
        reasons.append(f"latency: {exc}")
    if latency is not None and latency.measured:
        if latency.agreement < target.min_agreement:
            reasons.append(
                f"latency: on {latency.board} the C agrees with Python on only "
                f"{latency.agreement:.4f} of {latency.n} rows"
            )
        if latency.fits is False:
            reasons.append(f"latency: {latency.reason}")
    elif latency is not None and target.max_latency_ms is not None:
        reasons.append(
            f"latency: budget {target.max_latency_ms} ms not measured ({latency.reason})"
        )
    return footprint, latency, reasons
