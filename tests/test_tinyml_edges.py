"""The C export at the edges: NaN, infinity, huge values and values on a split threshold.

Every supported model type is trained on real rows (ELEC2) and its C, compiled once with the
host compiler, gets the same rows as scikit-learn: random float32 values, NaN, infinities, values
of 1e30 and beyond, and the model's own thresholds. A row scikit-learn refuses must be refused by
the C (class -1, regressor NaN); every other row must get scikit-learn's prediction.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from retrainer.deploy.tinyml import (
    DeployTarget,
    check_parity,
    check_target,
    export_c,
    write_bundle,
)
from retrainer.deploy.tinyml.domain import python_reference
from retrainer.deploy.tinyml.parity import _harness, compare_outputs, feature_matrix
from retrainer.deploy.tinyml.quantize import quantize_mlp
from tests import SHARED_DATA
from tests.tinyml_helpers import needs_host_compiler

FEATURES = [f"feat_{i}" for i in range(1, 7)]
F32_MAX = float(np.finfo(np.float32).max)

pytestmark = needs_host_compiler


@pytest.fixture(scope="module")
def elec2():
    """3,000 training rows after the Victorian fill values end, the next 2,000 to check on."""
    df = pd.read_csv(f"{SHARED_DATA}/elec2.csv")
    train, test = df.iloc[17_424:20_424], df.iloc[20_424:22_424]
    return train[FEATURES], train["target"], test[FEATURES], test["target"]


def _with_holes(X: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """``X`` with a share of its values set to NaN at random."""
    holes = X.copy()
    mask = np.random.default_rng(seed).random(holes.shape) < share
    holes[mask] = np.nan
    return holes


def _nan_probes(X: pd.DataFrame) -> pd.DataFrame:
    """Each row once per feature, with that feature missing."""
    probes = []
    for column in X.columns:
        probe = X.copy()
        probe[column] = np.nan
        probes.append(probe)
    return pd.concat(probes, ignore_index=True)


@pytest.mark.parametrize("holes", [0.0, 0.1], ids=["trained-without-nan", "trained-with-nan"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        lambda: ExtraTreesClassifier(n_estimators=10, random_state=0),
        lambda: DecisionTreeRegressor(max_depth=10, random_state=0),
        lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    ],
    ids=["tree", "forest", "extra-trees", "tree-regressor", "boosting"],
)
def test_nan_follows_the_side_scikit_learn_learned(elec2, make, holes):
    X_train, y_train, X_test, _ = elec2
    model = make()
    if isinstance(model, DecisionTreeRegressor):
        y_train = X_train["feat_6"] + y_train
    model.fit(_with_holes(X_train, holes, seed=1), y_train)
    trees = (
        [e.tree_ for e in getattr(model, "estimators_", [model])]
        if hasattr(model, "tree_") or hasattr(model, "estimators_")
        else []
    )
    if trees:  # the learned side differs between nodes: always-right would fail
        sides = np.concatenate([t.missing_go_to_left[t.children_left >= 0] for t in trees])
        assert 0.0 < sides.mean() < 1.0
    probes = _nan_probes(X_test.iloc[:300])
    predictions, refused = python_reference(model, probes)
    assert not refused.any()
    result = check_parity(export_c(model), probes, predictions, refused=refused)
    assert result.n == result.n_non_finite == 6 * 300
    assert result.agreement == 1.0, result.disagreeing_rows


def test_the_gate_counts_rows_with_nan_and_refused_rows(elec2):
    X_train, y_train, X_test, y_test = elec2
    holdout = _with_holes(X_test.iloc[:500], 0.05, seed=2)
    n_holes = int(holdout.isna().any(axis=1).sum())
    assert n_holes > 50
    target = DeployTarget("m4", flash_kb=256, ram_kb=64)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X_train, y_train)
    report = check_target(forest, target, holdout, y_test.iloc[:500])
    assert report.parity.agreement == 1.0
    assert (report.parity.n_non_finite, report.parity.n_refused) == (n_holes, 0)
    nb = GaussianNB().fit(X_train, y_train)  # scikit-learn refuses NaN: so must the C
    report = check_target(nb, target, holdout, y_test.iloc[:500])
    assert report.parity.agreement == 1.0
    assert report.parity.n_refused == n_holes
    assert "MODEL_REFUSED (-1)" in report.export.header
    assert "NaN: refused" in report.export.header


@pytest.mark.parametrize(
    "make",
    [
        GaussianNB,
        lambda: LogisticRegression(max_iter=500),
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        lambda: MLPClassifier((16,), max_iter=300, random_state=0),
        lambda: MLPClassifier((8,), activation="tanh", max_iter=300, random_state=0),
    ],
    ids=["gaussian-nb", "logistic", "scaled-logistic", "mlp-relu", "mlp-tanh"],
)
def test_huge_values_keep_python_s_class(elec2, make):
    """|x| >= 1e30 overflows float32 products and sums; the C must still predict Python's class."""
    X_train, y_train, X_test, _ = elec2
    model = make().fit(X_train, y_train)
    rng = np.random.default_rng(3)
    rows = X_test.iloc[:400].to_numpy().copy()
    column = rng.integers(0, rows.shape[1], size=len(rows))
    magnitude = 10.0 ** rng.uniform(30, 38.5, size=len(rows))
    rows[np.arange(len(rows)), column] = np.sign(rng.standard_normal(len(rows))) * magnitude
    rows = rows.astype(np.float32).astype(np.float64)  # what the device holds
    huge = pd.DataFrame(rows, columns=FEATURES)
    with np.errstate(over="ignore"):  # float32 arithmetic does overflow on these rows
        assert np.isinf(np.float32(magnitude.min()) * np.float32(magnitude.min()))
    predictions, refused = python_reference(model, huge)
    result = check_parity(export_c(model), huge, predictions, refused=refused)
    assert result.agreement == 1.0, result.disagreeing_rows


