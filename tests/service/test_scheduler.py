"""The scheduler: one lease holder at a time (R6), each slot once, missed slots by the catch-up
rule (R7), and recovery of what a crashed holder left (R1, R8)."""

import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.dummy import DummyClassifier
from sqlalchemy import func, select

from retrainer.service.scheduler import Scheduler, Slots
from retrainer.store.tables import (
    CycleRow,
    DecisionRow,
    EventRow,
    RunRow,
    ScheduleSlotRow,
)

T0 = datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)


class Clock:
    def __init__(self, at=T0):
        self.at = at

    def __call__(self):
        return self.at

    def advance(self, seconds):
        self.at += timedelta(seconds=seconds)


def schedule(**overrides):
    settings = {"every": "10s", "lease": "30s", "tick": "1s", "on_data": False}
    settings.update(overrides)
    return {"schedule": settings}


def count(project, table, *where):
    with project.store.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(*where))


def test_slots_follow_every_and_cron():
    every = Slots(every=timedelta(minutes=15))
    at = datetime(2024, 3, 5, 10, 7, tzinfo=UTC)
    assert every.latest(at) == datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    assert every.count_between(datetime(2024, 3, 5, 8, 0, tzinfo=UTC), at) == 8
    cron = Slots(cron="0 3 * * *")
    assert cron.latest(at) == datetime(2024, 3, 5, 3, 0, tzinfo=UTC)
    assert cron.count_between(datetime(2024, 3, 1, 3, 0, tzinfo=UTC), at) == 4
    assert cron.latest(datetime(2024, 3, 5, 3, 0, tzinfo=UTC)).hour == 3


def test_one_lease_holder_and_takeover_after_expiry(service_project):
    project = service_project(service=schedule())
    clock = Clock()
    a, b = Scheduler(project, clock=clock), Scheduler(project, clock=clock)
    assert a.tick().leader and not b.tick().leader
    clock.advance(20)
    assert a.tick().leader and not b.tick().leader  # renewed
    clock.advance(31)  # a died: its lease expires
    taken = b.tick()
    assert taken.leader and not a.tick().leader
    a.lease.held = False
    b.stop()  # a clean stop releases at once
    assert a.tick().leader


def test_each_slot_runs_once_across_two_instances_with_restarts(service_project):
    """R6 on a simulated clock: two instances tick in random order, one is killed and
    restarted at random; every slot gets one row and one cycle."""
    project = service_project(service=schedule(every="1s", lease="3s", tick="0.25s"))
    clock = Clock()
    rng = random.Random(7)
    nodes = [Scheduler(project, clock=clock), Scheduler(project, clock=clock)]
    cycles_run = 0
    for _ in range(240):
        clock.advance(0.25)
        for i in rng.sample([0, 1], k=rng.choice([1, 2])):
            if rng.random() < 0.02:
                nodes[i] = Scheduler(project, clock=clock)  # killed, restarted: new holder
            cycles_run += nodes[i].tick().cycle_id is not None
    with project.store.session() as s:
        slots = s.execute(select(ScheduleSlotRow.key, ScheduleSlotRow.status)).all()
    keys = [k for k, _ in slots]
    assert len(keys) == len(set(keys))
    done = sum(status == "done" for _, status in slots)
    assert done == cycles_run == count(project, CycleRow)
    assert done >= 36  # 60 s of 1 s slots, minus the gaps while a dead holder's lease ran out


def test_two_threads_never_run_cycles_at_once(service_project):
    """Two real scheduler threads on one SQLite store: cycles never overlap in time.

    The lease (renewed every third of it) is long enough that a loaded machine's stall does
    not expire it: a 1 s lease once let the other thread in mid-cycle under two benches.
    """
    project = service_project(service=schedule(every="0.3s", lease="3s", tick="0.05s"))
    nodes = [Scheduler(project), Scheduler(project)]
    for n in nodes:
        n.start()
    time.sleep(2.5)
    for n in nodes:
        n.stop()
    with project.store.session() as s:
        spans = s.execute(
            select(CycleRow.started_at, CycleRow.finished_at).order_by(CycleRow.started_at)
        ).all()
        keys = s.scalars(select(ScheduleSlotRow.key)).all()
    assert len(spans) >= 3 and len(keys) == len(set(keys))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start


@pytest.mark.parametrize("rule,cycles,missed", [("one", 1, 9), ("skip", 0, 10)])
def test_missed_slots_follow_the_catch_up_rule(service_project, rule, cycles, missed):
    project = service_project(service=schedule(catch_up=rule))
    clock = Clock()
    seen = []
    first = Scheduler(project, clock=clock, on_missed=seen.append)
    assert first.tick().cycle_id is not None  # the current slot, on time
    first.stop()
    clock.advance(100 + 6)  # ten slots pass while no service runs; the latest is 6.5 s late
    second = Scheduler(project, clock=clock, on_missed=seen.append)
    report = second.tick()
    assert report.missed == missed and seen == [missed]
    assert count(project, CycleRow) == 1 + cycles
    with project.store.session() as s:
        event = s.scalars(select(EventRow).where(EventRow.kind == "schedule")).one()
    assert event.data["missed"] == missed and event.data["catch_up"] == rule
    clock.advance(4)  # the next slot is on time again
    assert second.tick().cycle_id is not None
    assert count(project, CycleRow) == 2 + cycles


