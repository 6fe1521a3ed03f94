"""The changed-relation test accumulated over batches: its evidence against an independent
integral, its false-alarm rate at the baseline, detection of a flipped region within 2 batches
of 30 rows, and evidence text that names input movement only when a drift test alarmed."""

import math

import numpy as np
import pytest
from scipy import integrate

from retrainer.checks.concept.sequential import above_holdout, baseline, error_rise, log_evidence
from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.quality import check_quality
from retrainer.data.schema import Schema
from retrainer.diagnosis import diagnose_batch, relation_alarm
from retrainer.diagnosis.scenarios import SCENARIOS, _prepared
from retrainer.profile import BatchProfile


@pytest.mark.parametrize(
    ("k", "n", "p0"), [(3, 30, 0.2), (14, 30, 0.2), (40, 120, 0.3), (0, 5, 0.1)]
)
def test_the_evidence_is_the_mixture_likelihood_ratio(k, n, p0):
    def ratio(q):
        return (q / p0) ** k * ((1 - q) / (1 - p0)) ** (n - k) / (1 - p0)

    expected, _ = integrate.quad(ratio, p0, 1, epsabs=1e-12, epsrel=1e-10)
    assert log_evidence(k, n, p0) == pytest.approx(math.log(expected), rel=1e-6, abs=1e-9)


