"""The honest gate: champion and challenger compared, paired, on rows neither was trained on.

References: McNemar's exact test (``scipy.stats.binomtest`` on the rows only one model got
right) for the accuracy bootstrap, and Student's paired t interval for a mean loss.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.dummy import DummyClassifier

from retrainer.checks.sample import ReferenceSample
from retrainer.datasets import ELEC2_FEATURES
from retrainer.gate import evaluate_gate, paired_difference
from retrainer.retrain import retrain
from retrainer.store.tables import ModelVersionRow, utcnow
from tests.conftest import project_settings

WEEK = 48 * 7


def _run(project):
    return retrain(project, cycle_id=None, decision_id=None, reasons=["test"], clock=utcnow())


def test_the_accuracy_bootstrap_agrees_with_mcnemars_exact_test():
    rng = np.random.default_rng(7)
    agreed = 0
    for case in range(120):
        n = 300
        y = rng.integers(0, 2, n)
        champion = np.where(rng.random(n) < 0.8, y, 1 - y)
        # the challenger flips a random share of the champion's rows, right and wrong alike
        flip = rng.random(n) < rng.uniform(0.02, 0.25)
        bias = rng.uniform(0.3, 0.7)  # how often a flip makes a right row wrong
        wrong = flip & (rng.random(n) < bias)
        challenger = np.where(wrong, 1 - y, np.where(flip, y, champion))
        d = paired_difference("accuracy", y, (challenger, None), (champion, None))
        only_ch = int(np.sum((challenger == y) & (champion != y)))
        only_cp = int(np.sum((champion == y) & (challenger != y)))
        if only_ch + only_cp == 0:
            continue
        p = stats.binomtest(only_cp, only_ch + only_cp, 0.5, alternative="greater").pvalue
        assert d.p_value == pytest.approx(p)
        assert d.difference == pytest.approx((only_ch - only_cp) / n)
        if 0.02 < p < 0.12:
            continue  # near the boundary an exact test and a bootstrap may differ
        assert (d.upper < 0) == (p < 0.05), (case, p, d)
        agreed += 1
    assert agreed > 60


def test_the_loss_bootstrap_matches_the_paired_t_interval():
    rng = np.random.default_rng(3)
    y = rng.normal(size=800)
    champion = y + rng.normal(0, 1.0, 800)
    challenger = y + rng.normal(0, 0.9, 800)
    d = paired_difference("mae", y, (challenger, None), (champion, None), confidence=0.95)
    gain = np.abs(champion - y) - np.abs(challenger - y)  # positive: the challenger is better
    half = stats.t.ppf(0.95, gain.size - 1) * gain.std(ddof=1) / np.sqrt(gain.size)
    assert d.difference == pytest.approx(gain.mean())
    assert d.lower == pytest.approx(gain.mean() - half, abs=0.25 * half)
    assert d.upper == pytest.approx(gain.mean() + half, abs=0.25 * half)


@pytest.mark.parametrize(
    ("metric", "classes"),
    [
        ("f1", [0, 1]),
        ("f1", ["sit", "stand", "walk"]),
        ("balanced_accuracy", [1, 2, 3, 4, 5, 6]),
        ("roc_auc", [0, 1]),
        ("roc_auc", ["sit", "stand", "walk"]),
    ],
)
def test_the_count_bootstrap_equals_scoring_each_resample_with_scikit_learn(metric, classes):
    """F1, balanced accuracy and AUC are bootstrapped from weighted counts (one scikit-learn
    call per resample took 3-6 s per gate on 400 rows, AUC of 6 classes about 30 s): the
    interval must be the one scoring the same resamples with scikit-learn gives."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    from retrainer.gate import DRAWS, SEED

    rng = np.random.default_rng(1)
    y = rng.choice(classes, 300)
    a = np.where(rng.random(300) < 0.8, y, rng.choice(classes, 300))
    b = np.where(rng.random(300) < 0.7, y, rng.choice(classes, 300))

    def proba(pred):  # class scores that favour the predicted class, some ties
        hot = (pred[:, None] == np.array(classes)).astype(float)
        p = np.round(hot + rng.uniform(0, 1.5, hot.shape), 1)
        p = p / p.sum(axis=1, keepdims=True)
        return p[:, 1] if len(classes) == 2 else pd.DataFrame(p, columns=classes)

    pa, pb = proba(a), proba(b)
    d = paired_difference(metric, y, (a, pa), (b, pb), classes=classes)

    def sk(rows, pred, p):
        if metric == "roc_auc":
            p = p[rows] if len(classes) == 2 else p.to_numpy()[rows]
            return roc_auc_score(y[rows], p, multi_class="ovr", labels=classes)
        if metric == "balanced_accuracy":
            return balanced_accuracy_score(y[rows], pred[rows])
        average = {"average": "binary", "pos_label": 1} if len(classes) == 2 else {}
        return f1_score(y[rows], pred[rows], zero_division=0, **({"average": "macro"} | average))

    every = np.arange(300)
    draws = np.random.default_rng(SEED)
    gains = []
    for _ in range(DRAWS):
        rows = draws.integers(0, 300, 300)
        gains.append(sk(rows, a, pa) - sk(rows, b, pb))
    lower, upper = np.quantile(gains, [0.05, 0.95])
    assert d.difference == pytest.approx(sk(every, a, pa) - sk(every, b, pb), abs=1e-12)
    assert (d.lower, d.upper) == pytest.approx((lower, upper), abs=1e-12)


