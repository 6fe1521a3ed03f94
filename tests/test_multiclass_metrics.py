"""Metrics of a multi-class task: F1 macro-averaged whatever classes one batch or holdout
holds, ROC AUC one-vs-rest over the model's classes, as scikit-learn computes them."""

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from retrainer.errors import DataError
from retrainer.gate import evaluate_gate
from retrainer.metrics import SE_ROWS, bootstrap_se, score
from retrainer.training import predict
from retrainer.triggers import Evidence, PerformanceTrigger


def test_f1_of_a_batch_with_two_of_several_string_classes_is_macro():
    y_true, y_pred = ["sun", "fog", "sun", "sun"], ["sun", "fog", "fog", "sun"]
    expected = skm.f1_score(y_true, y_pred, average="macro")
    assert score("f1", y_true, y_pred) == expected
    assert score("f1", y_true, y_pred, classes=["fog", "rain", "sun"]) == expected


def test_f1_stays_macro_when_a_batch_predicts_a_third_class():
    y_true, y_pred = ["sun", "fog", "sun"], ["sun", "rain", "fog"]
    assert score("f1", y_true, y_pred) == skm.f1_score(y_true, y_pred, average="macro")


def test_f1_of_a_binary_task_is_the_positive_class():
    assert score("f1", [0, 1, 1, 0], [0, 1, 0, 0]) == skm.f1_score([0, 1, 1, 0], [0, 1, 0, 0])
    got = score("f1", ["no", "yes", "yes"], ["no", "yes", "no"], classes=["no", "yes"])
    assert got == skm.f1_score(["no", "yes", "yes"], ["no", "yes", "no"], pos_label="yes")


def test_gate_on_f1_with_a_holdout_of_two_of_three_classes():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 600)
    X = pd.DataFrame({"x": x})
    y = np.array(["fog", "rain", "sun"])[np.minimum(x.astype(int), 2)]
    champion = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    challenger = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    holdout = X["x"] < 2  # fog and rain only
    result = evaluate_gate(challenger, champion, X[holdout], y[holdout], metric="f1")
    assert result.verdict in ("not_worse", "inconclusive")
    assert result.challenger == skm.f1_score(
        y[holdout], challenger.predict(X[holdout]), average="macro"
    )


@pytest.fixture(scope="module")
def wine():
    """Wine (3 classes), shuffled: 100 rows to train on, 78 held out."""
    X, y = load_wine(return_X_y=True, as_frame=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X.iloc[order].reset_index(drop=True), y.iloc[order].reset_index(drop=True)
    good = LogisticRegression(max_iter=5000).fit(X[:100], y[:100])
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X[:100], y[:100])
    return X[100:], y[100:], good, stump


def test_roc_auc_of_a_multiclass_model_is_one_vs_rest_macro(wine):
    X, y, good, _ = wine
    pred, proba = predict(good, X)
    expected = skm.roc_auc_score(y, good.predict_proba(X), multi_class="ovr", labels=[0, 1, 2])
    assert score("roc_auc", y, pred, proba, classes=[0, 1, 2]) == pytest.approx(expected)
    assert 0.9 < expected < 1.0


def test_gate_on_roc_auc_rejects_a_worse_multiclass_challenger(wine):
    """Both scores were NaN (one score column for three classes) and the gate promoted."""
    X, y, good, stump = wine
    result = evaluate_gate(stump, good, X, y, metric="roc_auc")
    auc = [skm.roc_auc_score(y, m.predict_proba(X), multi_class="ovr") for m in (stump, good)]
    assert (result.challenger, result.champion) == pytest.approx(auc)
    assert result.verdict == "worse" and not result.passed
    assert evaluate_gate(good, stump, X, y, metric="roc_auc").verdict == "not_worse"


def test_a_metric_undefined_on_the_holdout_never_promotes(wine):
    """A holdout without one of the three classes has no one-vs-rest AUC (NaN in scikit-learn
    too); an undefined comparison was inconclusive and promoted by default."""
    X, y, good, stump = wine
    two = (y != 2).to_numpy()
    assert np.isnan(skm.roc_auc_score(y[two], good.predict_proba(X[two]), multi_class="ovr",
                                      labels=[0, 1, 2]))  # fmt: skip
    result = evaluate_gate(stump, good, X[two], y[two], metric="roc_auc")
    assert not result.passed and result.verdict == "inconclusive"
    assert result.reason.startswith("not measured: challenger roc_auc=nan")
    assert "3 classes; no row of class 2" in result.reason and "champion kept" in result.reason


