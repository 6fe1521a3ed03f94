"""int8 MLPs: the C matches the numpy int8 reference, and the int8 model stays close to float."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from retrainer.deploy.tinyml import (
    DeployTarget,
    check_parity,
    check_target,
    export_c,
    measure_footprint,
    quantize_mlp,
)
from retrainer.errors import RetrainerError
from tests import SHARED_DATA

FEATURES = [f"feat_{i}" for i in range(1, 7)]
pytestmark = [
    pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(scope="module")
def elec2():
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv")
    train, test = df.iloc[17_424:27_424], df.iloc[27_424:37_424]
    return train[FEATURES], train["target"], test[FEATURES], test["target"]


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_int8_c_matches_reference_and_stays_close_to_float(elec2, activation):
    X_train, y_train, X_test, y_test = elec2
    mlp = MLPClassifier((16, 8), activation=activation, max_iter=60, random_state=0)
    model = make_pipeline(StandardScaler(), mlp).fit(X_train.iloc[:5000], y_train.iloc[:5000])
    q = quantize_mlp(model, X_train.iloc[:2000])
    export = export_c(q, name="q8")
    assert "static const int8_t q8_w0" in export.source
    assert export.model_type == "int8 Pipeline(StandardScaler, MLPClassifier)"
    result = check_parity(export, X_test, q.predict(X_test), y=y_test)
    assert result.agreement >= 0.999
    # Quantisation costs little: the int8 network mostly predicts what the float one does.
    assert np.mean(q.predict(X_test) == model.predict(X_test)) >= 0.95
    assert result.c_accuracy >= model.score(X_test, y_test) - 0.02


def test_quantised_weights_are_within_half_a_step(elec2):
    X_train, y_train, _, _ = elec2
    mlp = MLPClassifier((16,), max_iter=30, random_state=0).fit(X_train[:3000], y_train[:3000])
    q = quantize_mlp(mlp, X_train)
    for w_float, w_int8, scale in zip(mlp.coefs_, q.weights, q.weight_scales, strict=True):
        assert w_int8.dtype == np.int8 and np.abs(w_int8).max() == 127
        step = float(scale)
        assert np.abs(w_int8 * step - w_float).max() <= step / 2 + 1e-12


def test_multiclass_and_regression(elec2):
    X_train, y_train, X_test, _ = elec2
    bins = pd.cut(X_train["feat_2"], [-1, 0.03, 0.05, 0.08, 2], labels=False)
    inputs = [f for f in FEATURES if f != "feat_2"]
    clf = make_pipeline(StandardScaler(), MLPClassifier((24,), max_iter=80, random_state=0))
    clf.fit(X_train[inputs].iloc[:5000], bins.iloc[:5000])
    q = quantize_mlp(clf, X_train[inputs])
    assert q.output == "multiclass"
    parity = check_parity(export_c(q), X_test[inputs], q.predict(X_test[inputs]))
    assert parity.agreement >= 0.999
    reg = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=80, random_state=0)
    ).fit(X_train[inputs].iloc[:5000], X_train["feat_2"].iloc[:5000])
    qr = quantize_mlp(reg, X_train[inputs])
    parity = check_parity(export_c(qr), X_test[inputs], qr.predict(X_test[inputs]))
    assert parity.agreement == 1.0
    assert np.abs(qr.predict(X_test[inputs]) - reg.predict(X_test[inputs])).mean() < 0.01


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_int8_network_is_smaller_and_passes_the_gate(elec2):
    X_train, y_train, X_test, y_test = elec2
    model = make_pipeline(
        StandardScaler(), MLPClassifier((64, 32), max_iter=20, random_state=0)
    ).fit(X_train.iloc[:3000], y_train.iloc[:3000])
    q = quantize_mlp(model, X_train.iloc[:2000])
    target = DeployTarget("m4", flash_kb=256, ram_kb=64)
    float_flash = measure_footprint(export_c(model), target).model_flash_bytes
    int8_flash = measure_footprint(export_c(q), target).model_flash_bytes
    weights = sum(w.size for w in q.weights)
    # Three bytes saved per weight, less the quantisation code.
    assert float_flash - int8_flash > 2.5 * weights
    report = check_target(q, target, X_test.iloc[:2000], y_test.iloc[:2000])
    assert report.passed, report.reasons
    assert report.model_type.startswith("int8")


def test_only_mlps_are_quantised(elec2):
    X_train, y_train, _, _ = elec2
    with pytest.raises(RetrainerError, match="DecisionTreeClassifier"):
        quantize_mlp(DecisionTreeClassifier(max_depth=2).fit(X_train, y_train), X_train)
