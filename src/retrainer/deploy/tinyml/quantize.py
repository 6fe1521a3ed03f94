"""int8 quantisation of small MLPs: per-tensor symmetric scales, int32 accumulators.

Weights of each layer are int8 with one scale (``max |W| / 127``); the input of each layer is
quantised to int8 with one scale calibrated on real rows (a high percentile of ``|a|`` over 127,
so that one outlier does not crush the resolution of every other value; larger values
saturate at +-127); biases are int32 in
the accumulator's scale (``s_in * s_w``). Each layer accumulates ``int8 x int8`` products in int32,
turns the sum back into float with one multiplication and applies the activation in float.
:class:`QuantizedMLP` computes exactly this in numpy (float32 where the C uses float), so the
exported C can be checked against it, and the quantised model against the float one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor

from retrainer.deploy.tinyml.scaling import apply_ops, scaler_ops, split_pipeline
from retrainer.errors import DataError, RetrainerError

_ACTIVATIONS = {
    "identity": lambda v: v,
    "relu": lambda v: np.maximum(v, np.float32(0.0)),
    "tanh": np.tanh,
    "logistic": lambda v: np.float32(1.0) / (np.float32(1.0) + np.exp(-v)),
}


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """An MLP with int8 weights and activations; ``predict`` is the reference for its C export.

    Parameters
    ----------
    scaling
        Elementwise scaling operations in front of the network (from a ``Pipeline``).
    weights
        int8 weight matrices, shape ``(n_in, n_out)`` per layer.
    biases
        int32 biases in each layer's accumulator scale.
    input_scales
        float32 scale of each layer's int8 input.
    weight_scales
        float32 scale of each layer's weights.
    activation
        Hidden activation (``relu``, ``tanh``, ``logistic`` or ``identity``).
    output
        ``binary``, ``multiclass`` or ``regression`` (``regression-exp`` for a Poisson MLP).
    classes_
        Class labels (None for a regressor).
    n_features_in_
        Input width.
    feature_names_in_
        Input names when the float model had them.
    source_type
        What was quantised, e.g. ``Pipeline(StandardScaler, MLPClassifier)``.
    """

    scaling: list[tuple[str, Any]]
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    input_scales: tuple[np.float32, ...]
    weight_scales: tuple[np.float32, ...]
    activation: str
    output: str
    classes_: np.ndarray | None
    n_features_in_: int
    feature_names_in_: np.ndarray | None = field(default=None)
    source_type: str = "MLP"

    @property
    def accumulator_scales(self) -> tuple[np.float32, ...]:
        """float32 factor that turns each layer's int32 sum back into a float."""
        return tuple(
            np.float32(float(a) * float(w))
            for a, w in zip(self.input_scales, self.weight_scales, strict=True)
        )

    @property
    def inverse_input_scales(self) -> tuple[np.float32, ...]:
        """float32 ``1 / input_scale`` of each layer (the C multiplies by it)."""
        return tuple(np.float32(1.0 / float(s)) for s in self.input_scales)

    def decision(self, X: Any) -> np.ndarray:
        """Raw outputs of the last layer (float32), as the C computes them."""
        values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has shape {values.shape}; the quantised MLP takes {self.n_features_in_} "
                "features per row"
            )
        if not np.isfinite(values).all():
            raise DataError(
                "X holds NaN or infinity: the quantised MLP refuses them, "
                "as scikit-learn's MLP does"
            )
        a = apply_ops(
            self.scaling,
            values.astype(np.float32),
            np.arange(self.n_features_in_),
            dtype=np.float32,
        )
        last = len(self.weights) - 1
        layers = zip(
            self.weights,
            self.biases,
            self.inverse_input_scales,
            self.accumulator_scales,
            strict=True,
        )
        for layer, (w, b, inv_scale, acc_scale) in enumerate(layers):
            q = np.clip(np.rint(a * inv_scale), -127, 127).astype(np.int32)
            acc = q.astype(np.int64) @ w.astype(np.int64) + b.astype(np.int64)
            z = acc.astype(np.float32) * acc_scale
            a = z if layer == last else _ACTIVATIONS[self.activation](z).astype(np.float32)
        return a

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the quantised network.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.neural_network import MLPClassifier
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 25)
        >>> y = (X[:, 0] != X[:, 1]).astype(int)
        >>> mlp = MLPClassifier((8,), solver="lbfgs", random_state=1).fit(X, y)
        >>> q = quantize_mlp(mlp, X)
        >>> bool((q.predict(X) == mlp.predict(X)).all())
        True
        """
        z = self.decision(X)
        if self.output == "binary":
            return self.classes_[(z[:, 0] > 0).astype(int)]
        if self.output == "multiclass":
            return self.classes_[np.argmax(z, axis=1)]
        if self.output == "regression-exp":
            return np.exp(z[:, 0])
        return z[:, 0]


def quantize_mlp(model: Any, X_calibration: Any, *, percentile: float = 99.9) -> QuantizedMLP:
    """Quantise a fitted MLP (optionally behind scalers in a ``Pipeline``) to int8.

    Parameters
    ----------
    model
        A fitted ``MLPClassifier`` or single-output ``MLPRegressor``, or a ``Pipeline`` of
        scalers ending in one.
    X_calibration
        Real rows whose activations set the input scales (a few hundred are enough).
    percentile
        Percentile of ``|activation|`` (over all units of a layer input) mapped to 127;
        100 uses the maximum.
    """
    if not 0.0 < percentile <= 100.0:
        raise RetrainerError(f"percentile must be in (0, 100], got {percentile}")
    steps, mlp = split_pipeline(model)
    if not isinstance(mlp, MLPClassifier | MLPRegressor):
        raise RetrainerError(f"quantize_mlp needs an MLP, not {type(mlp).__name__}")
    if mlp.activation not in _ACTIVATIONS:
        raise RetrainerError(f"cannot quantise MLP activation {mlp.activation!r}")
    if mlp.out_activation_ == "logistic" and mlp.n_outputs_ == 1:
        output = "binary"
    elif mlp.out_activation_ == "softmax":
        output = "multiclass"
    elif mlp.out_activation_ in ("identity", "exp") and mlp.n_outputs_ == 1:
        output = "regression" if mlp.out_activation_ == "identity" else "regression-exp"
    else:
        raise RetrainerError(
            f"cannot quantise a {type(mlp).__name__} with {mlp.n_outputs_} outputs and output "
            f"activation {mlp.out_activation_!r}"
        )
    n_features = int(mlp.n_features_in_)
    ops = [op for step in steps for op in scaler_ops(step, n_features)]
    X = np.asarray(X_calibration, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != n_features:
        raise DataError(f"X_calibration has shape {X.shape}; need rows of {n_features} features")
    if not np.isfinite(X).all():
        raise DataError("X_calibration holds NaN or infinite values")
    a = apply_ops(ops, X, np.arange(n_features))
    weights, biases, input_scales, weight_scales = [], [], [], []
    last = len(mlp.coefs_) - 1
    for layer, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        s_in = np.float32(_scale(np.percentile(np.abs(a), percentile)))
        s_w = np.float32(_scale(np.abs(w).max()))
        weights.append(np.clip(np.rint(w / float(s_w)), -127, 127).astype(np.int8))
        biases.append(np.rint(b / (float(s_in) * float(s_w))).astype(np.int32))
        input_scales.append(s_in)
        weight_scales.append(s_w)
        z = a @ w + b
        a = z if layer == last else _ACTIVATIONS[mlp.activation](z)
    names = getattr(model, "feature_names_in_", None)
    kinds = ", ".join(type(s).__name__ for s in [*steps, mlp])
    return QuantizedMLP(
        scaling=ops,
        weights=tuple(weights),
        biases=tuple(biases),
        input_scales=tuple(input_scales),
        weight_scales=tuple(weight_scales),
        activation=mlp.activation,
        output=output,
        classes_=getattr(mlp, "classes_", None),
        n_features_in_=n_features,
        feature_names_in_=names,
        source_type=f"int8 {f'Pipeline({kinds})' if steps else type(mlp).__name__}",
    )


def _scale(max_abs: float) -> float:
    return float(max_abs) / 127.0 if max_abs > 0 else 1.0