def test_a_worse_challenger_is_rejected_and_too_few_rows_cannot_tell(elec):
    part = elec.iloc[:2000]
    X, y = part[ELEC2_FEATURES], part["target"]
    good = DummyClassifier(strategy="most_frequent").fit(X, y)
    bad = DummyClassifier(strategy="constant", constant=1 - good.predict(X[:1])[0]).fit(X, y)
    worse = evaluate_gate(bad, good, X, y, metric="accuracy")
    assert not worse.passed and worse.verdict == "worse" and worse.upper < 0
    small = evaluate_gate(bad, good, X[:20], y[:20], metric="accuracy")
    assert small.verdict == "inconclusive" and "not enough rows to tell" in small.reason
    assert small.passed  # an inconclusive gate does not block a refresh by default
    kept = evaluate_gate(bad, good, X[:20], y[:20], on_inconclusive="keep")
    assert not kept.passed and "champion kept" in kept.reason


@pytest.fixture
def weekly(make_project, elec):
    """A project with one batch per week of ELEC2 and a champion trained on weeks 0-3."""

    def make(**settings):
        trainer = project_settings()["trainer"] | {"window": {"batches": 10}}
        project = make_project(trainer=trainer, **settings)
        for week in range(4):
            project.ingest(elec.iloc[week * WEEK : (week + 1) * WEEK], key=f"week-{week}")
        project.cycle()
        assert project.champion.lineage["window"]["batches"] == [1, 2, 3, 4]
        return project

    return make


@pytest.mark.parametrize("on_inconclusive", ["promote", "keep"])
def test_an_identical_retrain_on_an_identical_window_is_never_rejected(weekly, on_inconclusive):
    project = weekly(
        gate={"metric": "accuracy", "tolerance": 0.0, "on_inconclusive": on_inconclusive}
    )
    outcome = _run(project)  # nothing new arrived: the champion saw every row of the window
    assert outcome.status == "skipped" and outcome.version is None and not outcome.promoted
    assert outcome.message.startswith("no labelled row since version 1 was trained")
    assert [v.version for v in project.models] == [1]


def test_with_other_trainer_params_the_same_window_is_trained_and_gated(weekly):
    project = weekly(gate={"metric": "accuracy", "tolerance": 0.0})
    project.config.trainer.params["max_depth"] = 3  # the user changed the trainer: not a copy
    outcome = _run(project)
    gate = outcome.gate
    assert gate["verdict"] == "inconclusive" and gate["n_holdout"] == 0
    assert "not enough rows to tell" in gate["reason"] and outcome.promoted
    assert gate["compared"]["champion_window"]["batches"] == [1, 4, 4]
    json.dumps(gate, allow_nan=False)  # storable in PostgreSQL's JSON: no NaN for "no rows"