def _three_classes(start: int, n: int, seed: int) -> pd.DataFrame:
    """Classes 0, 1, 2 by bands of ``a``, with 10 % of the labels drawn at random."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1.5, 1.5, n), rng.normal(size=n)
    y = np.digitize(a, [-0.5, 0.5])
    noisy = rng.random(n) < 0.1
    y[noisy] = rng.integers(0, 3, noisy.sum())
    stamps = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(start, start + n), "h"
    )
    return pd.DataFrame({"id": np.arange(start, start + n), "timestamp": stamps, "a": a, "b": b,
                         "target": y})  # fmt: skip


@pytest.mark.parametrize("metric", ["f1", "roc_auc"])
def test_realised_metric_of_a_batch_with_two_of_three_classes_is_the_gates(make_project, metric):
    """The cycle scored a batch without the model's classes: labels 0 and 1 only gave the F1 of
    class 1 (binary), and roc_auc was NaN (one score column for three classes)."""
    project = make_project(
        policy={"triggers": [{"type": "manual"}]}, gate={"metric": metric, "tolerance": 0.01}
    )
    for k in range(4):
        project.ingest(_three_classes(300 * k, 300, k), key=f"p{k}")
    project.cycle()
    model = project.load_model(project.champion.version)
    assert model.classes_.tolist() == [0, 1, 2]
    batch = _three_classes(1200, 600, 9)
    two = (batch["target"] < 2) & (model.predict(batch[["a", "b"]]) < 2)
    batch = batch[two].iloc[:250]  # two of the three classes, in labels and predictions
    project.ingest(batch, key="two")
    report = project.cycle()
    (found,) = [e for e in report.evaluations if e["role"] == "champion"]
    X, y = batch[["a", "b"]], batch["target"]
    if metric == "f1":
        expected = skm.f1_score(y, model.predict(X), average="macro")
        assert expected != pytest.approx(skm.f1_score(y, model.predict(X)))  # not binary
    else:  # a class without rows: undefined, as in scikit-learn
        expected = skm.roc_auc_score(y, model.predict_proba(X), multi_class="ovr", labels=[0, 1, 2])
        assert np.isnan(expected)
        batch = _three_classes(1800, 250, 10)
        project.ingest(batch, key="three")
        (found,) = [e for e in project.cycle().evaluations if e["role"] == "champion"]
        X, y = batch[["a", "b"]], batch["target"]
        expected = skm.roc_auc_score(y, model.predict_proba(X), multi_class="ovr")
    assert found["value"] == pytest.approx(expected, nan_ok=True) and found["n"] == len(batch)


@pytest.mark.parametrize(
    "metric, classes", [("f1", [0, 1, 2]), ("f1", [0, 1]), ("balanced_accuracy", [0, 1, 2])]
)
def test_bootstrap_se_is_scikit_learns_metric_over_resampled_rows(metric, classes):
    rng = np.random.default_rng(1)
    y = rng.integers(0, len(classes), 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, len(classes), 300))
    resampled = [rng.integers(0, 300, 300) for _ in range(1000)]
    if metric == "f1":
        average = "binary" if len(classes) == 2 else "macro"
        each = [skm.f1_score(y[r], pred[r], average=average) for r in resampled]
    else:
        each = [skm.balanced_accuracy_score(y[r], pred[r]) for r in resampled]
    found = bootstrap_se(metric, y, pred, classes)
    assert found == pytest.approx(np.std(each, ddof=1), rel=0.1)


@pytest.mark.parametrize("metric", ["f1", "balanced_accuracy"])
def test_performance_trigger_on_f1_fires_on_a_significant_drop_not_on_noise(metric):
    """40-row batches of an unchanged stream against a 300-row holdout: a raw 0.05 drop of
    macro F1 fired in about a fifth of them; with both sides' bootstrap standard errors it
    fires in at most alpha, and still on labels that changed."""
    model = LogisticRegression(max_iter=1000).fit(*_xy(_three_classes(0, 1000, 0)))
    holdout = _xy(_three_classes(1000, 300, 1))
    pred = model.predict(holdout[0])
    base = Evidence(
        now=datetime(2024, 1, 1, tzinfo=UTC),
        metric=metric,
        reference_performance=score(metric, holdout[1], pred, classes=[0, 1, 2]),
        reference_rows=300,
        reference_se=bootstrap_se(metric, holdout[1], pred, [0, 1, 2]),
    )
    trigger = PerformanceTrigger(max_drop=0.05)

    def fired(X, y):
        pred = model.predict(X)
        ev = replace(base, performance=score(metric, y, pred, classes=[0, 1, 2]),
                     performance_rows=len(y))  # fmt: skip
        tested = replace(ev, performance_se=bootstrap_se(metric, y, pred, [0, 1, 2]))
        return trigger.fire(ev) is not None, trigger.fire(tested)

    runs = [fired(*_xy(_three_classes(2000 + 40 * k, 40, 10 + k))) for k in range(200)]
    assert sum(raw for raw, _ in runs) >= 20
    assert sum(test is not None for _, test in runs) <= 4  # alpha 0.01 of 200, and some slack
    X, y = _xy(_three_classes(20_000, 40, 999))
    _, test = fired(X, (y + 1) % 3)  # every label moved on
    assert "one-sided z-test" in test


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[["a", "b"]], frame["target"].to_numpy()


def test_bootstrap_se_of_r2_and_auc_is_scikit_learns_over_resampled_rows():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=300)
    guess = truth + rng.normal(0, 0.6, 300)
    resampled = [rng.integers(0, 300, 300) for _ in range(1000)]
    each = [skm.r2_score(truth[r], guess[r]) for r in resampled]
    assert bootstrap_se("r2", truth, guess) == pytest.approx(np.std(each, ddof=1), rel=0.1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1)
    each = [skm.roc_auc_score(y[r], p[r]) for r in resampled]
    found = bootstrap_se("roc_auc", y, (p > 0.5).astype(int), [0, 1], y_score=p)
    assert found == pytest.approx(np.std(each, ddof=1), rel=0.15)
    assert bootstrap_se("roc_auc", y, (p > 0.5).astype(int), [0, 1]) is None  # no scores


def test_bootstrap_se_of_a_large_batch_is_a_subsample_s_scaled_to_its_rows():
    """Beyond SE_ROWS rows R² and AUC are bootstrapped on SE_ROWS of them and scaled by
    sqrt(SE_ROWS / n): still scikit-learn's spread over resamples of all 40,000 rows."""
    rng = np.random.default_rng(3)
    n = 4 * SE_ROWS
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    resampled = [rng.integers(0, n, n) for _ in range(300)]
    each = [skm.roc_auc_score(y[r], p[r]) for r in resampled]
    found = bootstrap_se("roc_auc", y, (p > 0.5).astype(int), [0, 1], y_score=p)
    assert found == pytest.approx(np.std(each, ddof=1), rel=0.15)
    truth = rng.normal(size=n)
    guess = truth + rng.normal(0, 0.6, n)
    each = [skm.r2_score(truth[r], guess[r]) for r in resampled]
    assert bootstrap_se("r2", truth, guess) == pytest.approx(np.std(each, ddof=1), rel=0.15)


