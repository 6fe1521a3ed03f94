"""The hindsight-optimal schedule, the score matrix and the cost-aware policies."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from retrainer.schedule.optimal import evaluate, optimal_schedule
from retrainer.schedule.policies import CARA, UPF, Every, GainForecast, View, simulate
from retrainer.schedule.scores import ScoreMatrix, build_scores, cached_scores
from retrainer.training import Trainer


def random_matrix(rng: np.random.Generator, T: int) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.integers(50, 200, size=T)
    E = np.full((T, T), np.nan)
    for k in range(T):
        for j in range(k, T):
            E[k, j] = rng.binomial(rows[j], rng.uniform(0.05, 0.5))
    return E, rows


def brute_force(E: np.ndarray, rows: np.ndarray, cost: float) -> float:
    T = len(rows)
    return min(
        evaluate(E, rows, [t for t, on in zip(range(1, T), mask, strict=True) if on], cost).total
        for mask in itertools.product([False, True], repeat=T - 1)
    )


@pytest.mark.parametrize("seed", range(30))
def test_dynamic_programme_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 9))
    E, rows = random_matrix(rng, T)
    cost = float(rng.choice([0.0, 5.0, 40.0, 200.0, 1e6]))
    best = optimal_schedule(E, cost, rows)
    assert best.total == pytest.approx(brute_force(E, rows, cost))
    assert best.total == pytest.approx(evaluate(E, rows, best.retrain_at, cost).total)


def test_optimum_retrains_at_an_abrupt_change_and_not_for_free_lunch():
    # model 0 is perfect until batch 3, then wrong on everything; later models stay perfect
    T, n = 6, 100
    E = np.full((T, T), np.nan)
    for k in range(T):
        E[k, k:] = [0 if (j < 3 or k >= 3) else n for j in range(k, T)]
    rows = np.full(T, n)
    assert optimal_schedule(E, 50, rows).retrain_at == (3,)
    assert optimal_schedule(E, 10_000, rows).retrain_at == ()


def test_policies_see_no_label_before_it_arrives():
    E, rows = random_matrix(np.random.default_rng(1), 12)
    cheat = E.copy()
    cheat[:, 5:] = 0  # what is not labelled yet at boundary 5 must not change decisions up to 5
    for policy in (CARA("T"), CARA("CT"), UPF(), GainForecast()):
        a = simulate(E, rows, policy, cost=100, label_delay=1).choices[:4]
        b = simulate(cheat, rows, policy, cost=100, label_delay=1).choices[:4]
        assert [c.retrain for c in a] == [c.retrain for c in b], policy.name


def step_matrix(T: int, drift: int, n: int = 500, base: float = 0.1, jump: float = 0.4):
    """Models trained (labels to k - 1) before the drift err at ``base + jump`` after it."""
    E = np.full((T, T), np.nan)
    for k in range(T):
        for j in range(k, T):
            stale = j >= drift and k - 1 < drift
            E[k, j] = n * (base + (jump if stale else 0.0))
    return E, np.full(T, n)


def test_cara_cumulative_threshold_waits_for_the_cost_to_accumulate():
    # staleness of 200 errors per batch from batch 6 (the candidate of boundary 5 has not seen
    # the new concept either); the cumulative variant with threshold 1,000 retrains once 5 stale
    # batches are labelled, the threshold variant (200) once the first one is
    E, rows = step_matrix(20, drift=5, jump=0.4)
    ct = simulate(E, rows, CARA("CT", 1000), cost=1000, label_delay=1).schedule.retrain_at
    t = simulate(E, rows, CARA("T", 200), cost=1000, label_delay=1).schedule.retrain_at
    assert t == (7,)  # batch 6's labels arrive at boundary 7
    assert ct == (11,)
    assert simulate(E, rows, CARA("P", 4), cost=1, label_delay=1).schedule.retrain_at == (
        4,
        8,
        12,
        16,
    )


def test_upf_retrains_more_when_retraining_is_cheaper():
    E, rows = random_matrix(np.random.default_rng(3), 30)
    drift = np.arange(30)
    E = E + 3.0 * np.maximum(drift[None, :] - drift[:, None], 0)  # models decay with age
    counts = [simulate(E, rows, UPF(), cost=c, label_delay=1).schedule.retrains for c in (50, 5000)]
    assert counts[0] > counts[1]


@pytest.mark.parametrize("cost", [50, 500, 2000])
def test_gain_forecast_near_the_optimum_on_an_abrupt_change(cost):
    E, rows = step_matrix(40, drift=12)
    ours = simulate(E, rows, GainForecast(horizon=26), cost=cost, label_delay=1).schedule
    best = optimal_schedule(E, cost, rows)
    assert best.retrain_at == (13,)
    # retrains once, as soon as a labelled batch shows it (batch 13, labelled at boundary 14),
    # at every cost: the champion's own gap counts the batches since it changed only (with a
    # mean over its last 4 labelled batches, one changed batch in four was not enough at 2,000)
    assert ours.retrain_at == (14,)


@pytest.mark.parametrize("cost", [500, 2000])
def test_gain_forecast_holds_where_a_retrain_cannot_pay_back(cost):
    # the same change 6 batches before the end: 200 extra errors a batch, seen at boundary 36,
    # leave 4 batches (800 errors) to save: worth a retrain at 500, not at 2,000
    E, rows = step_matrix(40, drift=34)
    best = optimal_schedule(E, cost, rows)
    ours = simulate(E, rows, GainForecast(), cost=cost, label_delay=1).schedule
    assert best.retrain_at == ((35,) if cost == 500 else ())
    assert ours.retrain_at == ((36,) if cost == 500 else ())


def test_the_champions_own_gap_counts_the_batches_since_it_changed():
    E, rows = step_matrix(30, drift=12, jump=0.2)
    view = View(E, rows, t=18, champion=0, cost=500, label_delay=1)
    policy = GainForecast()
    raw, shift, since = policy.own_shift(view, policy.gap_by_age(view, 20))
    assert since == 5  # batches 13..17 (the candidate of 12 had not seen the change either)
    assert raw == pytest.approx(0.2)
    assert 0 < shift < raw  # beyond its Poisson noise, a little less


def test_a_gap_that_varies_more_than_poisson_does_not_split_the_run():
    # the champion's gap swings by ~40 errors from batch to batch (Poisson's noise is ~17)
    # around a steady level: no change, so every labelled batch counts; the swings are
    # measured (dispersion) rather than read as changes
    rng = np.random.default_rng(4)
    E, rows = step_matrix(30, drift=10_000, base=0.3)
    E[0, 1:] += rng.normal(0, 40, size=29).round()
    view = View(E, rows, t=25, champion=0, cost=500, label_delay=1)
    policy = GainForecast()
    G = policy.gap_by_age(view, 30)
    assert policy.own_shift(view, G)[2] == 25  # batches 0..24
    n = rows[:24].astype(float)
    gap = E[0, :24] - np.diag(E)[:24]
    noise = E[0, :24] + np.diag(E)[:24]
    assert policy.dispersion(gap, noise) > 5
    # a change of level moves one difference only: it is not dispersion
    step = np.r_[np.zeros(12), np.full(12, 100.0)]
    assert policy.dispersion(step, n) == 1.0


def test_gain_forecast_keeps_a_model_that_does_not_age():
    E, rows = step_matrix(30, drift=10_000)
    run = simulate(E, rows, GainForecast(), cost=50, label_delay=1)
    assert run.schedule.retrains == 0
    assert "saves ~0 errors" in run.choices[-1].reason


def test_every_retrains_on_schedule():
    E, rows = random_matrix(np.random.default_rng(0), 10)
    assert simulate(E, rows, Every(3), cost=1, label_delay=1).schedule.retrain_at == (3, 6, 9)


def synthetic_batches(n_batches=8, rows=120, flip=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        X = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows)})
        y = (X["x"] > 0).astype(int)
        out.append((X, 1 - y if b >= flip else y))
    return out


def test_score_matrix_is_out_of_sample_and_label_delay_aware():
    batches = synthetic_batches()
    m = build_scores(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2, window=2)
    # stream batch 3 (= batch 5 overall) flips the labels: models trained on labels up to
    # stream batch 2 cannot know it, the candidate of boundary 5 (labels to 4) does
    assert m.errors[3, 3] > 0.9 * m.rows[3]
    assert m.errors[5, 5] < 0.1 * m.rows[5]
    assert np.isnan(m.errors[4, 3])
    assert m.row_errors(3).sum() == np.nansum(m.errors[3, 3:])
    assert len(m.row_errors(0)) == m.rows.sum()


def test_score_matrix_cache_is_reused_and_keyed_by_the_data(tmp_path):
    batches = synthetic_batches()
    trainer = Trainer("sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    a, path, cached = cached_scores(batches, trainer, folder=tmp_path, history=2)
    b, path_b, cached_b = cached_scores(batches, trainer, folder=tmp_path, history=2)
    assert (cached, cached_b, path == path_b) == (False, True, True)
    np.testing.assert_array_equal(a.errors, b.errors)
    np.testing.assert_array_equal(a.row_errors(2), ScoreMatrix.load(path).row_errors(2))
    _, path_c, cached_c = cached_scores(
        synthetic_batches(seed=1), trainer, folder=tmp_path, history=2
    )
    assert (path_c != path, cached_c) == (True, False)
    assert not list(tmp_path.glob("*.tmp"))


def test_gate_bits_are_the_gate_copy_fitted_without_the_newest_rows_with_older_ones():
    from retrainer.gate import holdout_size

    batches = synthetic_batches()
    trainer = Trainer("sklearn.tree.DecisionTreeClassifier", {"random_state": 0})
    m = build_scores(batches, trainer, history=2, window=2, holdout=0.2)
    k = 4  # trained on batches 4 and 5 overall (stream batches 2 and 3)
    X = pd.concat([batches[i][0] for i in (4, 5)], ignore_index=True)
    y = np.concatenate([batches[i][1] for i in (4, 5)])
    n = holdout_size(len(X), 0.2, np.r_[np.zeros(120, bool), np.ones(120, bool)])
    # the copy reaches back over batch 3 to as many rows as the window (120 + 240 - n >= 240)
    copy = trainer.fit(pd.concat([batches[3][0], X.iloc[:-n]]), np.r_[batches[3][1], y[:-n]])
    expected = (copy.predict(X.iloc[-n:]) != y[-n:]).astype(np.uint8)
    np.testing.assert_array_equal(m.gate_errors(k), expected)
    assert m.gate_start[k] == 4 * 120 - n  # the newest rows of stream batch 3
    assert m.gate_start[0] == -1  # boundary 0 trains on the history only
    # the first model's gate copy held out the newest 20 % of the history window, as live
    X0 = pd.concat([batches[i][0] for i in (0, 1)], ignore_index=True)
    y0 = np.concatenate([batches[i][1] for i in (0, 1)])
    first = trainer.fit(X0.iloc[:-48], y0[:-48])
    np.testing.assert_array_equal(
        m.gate_errors(0), (first.predict(X0.iloc[-48:]) != y0[-48:]).astype(np.uint8)
    )


def one_model_matrix(reference: np.ndarray, stream: np.ndarray, batches: int) -> ScoreMatrix:
    """A matrix of ``batches`` equal batches where model 0 makes the errors ``stream`` and its
    gate copy made ``reference`` on its held-out rows (every later model the same stream)."""
    size = len(stream) // batches
    bits = [stream[size * k :] for k in range(batches)]
    E = np.array([[b[size * (j - k) : size * (j - k + 1)].sum() for j in range(batches)]
                  for k, b in enumerate(bits)], dtype=float)  # fmt: skip
    E[np.tril_indices(batches, -1)] = np.nan
    return ScoreMatrix(
        errors=E,
        rows=np.full(batches, size),
        label_delay=1,
        packed=np.packbits(np.concatenate(bits)),
        offsets=np.r_[0, np.cumsum([len(b) for b in bits])],
        gate_packed=np.packbits(np.tile(reference, batches)),
        gate_offsets=np.arange(batches + 1) * len(reference),
        gate_start=np.full(batches, -1),
    )


def test_a_detector_trigger_is_primed_on_the_champions_held_out_errors_as_live():
    from retrainer.checks.concept import DDM
    from retrainer.schedule.policies import DetectorTrigger

    # wrong on 1 of 25 held-out rows, then on 1 of 8 live rows: a fresh DDM takes the live rate
    # for the model's own; primed as live (Cycle._primed) it signals on the first batch
    reference = (np.arange(200) % 25 == 0).astype(np.uint8)
    stream = (np.arange(600) % 8 == 0).astype(np.uint8)
    m = one_model_matrix(reference, stream, 4)
    np.testing.assert_array_equal(m.reference(0), reference)
    live = DDM()
    live.update_many(reference)
    first = len(live.update_many(stream[:150])) > 0  # the live path, recomputed
    policy = DetectorTrigger("DDM", DDM)
    run = simulate(
        m.errors,
        m.rows,
        policy,
        cost=1,
        label_delay=1,
        row_errors=m.row_errors,
        reference=m.reference,
    )
    assert run.choices[0].retrain == first is True  # boundary 1 reads batch 0
    fresh = simulate(m.errors, m.rows, policy, cost=1, label_delay=1, row_errors=m.row_errors)
    assert not fresh.choices[0].retrain and fresh.schedule.retrain_at == ()


def test_the_reference_sample_is_drawn_as_live_keeps_it():
    from retrainer.checks.sample import PREDICTION, store_sample

    class Store:
        def put_frame(self, frame):
            self.frame = frame
            return "sha"

    class Zero:
        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    reference = (np.random.default_rng(0).random(300) < 0.3).astype(np.uint8)
    m = one_model_matrix(reference, np.zeros(400, np.uint8), 2)
    store = Store()
    rows = pd.DataFrame({"x": np.arange(300.0), "y": reference}, index=np.arange(1000, 1300))
    store_sample(store, Zero(), rows, ["x"], "y", task="classification", max_rows=50)
    kept = (store.frame["y"] != store.frame[PREDICTION]).to_numpy().astype(np.uint8)
    np.testing.assert_array_equal(m.reference(1, rows=50), kept)
    assert len(m.reference(1, rows=0)) == 0 and len(m.reference(1)) == 300


def test_a_retrain_that_fails_the_gate_is_paid_for_but_not_promoted():
    from retrainer.gate import evaluate_gate
    from retrainer.schedule.gated import Gate, Recorded

    # two batches of 100 rows; the candidate of boundary 1 is better on batch 1 in hindsight,
    # but its gate copy got all 40 held-out rows of batch 0 wrong where the champion got them
    errors = np.array([[10.0, 30.0], [np.nan, 5.0]])
    rows = np.array([100, 100])
    bits = np.r_[np.zeros(100), np.ones(30), np.zeros(70), np.zeros(100)].astype(np.uint8)
    gate_bits = np.ones(40, dtype=np.uint8)
    m = ScoreMatrix(
        errors=errors,
        rows=rows,
        label_delay=1,
        packed=np.packbits(bits),
        offsets=np.array([0, 200, 300]),
        gate_packed=np.packbits(gate_bits),
        gate_offsets=np.array([0, 0, 40]),
        gate_start=np.array([-1, 60]),
    )
    gate = Gate(m)
    run = simulate(errors, rows, Every(1), cost=7, label_delay=1, gate=gate)
    assert run.schedule.retrain_at == () and run.schedule.rejected == (1,)
    assert run.schedule.total == 10 + 30 + 7  # the champion served on; the retrain was paid
    assert run.gates[0][1].verdict == "worse"
    X = pd.DataFrame({"challenger": gate_bits, "champion": np.zeros(40, np.uint8)})
    direct = evaluate_gate(Recorded("challenger"), Recorded("champion"), X, np.zeros(40))
    assert direct.to_dict() == gate(1, 0).to_dict()
    ungated = simulate(errors, rows, Every(1), cost=7, label_delay=1)
    assert ungated.schedule.retrain_at == (1,) and ungated.schedule.total == 10 + 5 + 7
    # an inconclusive gate (too few rows) promotes by default and keeps with "keep"
    few = Gate(m, min_rows=50)
    assert few(1, 0).verdict == "inconclusive" and few(1, 0).passed
    assert not Gate(m, min_rows=50, on_inconclusive="keep")(1, 0).passed


def test_a_part_of_the_matrix_is_a_matrix_of_its_own():
    from retrainer.schedule.gated import Gate

    batches = synthetic_batches(n_batches=10)
    m = build_scores(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2, window=2)
    tail = m.part(3)
    assert tail.batches == m.batches - 3
    np.testing.assert_array_equal(tail.row_errors(1), m.row_errors(4))
    np.testing.assert_array_equal(tail.gate_errors(2), m.gate_errors(5))
    assert Gate(tail)(4, 1).to_dict() == Gate(m)(7, 4).to_dict()
    run = simulate(tail.errors, tail.rows, Every(2), cost=5, label_delay=1)
    whole = evaluate(m.errors, m.rows, [3, 5, 7], 5)  # model 3 starts the part
    assert run.schedule.errors == whole.errors - sum(m.errors[0, j] for j in range(3))