WIDE_ARGMAX_MAIN = r"""
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    double v[2];
    while (fread(v, sizeof(double), 2, stdin) == 2) {
        int32_t best = m_argmax_wide(v, 2);
        fwrite(&best, sizeof best, 1, stdout);
    }
    return 0;
}
"""


def test_the_double_argmax_picks_what_greater_than_picks(tmp_path):
    """The double path's argmax reads ``v[k] > v[best]`` off the bits of the difference; on
    every pair of doubles, the special ones included, it must pick the index ``>`` picks."""
    from itertools import product

    from retrainer.deploy.tinyml.export import _argmax_c
    from retrainer.deploy.tinyml.host import host_compiler
    from retrainer.deploy.tinyml.toolchain import HOST_FLAGS, run_tool

    tiny, big = np.nextafter(0.0, 1.0), np.finfo(np.float64).max
    special = [0.0, -0.0, tiny, -tiny, 2.2250738585072014e-308, 1.0, np.nextafter(1.0, 2.0),
               -1.0, big, -big, np.inf, -np.inf, np.nan, -np.nan]  # fmt: skip
    rng = np.random.default_rng(0)
    drawn = rng.standard_normal((2_000, 2)) * 10.0 ** rng.integers(-300, 300, (2_000, 1))
    near = np.c_[drawn[:, 0], np.nextafter(drawn[:, 0], rng.choice([-np.inf, np.inf], 2_000))]
    pairs = np.vstack([np.array(list(product(special, special))), drawn, near])
    source = "#include <stdint.h>\n" + _argmax_c("m", "double") + WIDE_ARGMAX_MAIN
    (tmp_path / "argmax.c").write_text(source)
    compiler = host_compiler()
    run_tool(
        [*compiler.command, *HOST_FLAGS, "-Werror", "-o", "argmax", "argmax.c"],
        cwd=tmp_path,
        what="host compile",
    )
    done = subprocess.run(
        [str(tmp_path / "argmax")], input=pairs.tobytes(), capture_output=True, check=True
    )
    picked = np.frombuffer(done.stdout, dtype=np.int32)
    expected = (pairs[:, 1] > pairs[:, 0]).astype(np.int32)
    assert len(picked) == len(pairs)
    assert (picked == expected).all(), pairs[picked != expected][:5]


# ----------------------------------------------------------------------------- property test
MODELS = {
    "tree": lambda: DecisionTreeClassifier(max_depth=8, random_state=0),
    "tree-regressor": lambda: DecisionTreeRegressor(max_depth=8, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=8, max_depth=8, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=8, max_depth=8, random_state=0),
    "forest-regressor": lambda: RandomForestRegressor(n_estimators=5, max_depth=8, random_state=0),
    "scaled-tree": lambda: make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=8)),
    "boosting": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
    "boosting-regressor": lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0),
    "gaussian-nb": GaussianNB,
    "scaled-nb": lambda: make_pipeline(MinMaxScaler(), GaussianNB()),
    "logistic": lambda: LogisticRegression(max_iter=500),
    "linear-svc": lambda: make_pipeline(StandardScaler(), LinearSVC()),
    "ridge": lambda: Ridge(),
    "mlp": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((12,), max_iter=300, random_state=0)
    ),
    "mlp-tanh": lambda: MLPClassifier((8,), activation="tanh", max_iter=300, random_state=0),
    "mlp-regressor": lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
    "int8-mlp": "quantized",
}
_NAN_ALLOWED = ("tree", "forest", "extra-trees", "boosting")


