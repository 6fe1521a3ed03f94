"""Check a project's store and artifact folder, and repair what can be repaired safely.

``doctor`` looks for what a crash, a full disk or a hand edit can leave behind: artifacts that
are missing or no longer match their hash, artifacts no row references (orphans), temp files of
interrupted writes, aliases pointing at missing or ungated versions, cycles and runs left
``running`` by a process that is gone, files and folders readable by others, and (SQLite) a
database that fails ``PRAGMA integrity_check``. For each deploy target it notes which tools
check it on this machine (host compiler, cross toolchain, emulator) or why none can.

With ``repair=True`` it deletes orphans and temp files older than ``grace`` seconds (younger ones
may belong to a write in progress), restores private file modes, and finishes or fails stuck
runs (:func:`retrainer.retrain.recover_interrupted`). It never deletes a referenced artifact and
never moves an alias: a corrupt or missing artifact must be restored from a backup.

Example:
    >>> import tempfile
    >>> from retrainer.project import Project
    >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
    >>> orphan = project.artifacts.put_bytes(b"written, then the process died")
    >>> report = doctor(project)
    >>> report.ok, [f.kind for f in report.findings]
    (False, ['orphan_artifact'])
    >>> doctor(project, repair=True, grace=0).findings[0].repaired
    True
    >>> doctor(project).ok
    True
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import JSON, String, select, text

from retrainer.errors import IntegrityError, StoreError
from retrainer.retrain import owner_alive, recover_interrupted
from retrainer.store.db import Base
from retrainer.store.tables import (
    AliasRow,
    BatchRow,
    CycleRow,
    LabelSetRow,
    ModelVersionRow,
    PredictionSetRow,
    RunRow,
)

if TYPE_CHECKING:
    from retrainer.record import Record

__all__ = ["DoctorReport", "Finding", "doctor", "render"]

GRACE_SECONDS = 3600.0
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_SKIPPED_DIRS = ("bundles",)  # deploy bundles: checked by their own manifest (verify_bundle)


@dataclass(frozen=True)
class Finding:
    """One problem (or notice) found by :func:`doctor`.

    Parameters:
        kind: ``database``, ``missing_artifact``, ``corrupt_artifact``, ``unloadable_model``
            (a hash-valid file that is not a loadable skops model), ``orphan_artifact``,
            ``temp_file``, ``bundle_staging``, ``file_mode``, ``dangling_alias``,
            ``ungated_alias``, ``stuck_run``,
            ``stuck_cycle``, ``running`` (a live process is working: a notice) or
            ``deploy_tools`` (which tools check a deploy target here, or why none can: a notice).
        subject: what it is about (``model version 3``, a file path, ``run 7``).
        message: what is wrong and what to do.
        severity: ``error``, ``warning`` or ``info``.
        repairable: whether ``repair=True`` fixes it.
        repaired: whether this call fixed it.
    """

    kind: str
    subject: str
    message: str
    severity: str = "error"
    repairable: bool = False
    repaired: bool = False

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class DoctorReport:
    """Everything :func:`doctor` found, and what it checked.

    Parameters:
        findings: the problems and notices, in the order they were found.
        checked: counts of what was checked (artifacts, references, versions, aliases, runs).
        repair: whether repairs were attempted.
    """

    findings: tuple[Finding, ...]
    checked: dict
    repair: bool

    @property
    def ok(self) -> bool:
        """No error or warning is left unrepaired."""
        return not self.problems

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Errors and warnings not repaired by this call."""
        return tuple(f for f in self.findings if f.severity != "info" and not f.repaired)

    def to_dict(self) -> dict:
        """A JSON-friendly dict (``ok``, ``checked``, ``findings``)."""
        return {
            "ok": self.ok,
            "repair": self.repair,
            "checked": dict(self.checked),
            "findings": [f.to_dict() for f in self.findings],
        }


