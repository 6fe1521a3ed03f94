"""Export a fitted scikit-learn model as self-contained C that predicts what Python predicts.

Why not emlearn's exporter: measured on real data, its defaults agree with scikit-learn on only
35-65 % of predictions for some models (int16 features, ``<`` where scikit-learn uses ``<=``,
thresholds and weights printed with 6 decimals, hard voting in forests, fixed-point naive Bayes);
a 20-tree forest exported with emlearn's defaults agrees on 23 % of ELEC2 and 21 % of HAPT rows
(``bench/tinyml.py``), and emlearn has no int8 network export. This module writes the C itself
(self-contained: no library headers to ship), with

- float features, and tree thresholds chosen as the largest float32 that scikit-learn sends left,
  so that ``x <= c`` in float is exactly scikit-learn's ``float32(scale(x)) <= t`` (it compares
  float32 features with float64 thresholds), with any scaling folded into ``c``; for gradient
  boosting, which compares float64 inputs, ``c`` is the float32 nearest the threshold, so that
  inputs equal to it (most of the close calls) go left as in scikit-learn;
- every other constant printed as the float32 it becomes (``%.9g`` round-trips a float32);
- soft voting in forests (mean of leaf class shares, first maximum wins, as ``numpy.argmax``);
- the feature scaling of a ``Pipeline`` either folded into the tree thresholds or computed in C with
  the operations scikit-learn uses.

:func:`export_c_emlearn` keeps emlearn's default export available so that the parity check can be
shown to catch its mismatches.
"""

from __future__ import annotations

import hashlib
import keyword
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    Perceptron,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from retrainer.deploy.tinyml.domain import InputPolicy, input_policy
from retrainer.deploy.tinyml.quantize import QuantizedMLP
from retrainer.deploy.tinyml.scaling import apply_ops, scaler_ops, split_pipeline
from retrainer.errors import RetrainerError

_TREES = (DecisionTreeClassifier, DecisionTreeRegressor)
_FORESTS = (
    RandomForestClassifier,
    ExtraTreesClassifier,
    RandomForestRegressor,
    ExtraTreesRegressor,
)
_BOOSTING = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
_MLPS = (MLPClassifier, MLPRegressor)
_LINEAR = (
    LogisticRegression,
    LogisticRegressionCV,
    RidgeClassifier,
    RidgeClassifierCV,
    SGDClassifier,
    Perceptron,
    LinearSVC,
    LinearRegression,
    Ridge,
    Lasso,
    ElasticNet,
    SGDRegressor,
    LinearSVR,
)
_MLP_ACTIVATIONS = {
    "identity": "{v}",
    "relu": "({v} > 0.0f ? {v} : 0.0f)",
    "tanh": "tanh{m}({v})",
    "logistic": "(1.0f / (1.0f + exp{m}(-{v})))",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "main",
}  # fmt: skip


@dataclass(frozen=True)
class _Arithmetic:
    """How a model body computes: in float32, leaving for the double path ``<name>_wide`` when a
    sum overflows (``wide`` False), or in double (the double path itself)."""

    name: str
    wide: bool

    @property
    def ctype(self) -> str:
        return "double" if self.wide else "float"

    @property
    def math(self) -> str:
        """Suffix of the ``<math.h>`` functions."""
        return "" if self.wide else "f"

    @property
    def argmax(self) -> str:
        return f"{self.name}_argmax_wide" if self.wide else f"{self.name}_argmax"

    def check(self, value: str, pad: str) -> str:
        """C line after a sum: in float32, an overflowed sum restarts the row in double."""
        if self.wide:
            return ""
        leave = f"{pad}    return {self.name}_wide(features);\n"
        return f"{pad}if (!isfinite({value})) {{\n{leave}{pad}}}\n"


