"""Trainer and gate, checked against scikit-learn directly."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sklearn.tree import DecisionTreeClassifier

from retrainer.datasets import ELEC2_FEATURES, load_elec2
from retrainer.errors import TrainingError
from retrainer.gate import evaluate_gate
from retrainer.training import Trainer


@pytest.fixture(scope="module")
def elec():
    return load_elec2()


def test_trainer_predicts_like_the_estimator_fitted_directly(elec):
    train, test = elec.iloc[:3000], elec.iloc[3000:4000]
    model = Trainer("sklearn.tree.DecisionTreeClassifier", {"max_depth": 6, "random_state": 0}).fit(
        train[ELEC2_FEATURES], train["target"]
    )
    direct = DecisionTreeClassifier(max_depth=6, random_state=0).fit(
        train[ELEC2_FEATURES], train["target"]
    )
    np.testing.assert_array_equal(
        model.predict(test[ELEC2_FEATURES]), direct.predict(test[ELEC2_FEATURES])
    )


def test_string_columns_are_encoded_and_unseen_values_tolerated():
    X = pd.DataFrame({"x": np.arange(8.0), "colour": ["red", "blue"] * 4})
    model = Trainer("sklearn.linear_model.LogisticRegression").fit(X, [0, 1] * 4)
    assert model.predict(pd.DataFrame({"x": [1.0], "colour": ["green"]})).shape == (1,)


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("sklearn.tree.NoSuchTree", {}, "cannot import"),
        ("sklearn.tree.DecisionTreeClassifier", {"depth": 3}, "refused them"),
    ],
)
def test_trainer_errors_name_the_setting(path, params, message):
    with pytest.raises(TrainingError, match=message):
        Trainer(path, params).build()


def test_training_on_nothing_is_refused():
    with pytest.raises(TrainingError, match="empty window"):
        Trainer("sklearn.tree.DecisionTreeClassifier").fit(pd.DataFrame({"x": []}), [])


def test_gate_scores_match_scikit_learn_and_apply_the_tolerance(elec):
    old, new, holdout = elec.iloc[:2000], elec.iloc[20000:22000], elec.iloc[22000:22500]
    X, y = holdout[ELEC2_FEATURES], holdout["target"]
    champion = DecisionTreeClassifier(max_depth=5, random_state=0).fit(
        old[ELEC2_FEATURES], old["target"]
    )
    challenger = DecisionTreeClassifier(max_depth=5, random_state=0).fit(
        new[ELEC2_FEATURES], new["target"]
    )
    result = evaluate_gate(challenger, champion, X, y, metric="accuracy")
    assert result.challenger == pytest.approx(accuracy_score(y, challenger.predict(X)))
    assert result.champion == pytest.approx(accuracy_score(y, champion.predict(X)))
    assert result.difference == pytest.approx(result.challenger - result.champion)
    assert result.verdict == "not_worse" and result.lower >= 0  # much better on recent rows
    reverse = evaluate_gate(champion, challenger, X, y, metric="accuracy")
    assert not reverse.passed and reverse.verdict == "worse" and reverse.upper < 0
    tolerated = evaluate_gate(
        champion, challenger, X, y, metric="accuracy", tolerance=-reverse.lower + 1e-9
    )
    assert tolerated.passed and "not worse beyond the tolerance" in tolerated.reason


def test_the_first_model_passes_the_gate_and_says_why(elec):
    part = elec.iloc[:1000]
    model = DecisionTreeClassifier(max_depth=3).fit(part[ELEC2_FEATURES], part["target"])
    result = evaluate_gate(model, None, part[ELEC2_FEATURES], part["target"])
    assert result.passed and result.champion is None and "no champion" in result.reason