def doctor(project: Record, *, repair: bool = False, grace: float = GRACE_SECONDS) -> DoctorReport:
    """Check (and with ``repair`` fix) the store and the artifact folder of ``project``.

    Parameters:
        project: the project to check.
        repair: delete orphans and temp files, restore file modes, recover stuck runs.
        grace: orphans and temp files younger than this many seconds are left alone (a write in
            progress creates the file before its row).
    """
    findings: list[Finding] = []
    checked: dict[str, int] = {}
    findings += _database(project)
    findings += _runs(project, repair)
    references, keep = _references(project)
    checked["references"] = len(references)
    for where, sha in references:
        try:
            project.artifacts.get_bytes(sha)
            if where.startswith("model version "):  # hash-valid is not enough: it must load
                _loadable(project, where, sha)
        except UnsafeModelFinding as exc:
            findings.append(Finding("unloadable_model", where, str(exc)))
        except IntegrityError as exc:
            kind = "missing_artifact" if "is missing" in str(exc) else "corrupt_artifact"
            findings.append(Finding(kind, where, f"{where}: {exc}"))
        except StoreError as exc:
            findings.append(Finding("corrupt_artifact", where, f"{where}: {exc}"))
    findings += _aliases(project, checked)
    findings += _files(project, keep, repair, grace, checked)
    findings += _bundle_staging(project, repair, grace)
    findings += _deploy_tools(project)
    return DoctorReport(tuple(findings), checked, repair)


class UnsafeModelFinding(Exception):
    """A model version whose file has a valid hash but would not load."""


def _deploy_tools(project: Record) -> list[Finding]:
    """A notice per deploy target: which tools check it on this machine, or why none can."""
    if not project.config.deploy_targets:
        return []
    from retrainer.deploy.gate import tools_used

    return [
        Finding("deploy_tools", f"deploy target {t.name}", tools_used(t), severity="info")
        for t in project.config.targets()
    ]


def _loadable(project: Record, where: str, sha: str) -> None:
    try:
        project.artifacts.check_model(sha)
    except StoreError as exc:
        raise UnsafeModelFinding(
            f"{where}: {exc}; the cycle and `retrainer promote` refuse it: restore its file or "
            "promote another version"
        ) from exc


def _database(project: Record) -> list[Finding]:
    if project.store.engine.dialect.name != "sqlite":
        return []
    with project.store.session() as s:
        rows = [r[0] for r in s.execute(text("PRAGMA integrity_check"))]
    if rows == ["ok"]:
        return []
    detail = "; ".join(str(r) for r in rows[:5])
    return [
        Finding(
            "database",
            project.store.url,
            f"PRAGMA integrity_check failed: {detail}; restore the database from a backup",
        )
    ]


def _runs(project: Record, repair: bool) -> list[Finding]:
    found: list[Finding] = []
    with project.store.session() as s:
        running = [
            ("cycle", r.id, (r.summary or {}).get("owner"))
            for r in s.scalars(select(CycleRow).where(CycleRow.status == "running"))
        ] + [
            ("run", r.id, (r.window or {}).get("owner"))
            for r in s.scalars(select(RunRow).where(RunRow.status == "running"))
        ]
    stuck = [(kind, i) for kind, i, who in running if not owner_alive(who)]
    for kind, i, who in running:
        if owner_alive(who):
            message = f"{kind} {i} is running in process {who.get('pid')} on {who.get('host')}"
            found.append(Finding("running", f"{kind} {i}", message, severity="info"))
    recovered = recover_interrupted(project) if repair and stuck else []
    for kind, i in stuck:
        done = next((line for line in recovered if line.startswith(f"{kind} {i} ")), "")
        message = f"{kind} {i} is marked running but its process is gone" + (
            f": {done}" if done else "; `retrainer doctor --repair` marks it failed"
        )
        found.append(
            Finding(f"stuck_{kind}", f"{kind} {i}", message, repairable=True, repaired=bool(done))
        )
    return found


def _references(project: Record) -> tuple[list[tuple[str, str]], set[str]]:
    """The artifacts rows point at (which must verify), and every hash any row mentions."""
    references: list[tuple[str, str]] = []
    with project.store.session() as s:
        for i, sha, labels in s.execute(select(BatchRow.id, BatchRow.artifact, BatchRow.labels)):
            references.append((f"batch {i}", sha))
            if labels:
                references.append((f"batch {i} (labels)", labels))
        for i, sha in s.execute(select(LabelSetRow.id, LabelSetRow.artifact)):
            references.append((f"label set {i}", sha))
        for i, sha in s.execute(select(PredictionSetRow.id, PredictionSetRow.artifact)):
            references.append((f"prediction set {i}", sha))
        for v, sha in s.execute(select(ModelVersionRow.version, ModelVersionRow.artifact)):
            references.append((f"model version {v}", sha))
        keep = {sha for _, sha in references}
        for table in Base.metadata.sorted_tables:
            columns = [
                c
                for c in table.columns
                if isinstance(c.type, JSON) or (isinstance(c.type, String) and c.type.length == 64)
            ]
            if columns:
                for row in s.execute(select(*columns)):
                    for value in row:
                        keep |= set(_SHA_RE.findall(str(value)))
    return references, keep


