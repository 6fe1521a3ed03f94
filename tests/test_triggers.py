"""Triggers and the policy: each trigger fires on its own evidence; cooldown and blocking hold."""

from datetime import UTC, datetime, timedelta

from retrainer.diagnosis import Alarm
from retrainer.triggers import (
    ConceptTrigger,
    DriftTrigger,
    Evidence,
    ManualTrigger,
    PerformanceTrigger,
    Policy,
    ScheduleTrigger,
    VolumeTrigger,
)

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
ALL = (
    ScheduleTrigger(every=timedelta(days=7)),
    VolumeTrigger(1000),
    DriftTrigger(),
    ConceptTrigger(),
    PerformanceTrigger(max_drop=0.05),
    ManualTrigger(),
)


def ev(**kw):
    return Evidence(now=NOW, last_retrain=kw.pop("last", NOW - timedelta(days=3)), **kw)


def test_nothing_fires_on_quiet_evidence():
    decision = Policy(ALL).decide(ev())
    assert decision.action == "hold" and decision.reasons == ()


def test_each_trigger_fires_on_its_evidence_and_says_why():
    cases = {
        "schedule": ev(last=NOW - timedelta(days=8)),
        "volume": ev(new_labelled_rows=1500),
        "drift": ev(dataset_drift=True, drifted_columns=("price",)),
        "concept": ev(concept_drift=True),
        "performance": ev(performance=0.70, reference_performance=0.80),
        "manual": ev(manual="new features shipped"),
    }
    for name, evidence in cases.items():
        decision = Policy(ALL).decide(evidence)
        assert decision.action == "retrain", name
        assert [r.split(":")[0] for r in decision.reasons] == [name]


def test_performance_respects_direction_of_losses():
    trigger = PerformanceTrigger(max_drop=0.1)
    assert trigger.fire(ev(metric="rmse", performance=1.05, reference_performance=1.0)) is None
    assert trigger.fire(ev(metric="rmse", performance=1.2, reference_performance=1.0))
    assert PerformanceTrigger(min_value=0.9).fire(ev(performance=0.85))


def test_named_drift_columns_only():
    trigger = DriftTrigger(columns=("price",))
    assert trigger.fire(ev(drifted_columns=("demand",), dataset_drift=True)) is None
    assert "price" in trigger.fire(ev(drifted_columns=("price", "demand")))


def test_cron_schedule():
    trigger = ScheduleTrigger(cron="0 3 * * 1")  # Mondays 03:00; NOW is a Friday
    assert trigger.fire(ev(last=NOW - timedelta(days=2))) is None
    assert "cron slot" in trigger.fire(ev(last=NOW - timedelta(days=6)))


def test_cooldown_holds_and_logs_what_it_suppressed():
    policy = Policy(ALL, cooldown=timedelta(days=7))
    decision = policy.decide(ev(concept_drift=True))
    assert decision.action == "hold"
    assert decision.reasons[0].startswith("cooldown")
    assert decision.suppressed[0].startswith("concept")


def test_manual_ignores_the_cooldown():
    policy = Policy(ALL, cooldown=timedelta(days=7))
    assert policy.decide(ev(manual="hotfix")).action == "retrain"


def test_blocking_alarms_turn_a_retrain_into_an_alert():
    broken = Alarm("data_quality", "quarantine", "error", "null_rate", "price", "30% nulls")
    decision = Policy(ALL).decide(ev(alarms=(broken,), dataset_drift=True))
    assert decision.action == "alert"
    assert "blocked by data_quality" in decision.reasons[0]
    assert decision.suppressed[0].startswith("drift")


def test_a_warning_alarm_does_not_block_but_is_reported():
    warning = Alarm("data_quality", "watch", "warning", "out_of_range", "price", "6% out")
    decision = Policy(ALL).decide(ev(alarms=(warning,)))
    assert decision.action == "alert" and "data_quality: out_of_range" in decision.reasons


def test_without_a_champion_the_policy_bootstraps():
    assert Policy(()).decide(ev(has_champion=False)).action == "retrain"