def test_performance_trigger_on_r2_fires_on_a_significant_drop_not_on_noise():
    """R² of 40-row batches of an unchanged regression against a 300-row holdout: a raw 0.05
    drop fired in a large share of them; with both sides' bootstrap standard errors it fires in
    at most about alpha, and still when the relation moved."""
    rng = np.random.default_rng(3)

    def rows(n):
        x = rng.normal(size=n)
        return x, 2 * x + rng.normal(0, 1.0, n)

    x, y = rows(300)
    base = Evidence(
        now=datetime(2024, 1, 1, tzinfo=UTC),
        metric="r2",
        reference_performance=score("r2", y, 2 * x),
        reference_rows=300,
        reference_se=bootstrap_se("r2", y, 2 * x),
    )
    trigger = PerformanceTrigger(max_drop=0.05)

    def fired(x, y):
        ev = replace(base, performance=score("r2", y, 2 * x), performance_rows=len(y))
        tested = replace(ev, performance_se=bootstrap_se("r2", y, 2 * x))
        return trigger.fire(ev) is not None, trigger.fire(tested)

    runs = [fired(*rows(40)) for _ in range(200)]
    assert sum(raw for raw, _ in runs) >= 40
    assert sum(test is not None for _, test in runs) <= 5
    x, y = rows(40)
    _, test = fired(x, -y)  # the relation turned around
    assert "one-sided z-test" in test


def test_served_class_scores_give_the_realised_auc_of_what_was_served(make_project):
    """A serving system's per-class scores (``score:<class>``) are kept and scored as
    scikit-learn's one-vs-rest AUC; they were dropped, so the served AUC was NaN."""
    project = make_project(
        policy={"triggers": [{"type": "manual"}]}, gate={"metric": "roc_auc", "tolerance": 0.01}
    )
    for k in range(4):
        project.ingest(_three_classes(300 * k, 300, k), key=f"p{k}")
    project.cycle()
    batch = _three_classes(1200, 300, 9)
    project.ingest(batch.drop(columns="target"), key="week")
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3), size=len(batch))  # a poor serving model
    served = pd.DataFrame({"id": batch["id"], "prediction": proba.argmax(axis=1)})
    served = served.assign(**{f"score:{c}": proba[:, c] for c in range(3)})
    with pytest.raises(DataError, match=r"must sum to 1 in each row; row 0 sums to 1\.94"):
        project.ingest_predictions(served.assign(**{"score:0": 1.0}), key="bad")
    with pytest.raises(DataError, match=r"\['score:0', 'score:1', 'score:two'\] do not match the "
                       r"classes of v1; send one column per class: .*'score:2'"):  # fmt: skip
        project.ingest_predictions(served.rename(columns={"score:2": "score:two"}), key="renamed")
    project.ingest_predictions(served, key="log")
    project.ingest_labels(batch[["id", "target"]], key="week-labels")
    (found,) = [e for e in project.cycle().evaluations if e["role"] == "serving"]
    expected = skm.roc_auc_score(batch["target"], proba, multi_class="ovr")
    assert found["value"] == pytest.approx(expected) and found["n"] == len(batch)
