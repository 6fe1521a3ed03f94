"""The retrigger engine: composition, dedup, budget, minimum data, quiet period, estimated
performance, false-alarm calibration, and the concept-detector settings."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from retrainer.checks.concept import DETECTORS
from retrainer.checks.concept.calibrate import Calibration, calibrate_detector, error_stream
from retrainer.config import Config
from retrainer.errors import ConfigError, DataError
from retrainer.triggers import (
    ConceptTrigger,
    DriftTrigger,
    Evidence,
    ManualTrigger,
    PerformanceTrigger,
    Policy,
    ScheduleTrigger,
    TriggerGroup,
)

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def ev(**kw):
    return Evidence(now=NOW, last_retrain=kw.pop("last", NOW - 3 * DAY), **kw)


def test_all_mode_needs_every_trigger_and_manual_still_counts_alone():
    policy = Policy((DriftTrigger(), ConceptTrigger(), ManualTrigger()), mode="all")
    assert policy.decide(ev(concept_drift=True)).action == "hold"  # fired alone: not enough
    both = policy.decide(ev(concept_drift=True, dataset_drift=True))
    assert both.action == "retrain" and [r.split(":")[0] for r in both.reasons] == [
        "drift",
        "concept",
    ]
    assert policy.decide(ev(manual="hotfix")).action == "retrain"


def test_nested_groups_from_the_project_file():
    cfg = Config.from_dict(
        {
            "data": {"target": "y"},
            "policy": {
                "triggers": [
                    {"type": "schedule", "every": "28d"},
                    {
                        "type": "group",
                        "mode": "all",
                        "triggers": [{"type": "drift"}, {"type": "concept"}],
                    },
                ]
            },
        }
    )
    policy = Policy.from_settings(cfg.policy)
    assert isinstance(policy.triggers[1], TriggerGroup)
    assert policy.decide(ev(concept_drift=True)).action != "retrain"
    fired = policy.decide(ev(concept_drift=True, dataset_drift=True))
    assert fired.action == "retrain" and " AND concept:" in fired.reasons[0]
    assert policy.decide(ev(last=NOW - 29 * DAY)).reasons[0].startswith("schedule")


def test_the_same_alarm_retrains_once_per_dedup_window_and_the_repeat_is_logged():
    policy = Policy((DriftTrigger(), ConceptTrigger()), dedup=14 * DAY)
    earlier = ((NOW - 3 * DAY, "concept: the error-stream detector signalled drift"),)
    held = policy.decide(ev(concept_drift=True, recent_reasons=earlier))
    assert held.action == "hold" and held.reasons[0].startswith("dedup")
    assert "[dedup: the same alarm retrained at" in held.suppressed[0]
    mixed = policy.decide(ev(concept_drift=True, dataset_drift=True, recent_reasons=earlier))
    assert mixed.action == "retrain" and mixed.reasons[0].startswith("drift")
    assert mixed.suppressed[0].startswith("concept")
    old = ((NOW - 20 * DAY, earlier[0][1]),)
    assert policy.decide(ev(concept_drift=True, recent_reasons=old)).action == "retrain"


def test_schedules_are_never_deduplicated():
    policy = Policy((ScheduleTrigger(every=7 * DAY),), dedup=30 * DAY)
    earlier = ((NOW - 8 * DAY, "schedule: 7 days since the last retrain"),)
    assert policy.decide(ev(last=NOW - 8 * DAY, recent_reasons=earlier)).action == "retrain"


def test_budget_min_rows_quiet_period_and_cooldown_each_hold_with_their_reason():
    policy = Policy(
        (ConceptTrigger(),),
        cooldown=2 * DAY,
        budget=(2, 30 * DAY),
        min_new_rows=500,
        quiet_after_deploy=7 * DAY,
    )
    fine = dict(concept_drift=True, new_labelled_rows=800, last_deploy=NOW - 10 * DAY)
    assert policy.decide(ev(**fine)).action == "retrain"
    cases = {
        "budget": dict(recent_retrains=(NOW - 5 * DAY, NOW - 20 * DAY)),
        "min_new_rows": dict(new_labelled_rows=100),
        "quiet_after_deploy": dict(last_deploy=NOW - 3 * DAY),
        "cooldown": dict(last=NOW - DAY),
    }
    for name, change in cases.items():
        decision = policy.decide(ev(**(fine | change)))
        assert decision.action == "hold", name
        assert [r.split(":")[0] for r in decision.reasons] == [name]
        assert decision.suppressed[0].startswith("concept")
    assert policy.decide(ev(**fine, recent_retrains=(NOW - 40 * DAY,) * 5)).action == "retrain"


def test_manual_ignores_budget_and_quiet_period():
    policy = Policy((ManualTrigger(),), budget=(1, 30 * DAY), quiet_after_deploy=7 * DAY)
    decision = policy.decide(
        ev(manual="hotfix", recent_retrains=(NOW - DAY,), last_deploy=NOW - DAY)
    )
    assert decision.action == "retrain"


def test_performance_trigger_on_the_estimate():
    realised = PerformanceTrigger(max_drop=0.05)
    estimated = PerformanceTrigger(max_drop=0.05, source="estimated")
    evidence = ev(estimated_performance=0.70, reference_performance=0.80)
    assert realised.fire(evidence) is None
    assert "estimated accuracy=0.7000" in estimated.fire(evidence)
    assert estimated.fire(ev(performance=0.5, reference_performance=0.8)) is None


def test_expected_false_alarm_rate_composes_like_independent_events():
    rates = {"drift": 0.02, "concept": 0.01, "performance": 0.05}
    anyone = Policy((DriftTrigger(), ConceptTrigger(), PerformanceTrigger(0.1), ManualTrigger()))
    assert anyone.false_alarm_rate(rates) == pytest.approx(1 - 0.98 * 0.99 * 0.95)
    both = Policy((DriftTrigger(), ConceptTrigger()), mode="all")
    assert both.false_alarm_rate(rates) == pytest.approx(0.02 * 0.01)
    nested = Policy((TriggerGroup((DriftTrigger(), ConceptTrigger()), "all"), ScheduleTrigger(DAY)))
    assert nested.false_alarm_rate(rates) == pytest.approx(0.0002)


@pytest.mark.parametrize("name", ["DDM", "PageHinkley", "ADWIN", "CUSUM", "HDDMA"])
def test_a_calibrated_threshold_keeps_its_run_length_on_a_fresh_stream(elec, name):
    from sklearn.tree import DecisionTreeClassifier

    features = ["period", "nswprice", "nswdemand"]
    train, held = elec.iloc[:2000], elec.iloc[2000:2400]
    model = DecisionTreeClassifier(max_depth=5, random_state=0)
    model.fit(train[features], train["target"])
    errors = error_stream(
        "classification", "absolute", held["target"], model.predict(held[features])
    )
    cal = calibrate_detector(name, {}, errors, arl=1000, length=30_000)
    assert cal.arl >= 1000
    fresh = np.random.default_rng(99).choice(errors, size=60_000)
    hits = DETECTORS[name](**cal.params).update_many(fresh)
    # false alarms on an independent bootstrap: a Poisson count with mean 60 (ARL 1000) at most
    assert len(hits) <= stats.poisson.ppf(0.999, 60_000 / 1000), (name, len(hits))
    assert cal.per_batch(336) == pytest.approx(1 - (1 - 1 / cal.arl) ** 336)


def test_calibration_moves_the_threshold_the_right_way():
    errors = (np.random.default_rng(0).random(500) < 0.3).astype(float)
    calm = calibrate_detector("DDM", {}, errors, arl=20_000, length=100_000)
    noisy = calibrate_detector("DDM", {}, errors, arl=500, length=100_000)
    assert calm.params["drift_threshold"] > noisy.params["drift_threshold"]
    assert isinstance(calm, Calibration) and calm.to_dict()["false_alarm_rate"] == 1 / calm.arl
    with pytest.raises(DataError, match="need >= 10"):
        calibrate_detector("DDM", {}, [0.0, 1.0], arl=100)


def test_page_hinkley_is_calibrated_in_the_units_of_the_loss():
    """Page-Hinkley's threshold is a sum of errors in the loss's own units. A regressor of house
    prices (the Texas housing fixture: MAE some 10,000 dollars) needs a threshold of hundreds of
    thousands; the search stopped at 10^5, so no threshold reached the run length asked for.
    The search range now follows the errors' spread: in thousands of dollars the threshold is a
    thousandth, and both reach the run length."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "txhousing_2000_2001.csv")
    frame = frame.dropna(subset=["median"])
    features = ["month", "sales", "volume", "listings", "inventory"]
    train, held = frame[frame.year == 2000], frame[frame.year == 2001]
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0)
    model.fit(train[features], train["median"])
    dollars = error_stream("regression", "absolute", held["median"], model.predict(held[features]))
    assert 5_000 < dollars.mean() < 20_000
    in_dollars = calibrate_detector("PageHinkley", {}, dollars, arl=2000)
    in_thousands = calibrate_detector("PageHinkley", {}, dollars / 1000, arl=2000)
    assert in_dollars.arl >= 2000 and in_thousands.arl >= 2000
    ratio = in_dollars.params["threshold"] / in_thousands.params["threshold"]
    assert ratio == pytest.approx(1000, rel=0.1)  # delta (0.005) is not scaled


def test_concept_settings_take_any_detector_and_refuse_what_does_not_fit():
    cfg = Config.from_dict(
        {"data": {"target": "y"}, "checks": {"concept": {"detector": "hddm_w", "arl": 500}}}
    )
    assert cfg.checks.concept.detector == "HDDMW"
    regression = {"estimator": "sklearn.linear_model.Ridge", "task": "regression"}
    with pytest.raises(ConfigError, match="DDM reads a 0/1 error stream"):
        Config.from_dict({"data": {"target": "y"}, "trainer": regression})
    ok = Config.from_dict(
        {
            "data": {"target": "y"},
            "trainer": regression,
            "checks": {"concept": {"detector": "ADWIN", "loss": "squared"}},
        }
    )
    assert ok.checks.concept.loss == "squared"
    with pytest.raises(ConfigError, match="checks.concept: PageHinkley refused params"):
        Config.from_dict(
            {
                "data": {"target": "y"},
                "checks": {"concept": {"detector": "PageHinkley", "params": {"mode": "sideways"}}},
            }
        )
    with pytest.raises(ConfigError, match="policy.budget.max_retrains"):
        Config.from_dict({"data": {"target": "y"}, "policy": {"budget": {"per": "7d"}}})
