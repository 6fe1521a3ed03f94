"""F1 on a multi-class task: macro-averaged whatever classes one batch or holdout holds."""

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.tree import DecisionTreeClassifier

from retrainer.gate import evaluate_gate
from retrainer.metrics import score


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