def _aliases(project: Record, checked: dict) -> list[Finding]:
    found: list[Finding] = []
    with project.store.session() as s:
        aliases = s.execute(select(AliasRow.name, AliasRow.version)).all()
        versions = {
            v: metrics
            for v, metrics in s.execute(select(ModelVersionRow.version, ModelVersionRow.metrics))
        }
    checked["versions"], checked["aliases"] = len(versions), len(aliases)
    for name, version in aliases:
        if version not in versions:
            message = f"alias {name!r} points at model version {version}, which does not exist"
            found.append(Finding("dangling_alias", f"alias {name}", message))
        elif (versions[version] or {}).get("gate_passed") is False:
            message = (
                f"alias {name!r} points at model version {version}, which did not pass the gate "
                "(promoted by hand?); `retrainer rollback` if that was not intended"
            )
            found.append(Finding("ungated_alias", f"alias {name}", message, severity="warning"))
    return found


def _files(
    project: Record, keep: set[str], repair: bool, grace: float, checked: dict
) -> list[Finding]:
    root = project.artifacts.root
    found: list[Finding] = []
    if not isinstance(root, Path) or not root.is_dir():  # object storage: no files to check
        return found
    now = time.time()
    n_files = 0
    found += _mode(root, 0o700, repair)
    for shard in sorted(root.iterdir()):
        if shard.name in _SKIPPED_DIRS:
            continue
        if not shard.is_dir() or shard.is_symlink() or not _SHARD_RE.fullmatch(shard.name):
            message = f"{shard} is not an artifact shard folder; move it out of {root}"
            found.append(Finding("stray_file", str(shard), message, severity="warning"))
            continue
        found += _mode(shard, 0o700, repair)
        for path in sorted(shard.iterdir()):
            n_files += 1
            old = now - path.lstat().st_mtime >= grace
            if path.name.startswith(".tmp-"):
                found.append(
                    _removable(path, "temp_file", "left by an interrupted write", repair and old)
                )
            elif path.is_symlink() or not path.is_file() or not _SHA_RE.fullmatch(path.name):
                message = f"{path} is not an artifact (not a file named by its SHA-256)"
                found.append(Finding("stray_file", str(path), message, severity="warning"))
            elif not path.name.startswith(shard.name):
                message = f"{path} is in the wrong shard folder (expected {path.name[:2]}/)"
                found.append(Finding("stray_file", str(path), message, severity="warning"))
            elif path.name not in keep:
                found.append(
                    _removable(path, "orphan_artifact", "no row references it", repair and old)
                )
            else:
                found += _mode(path, 0o600, repair)
    checked["files"] = n_files
    return found


def _bundle_staging(project: Record, repair: bool, grace: float) -> list[Finding]:
    """Staging folders of deploy bundles (``.<target>-<version>.*``) a killed write left."""
    root = project.bundle_folder()
    if not root.is_dir():
        return []
    now = time.time()
    return [
        _removable(
            path,
            "bundle_staging",
            "a bundle staging folder left by an interrupted write",
            repair and now - path.lstat().st_mtime >= grace,
        )
        for path in sorted(root.iterdir())
        if path.name.startswith(".") and path.is_dir() and not path.is_symlink()
    ]


def _removable(path: Path, kind: str, why: str, delete: bool) -> Finding:
    if delete and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif delete:
        path.unlink(missing_ok=True)
    action = "deleted" if delete else "`retrainer doctor --repair` deletes it"
    return Finding(kind, str(path), f"{path}: {why}; {action}", repairable=True, repaired=delete)


def _mode(path: Path, expected: int, repair: bool) -> list[Finding]:
    mode = stat.S_IMODE(path.lstat().st_mode)
    if mode & ~expected == 0:
        return []
    if repair:
        os.chmod(path, expected)
    message = f"{path} has mode {mode:o}; expected {expected:o} (private to the owner)"
    return [Finding("file_mode", str(path), message, repairable=True, repaired=repair)]


def render(report: DoctorReport) -> list[str]:
    """Human-readable lines for a report (the CLI prints these).

    Parameters:
        report: the report of :func:`doctor`.
    """
    counts = ", ".join(f"{v} {k}" for k, v in report.checked.items())
    lines = [f"checked {counts}"]
    for f in report.findings:
        mark = "repaired" if f.repaired else f.severity
        lines.append(f"[{mark}] {f.kind}: {f.message}")
    lines.append("ok" if report.ok else f"{len(report.problems)} problem(s) left")
    return lines
