"""The fleet: devices' telemetry reports checked for drift, which device runs which model version,
and staged rollouts of deploy bundles (with rollback).

A telemetry report (see :mod:`retrainer.deploy.tinyml.telemetry`) is decoded with the layout in
the bundle its device runs, stored, and checked at once against that version's reference profile
with the project's drift and quality settings: fleet data is checked like a batch, from profiles
only (no rows leave the device). :func:`fleet_drift` checks the merged profile of every report of
a version. A rollout offers a version's bundle to a deterministic share of a target's devices
(a hash of the device id, so raising the share keeps the devices already moved); the others keep
the base version; a rollback offers the base version to every device.

Example:
    >>> bucket("sensor-0042", "cortex-m4f") < 100.0
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.quality import check_quality
from retrainer.checks.result import CheckResult
from retrainer.data.schema import Schema
from retrainer.deploy.tinyml.bundle import verify_bundle
from retrainer.deploy.tinyml.telemetry import (
    TelemetryLayout,
    TelemetryReport,
    check_device_id,
    decode_report,
    read_header,
)
from retrainer.errors import ConflictError, DataError, NotFoundError
from retrainer.profile.batch import BatchProfile
from retrainer.store.tables import DeviceRow, RolloutRow, TelemetryRow, utcnow

if TYPE_CHECKING:
    from retrainer.record import Record

MAX_REPORT_BYTES = 1 << 20
MAX_SEQUENCE = 2**31 - 1


@dataclass(frozen=True)
class TelemetryIngest:
    """What storing one report did: its id, who sent it, whether it was new, its alarms."""

    id: int
    key: str
    device: str
    target: str
    version: int
    sequence: int
    n_rows: int
    new: bool
    alarms: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "device": self.device,
            "target": self.target,
            "version": self.version,
            "sequence": self.sequence,
            "n_rows": self.n_rows,
            "new": self.new,
            "alarms": list(self.alarms),
        }


@dataclass(frozen=True)
class Rollout:
    """A staged rollout: ``version`` to ``percent`` % of a target's devices, ``base`` to others."""

    id: int
    target: str
    version: int
    percent: float
    base: int | None
    at: datetime
    reason: str
    actor: str

    @classmethod
    def of(cls, row: RolloutRow) -> Rollout:
        return cls(
            row.id, row.target, row.version, row.percent, row.base, row.at, row.reason, row.actor
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "version": self.version,
            "percent": self.percent,
            "base": self.base,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "actor": self.actor,
        }


@dataclass(frozen=True)
class Assignment:
    """The bundle a device should run: version, where to get it, and what to fall back to."""

    device: str
    target: str
    version: int
    bucket: float
    rollout: int | None
    rollback_version: int | None

    @property
    def bundle_url(self) -> str:
        return f"/api/models/{self.version}/bundles/{self.target}"

    @property
    def manifest_url(self) -> str:
        return f"{self.bundle_url}/manifest"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "target": self.target,
            "version": self.version,
            "bundle_url": self.bundle_url,
            "manifest_url": self.manifest_url,
            "bucket": self.bucket,
            "rollout": self.rollout,
            "rollback_version": self.rollback_version,
        }