def test_the_guard_is_a_two_proportion_z_test_and_bad_input_is_refused():
    from scipy import stats

    k, n, n0, k0 = 27, 60, 264, 66
    pooled = (k + k0) / (n + n0)
    z = (k / n - k0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
    assert above_holdout([k], [n], (n0, k0))[0] == pytest.approx(stats.norm.sf(z))
    assert baseline(0.2) == pytest.approx(0.23)
    with pytest.raises(ValueError, match="holdout error in"):
        baseline(1.5)
    with pytest.raises(ValueError, match="batch 1: 31 errors in 30 rows"):
        error_rise([(30, 3), (30, 31)], 0.2)


def test_a_holdout_that_scored_low_by_chance_does_not_raise_an_alarm_forever():
    """The holdout said 0.208 on 269 rows; the true error is 0.26 (2 sd above): the mixture
    alone would fire on large batches; the guard holds it."""
    rng = np.random.default_rng(0)
    history = [(336, int(rng.binomial(336, 0.26))) for _ in range(30)]
    p0 = baseline(0.208)
    assert error_rise(history, p0).fired
    assert not error_rise(history, p0, holdout=(269, 56)).fired


def test_false_alarms_at_the_baseline_rate_are_rarer_than_one_per_arl_batches():
    rng = np.random.default_rng(7)
    p0, alarms, batches = 0.25, 0, 0
    for _ in range(40):
        history = []
        for _ in range(100):
            history.append((30, int(rng.binomial(30, p0))))
            batches += 1
            if error_rise(history, p0, arl=100).fired:
                alarms, history = alarms + 1, []
    assert alarms / batches <= 1 / 100


def test_a_flipped_region_is_found_within_two_batches_of_30_rows_after_a_long_good_run():
    rng = np.random.default_rng(3)
    p0, holdout = baseline(0.2), (300, 60)
    found = []
    for _ in range(20):
        history = [(30, int(rng.binomial(30, 0.2))) for _ in range(60)]  # a year of good months
        history += [(30, int(rng.binomial(30, 0.5))) for _ in range(2)]  # the region flipped
        found.append(error_rise(history, p0, holdout=holdout).fired)
        assert not error_rise(history[:60], p0, holdout=holdout).fired
    assert sum(found) >= 18
    # from the start only, the good run would hide it: the test looks back from every batch
    total = sum(k for _, k in history), sum(n for n, _ in history)
    assert log_evidence(total[0], total[1], p0) < math.log(200)


def test_the_elec2_flipped_region_at_30_rows_is_found_soon_and_never_before():
    """Labels flipped where nswdemand > 0.45 (error ~0.45 against a holdout error of ~0.25 on
    264 rows): no false alarm on 30 unchanged batches, found within 3 labelled batches in most
    shuffles (within 2 in half of them: 60 rows carry little evidence at this size of rise)."""
    within = []
    for seed in range(6):
        stream, _, _, model = _prepared("elec2", 30, seed, None)
        flip, rng = SCENARIOS["elec2-flip"].inject, np.random.default_rng(seed)
        p0 = baseline(model.expected)
        holdout = (model.n_expected, round(model.expected * model.n_expected))

        def counted(batch, model=model):
            return len(batch), round(model.error(batch) * len(batch))

        history = [counted(stream.batch(i)) for i in range(30)]
        assert not any(error_rise(history[: i + 1], p0, holdout=holdout).fired for i in range(30))
        flipped = [counted(flip(stream.batch(30 + i), stream, rng)) for i in range(3)]
        fired = [error_rise(history + flipped[:i], p0, holdout=holdout).fired for i in (1, 2, 3)]
        within.append(fired.index(True) + 1 if True in fired else None)
    assert sum(w is not None and w <= 2 for w in within) >= 3, within
    assert sum(w is not None for w in within) >= 4, within


def test_an_unchanged_small_batch_reports_no_input_movement(elec):
    features = ["nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
    ref = elec.iloc[17_424:19_424][features].reset_index(drop=True)
    batch = elec.iloc[17_424:19_424][features].sample(30, random_state=1).reset_index(drop=True)
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    drift = check_drift(reference, current)
    results = [*check_quality(reference, current, schema), *drift, dataset_drift(drift)]
    diagnosis = diagnose_batch(results, reference, current)
    assert not any(r.alarm for r in drift)
    assert diagnosis.shift == 0.0  # the 30-row histograms differ by noise alone (TV ~0.4)
    alarm = relation_alarm(0.5, 30, 0.2, 300, shift=diagnosis.shift)
    assert "the inputs did not move (no drift test alarmed" in alarm.message
    assert "inputs moved too" not in alarm.message


def test_input_movement_is_reported_when_a_drift_test_alarmed(elec):
    ref = elec.iloc[17_424:19_424][["nswdemand", "transfer"]].reset_index(drop=True)
    moved = ref.iloc[:300].assign(nswdemand=lambda d: d.nswdemand + 0.2)
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    current = BatchProfile.from_frame(moved, schema, edges=reference.edges())
    drift = check_drift(reference, current)
    diagnosis = diagnose_batch([*drift, dataset_drift(drift)], reference, current)
    assert diagnosis.shift > 0.3
    alarm = relation_alarm(0.45, 300, 0.2, 300, shift=diagnosis.shift)
    assert "drifted-column shift" in alarm.message and "did not move" not in alarm.message


def test_the_accumulated_rows_report_movement_a_drift_test_found_on_any_of_their_batches(
    monkeypatch,
):
    """The sequential test fires on the rows of batches 5 and 6; a drift test alarmed on
    batch 5 (shift 0.3): the evidence says the inputs moved, though the newest batch's did
    not (it said "did not move": only the cycle's own batches were read)."""
    from types import SimpleNamespace

    from retrainer.diagnosis import loop

    state = {}
    version = SimpleNamespace(version=1, metrics={"holdout": 0.8, "n_holdout": 270})
    project = SimpleNamespace(
        config=SimpleNamespace(gate=SimpleNamespace(metric="accuracy")),
        champion=version,
        registry=SimpleNamespace(get=lambda v: version),
        get_state=state.get,
        set_state=state.__setitem__,
    )
    monkeypatch.setattr(loop, "_shift", lambda project, batch: {5: 0.3}.get(batch, 0.0))

    def scored(batch, errors):
        entry = {"batch": batch, "version": 1, "role": "champion", "n": 30, "errors": errors}
        return loop.relation_alarms(project, [{**entry, "value": 1 - errors / 30}], False)

    assert scored(5, 13) == []  # 0.43 on 30 rows: not enough alone
    (alarm,) = scored(6, 14)
    assert "sequential test" in alarm.message
    assert "largest drifted-column shift 0.300" in alarm.message
    assert "did not move" not in alarm.message
