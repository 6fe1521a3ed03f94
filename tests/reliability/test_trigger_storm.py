"""R9: a storm of drift alarms gives one retrain per cooldown; every suppressed trigger is logged.

The policy sees 100 drift alarms within a minute after a retrain, then 100 more after it but
within the cooldown: none retrains, and each decision keeps the drift reason it suppressed and
names the cooldown. The same holds in the live loop on ELEC2: a day of data per cycle with
drift-prone batches, a cooldown of three days: retrains are at least three data days apart and
each decision that held back a trigger logged it (``decisions.suppressed`` and its event).
A run that registered no version (skipped: too few rows) starts no cooldown.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retrainer.store.tables import DecisionRow, EventRow, RunRow
from retrainer.triggers import DriftTrigger, Evidence, ManualTrigger, Policy


def storm(policy: Policy, start: datetime, last: datetime | None, n: int = 100):
    decisions = []
    for i in range(n):
        now = start + timedelta(seconds=60 * i / n)
        ev = Evidence(now=now, last_retrain=last, dataset_drift=True, drifted_columns=("x",))
        decision = policy.decide(ev)
        if decision.action == "retrain":
            last = now
        decisions.append(decision)
    return decisions, last


def test_a_storm_of_drift_alarms_gives_one_retrain_per_cooldown():
    policy = Policy([DriftTrigger(), ManualTrigger()], cooldown=timedelta(hours=1))
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    first, last = storm(policy, t0, None)
    assert [d.action for d in first].count("retrain") == 1 and first[0].action == "retrain"
    second, last = storm(policy, t0 + timedelta(minutes=30), last)
    assert [d.action for d in second].count("retrain") == 0
    for d in first[1:] + second:
        assert d.action == "hold"
        assert d.suppressed == ("drift: dataset drift (x drifted)",)
        assert d.reasons[0].startswith("cooldown: ")
    after, _ = storm(policy, t0 + timedelta(hours=1, minutes=1), last)
    assert [d.action for d in after].count("retrain") == 1  # the cooldown ends


@pytest.mark.parametrize("days", [12])
def test_the_live_loop_honours_the_cooldown_under_daily_alarms(make_project, elec, days):
    project = make_project(
        policy={
            "triggers": [{"type": "drift"}, {"type": "concept"}, {"type": "volume", "min_rows": 1}],
            "cooldown": "3d",
        }
    )
    day = 48
    start = 20_000  # after the upstream fill of the vic* columns
    project.ingest(elec.iloc[start - 7 * day : start], key="history")
    project.cycle()
    for i in range(days):
        project.ingest(elec.iloc[start + i * day : start + (i + 1) * day], key=f"day-{i}")
        project.cycle()
    with project.store.session() as s:
        runs = s.scalars(select(RunRow).order_by(RunRow.id)).all()
        decisions = s.scalars(select(DecisionRow).order_by(DecisionRow.id)).all()
        logged = [
            e.data
            for e in s.scalars(
                select(EventRow).where(EventRow.kind == "decision").order_by(EventRow.id)
            )
        ]
    retrained = [r for r in runs if r.version is not None]  # a run that trained nothing
    clocks = [datetime.fromisoformat(r.window["clock"]) for r in retrained]  # starts no cooldown
    assert len(retrained) >= 2, [(r.status, r.error) for r in runs]
    for earlier, later in zip(clocks, clocks[1:], strict=False):
        assert later - earlier >= timedelta(days=3)
    held = [d for d in decisions if d.suppressed]
    assert held, "the volume trigger fires every day: some decisions must have been held"
    for d in held:
        assert d.action in ("hold", "alert")
        if d.action == "hold":
            assert d.reasons[0].startswith("cooldown: ")
    assert [e["suppressed"] for e in logged] == [d.suppressed for d in decisions]
