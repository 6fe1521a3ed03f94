"""Every table of the metadata store. One record: the CLI, the report and the service read these.

Times are timezone-aware UTC. JSON columns hold small dicts (profiles, lineage, metrics).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrainer.store.base import Base


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class BatchRow(Base):
    """An ingested batch of feature rows (and possibly labels), stored as a Parquet artifact."""

    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency key
    source: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    data_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    artifact: Mapped[str] = mapped_column(String(64))  # sha256 of the Parquet file
    status: Mapped[str] = mapped_column(String(20), default="new")  # new|processed|quarantined
    note: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Parquet of id, target
    n_labelled: Mapped[int] = mapped_column(Integer, default=0)
    evaluated: Mapped[bool] = mapped_column(Boolean, default=False)


class LabelSetRow(Base):
    """Labels that arrived on their own, joined to batches by the id column."""

    __tablename__ = "label_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    n_rows: Mapped[int] = mapped_column(Integer)
    artifact: Mapped[str] = mapped_column(String(64))


class ProfileRow(Base):
    """The profile of one batch (a JSON dict from ``BatchProfile.to_dict``)."""

    __tablename__ = "profiles"
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    reference_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    profile: Mapped[dict] = mapped_column(JSON)


class CycleRow(Base):
    """One pass of the loop."""

    __tablename__ = "cycles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|done|failed
    summary: Mapped[dict] = mapped_column(JSON, default=dict)


class CheckRow(Base):
    """One check result on one batch (quality, drift, concept or performance)."""

    __tablename__ = "checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    statistic: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    alarm: Mapped[bool] = mapped_column(Boolean, default=False)
    severity: Mapped[str] = mapped_column(String(10), default="info")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class DecisionRow(Base):
    """What the trigger policy decided in a cycle, and why."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(20))  # retrain|hold|alert
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    suppressed: Mapped[list] = mapped_column(JSON, default=list)


class RunRow(Base):
    """A retraining run: window, trainer, outcome."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency key (decision id)
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("cycles.id"), nullable=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    window: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")


class PredictionSetRow(Base):
    """Predictions of one model version on one batch (a Parquet artifact of id, prediction)."""

    __tablename__ = "prediction_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    version: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))  # champion|baseline
    artifact: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersionRow(Base):
    """A registered model version with its lineage, metrics and artifact hash."""

    __tablename__ = "model_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    artifact: Mapped[str] = mapped_column(String(64))
    artifact_format: Mapped[str] = mapped_column(String(20), default="skops")
    lineage: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    reference: Mapped[dict] = mapped_column(JSON, default=dict)  # reference profile


class AliasRow(Base):
    """Where an alias (``champion``) points now."""

    __tablename__ = "aliases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(ForeignKey("model_versions.version"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasHistoryRow(Base):
    """Every move of an alias: who was champion when, and why."""

    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alias: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    previous: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="retrainer")


class EventRow(Base):
    """One event per step of the loop; ``status`` and the report read these."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cycle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class StateRow(Base):
    """Small named pieces of loop state: the schema, detector state, a manual retrain request."""

    __tablename__ = "state"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TokenRow(Base):
    """An API token of the service. Only its SHA-256 is stored; ``prefix`` finds the row."""

    __tablename__ = "service_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(10))  # read|write
    hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole token
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LeaseRow(Base):
    """Who may run cycles now: one holder per name until ``expires_at`` (renewed while alive)."""

    __tablename__ = "service_leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduleSlotRow(Base):
    """One nominal time of the service's schedule; ``key`` (schedule @ time) makes it unique."""

    __tablename__ = "service_schedule_slots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(250), unique=True)
    schedule: Mapped[str] = mapped_column(String(200))
    nominal: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # pending|running|done|failed|missed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str] = mapped_column(String(200), default="")
    cycle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")


class WebhookDeliveryRow(Base):
    """One event sent to one webhook: the delivery log, with attempts and the last response."""

    __tablename__ = "service_webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(250), unique=True)  # event id and webhook
    event_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(30))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # +sending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    holder: Mapped[str] = mapped_column(String(200), default="")
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PredictionLogRow(Base):
    """A serving system's predictions that arrived on their own, joined to batches by id."""

    __tablename__ = "prediction_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    n_rows: Mapped[int] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)  # the model version that served
    artifact: Mapped[str] = mapped_column(String(64))


class DeviceRow(Base):
    """A device of the fleet: what it last reported (target, model version) and when."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)  # the model version it runs
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)


class TelemetryRow(Base):
    """One device telemetry report: its decoded profiles and the drift checks run on them."""

    __tablename__ = "telemetry_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # device:version:sequence
    device: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(Text, default="")
    n_rows: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict] = mapped_column(JSON, default=dict)
    predictions: Mapped[dict] = mapped_column(JSON, default=dict)
    checks: Mapped[list] = mapped_column(JSON, default=list)
    alarms: Mapped[int] = mapped_column(Integer, default=0)


class RolloutRow(Base):
    """A staged rollout: ``version`` offered to ``percent`` of a target's devices, ``base`` to
    the rest (a rollback is a rollout of the previous version to every device)."""

    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    percent: Mapped[float] = mapped_column(Float)
    base: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="retrainer")
