"""Prometheus metrics of the service: counts read from the record at scrape time (they survive
restarts and agree with ``retrainer status``), plus timings this process observed.

Example:
    >>> import tempfile
    >>> from retrainer.project import Project
    >>> folder = tempfile.mkdtemp()
    >>> project = Project.from_dict({"data": {"target": "y"}}, root=folder)
    >>> metrics = ServiceMetrics(project)
    >>> b"retrainer_batches_total" in metrics.render()
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from retrainer.store.tables import (
    AliasRow,
    BatchRow,
    CheckRow,
    CycleRow,
    ModelVersionRow,
    RunRow,
    ScheduleSlotRow,
    WebhookDeliveryRow,
)

if TYPE_CHECKING:
    from retrainer.project import Project

__all__ = ["ServiceMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CYCLE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class _RecordCollector:
    """Reads the metadata store on every scrape."""

    def __init__(self, project: Project, is_leader):
        self.project = project
        self.is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        p = self.project
        with p.store.session() as s:
            batches = dict(
                s.execute(select(BatchRow.status, func.count()).group_by(BatchRow.status)).all()
            )
            rows = s.execute(
                select(
                    func.coalesce(func.sum(BatchRow.n_rows), 0),
                    func.coalesce(func.sum(BatchRow.n_labelled), 0),
                )
            ).one()
            cycles = dict(
                s.execute(select(CycleRow.status, func.count()).group_by(CycleRow.status)).all()
            )
            runs = dict(
                s.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all()
            )
            gates = Counter(
                bool((m or {}).get("gate_passed"))
                for m in s.scalars(select(ModelVersionRow.metrics))
            )
            champion = s.get(AliasRow, "champion")
            alarms: Counter[str] = Counter()
            for summary in s.scalars(select(CycleRow.summary)):
                alarms.update(a.get("cause", "unknown") for a in (summary or {}).get("alarms", []))
            last = s.scalars(
                select(CycleRow)
                .where(CycleRow.finished_at.is_not(None))
                .order_by(CycleRow.id.desc())
                .limit(1)
            ).first()
            latest_batch = s.scalar(
                select(func.max(CheckRow.batch_id)).where(CheckRow.kind == "drift")
            )
            drift = s.execute(
                select(CheckRow.column, CheckRow.name, CheckRow.statistic).where(
                    CheckRow.kind == "drift",
                    CheckRow.batch_id == latest_batch,
                    CheckRow.column.is_not(None),  # per-column verdicts, whatever their test
                    CheckRow.statistic.is_not(None),
                )
            ).all()
            slots = dict(
                s.execute(
                    select(ScheduleSlotRow.status, func.count()).group_by(ScheduleSlotRow.status)
                ).all()
            )
            hooks = dict(
                s.execute(
                    select(WebhookDeliveryRow.status, func.count()).group_by(
                        WebhookDeliveryRow.status
                    )
                ).all()
            )
            duration = (
                (last.finished_at - last.started_at).total_seconds() if last is not None else None
            )
        yield _counter("retrainer_batches", "Batches ingested, by status.", "status", batches)
        yield CounterMetricFamily("retrainer_rows", "Feature rows ingested.", value=rows[0])
        yield CounterMetricFamily("retrainer_labelled_rows", "Rows with a label.", value=rows[1])
        yield _counter("retrainer_cycles", "Cycles of the loop, by status.", "status", cycles)
        yield _counter("retrainer_alarms", "Alarms raised, by cause.", "cause", alarms)
        yield _counter("retrainer_retrains", "Retraining runs, by outcome.", "status", runs)
        yield _counter(
            "retrainer_gate_outcomes",
            "Registered challengers by gate outcome.",
            "outcome",
            {("passed" if k else "failed"): v for k, v in gates.items()},
        )
        yield _counter("retrainer_schedule_slots", "Schedule slots, by status.", "status", slots)
        yield _counter(
            "retrainer_webhook_deliveries", "Webhook deliveries, by status.", "status", hooks
        )
        yield GaugeMetricFamily(
            "retrainer_champion_version",
            "The champion's model version (0: none).",
            value=champion.version if champion else 0,
        )
        if duration is not None:
            yield GaugeMetricFamily(
                "retrainer_last_cycle_duration_seconds",
                "Duration of the last finished cycle.",
                value=duration,
            )
        scores = GaugeMetricFamily(
            "retrainer_drift_score",
            "Drift statistic per column on the latest checked batch.",
            labels=["column", "test"],
        )
        for column, test, value in drift:
            scores.add_metric([column or "", test], value)
        yield scores
        yield GaugeMetricFamily(
            "retrainer_scheduler_leader",
            "1 when this process holds the scheduler lease.",
            value=1 if self.is_leader() else 0,
        )


def _counter(name: str, doc: str, label: str, counts: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([str(key)], value)
    return family


class ServiceMetrics:
    """The metrics of one service process, on their own registry.

    Parameters:
        project: the project whose record is counted.
        is_leader: a callable telling whether this process holds the scheduler lease.
    """

    def __init__(self, project: Project, is_leader=lambda: False):
        self.registry = CollectorRegistry()
        self.registry.register(_RecordCollector(project, is_leader))
        self.ingest_seconds = Histogram(
            "retrainer_ingest_seconds",
            "Time to store one posted batch or label set.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cycle_seconds = Histogram(
            "retrainer_cycle_duration_seconds",
            "Duration of cycles run by this process.",
            ["outcome"],
            buckets=CYCLE_BUCKETS,
            registry=self.registry,
        )
        self.missed_slots = PromCounter(
            "retrainer_schedule_missed_slots",
            "Schedule slots found missed at start.",
            registry=self.registry,
        )

    def observe_cycle(self, seconds: float, outcome: str) -> None:
        """Record one cycle's duration."""
        self.cycle_seconds.labels(outcome).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