class Compiled:
    """A model, its C export compiled once on the host, and its float32 thresholds."""

    def __init__(self, model, export, binary: Path, thresholds: np.ndarray):
        self.model, self.export, self.binary, self.thresholds = model, export, binary, thresholds

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        folder = self.binary.parent
        feature_matrix(self.export, X).tofile(folder / "features.bin")
        subprocess.run(
            [self.binary, "features.bin", "predictions.bin", "0"],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=60,
        )
        kind = np.int32 if self.export.task == "classification" else np.float32
        return np.fromfile(folder / "predictions.bin", dtype=kind)


def _thresholds(model) -> np.ndarray:
    """Split thresholds (trees), class means (naive Bayes) or scaler centres: values at edges."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    found = [0.0, 1.0]
    for tree in getattr(estimator, "estimators_", [estimator]):
        if hasattr(tree, "tree_"):
            found += list(tree.tree_.threshold[tree.tree_.children_left >= 0])
    for predictors in getattr(estimator, "_predictors", []):
        for predictor in predictors:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            found += list(nodes["num_threshold"])
    found += list(np.ravel(getattr(estimator, "theta_", [])))
    return np.unique(np.asarray(found, dtype=np.float32))


@pytest.fixture(scope="module")
def compiled(elec2, tmp_path_factory):
    """Every model type, fitted (trees and boosting with some NaN in training) and compiled."""
    X_train, y_train, _, _ = elec2
    built = {}
    for name, make in MODELS.items():
        regression = "regressor" in name or name == "ridge"
        target = X_train["feat_6"] * 3.0 + y_train if regression else y_train
        train = _with_holes(X_train, 0.05, seed=4) if name in _NAN_ALLOWED else X_train
        if make == "quantized":
            mlp = make_pipeline(
                StandardScaler(), MLPClassifier((8,), max_iter=300, random_state=0)
            ).fit(train, target)
            model = quantize_mlp(mlp, train)
        else:
            model = make().fit(train, target)
        export = export_c(model, name="m")
        folder = tmp_path_factory.mktemp(name)
        predictions, refused = python_reference(model, X_train.iloc[:50])
        check_parity(export, X_train.iloc[:50], predictions, refused=refused, workdir=folder)
        built[name] = Compiled(model, export, folder / "parity", _thresholds(model))
    return built


def _magnitude(model, X: np.ndarray) -> np.ndarray | None:
    """Per row, the value of a linear model or MLP regressor with |weights| on |x|: the scale of
    the terms its sum cancels (float32 weights round each by up to 6e-8 of it)."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    X = np.where(np.isfinite(X), X, 0.0)  # refused rows: compared by refusal alone
    if hasattr(model, "steps"):
        for _, step in model.steps[:-1]:
            X = step.transform(X)
    a = np.abs(X)
    if hasattr(estimator, "coefs_"):
        for w, b in zip(estimator.coefs_, estimator.intercepts_, strict=True):
            a = a @ np.abs(w) + np.abs(b)
        return a[:, 0]
    if hasattr(estimator, "coef_"):
        return a @ np.abs(np.ravel(estimator.coef_)) + np.abs(np.ravel(estimator.intercept_)[0])
    return None


def _on_rounded_up_threshold(built: Compiled, X: np.ndarray) -> np.ndarray:
    """Rows holding, for a boosting split, the float32 nearest its float64 threshold where that
    float32 is above the threshold: the one input the C sends left (where the float64 threshold
    value itself goes) and scikit-learn right (see ``export._raw_thresholds``)."""
    hits = np.zeros(len(X), dtype=bool)
    for predictors in getattr(built.model, "_predictors", []):
        for predictor in predictors:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            for feature, t in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
                c = float(np.float32(t))
                if c > t:
                    hits |= X[:, feature] == c
    return hits


