r"""Promotion: whether a model version may become the champion (a version that failed its
gate needs ``force``), and making it the champion or rolling back.

The CLI (``retrainer promote --force``), the Python API (``Project.promote(..., force=True)``)
and the REST route (``{"force": true}``) all go through :func:`check_promotable`.

Example:
    >>> from datetime import UTC, datetime
    >>> from retrainer.errors import GateFailedError
    >>> from retrainer.registry import ModelVersion
    >>> lineage = {"gate": {"passed": False, "reason": "challenger accuracy=0.70 vs 0.80"}}
    >>> failed = ModelVersion(
    ...     3, datetime.now(UTC), "a" * 64, "skops", lineage, {"gate_passed": False}, {}, None, ()
    ... )
    >>> gate_failure(failed)
    'challenger accuracy=0.70 vs 0.80'
    >>> check_promotable(failed, force=True) is None
    True
    >>> try:
    ...     check_promotable(failed, force=False)
    ... except GateFailedError as exc:
    ...     print(str(exc).replace("; ", ";\n"))
    version 3 failed its gate: challenger accuracy=0.70 vs 0.80;
    promote it anyway with --force (Python: force=True;
    REST: "force": true)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrainer.errors import GateFailedError

if TYPE_CHECKING:
    from retrainer.record import Record
    from retrainer.registry import ModelVersion

__all__ = ["check_promotable", "gate_failure", "promote", "rollback"]


def gate_failure(version: ModelVersion) -> str | None:
    """Why ``version`` failed its gate (the score comparison and every deploy target that
    failed), or None when it passed or was registered without a gate."""
    if version.metrics.get("gate_passed") is not False:
        return None
    gate = version.lineage.get("gate") or {}
    reasons = [gate["reason"]] if gate.get("reason") and gate.get("passed") is False else []
    for target, report in (version.lineage.get("deploy") or {}).items():
        reasons += [f"target {target}: {why}" for why in (report or {}).get("reasons", [])]
    return "; ".join(reasons) or "its gate did not pass (no reason recorded)"


def check_promotable(version: ModelVersion, *, force: bool) -> None:
    """Raise :class:`~retrainer.errors.GateFailedError` saying why, when ``version`` failed its
    gate and ``force`` is not set."""
    why = gate_failure(version)
    if why is not None and not force:
        raise GateFailedError(
            f"version {version.version} failed its gate: {why}; promote it anyway with --force "
            '(Python: force=True; REST: "force": true)'
        )


def promote(
    project: Record,
    version: int,
    *,
    reason: str = "promoted by hand",
    actor: str = "user",
    force: bool = False,
) -> ModelVersion:
    """Make ``version`` the champion; one that failed its gate needs ``force=True``
    (:class:`~retrainer.errors.GateFailedError` says why it failed), and one whose model
    does not load (damaged, or not a skops file) is refused, naming the version."""
    check_promotable(project.registry.get(version), force=force)
    project.registry.load(version)
    result = project.registry.promote(version, reason=reason, actor=actor)
    project.set_state("detector", {})
    return result


def rollback(
    project: Record, *, reason: str = "rolled back by hand", actor: str = "user"
) -> ModelVersion:
    """Make the previous champion the champion again."""
    result = project.registry.rollback(reason=reason, actor=actor)
    project.set_state("detector", {})
    return result