def test_first_start_does_not_catch_up_history(service_project):
    project = service_project(service=schedule())
    clock = Clock(T0 + timedelta(seconds=7))  # 7.5 s after the slot at T0: late
    node = Scheduler(project, clock=clock)
    report = node.tick()
    assert report.cycle_id is None and report.missed == 0
    clock.advance(3)
    assert node.tick().cycle_id is not None  # the next slot is on time


def crash_state(project, *, version_passed=None, reasons=("drift: x",)):
    """The rows a holder killed mid-retrain leaves: a running cycle and run, maybe a version."""
    with project.store.session() as s:
        cycle = CycleRow(status="running")
        s.add(cycle)
        s.flush()
        decision = DecisionRow(cycle_id=cycle.id, at=T0, action="retrain", reasons=list(reasons))
        s.add(decision)
        s.flush()
        run = RunRow(
            key=f"decision:{decision.id}",
            cycle_id=cycle.id,
            decision_id=decision.id,
            window={"clock": T0.isoformat()},
        )
        s.add(run)
        s.flush()
        run_id, cycle_id = run.id, cycle.id
    if version_passed is not None:
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        project.registry.register(
            model,
            lineage={"window": {"clock": T0.isoformat(), "batches": [1]}, "gate": {}},
            metrics={"gate_passed": version_passed},
            run_id=run_id,
        )
    return run_id, cycle_id


def test_recovery_finishes_a_run_that_registered_its_version(service_project):
    project = service_project(service=schedule())
    run_id, cycle_id = crash_state(project, version_passed=True)
    report = Scheduler(project, clock=Clock()).tick()
    assert any("version 1 promoted" in r for r in report.recovered)
    with project.store.session() as s:
        run, cycle = s.get(RunRow, run_id), s.get(CycleRow, cycle_id)
        assert (run.status, run.version, cycle.status) == ("succeeded", 1, "failed")
        assert cycle.summary["error"].startswith("lost")
    assert project.champion.version == 1 and len(project.models) == 1
    assert project.registry.verify() == []
    assert not project.get_state("manual")  # finished, not retried


def test_recovery_retries_a_lost_run_once(service_project):
    project = service_project(service=schedule())
    clock = Clock()
    run_id, _ = crash_state(project)
    report = Scheduler(project, clock=clock).tick()
    assert report.cycle_id is not None  # the current slot's cycle takes the retry request
    with project.store.session() as s:
        assert s.get(RunRow, run_id).status == "failed"
        decision = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc())).first()
        asked = s.scalars(select(EventRow).where(EventRow.kind == "manual")).one()
    assert asked.message.endswith(f"retry of run {run_id}, interrupted by a restart")
    assert decision.action == "retrain" and not project.get_state("manual")
    retry_id, _ = crash_state(project, reasons=[f"manual: retry of run {run_id}, interrupted"])
    clock.advance(31)  # the holder died during the retry; its lease ran out
    report = Scheduler(project, clock=clock).tick()
    assert any(f"run {retry_id} marked failed (lost); not retried" in r for r in report.recovered)
    assert not project.get_state("manual")
    assert count(project, RunRow, RunRow.status == "running") == 0


def test_an_interrupted_slot_is_retried_up_to_max_retries(service_project):
    project = service_project(service=schedule(max_retries=1))
    clock = Clock()
    with project.store.session() as s:
        s.add(
            ScheduleSlotRow(
                key="every:10s@x", schedule="every:10s", nominal=T0, status="running", attempts=1
            )
        )
    report = Scheduler(project, clock=clock).tick()
    assert report.slot == "every:10s@x" and report.cycle_id is not None
    with project.store.session() as s:
        s.get(ScheduleSlotRow, 1).status = "running"  # killed again during the retry
    clock.advance(31)
    Scheduler(project, clock=clock).tick()
    with project.store.session() as s:
        slot = s.get(ScheduleSlotRow, 1)
        assert (slot.status, slot.attempts) == ("failed", 2)


def test_data_arriving_starts_a_cycle_after_the_gap(service_project, elec):
    project = service_project(service=schedule(every=None, on_data=True, min_gap="5s"))
    clock = Clock()
    node = Scheduler(project, clock=clock)
    assert node.tick().cycle_id is None
    project.ingest(elec.iloc[:400], key="a")
    assert node.tick().reason == "data arrived"
    project.ingest(elec.iloc[400:800], key="b")
    assert node.tick().cycle_id is None  # within min_gap of the last cycle
    clock.advance(6)
    assert node.tick().cycle_id is not None
    project.request_retrain("by hand")
    clock.advance(6)
    assert node.tick().cycle_id is not None and not project.get_state("manual")


def test_the_heartbeat_keeps_the_lease_during_a_long_cycle(service_project, monkeypatch):
    project = service_project(service=schedule(every=None, on_data=True, lease="0.6s", tick="0.1s"))
    project.request_retrain("slow")
    node, rival = Scheduler(project), Scheduler(project)
    verdicts = []

    def slow_cycle(project):
        for _ in range(6):
            time.sleep(0.2)
            verdicts.append(rival.tick().leader)
        raise RuntimeError("boom")

    monkeypatch.setattr("retrainer.cycle.run_cycle", slow_cycle)
    report = node.tick()
    assert report.leader and report.error == "RuntimeError: boom"
    assert verdicts == [False] * 6