def _value(thresholds: np.ndarray):
    """One float32 input: ordinary, on or next to a threshold, NaN, infinite, huge or extreme."""
    on_edge = st.sampled_from(list(thresholds)).flatmap(
        lambda t: st.sampled_from(
            [t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))]
        )
    )
    huge = st.floats(float(np.float32(1e30)), F32_MAX, width=32).flatmap(
        lambda v: st.sampled_from([v, -v])
    )
    return st.one_of(
        st.floats(-2.0, 2.0, width=32),
        on_edge.map(float),
        st.sampled_from([np.nan, np.inf, -np.inf, F32_MAX, -F32_MAX, 0.0, -0.0]),
        huge,
        st.floats(width=32, allow_nan=False, allow_infinity=False),
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_c_and_python_agree_on_any_float32_row(compiled, name):
    built = compiled[name]

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.lists(
            st.lists(_value(built.thresholds), min_size=6, max_size=6), min_size=1, max_size=25
        )
    )
    def agree(rows):
        X = pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=FEATURES)
        predictions, refused = python_reference(built.model, X)
        raw = built.predict(X)
        c, same, _ = compare_outputs(built.export, raw, predictions, refused)
        magnitude = _magnitude(built.model, X.to_numpy())
        if (
            magnitude is not None and built.export.task == "regression"
        ):  # arithmetic regressors: within float32 weight rounding
            close = np.abs(c - predictions) <= 1e-4 * np.maximum(1.0, np.abs(predictions)) + (
                1e-6 * magnitude
            )
            same |= ~refused & close
        same |= _on_rounded_up_threshold(built, X.to_numpy())
        assert same.all(), (X[~same], c[~same], predictions[~same], refused[~same])

    agree()


# ----------------------------------------------------------------------------- bundle build
@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_the_bundle_alone_rebuilds_the_verified_agreement(elec2, tmp_path):
    """Build the bundle's C with its own Makefile flags, nothing else, and get the same agreement
    on the same rows (NaN included) as the verified check."""
    X_train, y_train, X_test, y_test = elec2
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(X_train, y_train)
    rows = _with_holes(X_test.iloc[:400], 0.05, seed=5)
    target = DeployTarget("cortex-m4f", flash_kb=256, ram_kb=64)
    report = check_target(model, target, rows, y_test.iloc[:400], workdir=tmp_path / "check")
    if not report.passed:  # without arm-none-eabi-gcc the footprint is not measured
        assert all(r.startswith("footprint: not measured") for r in report.reasons)
        report = dataclasses.replace(report, passed=True, reasons=())
    bundle = write_bundle(report, tmp_path / "bundles", version="7")
    manifest = bundle.manifest
    for flags in (manifest["build"]["host"]["flags"], manifest["build"]["cross"]["flags"]):
        assert {"-std=c99", "-ffp-contract=off"} <= set(flags)
    cross = manifest["build"]["cross"]  # GNU's flags, or zig's where only Python is installed
    fpu = "-mcpu=cortex_m4+vfp4d16sp" if cross["toolchain"] == "zig" else "-mfpu=fpv4-sp-d16"
    assert fpu in cross["flags"]
    makefile = (bundle.path / "Makefile").read_text()
    assert f"HOST_CFLAGS = {' '.join(manifest['build']['host']['flags'])}" in makefile
    assert f"CROSS_CFLAGS = {' '.join(manifest['build']['cross']['flags'])}" in makefile

    alone = tmp_path / "copy"
    shutil.copytree(bundle.path, alone)
    # zig's compiler is "python3 -m ziglang cc": the Python that has the mcu extra comes first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        ["make", "host"], cwd=alone, env=env, check=True, capture_output=True, timeout=120
    )
    (alone / "main.c").write_text(_harness(report.export, True))
    host = manifest["build"]["host"]
    subprocess.run(
        [*shlex.split(host["compiler"]), *host["flags"], "-I.", "-o", "predict", "main.c"]
        + ["build-host/model.o", *host["link"]],
        cwd=alone,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    feature_matrix(report.export, rows).tofile(alone / "features.bin")
    subprocess.run(
        ["./predict", "features.bin", "predictions.bin", "0"], cwd=alone, check=True, timeout=60
    )
    raw = np.fromfile(alone / "predictions.bin", dtype=np.int32)
    predictions, refused = python_reference(model, rows)
    _, same, _ = compare_outputs(report.export, raw, predictions, refused)
    assert manifest["parity"]["n_refused"] == int(refused.sum()) > 0
    assert (len(same), float(same.mean())) == (
        manifest["parity"]["n"],
        manifest["parity"]["agreement"],
    )
    assert same.all()
    if shutil.which("arm-none-eabi-gcc") is not None:  # the cross build: the same machine code
        subprocess.run(["make"], cwd=alone, check=True, capture_output=True, timeout=120)
        verified = tmp_path / "check" / "cross" / "model.o"
        assert _code(alone / "build-cross" / "model.o") == _code(verified)


def _code(obj: Path) -> list[str]:
    """Every section's bytes of an object file, as ``objdump -s`` prints them (path left out)."""
    dump = subprocess.run(
        ["arm-none-eabi-objdump", "-s", obj.name],
        cwd=obj.parent,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [line for line in dump.splitlines() if obj.name not in line]