def bucket(device: str, target: str) -> float:
    """The device's place in a target's rollouts, in [0, 100): SHA-256 of target and device id.

    A rollout at ``percent`` P offers its version to the devices with ``bucket < P``.

    Example:
        >>> bucket("a", "m4") == bucket("a", "m4") != bucket("b", "m4")
        True
    """
    digest = hashlib.sha256(f"{target}\0{device}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100.0


# ----------------------------------------------------------------------------- bundles
def _bundle(project: Record, version: int, target: str) -> dict[str, Any]:
    """The verified manifest of a version's bundle for a target (NotFoundError without one)."""
    if target not in project.config.deploy_targets:
        known = ", ".join(project.config.deploy_targets) or "none"
        raise NotFoundError(f"no deploy target {target!r} in the project file (known: {known})")
    folder = project.bundle_folder() / f"{target}-{version}"
    if not folder.is_dir():
        raise NotFoundError(
            f"version {version} has no bundle for {target!r}: it did not pass that target's gate"
        )
    return verify_bundle(folder)


def bundle_manifest(project: Record, version: int, target: str) -> dict[str, Any]:
    """The verified manifest of ``version``'s bundle for ``target`` (what a device downloads)."""
    project.registry.get(version)
    return _bundle(project, version, target)


def _has_bundle(project: Record, version: int, target: str) -> bool:
    return (project.bundle_folder() / f"{target}-{version}").is_dir()


def layout_for(project: Record, version: int, target: str) -> TelemetryLayout:
    """The telemetry layout shipped in ``version``'s bundle for ``target``."""
    known = [v.version for v in project.models]
    if version not in known:
        listed = ", ".join(str(v) for v in known[-10:]) or "none yet"
        raise DataError(
            f"telemetry report names model version {version}, which is unknown: the registry "
            f"has no such version (known: {listed})"
        )
    try:
        manifest = _bundle(project, version, target)
    except NotFoundError as exc:
        raise DataError(f"telemetry report names model version {version}: {exc}") from None
    if not manifest.get("telemetry"):
        raise DataError(
            f"the bundle of version {version} for {target!r} has no telemetry sketch "
            "(its features are not all numeric)"
        )
    return TelemetryLayout.from_dict(manifest["telemetry"])


# ----------------------------------------------------------------------------- telemetry
def ingest_telemetry(project: Record, data: bytes, *, source: str = "") -> TelemetryIngest:
    """Decode, check and store one device report; idempotent by device, version and sequence.

    The same report sent again is answered with the stored one (``new`` False). A different
    report under a stored device, target, version and sequence raises
    :class:`~retrainer.errors.ConflictError` and is kept nowhere.

    Parameters:
        project: the project whose bundles the device runs.
        data: the report bytes as the device sent them.
        source: where it came from (file name, ``api``).

    Raises :class:`~retrainer.errors.DataError` naming the problem for a malformed, truncated,
    foreign, wrong-format or wrong-model report.
    """
    if len(data) > MAX_REPORT_BYTES:
        raise DataError(
            f"telemetry report of {len(data)} bytes is larger than {MAX_REPORT_BYTES} bytes"
        )
    header = read_header(data)
    if header.sequence > MAX_SEQUENCE:
        raise DataError(f"telemetry report: sequence number {header.sequence} is too large")
    report = decode_report(data, layout_for(project, header.version, header.target))
    key = f"{header.device}:{header.target}:{header.version}:{header.sequence}"
    with project.store.session() as s:
        existing = s.scalars(select(TelemetryRow).where(TelemetryRow.key == key)).first()
        if existing is not None:
            _same_report(existing, report)
            return _ingested(existing, new=False)
    results = check_report(project, report)
    alarms = tuple(
        sorted({f"{r.name}:{r.column}" if r.column else r.name for r in results if r.alarm})
    )
    with project.store.session() as s:
        row = TelemetryRow(
            key=key,
            device=header.device,
            target=header.target,
            version=header.version,
            sequence=header.sequence,
            source=source,
            n_rows=header.n_rows,
            profile=report.profile.to_dict(),
            predictions=report.predictions.to_dict(),
            checks=[r.to_dict() for r in results],
            alarms=len(alarms),
        )
        s.add(row)
        now = utcnow()
        device = s.get(DeviceRow, header.device)
        if device is None:
            device = DeviceRow(id=header.device, first_seen=now, reports=0, rows=0)
            s.add(device)
        device.target, device.version, device.last_seen = header.target, header.version, now
        device.reports += 1
        device.rows += header.n_rows
        s.flush()
        what = f"{len(alarms)} alarms: {', '.join(alarms)}" if alarms else "no alarms"
        project.event(
            s,
            "telemetry",
            f"device {header.device} ({header.target}, version {header.version}): "
            f"{header.n_rows} rows, {what}",
            report=row.id,
            device=header.device,
            version=header.version,
            alarms=list(alarms),
        )
        return _ingested(row, new=True)


def _same_report(row: TelemetryRow, report: TelemetryReport) -> None:
    """Raise ConflictError when ``report`` differs from the stored ``row`` of the same key."""
    stored = {"rows": row.n_rows, "profile": row.profile, "predictions": row.predictions}
    sent = {
        "rows": report.header.n_rows,
        "profile": report.profile.to_dict(),
        "predictions": report.predictions.to_dict(),
    }
    if _canonical(stored) == _canonical(sent):
        return
    differ = [k for k in stored if _canonical(stored[k]) != _canonical(sent[k])]
    h = report.header
    raise ConflictError(
        f"telemetry report from device {h.device!r} ({h.target}, version {h.version}, "
        f"sequence {h.sequence}) differs from the report already stored under that sequence "
        f"({', '.join(differ)} differ; stored {row.n_rows} rows, sent {h.n_rows}): refused and "
        "kept nowhere. A device numbers its reports once (model_telemetry_clear moves to the "
        "next sequence)."
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _ingested(row: TelemetryRow, *, new: bool) -> TelemetryIngest:
    alarms = tuple(
        sorted(
            {
                f"{c['name']}:{c['column']}" if c["column"] else c["name"]
                for c in row.checks
                if c["alarm"]
            }
        )
    )
    return TelemetryIngest(
        row.id, row.key, row.device, row.target, row.version, row.sequence, row.n_rows, new, alarms
    )


def check_report(project: Record, report: TelemetryReport) -> list[CheckResult]:
    """Quality and drift checks of a device report against its version's reference profile."""
    return check_profile(project, report.profile, report.header.version)


def check_profile(project: Record, profile: BatchProfile, version: int) -> list[CheckResult]:
    """Quality and drift checks of a device profile against ``version``'s reference profile,
    with the project's settings, on the columns the profile has (the row count is not checked:
    a device reports whatever it saw)."""
    mv = project.registry.get(version)
    full = BatchProfile.from_dict(mv.reference)
    names = [n for n in profile.columns if n in full.columns]
    reference = BatchProfile({n: full.columns[n] for n in names}, full.n_rows)
    schema = project.schema()
    results: list[CheckResult] = []
    if schema is not None:
        sub = Schema(tuple(schema[n] for n in names if n in schema))
        q = project.config.checks.quality
        results += [
            r
            for r in check_quality(
                reference,
                profile,
                sub,
                **q.model_dump(),
            )
            if r.name != "row_count"
        ]
    d = project.config.checks.drift
    drift = check_drift(reference, profile, **d.options())
    return results + [*drift, dataset_drift(drift, share=d.share)]


def fleet_profile(project: Record, version: int) -> BatchProfile | None:
    """The merged profile of every telemetry report of a model version (None without reports)."""
    with project.store.session() as s:
        profiles = s.scalars(
            select(TelemetryRow.profile)
            .where(TelemetryRow.version == version)
            .order_by(TelemetryRow.id)
        ).all()
    merged = None
    for d in profiles:
        p = BatchProfile.from_dict(d)
        merged = p if merged is None else merged.merge(p)
    return merged


def fleet_drift(project: Record, version: int) -> list[CheckResult]:
    """Quality and drift checks of the merged fleet profile of a version (empty without data)."""
    merged = fleet_profile(project, version)
    return [] if merged is None else check_profile(project, merged, version)


# ----------------------------------------------------------------------------- rollouts
def current_rollout(project: Record, target: str) -> Rollout | None:
    """The newest rollout of a target, or None."""
    with project.store.session() as s:
        row = s.scalars(
            select(RolloutRow).where(RolloutRow.target == target).order_by(RolloutRow.id.desc())
        ).first()
        return None if row is None else Rollout.of(row)


def _previous_bundled(project: Record, target: str, below: int) -> int | None:
    versions = [v.version for v in project.models if v.version < below]
    return next((v for v in reversed(versions) if _has_bundle(project, v, target)), None)


def start_rollout(
    project: Record,
    target: str,
    version: int,
    percent: float,
    *,
    reason: str = "",
    actor: str = "user",
) -> Rollout:
    """Offer ``version``'s bundle for ``target`` to ``percent`` % of its devices.

    The other devices keep the base: what the previous rollout gave every device (its version
    at 100 %, else its base), or before any rollout the newest older version with a bundle.
    """
    if not 0.0 < percent <= 100.0:
        raise DataError(f"rollout percent {percent} must be above 0 and at most 100")
    bundle_manifest(project, version, target)
    current = current_rollout(project, target)
    if current is None:
        base = _previous_bundled(project, target, version)
    elif current.percent >= 100.0 and current.version != version:
        base = current.version
    else:
        base = current.base
    return _add_rollout(project, target, version, percent, base, reason, actor)


def rollback(project: Record, target: str, *, reason: str = "", actor: str = "user") -> Rollout:
    """Offer the base version (the previous champion's bundle) to every device of ``target``."""
    current = current_rollout(project, target)
    base = current.base if current is not None else None
    if current is None:
        champion = project.champion
        if champion is not None:
            base = _previous_bundled(project, target, champion.version)
    if base is None:
        raise NotFoundError(f"target {target!r}: no earlier bundled version to roll back to")
    bundle_manifest(project, base, target)
    return _add_rollout(project, target, base, 100.0, base, reason or "rollback", actor)


def _add_rollout(
    project: Record,
    target: str,
    version: int,
    percent: float,
    base: int | None,
    reason: str,
    actor: str,
) -> Rollout:
    with project.store.session() as s:
        row = RolloutRow(
            target=target,
            version=version,
            percent=float(percent),
            base=base,
            reason=reason,
            actor=actor,
        )
        s.add(row)
        s.flush()
        project.event(
            s,
            "rollout",
            f"target {target}: version {version} offered to {percent:g}% of devices"
            + (f", version {base} to the rest" if base is not None and percent < 100 else ""),
            rollout=row.id,
            target=target,
            version=version,
            percent=percent,
            base=base,
        )
        return Rollout.of(row)


def assignment(project: Record, device: str, target: str | None = None) -> Assignment:
    """Which bundle ``device`` should run: by the target's rollout, else the champion's bundle.

    ``target`` defaults to the target the device last reported.
    """
    check_device_id(device)
    if target is None:
        with project.store.session() as s:
            row = s.get(DeviceRow, device)
            if row is None:
                raise NotFoundError(f"device {device!r} has not reported yet: name its target")
            target = row.target
    place = bucket(device, target)
    current = current_rollout(project, target)
    if current is not None:
        chosen = current.version if place < current.percent else current.base
        fallback = current.base if chosen == current.version and current.base != chosen else None
        if chosen is None:
            raise NotFoundError(
                f"device {device!r} is outside rollout {current.id} of {target!r} "
                f"({current.percent:g}%) and there is no earlier bundle"
            )
        return Assignment(device, target, chosen, place, current.id, fallback)
    champion = project.champion
    if champion is None or not _has_bundle(project, champion.version, target):
        raise NotFoundError(f"no bundle for {target!r}: the champion did not pass that target")
    fallback = _previous_bundled(project, target, champion.version)
    return Assignment(device, target, champion.version, place, None, fallback)


# ----------------------------------------------------------------------------- views
def devices(project: Record) -> list[dict[str, Any]]:
    """Every device: target, the version it reports, the version it is offered, last seen."""
    with project.store.session() as s:
        rows = s.scalars(select(DeviceRow).order_by(DeviceRow.id)).all()
        found = [
            {
                "device": r.id,
                "target": r.target,
                "version": r.version,
                "first_seen": r.first_seen.isoformat(),
                "last_seen": r.last_seen.isoformat(),
                "reports": r.reports,
                "rows": r.rows,
            }
            for r in rows
        ]
    for d in found:
        try:
            d["offered"] = assignment(project, d["device"], d["target"]).version
        except NotFoundError:
            d["offered"] = None
    return found


def fleet(project: Record) -> dict[str, Any]:
    """The fleet at a glance: devices, the current rollout per target, fleet checks per version,
    and the champion's measurements per target (:func:`microcontroller_summary`)."""
    listed = devices(project)
    targets = sorted({*project.config.deploy_targets, *(d["target"] for d in listed)})
    rollouts = {t: current_rollout(project, t) for t in targets}
    checks = {}
    for version in sorted({d["version"] for d in listed}):
        results = fleet_drift(project, version)
        checks[str(version)] = {
            "alarms": [r.to_dict() for r in results if r.alarm],
            "tested": len([r for r in results if r.kind == "drift" and r.status == "ok"]),
            "dataset_drift": next(
                (r.to_dict() for r in results if r.name == "dataset_drift"), None
            ),
        }
    return {
        "devices": listed,
        "rollouts": {t: None if r is None else r.to_dict() for t, r in rollouts.items()},
        "checks": checks,
        "targets": microcontroller_summary(project),
    }


def microcontroller_summary(project: Record) -> list[dict[str, Any]]:
    """Per deploy target, the champion's measured C parity, flash, RAM and latency (the report
    and the demo summary show these); empty without targets or champion."""
    champion = project.champion
    if champion is None:
        return []
    deploy = champion.lineage.get("deploy") or {}
    found = []
    for target, report in deploy.items():
        parity, footprint = report.get("parity") or {}, report.get("footprint") or {}
        latency = report.get("latency") or {}
        found.append(
            {
                "target": target,
                "version": champion.version,
                "model": report.get("model_type"),
                "passed": report.get("passed"),
                "skipped": report.get("skipped"),
                "agreement": parity.get("agreement"),
                "rows": parity.get("n"),
                "board_agreement": latency.get("agreement"),
                "board_rows": latency.get("n"),
                "flash_bytes": footprint.get("flash_bytes"),
                "flash_budget": footprint.get("flash_budget_bytes"),
                "ram_bytes": footprint.get("ram_bytes"),
                "ram_budget": footprint.get("ram_budget_bytes"),
                "ms_per_prediction": latency.get("estimated_ms"),
                "host_compiler": parity.get("version") or parity.get("compiler"),
                "cross_toolchain": footprint.get("toolchain"),
                "emulator": latency.get("emulator"),
                "bundle": _has_bundle(project, champion.version, target),
            }
        )
    return found
