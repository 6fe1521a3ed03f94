"""The service's scheduler: runs cycles on a schedule and when data arrives, one at a time.

Only the holder of a lease row in the database runs cycles, so two service processes on one
store never run two cycles of the project at once; the holder renews the lease while it lives
(also during a long cycle) and another process takes over once it has expired.

Each schedule slot (``every`` or ``cron``; by default the policy's schedule trigger) is a row
with a unique key (schedule @ nominal time), so a slot runs at most once. Slots missed while
no service ran follow ``catch_up``: ``one`` runs a single catch-up cycle for all of them,
``skip`` runs none; either way the number missed is logged as a ``schedule`` event and metered.

When a process takes the lease over, it recovers what a crashed holder left: a cycle still
``running`` is marked failed (lost); a run that registered its version is finished (and its
version promoted if its gate passed), a run that did not is marked failed and retried once by a
manual trigger; an interrupted slot is retried up to ``max_retries`` times.

With an SQL ``data.source`` and ``on_data``, the holder pulls the source's new rows at most
once per ``min_gap`` (exactly once across processes: the pull's plan lives in the store), so
the service needs no separate ``retrainer run``; a source that fails is logged and tried again.

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> at = datetime(2024, 1, 1, 10, 0, 7, tzinfo=UTC)
    >>> slots = Slots(every=timedelta(seconds=5))
    >>> slots.latest(at).isoformat(), slots.count_between(at - timedelta(seconds=21), at)
    ('2024-01-01T10:00:05+00:00', 4)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from retrainer.errors import RetrainerError
from retrainer.integrations.sql_source import sql_source
from retrainer.lease import EPOCH, Lease, _aware, holder_id
from retrainer.store.tables import (
    BatchRow,
    CycleRow,
    DecisionRow,
    LabelSetRow,
    ModelVersionRow,
    RunRow,
    ScheduleSlotRow,
    utcnow,
)

if TYPE_CHECKING:
    from retrainer.project import Project

__all__ = ["Scheduler", "Slots", "TickReport"]

log = logging.getLogger("retrainer.service")
MAX_SLOTS = 100_000  # a cron schedule is walked at most this far to count missed slots
RETRY_MARK = "retry of run"


@dataclass(frozen=True)
class Slots:
    """The nominal times of a schedule: multiples of ``every`` since the Unix epoch (UTC), or
    the times of a ``cron`` expression (UTC)."""

    every: timedelta | None = None
    cron: str | None = None

    @property
    def id(self) -> str:
        return f"every:{self.every.total_seconds():g}s" if self.every else f"cron:{self.cron}"

    def latest(self, now: datetime) -> datetime:
        """The last nominal time at or before ``now``."""
        if self.every is not None:
            return EPOCH + self.every * ((now - EPOCH) // self.every)
        from croniter import croniter

        return croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)

    def count_between(self, after: datetime, until: datetime) -> int:
        """How many nominal times fall in ``(after, until]``."""
        if self.every is not None:
            return max(0, (until - EPOCH) // self.every - (after - EPOCH) // self.every)
        from croniter import croniter

        walk, n = croniter(self.cron, after), 0
        while n < MAX_SLOTS and walk.get_next(datetime) <= until:
            n += 1
        return n


@dataclass(frozen=True)
class TickReport:
    """What one scheduler tick did."""

    leader: bool
    recovered: tuple[str, ...] = ()
    slot: str | None = None
    missed: int = 0
    cycle_id: int | None = None
    reason: str = ""
    error: str = ""

    def to_dict(self) -> dict:
        return {
            "leader": self.leader,
            "recovered": list(self.recovered),
            "slot": self.slot,
            "missed": self.missed,
            "cycle": self.cycle_id,
            "reason": self.reason,
            "error": self.error,
        }


class Scheduler:
    """Runs cycles of one project under a database lease.

    Parameters:
        project: the project.
        clock: the time source (tests move it by hand).
        holder: the name of this process in the lease.
        on_cycle: called with (seconds, outcome) after each cycle (metrics).
        on_missed: called with the number of missed slots when some are found (metrics).
    """

    def __init__(
        self,
        project: Project,
        *,
        clock: Callable[[], datetime] = utcnow,
        holder: str | None = None,
        on_cycle: Callable[[float, str], None] | None = None,
        on_missed: Callable[[int], None] | None = None,
    ):
        self.project = project
        self.settings = project.config.service.schedule
        self.clock = clock
        self.holder = holder or holder_id()
        self.lease = Lease(
            project.store, f"cycle:{project.config.project}", self.holder, self.settings.lease
        )
        self.slots = self._slots()
        self.on_cycle = on_cycle or (lambda seconds, outcome: None)
        self.on_missed = on_missed or (lambda n: None)
        self.wake = threading.Event()
        self.last_cycle_end: datetime | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.alive_at: float | None = None
        self.source = sql_source(project) if self.settings.on_data else None
        self.pulled_at: datetime | None = None

    def _slots(self) -> Slots | None:
        s = self.settings
        if s.every or s.cron:
            return Slots(s.every, s.cron)
        for trigger in self.project.config.policy.triggers:
            if trigger.type == "schedule":
                return Slots(trigger.every, None if trigger.every else trigger.cron)
        return None

    # ------------------------------------------------------------------------ one tick
    def tick(self) -> TickReport:
        """Take or renew the lease; if held, recover, then run at most one cycle that is due."""
        now = self.clock()
        self.alive_at = time.monotonic()
        was_leader = self.lease.held
        if not self.lease.acquire(now):
            return TickReport(leader=False)
        recovered = () if was_leader else tuple(self.recover())
        self._pull_source(now)
        slot_id, missed, reason = self._due_slot(now)
        if slot_id is None and self._work_waiting(now):
            reason = "data arrived"
        if slot_id is None and not reason:
            return TickReport(True, recovered, missed=missed)
        cycle_id, error = self._run(slot_id, reason)
        key = None
        if slot_id is not None:
            with self.project.store.session() as s:
                key = s.get(ScheduleSlotRow, slot_id).key
        return TickReport(True, recovered, key, missed, cycle_id, reason, error)

    def _due_slot(self, now: datetime) -> tuple[int | None, int, str]:
        """The slot row to run now (a retry, the current slot or a catch-up), missed count."""
        with self.project.store.session() as s:
            retry = s.scalar(
                select(ScheduleSlotRow.id)
                .where(ScheduleSlotRow.status == "pending")
                .order_by(ScheduleSlotRow.nominal)
                .limit(1)
            )
        if retry is not None:
            return retry, 0, "retry of an interrupted slot"
        if self.slots is None:
            return None, 0, ""
        latest = self.slots.latest(now)
        with self.project.store.session() as s:
            last = _aware(
                s.scalar(
                    select(func.max(ScheduleSlotRow.nominal)).where(
                        ScheduleSlotRow.schedule == self.slots.id
                    )
                )
            )
        if last is not None and latest <= last:
            return None, 0, ""
        older = self.slots.count_between(last, latest) - 1 if last is not None else 0
        on_time = now - latest <= min(self.settings.grace, self._period(latest))
        if on_time:
            run, missed, rule = True, older, "the current slot runs"
        elif last is None:  # first start: earlier slots were never this service's to run
            run, missed, rule = False, 0, ""
        elif self.settings.catch_up == "one":  # one catch-up cycle stands in for every missed slot
            run, missed, rule = True, older, "one catch-up cycle runs now"
        else:
            run, missed, rule = False, older + 1, "none runs"
        key = f"{self.slots.id}@{latest.isoformat()}"
        try:
            with self.project.store.session() as s:
                row = ScheduleSlotRow(
                    key=key,
                    schedule=self.slots.id,
                    nominal=latest,
                    status="pending" if run else "missed",
                )
                s.add(row)
                s.flush()
                slot_id = row.id
                if missed:
                    self.project.event(
                        s,
                        "schedule",
                        f"{missed} schedule slot(s) of {self.slots.id} missed "
                        f"while no service ran; catch_up={self.settings.catch_up}: {rule}",
                        missed=missed,
                        slot=key,
                        catch_up=self.settings.catch_up,
                    )
        except SQLIntegrityError:
            return None, 0, ""  # another process made this slot
        if missed:
            self.on_missed(missed)
        if not run:
            return None, missed, ""
        return slot_id, missed, "schedule" if on_time else "catch-up of missed slots"

    def _period(self, latest: datetime) -> timedelta:
        """Half the schedule's period at ``latest``: later than that, a slot is late."""
        if self.slots.every is not None:
            return self.slots.every / 2
        from croniter import croniter

        return (croniter(self.slots.cron, latest).get_next(datetime) - latest) / 2

    def _pull_source(self, now: datetime) -> None:
        """Pull an SQL data.source's new rows as a batch, at most once per ``min_gap``."""
        if self.source is None:
            return
        if self.pulled_at is not None and now - self.pulled_at < self.settings.min_gap:
            return
        self.pulled_at = now
        try:
            pulled = self.source.pull()
        except RetrainerError as exc:  # a source that is down must not stop the service
            log.error("%s: pull failed: %s", self.source.name, exc)
            return
        if pulled is not None and pulled.stored is not None:
            log.info(
                "%s: %d rows stored as batch %s", self.source.name, pulled.rows, pulled.stored.id
            )

    def _work_waiting(self, now: datetime) -> bool:
        """New batches, labels or a retrain request, and the data-driven gap has passed."""
        if not self.settings.on_data:
            return False
        gap = self.settings.min_gap * (2 ** min(self.failures, 6))
        if self.last_cycle_end is not None and now - self.last_cycle_end < gap:
            return False
        with self.project.store.session() as s:
            if s.scalar(select(BatchRow.id).where(BatchRow.status == "new").limit(1)):
                return True
            last = _aware(s.scalar(select(func.max(CycleRow.started_at))))
            labels = _aware(s.scalar(select(func.max(LabelSetRow.received_at))))
        if labels is not None and (last is None or labels > last):
            return True
        return bool(self.project.get_state("manual"))

    def _run(self, slot_id: int | None, reason: str) -> tuple[int | None, str]:
        """Run one cycle (renewing the lease meanwhile) and record it on the slot row."""
        if slot_id is not None:
            with self.project.store.session() as s:
                row = s.get(ScheduleSlotRow, slot_id)
                row.status, row.holder, row.started_at = "running", self.holder, self.clock()
                row.attempts += 1
        started = time.monotonic()
        error, cycle_id = "", None
        try:
            report = self.project.cycle(holder=self.holder, clock=self.clock)
            cycle_id = report.cycle_id
        except Exception as exc:  # a failed cycle must not stop the service
            error = f"{type(exc).__name__}: {exc}"
            log.error("cycle failed (%s): %s", reason, error)
        seconds = time.monotonic() - started
        self.last_cycle_end = self.clock()
        self.failures = self.failures + 1 if error else 0
        self.on_cycle(seconds, "failed" if error else "done")
        if slot_id is not None:
            with self.project.store.session() as s:
                row = s.get(ScheduleSlotRow, slot_id)
                row.status, row.finished_at = ("failed" if error else "done"), self.clock()
                row.cycle_id, row.error = cycle_id, error
        return cycle_id, error

    # ------------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Finish or mark what a crashed lease holder left behind; returns what was done."""
        done: list[str] = []
        now = self.clock()
        with self.project.store.session() as s:
            for cycle in s.scalars(select(CycleRow).where(CycleRow.status == "running")):
                cycle.status, cycle.finished_at = "failed", now
                cycle.summary = {"error": "lost: the service stopped during this cycle"}
                done.append(f"cycle {cycle.id} marked failed (lost)")
            runs = s.scalars(select(RunRow).where(RunRow.status == "running")).all()
            run_ids = [r.id for r in runs]
            for slot in s.scalars(
                select(ScheduleSlotRow).where(ScheduleSlotRow.status == "running")
            ):
                retry = slot.attempts <= self.settings.max_retries
                slot.status = "pending" if retry else "failed"
                slot.error = "interrupted" + ("; retried" if retry else "; no retries left")
                done.append(f"slot {slot.key} {'queued again' if retry else 'failed'}")
        for run_id in run_ids:
            done.append(self._recover_run(run_id))
        if done:
            with self.project.store.session() as s:
                self.project.event(s, "recover", "; ".join(done), holder=self.holder)
            log.warning("recovered after a restart: %s", "; ".join(done))
        return done

    def _recover_run(self, run_id: int) -> str:
        p = self.project
        with p.store.session() as s:
            run = s.get(RunRow, run_id)
            version = s.scalar(select(ModelVersionRow).where(ModelVersionRow.run_id == run_id))
            decision = s.get(DecisionRow, run.decision_id) if run.decision_id else None
            reasons = list(decision.reasons) if decision else []
            if version is not None:
                passed = bool(version.metrics.get("gate_passed"))
                run.status = "succeeded" if passed else "rejected"
                run.version, run.finished_at = version.version, self.clock()
                run.window = dict(version.lineage.get("window") or run.window)
                run.metrics = {"gate": version.lineage.get("gate"), "promoted": passed}
                number = version.version
            else:
                run.status, run.finished_at = "failed", self.clock()
                run.error = "lost: the service stopped during the run"
                number = None
        if number is not None:
            champion = p.champion
            promoted = {h["version"] for h in p.registry.history()}
            if (
                passed
                and number not in promoted
                and (champion is None or champion.version < number)
            ):
                p.promote(
                    number,
                    reason=f"run {run_id} finished after a restart: gate passed",
                    actor="scheduler",
                )
                return f"run {run_id} finished: version {number} promoted"
            return f"run {run_id} finished with its registered version {number}"
        if any(RETRY_MARK in r for r in reasons) or self.settings.max_retries < 1:
            return f"run {run_id} marked failed (lost); not retried again"
        p.request_retrain(f"{RETRY_MARK} {run_id}, interrupted by a restart", actor="scheduler")
        return f"run {run_id} marked failed (lost); retrain requested once"

    # ------------------------------------------------------------------------ thread
    def start(self) -> None:
        """Run ticks in a background thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retrainer-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        pause = self.settings.tick.total_seconds()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep the service scheduling through a store hiccup
                log.exception("scheduler tick failed")
            self.wake.wait(pause)
            self.wake.clear()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current step and release the lease."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.lease.release()
        except Exception:  # the store may already be gone at shutdown
            log.exception("could not release the lease")

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()