def test_the_gate_compares_on_rows_after_the_champions_window_only(weekly, elec):
    project = weekly(gate={"metric": "accuracy", "tolerance": 0.0})
    champion = project.champion
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK], key="week-4")
    outcome = _run(project)  # the holdout (20 % of 5 weeks) is exactly week 4
    gate = outcome.gate
    assert gate["compared"]["batches"] == [5] and gate["n_holdout"] == WEEK
    assert gate["compared"]["challenger_window"]["rows"] == 4 * WEEK
    # the gate copy was fitted on the champion's window with the same trainer: the same model,
    # so the paired difference is exactly zero; that measures nothing, and the gate says so
    assert gate["difference"] == 0 and gate["lower"] == 0 and gate["verdict"] == "inconclusive"
    assert gate["reason"].startswith("not measured: the gate copy was fitted on the champion's")
    assert f"with the {WEEK} newer rows added" in gate["reason"]
    assert outcome.promoted
    X = elec.iloc[4 * WEEK : 5 * WEEK]
    old = project.load_model(champion.version)
    assert gate["champion"] == pytest.approx(np.mean(old.predict(X[ELEC2_FEATURES]) == X["target"]))


@pytest.mark.parametrize("on_inconclusive", ["promote", "keep"])
def test_a_window_that_did_not_slide_is_not_measured_and_refreshes(weekly, elec, on_inconclusive):
    """Keeping the champion until the rows can tell would wait for ever: while the window
    reaches back to the champion's first row, each gate copy is the champion's own fit."""
    project = weekly(gate={"metric": "accuracy", "on_inconclusive": on_inconclusive})
    for week in (4, 5):
        project.ingest(elec.iloc[week * WEEK : (week + 1) * WEEK], key=f"week-{week}")
        outcome = _run(project)
        assert outcome.promoted and outcome.gate["verdict"] == "inconclusive"
    assert project.champion.lineage["window"]["batches"] == [1, 2, 3, 4, 5, 6]
    project.config.trainer.params["max_depth"] = 3  # another fit: measured again
    project.ingest(elec.iloc[6 * WEEK : 7 * WEEK], key="week-6")
    assert not _run(project).gate["reason"].startswith("not measured")


def test_the_reference_sample_and_holdout_figure_are_out_of_sample(weekly, elec):
    project = weekly(
        gate={"metric": "accuracy", "tolerance": 0.0}, checks={"sample": {"rows": 500}}
    )
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK], key="week-4")
    outcome = _run(project)
    assert outcome.promoted
    version = next(v for v in project.models if v.version == outcome.version)
    assert version.lineage["refit_on_window"]
    sample = ReferenceSample.load(project.artifacts, version.metrics["reference_sample"])
    refit = project.load_model(version.version)
    # the refit model saw these rows; the sample keeps the gate copy's predictions instead
    gate_copy = project.load_model(1)  # same trainer on weeks 0-3, the gate copy's window
    np.testing.assert_array_equal(sample.predictions, gate_copy.predict(sample.features))
    in_sample = np.mean(refit.predict(sample.features) == sample.labels)
    held_out = np.mean(sample.predictions == sample.labels)
    assert version.metrics["holdout"] == pytest.approx(held_out) and held_out < in_sample


def test_an_unknown_champion_window_is_said(weekly, elec):
    project = weekly()
    with project.store.session() as s:
        s.get(ModelVersionRow, 1).lineage = {}  # a model not trained by this project
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK], key="week-4")
    gate = _run(project).gate
    assert gate["compared"]["champion_window"]["known"] is False
    assert gate["n_holdout"] == WEEK


def test_the_window_rows_keep_their_batches_in_time_order(weekly, elec):
    project = weekly()
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK].iloc[::-1], key="week-4-reversed")
    outcome = _run(project)
    assert outcome.gate["compared"]["batches"] == [5]
    assert outcome.gate["compared"]["to"] == outcome.window["to"]


