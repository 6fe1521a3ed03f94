"""C export + host parity against scikit-learn on real data (ELEC2, HAPT sensor windows)."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from retrainer.deploy.tinyml import check_parity, export_c, export_c_emlearn
from retrainer.deploy.tinyml.host import host_compiler
from retrainer.errors import DataError, RetrainerError
from tests import SHARED_DATA
from tests.tinyml_helpers import needs_host_compiler

ELEC2 = f"{SHARED_DATA}/elec2.csv"
HAPT = f"{SHARED_DATA}/hapt_accgyro_50hz.csv.gz"
FEATURES = [f"feat_{i}" for i in range(1, 7)]
AXES = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z"]

pytestmark = needs_host_compiler


@pytest.fixture(scope="module")
def elec2():
    """Train on 10k rows after the Victorian fill values end, check on the next 10k."""
    df = pd.read_csv(ELEC2)
    train, test = df.iloc[17_424:27_424], df.iloc[27_424:37_424]
    return train[FEATURES], train["target"], test[FEATURES], test["target"]


@pytest.fixture(scope="module")
def hapt():
    """2.56 s windows (128 samples, 50 % overlap) of a slice of HAPT, activities 1-6."""
    df = pd.read_csv(HAPT, nrows=200_000)
    signal = df[AXES].to_numpy()
    label = df["label"].to_numpy()
    experiment = df["experiment"].to_numpy()
    rows, labels = [], []
    for start in range(0, len(df) - 128, 64):
        window = slice(start, start + 128)
        lab, exp = label[window], experiment[window]
        if lab[0] < 1 or lab[0] > 6 or (lab != lab[0]).any() or (exp != exp[0]).any():
            continue
        x = signal[window]
        diff = np.abs(np.diff(x, axis=0)).mean(axis=0)
        rows.append(np.concatenate([x.mean(axis=0), x.std(axis=0), diff]))
        labels.append(int(lab[0]))
    X, y = np.asarray(rows), np.asarray(labels)
    cut = int(0.6 * len(X))
    return X[:cut], y[:cut], X[cut:], y[cut:]


CLASSIFIERS = {
    "decision_tree": lambda: DecisionTreeClassifier(random_state=0),
    "random_forest": lambda: RandomForestClassifier(n_estimators=25, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=25, max_depth=12, random_state=0),
    "gaussian_nb": GaussianNB,
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "linear_svc": lambda: make_pipeline(MinMaxScaler(), LinearSVC()),
    "mlp": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((16, 8), max_iter=100, random_state=0)
    ),
    "mlp_tanh": lambda: make_pipeline(
        MinMaxScaler(), MLPClassifier((12,), activation="tanh", max_iter=100, random_state=0)
    ),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
@pytest.mark.parametrize("data", ["elec2", "hapt"])
def test_c_predicts_like_scikit_learn(kind, data, request):
    X_train, y_train, X_test, y_test = request.getfixturevalue(data)
    model = CLASSIFIERS[kind]().fit(X_train, y_train)
    expected = model.predict(X_test)
    result = check_parity(export_c(model, name=kind), X_test, expected, y=y_test)
    assert result.n == len(X_test)
    assert result.agreement >= 0.999, result
    python_accuracy = float(np.mean(expected == np.asarray(y_test)))
    assert result.python_accuracy == pytest.approx(python_accuracy)
    assert result.c_accuracy == pytest.approx(python_accuracy, abs=0.001)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DecisionTreeRegressor(max_depth=10, random_state=0),
        lambda: RandomForestRegressor(n_estimators=10, max_depth=8, random_state=0),
        lambda: make_pipeline(StandardScaler(), Ridge()),
        lambda: make_pipeline(
            StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0)
        ),
    ],
    ids=["tree", "forest", "ridge", "mlp"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regressors_match_within_float32_rounding(elec2, make):
    X_train, _, X_test, _ = elec2
    # Predict NSW demand from the other features.
    inputs = [f for f in FEATURES if f != "feat_3"]
    model = make().fit(X_train[inputs], X_train["feat_3"])
    expected = model.predict(X_test[inputs])
    result = check_parity(export_c(model), X_test[inputs], expected)
    assert result.agreement == 1.0
    assert result.max_abs_error < 1e-5
    assert result.c_accuracy is None


def test_scaling_folded_into_tree_thresholds(elec2):
    X_train, y_train, X_test, y_test = elec2
    model = make_pipeline(MinMaxScaler(), StandardScaler(), DecisionTreeClassifier(random_state=0))
    model.fit(X_train, y_train)
    export = export_c(model)
    assert "_scale" not in export.source  # no scaling at run time: thresholds are raw
    result = check_parity(export, X_test, model.predict(X_test))
    # Exact but for rows whose float64 values round to the float32 a scaled split sits on.
    assert result.agreement >= 0.999


def test_emlearn_defaults_fail_the_parity_check(elec2):
    X_train, y_train, X_test, _ = elec2
    forest = RandomForestClassifier(n_estimators=25, max_depth=10, random_state=0)
    forest.fit(X_train, y_train)
    before = np.geterr()
    emlearn_export = export_c_emlearn(forest, name="eml")
    assert np.geterr() == before  # emlearn's np.seterr(all="raise") does not leak
    expected = forest.predict(X_test)
    emlearn_result = check_parity(emlearn_export, X_test, expected)
    ours = check_parity(export_c(forest), X_test, expected)
    # int16 features turn every value in [0, 1) into 0: emlearn predicts one class.
    assert emlearn_result.agreement < 0.9
    assert emlearn_result.n_disagreements > 1000
    assert ours.agreement == 1.0
    # emlearn's float option: float thresholds, but majority voting instead of soft voting.
    as_float = check_parity(export_c_emlearn(forest, name="eml", dtype="float"), X_test, expected)
    assert 0.9 < as_float.agreement < 1.0


def test_dataframe_columns_are_reordered_by_name(elec2):
    X_train, y_train, X_test, _ = elec2
    tree = DecisionTreeClassifier(max_depth=8, random_state=0).fit(X_train, y_train)
    shuffled = X_test[list(reversed(FEATURES))]
    result = check_parity(export_c(tree), shuffled, tree.predict(X_test))
    assert result.agreement == 1.0


def test_unsupported_models_are_named():
    X, y = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], [0, 1, 1]
    with pytest.raises(RetrainerError, match="KNeighborsClassifier"):
        export_c(KNeighborsClassifier(n_neighbors=1).fit(X, y))
    with pytest.raises(RetrainerError, match="PCA"):
        export_c(make_pipeline(PCA(1), GaussianNB()).fit(X, y))
    with pytest.raises(RetrainerError, match="C identifier"):
        export_c(GaussianNB().fit(X, y), name="bad name")


def test_bad_rows_are_named(elec2):
    X_train, y_train, X_test, _ = elec2
    tree = DecisionTreeClassifier(max_depth=3).fit(X_train, y_train)
    export = export_c(tree)
    broken = X_test.iloc[:5].astype(object)
    broken.iloc[3, 2] = "n/a"
    with pytest.raises(DataError, match="cannot be read as numbers"):
        check_parity(export, broken, tree.predict(X_test.iloc[:5]))
    with pytest.raises(DataError, match="lacks the model's feature columns: feat_6"):
        check_parity(export, X_test.drop(columns="feat_6"), tree.predict(X_test))
    with pytest.raises(DataError, match="3 values but X has 10000 rows"):
        check_parity(export, X_test, tree.predict(X_test)[:3])


def test_feature_names_cannot_break_out_of_c_comments(tmp_path):
    X, y = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], ["a */ int evil; /*", "b", "b"]
    model = GaussianNB().fit(X, y)
    export = export_c(model, feature_names=["*/ #include <evil.h> /*", "ok"])
    assert "*/ #include" not in export.header and "*/ int evil" not in export.header
    export.write(tmp_path)
    compiler = host_compiler()
    subprocess.run(
        [*compiler.command, "-std=c99", "-Wall", "-Werror", "-c", "model.c", "-o", "model.o"],
        cwd=tmp_path,
        check=True,
    )
    assert check_parity(export, X, model.predict(X)).agreement == 1.0