@dataclass(frozen=True)
class CExport:
    """C source and header of one model, with what a caller needs to run it.

    The header declares ``int32_t <name>_predict(const float *features)`` for a classifier (it
    returns an index into ``classes``) or ``float <name>_predict(const float *features)`` for a
    regressor; ``features`` holds ``n_features`` raw (unscaled) values in ``feature_names`` order.

    Parameters
    ----------
    name
        C identifier prefix; the files are ``<name>.c`` and ``<name>.h``.
    model_type
        What was exported, e.g. ``Pipeline(StandardScaler, LogisticRegression)``.
    task
        ``classification`` or ``regression``.
    n_features
        Number of input features.
    classes
        Class labels in output-index order (empty for a regressor).
    source, header
        The C text.
    feature_names
        Input names in order.
    include_dirs
        Extra header directories the source needs (empty for retrainer's own export).
    generator
        ``retrainer`` or ``emlearn-defaults``.
    """

    name: str
    model_type: str
    task: str
    n_features: int
    classes: tuple[Any, ...]
    source: str
    header: str
    feature_names: tuple[str, ...]
    include_dirs: tuple[str, ...] = field(default=())
    generator: str = "retrainer"

    @property
    def predict_function(self) -> str:
        """Name of the C entry point."""
        return f"{self.name}_predict"

    @property
    def files(self) -> dict[str, str]:
        """File name -> text of the files to compile (``<name>.c`` and ``<name>.h``)."""
        return {f"{self.name}.c": self.source, f"{self.name}.h": self.header}

    def write(self, directory: str | Path) -> list[Path]:
        """Write the files into ``directory`` (created if needed) and return their paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for file_name, text in self.files.items():
            path = out / file_name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        return paths

    def to_dict(self) -> dict[str, Any]:
        """Plain-data summary (no C text): type, task, shape, labels, SHA-256 of each file."""
        return {
            "name": self.name,
            "model_type": self.model_type,
            "task": self.task,
            "n_features": self.n_features,
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "generator": self.generator,
            "sha256": {
                file_name: hashlib.sha256(text.encode("utf-8")).hexdigest()
                for file_name, text in self.files.items()
            },
        }


def export_c(
    model: Any, *, name: str = "model", feature_names: Sequence[str] | None = None
) -> CExport:
    """Generate C for a fitted scikit-learn model (optionally behind scalers in a ``Pipeline``).

    Supported: ``DecisionTree``/``RandomForest``/``ExtraTrees`` classifiers and regressors,
    ``HistGradientBoosting`` classifiers and regressors (numeric splits; missing values follow
    the learned side),
    ``GaussianNB``, linear classifiers and regressors (``LogisticRegression``, ``LinearSVC``,
    ``RidgeClassifier``, ``SGDClassifier``, ``Perceptron``, ``LinearRegression``, ``Ridge``,
    ``Lasso``, ``ElasticNet``, ``SGDRegressor``, ``LinearSVR``), ``MLPClassifier`` and
    ``MLPRegressor`` with one output, and a ``Pipeline`` of ``StandardScaler``, ``MinMaxScaler``,
    ``MaxAbsScaler`` or ``RobustScaler`` steps in front of one of these; and an int8
    :class:`~retrainer.deploy.tinyml.quantize.QuantizedMLP` (its ``predict`` is the reference).

    Parameters
    ----------
    model
        The fitted model.
    name
        C identifier prefix of the generated functions and files.
    feature_names
        Input names (default: the model's ``feature_names_in_``, else ``x0, x1, ...``).

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> tree = DecisionTreeClassifier().fit([[0.0], [0.1], [1.0]], ["low", "low", "high"])
    >>> export = export_c(tree, name="level")
    >>> export.classes, export.predict_function
    (('high', 'low'), 'level_predict')
    >>> "level_nan_left[n >> 3] >> (n & 7)" in export.source  # NaN goes where scikit-learn does
    True
    >>> "LEVEL_REFUSED (-1)" in export.header  # infinity is refused, as scikit-learn refuses it
    True
    """
    _check_identifier(name)
    if isinstance(model, QuantizedMLP):
        return _quantized_export(name, model, feature_names)
    steps, estimator = split_pipeline(model)
    n_features = _n_features(model, estimator)
    names = _feature_names(model, feature_names, n_features)
    classification = _is_classifier(estimator)
    classes = tuple(_plain(c) for c in estimator.classes_) if classification else ()
    scaling = [op for step in steps for op in scaler_ops(step, n_features)]
    supported = _TREES + _FORESTS + _BOOSTING + (GaussianNB, *_LINEAR, *_MLPS)
    if not isinstance(estimator, supported):
        raise RetrainerError(_unsupported(type(estimator).__name__))
    policy = input_policy(model, n_features)
    wide = None
    if isinstance(estimator, _TREES + _FORESTS):
        declarations, body = _trees_c(name, estimator, classification, scaling, policy)
        scaling = []
    elif isinstance(estimator, _BOOSTING):
        declarations, body = _boosting_c(name, estimator, classification, scaling)
        scaling = []
    else:
        single, double = _Arithmetic(name, False), _Arithmetic(name, True)
        if isinstance(estimator, GaussianNB):
            declarations, body = _gaussian_nb_c(name, estimator, single)
            wide = _gaussian_nb_c(name, estimator, double)[1]
        elif isinstance(estimator, _LINEAR):
            declarations, body = _linear_c(name, estimator, classification, n_features, single)
            wide = _linear_c(name, estimator, classification, n_features, double)[1]
        else:
            declarations, body = _mlp_c(name, estimator, classification, single)
            wide = _mlp_c(name, estimator, classification, double)[1]

    model_type = _model_type(steps, estimator)
    header = _header(
        name, model_type, classification, n_features, classes, names, policy, wide is not None
    )
    source = _source(
        name, model_type, n_features, scaling, declarations, body, classification, policy, wide
    )
    return CExport(
        name=name,
        model_type=model_type,
        task="classification" if classification else "regression",
        n_features=n_features,
        classes=classes,
        source=source,
        header=header,
        feature_names=names,
    )


def export_c_emlearn(model: Any, *, name: str = "model", dtype: str = "int16") -> CExport:
    """emlearn's C export of a tree model, wrapped in the same ``float`` entry point.

    With emlearn's default (``dtype="int16"``) the features go through ``int16_t`` as in
    emlearn's own float wrapper; ``dtype="float"`` is emlearn's float option (float features
    and thresholds, still majority voting). This export is kept to measure emlearn against
    scikit-learn (the parity check must reject its defaults on data in [0, 1]); do not ship it.
    ``import emlearn`` changes numpy's global floating-point error settings; they are restored
    here.

    Parameters
    ----------
    model
        A fitted ``DecisionTree``/``RandomForest``/``ExtraTrees`` classifier.
    name
        C identifier prefix.
    dtype
        ``int16`` (emlearn's default) or ``float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> before = np.geterr()
    >>> tree = DecisionTreeClassifier().fit([[0.0], [0.1], [1.0]], [0, 0, 1])
    >>> export_c_emlearn(tree, name="level").generator
    'emlearn-defaults'
    >>> export_c_emlearn(tree, name="level", dtype="float").generator
    'emlearn-float'
    >>> np.geterr() == before
    True
    """
    _check_identifier(name)
    if not isinstance(
        model, (DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier)
    ):
        raise RetrainerError(
            f"export_c_emlearn covers tree classifiers only, not {type(model).__name__}"
        )
    if dtype not in ("int16", "float"):
        raise RetrainerError(f"emlearn dtype must be 'int16' or 'float', not {dtype!r}")
    with _numpy_errors_kept():
        import emlearn

        options = {"dtype": "float"} if dtype == "float" else {}
        code = emlearn.convert(model, **options).save(name=f"{name}_eml")
        include_dir = str(emlearn.includedir)
    n_features = int(model.n_features_in_)
    classes = tuple(_plain(c) for c in model.classes_)
    names = _feature_names(model, None, n_features)
    setting = "defaults" if dtype == "int16" else "float"
    model_type = f"{type(model).__name__} (emlearn {setting})"
    policy = InputPolicy(refuses_nan=True, refuses_inf=True)
    header = _header(name, model_type, True, n_features, classes, names, policy, False)
    adapter = f"""
#include <math.h>
#include "{name}.h"

int32_t {name}_predict(const float *features)
{{
{_refusal_c(n_features, policy, True)}{_emlearn_call(name, n_features, dtype)}}}
"""
    return CExport(
        name=name,
        model_type=model_type,
        task="classification",
        n_features=n_features,
        classes=classes,
        source=code + adapter,
        header=header,
        feature_names=names,
        include_dirs=(include_dir,),
        generator=f"emlearn-{setting}",
    )


def _emlearn_call(name: str, n_features: int, dtype: str) -> str:
    if dtype == "float":
        return f"    return {name}_eml_predict(features, {n_features});\n"
    return (
        f"    int16_t values[{n_features}];\n"
        f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
        "        values[i] = (int16_t)features[i];\n    }\n"
        f"    return {name}_eml_predict(values, {n_features});\n"
    )


@contextmanager
def _numpy_errors_kept() -> Iterator[None]:
    saved = np.geterr()
    try:
        yield
    finally:
        np.seterr(**saved)


# ---------------------------------------------------------------- model inspection


def _n_features(model: Any, estimator: Any) -> int:
    n = getattr(model, "n_features_in_", None) or getattr(estimator, "n_features_in_", None)
    if n is None:
        raise RetrainerError(f"{type(model).__name__} is not fitted: n_features_in_ is missing")
    return int(n)


def _feature_names(model: Any, given: Sequence[str] | None, n_features: int) -> tuple[str, ...]:
    if given is None:
        fitted = getattr(model, "feature_names_in_", None)
        given = [str(f) for f in fitted] if fitted is not None else None
    if given is None:
        return tuple(f"x{i}" for i in range(n_features))
    names = tuple(str(f) for f in given)
    if len(names) != n_features:
        raise RetrainerError(
            f"feature_names has {len(names)} names but the model takes {n_features} features"
        )
    return names


def _is_classifier(estimator: Any) -> bool:
    return bool(is_classifier(estimator))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _model_type(steps: list[Any], estimator: Any) -> str:
    if not steps:
        return type(estimator).__name__
    return f"Pipeline({', '.join(type(s).__name__ for s in [*steps, estimator])})"


def _unsupported(type_name: str) -> str:
    return (
        f"cannot export {type_name} to C: supported are decision trees, random forests and "
        "extra trees (classifier and regressor), GaussianNB, linear models (LogisticRegression, "
        "LinearSVC, Ridge, SGD, ...), single-output MLPs, and a Pipeline of scalers in front of "
        "one of these"
    )


def _check_identifier(name: str) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or name in _C_KEYWORDS:
        raise RetrainerError(
            f"export name {name!r} is not a usable C identifier: use letters, digits and "
            "underscores, at most 63 characters, not starting with a digit"
        )
    if keyword.iskeyword(name):
        raise RetrainerError(f"export name {name!r} is a reserved word")


# ---------------------------------------------------------------- scaling


def _raw_thresholds(
    ops: list[tuple[str, Any]],
    thresholds: np.ndarray,
    features: np.ndarray,
    *,
    float32_split: bool = True,
) -> np.ndarray:
    """float32 thresholds on raw features that reproduce scikit-learn's split of float64 inputs.

    scikit-learn's decision trees send a row left when ``float32(scale(x)) <= t``
    (``float32_split``); its histogram gradient boosting compares in float64, ``scale(x) <= t``.
    Either test is monotone in ``x``: the left side is ``x <= R`` for one float64 ``R``. A
    bisection over all float64 values (as ordered integers) finds ``R``; the C test is
    ``x32 <= float32(R)``.
    For trees (``float32_split``) ``R`` is a float32 and the test is exact for every input.
    Otherwise two float64 inputs that round to the same float32 can fall on different sides, and
    a float32 device cannot tell them apart; ``float32(R)`` rounds to nearest, so that an input
    equal to ``R`` goes left. That is the common case in boosting: its thresholds are often
    training values themselves (bin edges at quantiles), and many rows sit exactly on them. The
    price: when ``float32(R)`` rounds up, the float32 value ``float32(R)`` itself goes left in C
    and right in scikit-learn (it is above ``R``); the edge property test checks that these are
    the only float32 inputs where boosting's C and Python differ, and the parity check counts
    such rows (float64 inputs within half a float32 step above ``R``).
    """
    t = np.asarray(thresholds, dtype=np.float64)

    def left(key: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            scaled = apply_ops(ops, _from_key(key), features)
            if float32_split:
                scaled = scaled.astype(np.float32).astype(np.float64)
        return scaled <= t

    limit = int(_key(np.asarray([np.finfo(np.float64).max]))[0])
    lo = np.full(t.shape, -limit, dtype=np.int64)
    hi = np.full(t.shape, limit, dtype=np.int64)
    all_left, none_left = left(hi), ~left(lo)
    for _ in range(64):
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        go_left = left(mid)
        lo = np.where(go_left, mid, lo)
        hi = np.where(go_left, hi, mid)
    with np.errstate(over="ignore"):
        c = _from_key(lo).astype(np.float32)
    return np.where(all_left, np.float32(np.inf), np.where(none_left, np.float32(-np.inf), c))


def _key(values: np.ndarray) -> np.ndarray:
    """float64 values as int64 keys in the same order (adjacent floats differ by 1)."""
    bits = np.asarray(values, dtype=np.float64).view(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFFFFFFFFFF), bits)


def _from_key(keys: np.ndarray) -> np.ndarray:
    magnitude = np.abs(keys).astype(np.uint64)
    sign = np.uint64(0x8000000000000000)
    return np.where(keys < 0, magnitude | sign, magnitude).astype(np.uint64).view(np.float64)


def _scaling_c(
    name: str, ops: list[tuple[str, Any]], n_features: int, ctype: str
) -> tuple[str, str]:
    """The scaling function and its tables; in double (the overflow path), the tables it adds.

    In double a division multiplies by the float32 nearest the reciprocal, one rounding of the
    constant as the float32 divisor has: the image then needs no software double division
    (0.5-0.6 KB of flash on a Cortex-M4F). A reciprocal outside float32's normal range keeps the
    division.
    """
    wide = ctype == "double"
    decls, lines = [], []
    for i, (kind, values) in enumerate(ops):
        if kind == "clip":
            low, high = (_f32(v) for v in values)
            lines.append(f"        if (v < {low}) v = {low};")
            lines.append(f"        if (v > {high}) v = {high};")
            continue
        array = f"{name}_scale{i}_{kind}"
        symbol = {"sub": "-", "div": "/", "mul": "*", "add": "+"}[kind]
        if not wide:
            decls.append(_array("float", array, values))
        elif kind == "div" and _normal_f32(inverse := 1.0 / np.asarray(values, dtype=np.float64)):
            array, symbol = f"{name}_scale{i}_inv", "*"
            decls.append(_array("float", array, inverse))
        lines.append(f"        v = v {symbol} {array}[i];")
    suffix = "_wide" if wide else ""
    function = (
        f"static void {name}_scale{suffix}(const float *features, {ctype} *x)\n{{\n"
        f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
        f"        {ctype} v = features[i];\n" + "\n".join(lines) + "\n        x[i] = v;\n    }\n}\n"
    )
    return "\n".join(decls), function


def _normal_f32(values: np.ndarray) -> bool:
    """Whether every positive value rounds to a finite, normal float32."""
    with np.errstate(over="ignore"):
        v = np.asarray(values, dtype=np.float64).astype(np.float32)
    return bool(np.all(np.isfinite(v) & (v >= np.finfo(np.float32).tiny)))


# ---------------------------------------------------------------- C text helpers


def _f32(value: float) -> str:
    """C literal of ``float32(value)``; ``%.9g`` round-trips every float32."""
    v = float(np.float32(value))
    if math.isnan(v):
        raise RetrainerError("the model holds a NaN parameter; it cannot be exported")
    if math.isinf(v):
        return "HUGE_VALF" if v > 0 else "(-HUGE_VALF)"
    text = f"{v:.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def _array(ctype: str, name: str, values: Any, per_line: int = 8) -> str:
    flat = np.asarray(values).ravel()
    fmt = _f32 if ctype == "float" else (lambda v: str(int(v)))
    items = [fmt(v) for v in flat]
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{max(len(items), 1)}] = {{\n    {body or '0'}\n}};"


def _int_type(max_abs: int) -> str:
    return "int16_t" if max_abs < 2**15 else "int32_t"


def _comment(text: Any) -> str:
    """Text safe inside a C block comment (no ``*/``, no line breaks or control characters)."""
    return re.sub(r"[^A-Za-z0-9 _.:+=,()\[\]-]", "?", str(text))[:80]


def _argmax_c(name: str, ctype: str) -> str:
    """The first maximum's index. In double, ``v[k] > v[best]`` is read off the bits of their
    difference, which is above +0 and not NaN exactly when it holds (its bits minus one, as an
    unsigned number, lie below those of +inf), so that a soft-float target links no double
    comparison routine (272 B in libgcc, 154 B in compiler_rt)."""
    suffix = "_wide" if ctype == "double" else ""
    greater = "v[k] > v[best]"
    if ctype == "double":
        greater = "diff.u - 1u < 0x7ff0000000000000u"
    return (
        f"static int32_t {name}_argmax{suffix}(const {ctype} *v, int32_t n)\n{{\n"
        "    int32_t best = 0;\n"
        "    for (int32_t k = 1; k < n; k++) {\n"
        + (
            "        union { double d; uint64_t u; } diff = { v[k] - v[best] };\n"
            if ctype == "double"
            else ""
        )
        + f"        if ({greater}) {{\n            best = k;\n        }}\n    }}\n"
        "    return best;\n}\n"
    )


def _header(
    name: str,
    model_type: str,
    classification: bool,
    n_features: int,
    classes: tuple[Any, ...],
    feature_names: tuple[str, ...],
    policy: InputPolicy,
    wide: bool,
) -> str:
    guard = f"{name.upper()}_H"
    inputs = "\n".join(f" *   {i}: {_comment(n)}" for i, n in enumerate(feature_names))
    lines = [
        f"/* Generated by retrainer from {_comment(model_type)}; do not edit.",
        " * Inputs (raw, unscaled float values, in this order):",
        inputs,
    ]
    if classification:
        outputs = "\n".join(f" *   {i}: {_comment(c)}" for i, c in enumerate(classes))
        lines += [" * Output: index of the predicted class:", outputs]
        signature = f"int32_t {name}_predict(const float *features);"
        refused = f"{name.upper()}_REFUSED (-1)"
    else:
        lines.append(" * Output: the predicted value.")
        signature = f"float {name}_predict(const float *features);"
        refused = "NaN (test it with isnan)"
    nan = "refused" if policy.refuses_nan else "follows the side learned in training at each split"
    inf = "refused" if policy.refuses_inf else "compared like any other value"
    lines += [
        " * Missing and infinite inputs are treated as scikit-learn's predict treats them:",
        f" *   NaN: {nan};",
        f" *   +-inf: {inf}.",
        f" * A refused row returns {refused}.",
    ]
    if wide:
        lines.append(
            " * A row whose float32 arithmetic overflows (|x| near 1e19 and above) is computed"
            "\n * again in double, as Python computes it."
        )
    lines += [
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        f"#define {name.upper()}_N_FEATURES {n_features}",
    ]
    if classification:
        lines.append(f"#define {name.upper()}_N_CLASSES {len(classes)}")
        lines.append(f"#define {name.upper()}_REFUSED (-1)")
    lines += ["", signature, "", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def _source(
    name: str,
    model_type: str,
    n_features: int,
    scaling: list[tuple[str, Any]],
    declarations: str,
    body: str,
    classification: bool,
    policy: InputPolicy,
    wide: str | None = None,
) -> str:
    """The C source: input checks, scaling, the model body and, if any, its double path."""
    parts = [
        f"/* Generated by retrainer from {_comment(model_type)}; do not edit. */",
        "#include <math.h>",
        "#include <stdint.h>",
        "",
        f'#include "{name}.h"',
        "",
    ]
    return_type = "int32_t" if classification else "float"
    prologue = _refusal_c(n_features, policy, classification, "missing)" in body)
    if scaling:
        scale_decls, scale_function = _scaling_c(name, scaling, n_features, "float")
        parts += [scale_decls, "", scale_function]
        prologue += f"    float x[{n_features}];\n    {name}_scale(features, x);\n"
        if wide is not None:
            # An infinite scaled value makes the sums it enters overflow: they restart in double.
            wide_decls, wide_function = _scaling_c(name, scaling, n_features, "double")
            parts += [wide_decls, "", wide_function] if wide_decls else [wide_function]
    else:
        prologue += "    const float *x = features;\n"
    if "_argmax(" in body:
        parts.append(_argmax_c(name, "float"))
    if wide is not None:
        if "_argmax_wide(" in wide:
            parts.append(_argmax_c(name, "double"))
        parts.append(f"static {return_type} {name}_wide(const float *features);\n")
    parts += [
        declarations,
        "",
        f"{return_type} {name}_predict(const float *features)\n{{\n{prologue}{body}}}",
        "",
    ]
    if wide is not None:
        if scaling:
            load = f"    {name}_scale_wide(features, x);\n"
        else:
            load = (
                f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
                "        x[i] = features[i];\n    }\n"
            )
        parts += [
            "/* The same model in double, for rows whose float32 arithmetic overflows. */",
            f"static {return_type} {name}_wide(const float *features)\n{{\n"
            f"    double x[{n_features}];\n{load}{wide}}}",
            "",
        ]
    return "\n".join(parts)


def _refusal_c(
    n_features: int, policy: InputPolicy, classification: bool, track_missing: bool = False
) -> str:
    """C that returns the refused code for a row holding a value Python refuses; with
    ``track_missing`` (NaN accepted) it also sets ``missing`` when the row holds a NaN, in the
    same pass (one test per feature for a row of finite values)."""
    if track_missing:
        refuse = (
            f"            if (isinf(features[i])) {{\n"
            f"                return {_refused(classification)};\n            }}\n"
            if policy.refuses_inf
            else "            if (isnan(features[i])) {\n    "
        )
        close = "" if policy.refuses_inf else "            }\n"
        return (
            "    int32_t missing = 0;\n"
            f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
            "        if (!isfinite(features[i])) {\n"
            f"{refuse}            missing = 1;\n{close}        }}\n    }}\n"
        )
    if policy.refuses_nan and policy.refuses_inf:
        test = "!isfinite(features[i])"
    elif policy.refuses_nan:
        test = "isnan(features[i])"
    elif policy.refuses_inf:
        test = "isinf(features[i])"
    else:
        return ""
    return (
        f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
        f"        if ({test}) {{\n            return {_refused(classification)};\n"
        "        }\n    }\n"
    )


def _refused(classification: bool) -> str:
    return "-1" if classification else "NAN"


# ---------------------------------------------------------------- trees and forests


def _trees_c(
    name: str,
    estimator: Any,
    classification: bool,
    scaling: list[tuple[str, Any]],
    policy: InputPolicy,
) -> tuple[str, str]:
    """Trees and forests: one node table, NaN to the side each node learned (if accepted).

    scikit-learn sends a NaN left at a node whose ``missing_go_to_left`` is set (the side
    learned in training, or the side with more samples when training had none) and refuses NaN
    for an estimator that does not support missing values; the C does the same. Behind scalers,
    a raw value that scikit-learn's float32 cast of the scaled value turns into infinity is
    refused, as scikit-learn refuses it.
    """
    trees = [e.tree_ for e in getattr(estimator, "estimators_", [estimator])]
    if any(t.n_outputs != 1 for t in trees):
        raise RetrainerError(f"cannot export a multi-output {type(estimator).__name__} to C")
    single = len(trees) == 1
    n_classes = len(estimator.classes_) if classification else 0

    features: list[int] = []
    thresholds: list[float] = []
    nan_left: list[int] = []
    lefts: list[int] = []
    rights: list[int] = []
    roots: list[int] = []
    leaf_rows: list[np.ndarray] = []
    for tree in trees:
        goes_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        is_leaf = tree.children_left == -1
        inner = np.flatnonzero(~is_leaf)
        node_index = np.full(tree.node_count, -1, dtype=np.int64)
        node_index[inner] = len(features) + np.arange(len(inner))
        leaf_index = np.full(tree.node_count, -1, dtype=np.int64)
        leaves = np.flatnonzero(is_leaf)
        leaf_index[leaves] = len(leaf_rows) + np.arange(len(leaves))
        for node in leaves:
            leaf_rows.append(_leaf_value(tree.value[node, 0], classification, single))

        def child(node: int, node_index=node_index, leaf_index=leaf_index) -> int:
            return int(node_index[node]) if node_index[node] >= 0 else -int(leaf_index[node]) - 1

        for node in inner:
            f = int(tree.feature[node])
            features.append(f)
            thresholds.append(float(tree.threshold[node]))
            nan_left.append(int(goes_left[node]))
            lefts.append(child(tree.children_left[node]))
            rights.append(child(tree.children_right[node]))
        roots.append(child(0))

    thresholds = list(
        _raw_thresholds(scaling, np.asarray(thresholds), np.asarray(features, dtype=np.intp))
    )
    # Deduplicate leaves (pure leaves repeat a lot) and renumber the leaf references.
    table, inverse = np.unique(np.asarray(leaf_rows), axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    if single and classification:
        # A single tree's leaf holds its class index directly.
        inverse = np.asarray([int(r[0]) for r in leaf_rows])

    def relabel(ref: int) -> int:
        return ref if ref >= 0 else -int(inverse[-ref - 1]) - 1

    lefts = [relabel(c) for c in lefts]
    rights = [relabel(c) for c in rights]
    roots = [relabel(c) for c in roots]

    child_type = _int_type(max([len(features), len(table) + 1, n_classes + 1]))
    feature_type = "uint8_t" if estimator.n_features_in_ <= 255 else "uint16_t"
    decls = [
        f"/* {len(trees)} tree(s), {len(features)} decision nodes, {len(table)} distinct leaves;",
        " * a child >= 0 is a node, a child < 0 is leaf -(child + 1). */",
        _array(feature_type, f"{name}_feature", features or [0], per_line=16),
        _array("float", f"{name}_threshold", thresholds or [0.0]),
        _array(child_type, f"{name}_left", lefts or [0], per_line=16),
        _array(child_type, f"{name}_right", rights or [0], per_line=16),
        _array(child_type, f"{name}_root", roots, per_line=16),
    ]
    nan = not policy.refuses_nan
    if nan:
        packed = np.packbits(np.asarray(nan_left or [0], dtype=np.uint8), bitorder="little")
        decls.append("/* Bit n: a NaN at node n goes left (scikit-learn's missing_go_to_left). */")
        decls.append(_array("uint8_t", f"{name}_nan_left", packed, per_line=16))
        decls.append(_nan_walk_function(name))
    guard, guard_decls = _overflow_guard(name, scaling, estimator.n_features_in_, classification)
    decls += guard_decls
    # With ``nan``, the input checks of :func:`_source` set ``missing`` (see _refusal_c).
    if single and classification:
        return "\n".join(decls), guard + _walk_c(name, "0", 1, nan) + "    return -n - 1;\n"
    if classification:
        decls.append(_array("float", f"{name}_leaf", table))
        body = (
            f"    float votes[{n_classes}];\n"
            f"    for (int32_t k = 0; k < {n_classes}; k++) {{\n        votes[k] = 0.0f;\n    }}\n"
            f"    for (int32_t t = 0; t < {len(trees)}; t++) {{\n"
            f"{_walk_c(name, 't', 2, nan)}"
            f"        const float *share = &{name}_leaf[(-n - 1) * {n_classes}];\n"
            f"        for (int32_t k = 0; k < {n_classes}; k++) {{\n"
            "            votes[k] += share[k];\n        }\n    }\n"
            f"    return {name}_argmax(votes, {n_classes});\n"
        )
        return "\n".join(decls), guard + body
    decls.append(_array("float", f"{name}_leaf", table[:, 0]))
    if single:
        walk = _walk_c(name, "0", 1, nan)
        return "\n".join(decls), guard + walk + f"    return {name}_leaf[-n - 1];\n"
    body = (
        "    float sum = 0.0f;\n"
        f"    for (int32_t t = 0; t < {len(trees)}; t++) {{\n"
        f"{_walk_c(name, 't', 2, nan)}"
        f"        sum += {name}_leaf[-n - 1];\n    }}\n"
        f"    return sum / {_f32(len(trees))};\n"
    )
    return "\n".join(decls), guard + body


def _boosting_c(
    name: str, estimator: Any, classification: bool, scaling: list[tuple[str, Any]]
) -> tuple[str, str]:
    """Gradient-boosted trees: the baseline plus one tree per class and iteration, then the link.

    scikit-learn compares the float64 input with ``num_threshold`` and sends NaN to the side
    learned in training; the C does the same with a per-node ``nan_left`` flag and float32
    thresholds from :func:`_raw_thresholds` rounded to nearest, so that the many inputs equal to
    a threshold (boosting's bin edges are training values) still go left. A binary classifier
    predicts class 1 when the raw score is above 0 (a probability above 0.5), a multiclass one
    the first largest raw score, a regressor the inverse link of the raw score.
    """
    per_iteration = int(estimator.n_trees_per_iteration_)
    trees = [tree for iteration in estimator._predictors for tree in iteration]
    link = type(estimator._loss.link).__name__
    if not classification and link not in ("IdentityLink", "LogLink"):
        raise RetrainerError(f"cannot export a {type(estimator).__name__} with a {link} to C")
    features: list[int] = []
    thresholds: list[float] = []
    nan_left: list[int] = []
    lefts: list[int] = []
    rights: list[int] = []
    roots: list[int] = []
    leaves: list[float] = []
    for tree in trees:
        nodes = tree.nodes
        if np.any(nodes["is_categorical"][~nodes["is_leaf"].astype(bool)]):
            raise RetrainerError(
                f"cannot export a {type(estimator).__name__} with categorical splits to C"
            )
        leaf = nodes["is_leaf"].astype(bool)
        inner = np.flatnonzero(~leaf)
        node_index = np.full(len(nodes), -1, dtype=np.int64)
        node_index[inner] = len(features) + np.arange(len(inner))
        leaf_index = np.full(len(nodes), -1, dtype=np.int64)
        leaf_nodes = np.flatnonzero(leaf)
        leaf_index[leaf_nodes] = len(leaves) + np.arange(len(leaf_nodes))
        leaves += [float(v) for v in nodes["value"][leaf_nodes]]

        def child(node: int, node_index=node_index, leaf_index=leaf_index) -> int:
            return int(node_index[node]) if node_index[node] >= 0 else -int(leaf_index[node]) - 1

        for node in inner:
            features.append(int(nodes["feature_idx"][node]))
            thresholds.append(float(nodes["num_threshold"][node]))
            nan_left.append(int(nodes["missing_go_to_left"][node]))
            lefts.append(child(int(nodes["left"][node])))
            rights.append(child(int(nodes["right"][node])))
        roots.append(child(0))
    thresholds = list(
        _raw_thresholds(
            scaling,
            np.asarray(thresholds),
            np.asarray(features, dtype=np.intp),
            float32_split=False,
        )
    )
    child_type = _int_type(max(len(features), len(leaves) + 1))
    feature_type = "uint8_t" if estimator.n_features_in_ <= 255 else "uint16_t"
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
    decls = "\n".join(
        [
            f"/* {len(trees)} trees ({per_iteration} per iteration), {len(features)} decision "
            f"nodes, {len(leaves)} leaves;",
            " * a child >= 0 is a node, a child < 0 is leaf -(child + 1). */",
            _array(feature_type, f"{name}_feature", features or [0], per_line=16),
            _array("float", f"{name}_threshold", thresholds or [0.0]),
            _array("uint8_t", f"{name}_nan_left", nan_left or [0], per_line=16),
            _array(child_type, f"{name}_left", lefts or [0], per_line=16),
            _array(child_type, f"{name}_right", rights or [0], per_line=16),
            _array(child_type, f"{name}_root", roots, per_line=16),
            _array("float", f"{name}_leaf", leaves),
            _array("float", f"{name}_baseline", baseline),
        ]
    )
    pad = "        "
    walk = (
        f"{pad}int32_t n = {name}_root[t];\n"
        f"{pad}while (n >= 0) {{\n"
        f"{pad}    float v = x[{name}_feature[n]];\n"
        f"{pad}    int left = isnan(v) ? {name}_nan_left[n] : v <= {name}_threshold[n];\n"
        f"{pad}    n = left ? {name}_left[n] : {name}_right[n];\n"
        f"{pad}}}\n"
    )
    body = (
        f"    float raw[{per_iteration}];\n"
        f"    for (int32_t k = 0; k < {per_iteration}; k++) {{\n"
        f"        raw[k] = {name}_baseline[k];\n    }}\n"
        f"    for (int32_t t = 0; t < {len(trees)}; t++) {{\n"
        f"{walk}"
        f"        raw[t % {per_iteration}] += {name}_leaf[-n - 1];\n    }}\n"
    )
    if classification and per_iteration == 1:
        body += "    return raw[0] > 0.0f ? 1 : 0;\n"
    elif classification:
        body += f"    return {name}_argmax(raw, {per_iteration});\n"
    elif link == "LogLink":
        body += "    return expf(raw[0]);\n"
    else:
        body += "    return raw[0];\n"
    return decls, body


def _walk_c(name: str, tree: str, depth: int, nan: bool) -> str:
    """C that walks tree ``tree`` from its root to a leaf, leaving ``n = -(leaf + 1)``; with
    ``nan``, a row holding a NaN (``missing``) takes :func:`_nan_walk_function`."""
    pad = "    " * depth
    if nan:
        return (
            f"{pad}int32_t n = {name}_root[{tree}];\n"
            f"{pad}if (missing) {{\n{pad}    n = {name}_walk_missing(n, x);\n{pad}}}\n"
            f"{pad}while (n >= 0) {{\n"
            f"{pad}    n = (x[{name}_feature[n]] <= {name}_threshold[n]) ? {name}_left[n] "
            f": {name}_right[n];\n"
            f"{pad}}}\n"
        )
    return (
        f"{pad}int32_t n = {name}_root[{tree}];\n"
        f"{pad}while (n >= 0) {{\n"
        f"{pad}    n = (x[{name}_feature[n]] <= {name}_threshold[n]) ? {name}_left[n] "
        f": {name}_right[n];\n"
        f"{pad}}}\n"
    )


def _nan_walk_function(name: str) -> str:
    """The walk of a row holding a NaN: at each node a NaN goes to its learned side (rows
    without NaN take the plain walk, which costs no extra instruction per node)."""
    return (
        f"static int32_t {name}_walk_missing(int32_t n, const float *x)\n{{\n"
        "    while (n >= 0) {\n"
        f"        const float v = x[{name}_feature[n]];\n"
        f"        const int32_t nan_left = ({name}_nan_left[n >> 3] >> (n & 7)) & 1;\n"
        f"        n = (v <= {name}_threshold[n] || (isnan(v) && nan_left)) ? {name}_left[n] "
        f": {name}_right[n];\n"
        "    }\n    return n;\n}\n"
    )


def _overflow_guard(
    name: str, scaling: list[tuple[str, Any]], n_features: int, classification: bool
) -> tuple[str, list[str]]:
    """C refusing raw values whose scaled float32 value is infinite (scikit-learn refuses them).

    Without scaling there is nothing to add: an infinite input is refused up front.
    """
    if not scaling:
        return "", []
    limit = float(np.finfo(np.float32).max)
    index = np.arange(n_features, dtype=np.intp)
    high = _raw_thresholds(scaling, np.full(n_features, limit), index)
    low = _raw_thresholds(scaling, np.full(n_features, np.nextafter(-limit, -np.inf)), index)
    if np.all(np.isinf(high)) and np.all(np.isinf(low)):
        return "", []
    decls = [
        "/* Raw values beyond these turn infinite in scikit-learn's float32 cast after scaling. */",
        _array("float", f"{name}_finite_low", low),
        _array("float", f"{name}_finite_high", high),
    ]
    guard = (
        f"    for (int32_t i = 0; i < {n_features}; i++) {{\n"
        f"        if (x[i] <= {name}_finite_low[i] || x[i] > {name}_finite_high[i]) {{\n"
        f"            return {_refused(classification)};\n        }}\n    }}\n"
    )
    return guard, decls


def _leaf_value(value: np.ndarray, classification: bool, single: bool) -> np.ndarray:
    if not classification:
        return np.asarray([np.float32(value[0])])
    if single:
        return np.asarray([int(np.argmax(value))])
    total = float(np.sum(value))
    share = value / (total if total != 0.0 else 1.0)
    return share.astype(np.float32)


# ---------------------------------------------------------------- naive Bayes, linear, MLP


def _gaussian_nb_c(name: str, nb: GaussianNB, real: _Arithmetic) -> tuple[str, str]:
    var = np.asarray(nb.var_, dtype=np.float64)
    n_classes, n_features = var.shape
    with np.errstate(divide="ignore"):
        log_prior = np.log(np.asarray(nb.class_prior_, dtype=np.float64))
    constant = log_prior - 0.5 * np.sum(np.log(2.0 * np.pi * var), axis=1)
    decls = "\n".join(
        [
            _array("float", f"{name}_theta", nb.theta_),
            _array("float", f"{name}_half_inv_var", 0.5 / var),
            _array("float", f"{name}_constant", constant),
        ]
    )
    r = real.ctype
    body = (
        f"    {r} jll[{n_classes}];\n"
        f"    for (int32_t c = 0; c < {n_classes}; c++) {{\n"
        f"        {r} s = {name}_constant[c];\n"
        f"        for (int32_t f = 0; f < {n_features}; f++) {{\n"
        f"            const {r} d = x[f] - {name}_theta[c * {n_features} + f];\n"
        f"            s -= d * d * {name}_half_inv_var[c * {n_features} + f];\n"
        f"        }}\n{real.check('s', '        ')}        jll[c] = s;\n    }}\n"
        f"    return {real.argmax}(jll, {n_classes});\n"
    )
    return decls, body


def _linear_c(
    name: str, model: Any, classification: bool, n_features: int, real: _Arithmetic
) -> tuple[str, str]:
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if coef.shape[1] != n_features or len(intercept) != coef.shape[0]:
        raise RetrainerError(
            f"cannot export a multi-output {type(model).__name__} to C (coef_ {coef.shape})"
        )
    n_out = coef.shape[0]
    decls = "\n".join(
        [_array("float", f"{name}_coef", coef), _array("float", f"{name}_intercept", intercept)]
    )
    r = real.ctype
    body = (
        f"    {r} score[{n_out}];\n"
        f"    for (int32_t k = 0; k < {n_out}; k++) {{\n"
        f"        {r} s = {name}_intercept[k];\n"
        f"        for (int32_t f = 0; f < {n_features}; f++) {{\n"
        f"            s += {name}_coef[k * {n_features} + f] * x[f];\n"
        f"        }}\n{real.check('s', '        ')}        score[k] = s;\n    }}\n"
    )
    return decls, body + _output_c(real.argmax, n_out, classification, "score")


def _output_c(argmax: str, n_out: int, classification: bool, scores: str) -> str:
    """Turn raw scores into the prediction as scikit-learn does (binary: score > 0)."""
    if not classification:
        return f"    return {scores}[0];\n"
    if n_out == 1:
        return f"    return {scores}[0] > 0.0f ? 1 : 0;\n"
    return f"    return {argmax}({scores}, {n_out});\n"


def _mlp_c(name: str, mlp: Any, classification: bool, real: _Arithmetic) -> tuple[str, str]:
    if mlp.n_outputs_ != 1 and not (classification and mlp.out_activation_ == "softmax"):
        raise RetrainerError(f"cannot export a multi-output {type(mlp).__name__} to C")
    if mlp.out_activation_ not in ("identity", "exp", "logistic", "softmax"):
        raise RetrainerError(f"cannot export MLP output activation {mlp.out_activation_!r} to C")
    if mlp.activation not in _MLP_ACTIVATIONS:
        raise RetrainerError(f"cannot export MLP activation {mlp.activation!r} to C")
    widths = [w.shape[0] for w in mlp.coefs_] + [mlp.coefs_[-1].shape[1]]
    r = real.ctype
    # Layers alternate between the two buffers (the first reads the input): nothing is copied.
    decls, lines = [], [f"    {r} a[{max(widths[1:])}];", f"    {r} b[{max(widths[1:])}];"]
    source = "x"
    for layer, (w, bias) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        n_in, n_out = w.shape
        decls.append(_array("float", f"{name}_w{layer}", w))
        decls.append(_array("float", f"{name}_b{layer}", bias))
        last = layer == len(mlp.coefs_) - 1
        # The output activation (logistic/softmax) is monotone: the class follows from raw scores.
        activated = "s" if last else _MLP_ACTIVATIONS[mlp.activation].format(v="s", m=real.math)
        target = "ab"[layer % 2]
        lines.append(
            f"    for (int32_t j = 0; j < {n_out}; j++) {{\n"
            f"        {r} s = {name}_b{layer}[j];\n"
            f"        for (int32_t i = 0; i < {n_in}; i++) {{\n"
            f"            s += {source}[i] * {name}_w{layer}[i * {n_out} + j];\n        }}\n"
            f"{real.check('s', '        ')}"
            f"        {target}[j] = {activated};\n    }}"
        )
        source = target
    if mlp.out_activation_ == "exp":
        lines.append(f"    {source}[0] = exp{real.math}({source}[0]);")
    body = "\n".join(lines) + "\n" + _output_c(real.argmax, widths[-1], classification, source)
    return "\n".join(decls), body


def _quantized_export(name: str, q: QuantizedMLP, feature_names: Sequence[str] | None) -> CExport:
    classification = q.classes_ is not None
    classes = tuple(_plain(c) for c in q.classes_) if classification else ()
    names = _feature_names(q, feature_names, q.n_features_in_)
    widths = [w.shape[0] for w in q.weights] + [q.weights[-1].shape[1]]
    width = max(widths)
    activation = _MLP_ACTIVATIONS[q.activation].replace("{m}", "f")
    decls = []
    lines = [
        f"    int8_t q[{width}];",
        f"    float a[{width}];",
        f"    for (int32_t i = 0; i < {widths[0]}; i++) {{\n        a[i] = x[i];\n    }}",
    ]
    layers = zip(q.weights, q.biases, q.inverse_input_scales, q.accumulator_scales, strict=True)
    for layer, (w, bias, inv_scale, acc_scale) in enumerate(layers):
        n_in, n_out = w.shape
        decls.append(_array("int8_t", f"{name}_w{layer}", w, per_line=16))
        decls.append(_array("int32_t", f"{name}_b{layer}", bias))
        last = layer == len(q.weights) - 1
        activated = "s" if last else activation.format(v="s")
        lines.append(
            f"    for (int32_t i = 0; i < {n_in}; i++) {{\n"
            f"        float v = rintf(a[i] * {_f32(inv_scale)});\n"
            "        if (v > 127.0f) v = 127.0f;\n"
            "        if (v < -127.0f) v = -127.0f;\n"
            "        q[i] = (int8_t)v;\n    }\n"
            f"    for (int32_t j = 0; j < {n_out}; j++) {{\n"
            f"        int32_t acc = {name}_b{layer}[j];\n"
            f"        for (int32_t i = 0; i < {n_in}; i++) {{\n"
            f"            acc += (int32_t)q[i] * (int32_t){name}_w{layer}[i * {n_out} + j];\n"
            "        }\n"
            f"        const float s = (float)acc * {_f32(acc_scale)};\n"
            f"        a[j] = {activated};\n    }}"
        )
    if q.output == "regression-exp":
        lines.append("    a[0] = expf(a[0]);")
    body = "\n".join(lines) + "\n" + _output_c(f"{name}_argmax", widths[-1], classification, "a")
    policy = input_policy(q, q.n_features_in_)
    header = _header(
        name, q.source_type, classification, q.n_features_in_, classes, names, policy, False
    )
    source = _source(
        name,
        q.source_type,
        q.n_features_in_,
        q.scaling,
        "\n".join(decls),
        body,
        classification,
        policy,
    )
    return CExport(
        name=name,
        model_type=q.source_type,
        task="classification" if classification else "regression",
        n_features=q.n_features_in_,
        classes=classes,
        source=source,
        header=header,
        feature_names=names,
    )