def _memorised(X, labels):
    """A model that predicts exactly ``labels`` on the rows of ``X`` (1-nearest neighbour)."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=1).fit(X, labels)


@pytest.mark.parametrize(
    ("only_challenger", "only_champion", "promoted"),
    [
        (4, 4, True),  # the same accuracy: the rows cannot tell, nothing speaks against it
        (8, 11, True),  # 0.03 worse: 0.02 beyond the tolerance, within a standard error (0.043)
        (5, 11, False),  # 0.06 worse: 0.05 beyond the tolerance, more than its error (0.039)
    ],
)
def test_an_inconclusive_gate_promotes_only_a_challenger_within_the_tolerance(
    only_challenger, only_champion, promoted
):
    n = 100
    X = pd.DataFrame({"x": np.arange(n, dtype=float)})
    y = np.array([0, 1] * (n // 2))
    champion_right = np.ones(n, bool)
    champion_right[:20] = False  # 80 right
    challenger_right = champion_right.copy()
    challenger_right[:only_challenger] = True  # rows only the challenger gets right
    challenger_right[50 : 50 + only_champion] = False  # rows only the champion gets right
    champion = _memorised(X, np.where(champion_right, y, 1 - y))
    challenger = _memorised(X, np.where(challenger_right, y, 1 - y))
    gate = evaluate_gate(challenger, champion, X, y, tolerance=0.01, on_inconclusive="promote")
    assert gate.verdict == "inconclusive" and gate.passed is promoted
    if not promoted:
        assert "more than the tolerance 0.01 by more than one standard error" in gate.reason


@pytest.mark.parametrize("holdout", [0.25, 0.2])
def test_on_a_sliding_window_the_gate_copy_learns_from_as_much_history_as_the_champion(
    make_project, elec, holdout
):
    """Four weekly batches a window, one new week: the window's rows before the holdout were
    the champion's less its oldest week, and the copy fitted on them lost to the champion for
    want of history (a solar nowcast: 28 of 52 honest weekly retrains kept out). The copy now
    reaches back past the window to as many rows as the refit."""
    trainer = project_settings()["trainer"] | {"window": {"batches": 4}}
    project = make_project(trainer=trainer, gate={"metric": "accuracy", "holdout": holdout})
    for week in range(4):
        project.ingest(elec.iloc[week * WEEK : (week + 1) * WEEK], key=f"week-{week}")
    project.cycle()
    champion = project.champion.lineage["window"]
    project.ingest(elec.iloc[4 * WEEK : 5 * WEEK], key="week-4")
    outcome = _run(project)
    compared = outcome.gate["compared"]
    assert outcome.window["batches"] == [2, 3, 4, 5]
    assert compared["challenger_window"]["rows"] >= 4 * WEEK
    assert compared["challenger_window"]["from"] == champion["from"]  # week 0 is back in
    if holdout == 0.25:  # the holdout is the new week: the copy is the champion's own fit
        assert compared["batches"] == [5] and outcome.gate["n_holdout"] == WEEK
        assert outcome.gate["reason"].startswith("not measured: the gate copy was fitted")
        assert outcome.promoted


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_a_regressor_s_bootstrap_is_the_one_drawn_row_set_by_row_set(metric):
    """The paired bootstrap of mae, rmse and r2 scores its resamples at once from weighted sums;
    the bounds must be those of drawing each row set and scoring it with scikit-learn."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    reference = {
        "mae": mean_absolute_error,
        "rmse": lambda y, p: np.sqrt(mean_squared_error(y, p)),
        "r2": r2_score,
    }[metric]
    rng = np.random.default_rng(5)
    y = rng.normal(20, 5, 300)
    challenger, champion = y + rng.normal(0, 1.0, 300), y + rng.normal(0.3, 1.2, 300)
    d = paired_difference(metric, y, (challenger, None), (champion, None), draws=400, seed=7)
    draw = np.random.default_rng(7)
    sign = 1.0 if metric == "r2" else -1.0
    gains = []
    for _ in range(400):
        rows = draw.integers(0, y.size, y.size)
        gains.append(
            sign * (reference(y[rows], challenger[rows]) - reference(y[rows], champion[rows]))
        )
    lower, upper = np.quantile(gains, [0.05, 0.95])
    assert d.lower == pytest.approx(lower, rel=1e-9) and d.upper == pytest.approx(upper, rel=1e-9)
    assert d.challenger == pytest.approx(reference(y, challenger))
