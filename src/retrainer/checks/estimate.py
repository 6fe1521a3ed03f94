"""Label-free performance estimation: what the champion scores on a batch before its labels come.

Classifiers: confidence-based performance estimation (CBPE). The champion's positive-class
scores are calibrated on labelled reference rows it did not train on (isotonic regression or
Platt scaling); on a new batch, the calibrated probabilities give the expected confusion matrix
and from it the expected accuracy, balanced accuracy, F1 or ROC AUC. The band is the sampling
error of the realised metric: labels are drawn from the calibrated probabilities (Monte Carlo),
``sd`` is the metric's standard deviation over the draws, widened by ``sqrt(1 + n / n_ref)`` for
the finite reference the calibration was fitted on, and the band is ``value +- z * sd``.

Multi-class classifiers: the same per class (one-vs-rest, as NannyML): each class's score is
calibrated against "is this class", the calibrated probabilities of a row are normalised to sum
to one, and the expected confusion matrix gives accuracy, balanced accuracy or macro F1; the
expected curves of each class give the one-vs-rest macro ROC AUC.

Regressors: direct loss estimation (DLE). A model of the champion's loss (absolute error for MAE,
squared error for RMSE and R²) on its inputs and prediction is fitted on reference rows; its mean
prediction on a new batch estimates the metric, the band is ``z`` standard errors of the mean
loss on the reference (and of the reference's own mean). R² is estimated as
``1 - mse / (var(prediction) + mse)``: the target's variance is the predictions' variance plus
the error's when errors do not correlate with predictions (true of a least-squares fit).

Both assume that the relation between inputs and target did not change (covariate shift only):
under concept drift the estimate stays where the calibration put it, which is why realised
performance and concept checks still run once labels arrive.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(4000)
    >>> y = rng.random(4000) < p                  # scores that are calibrated by construction
    >>> cbpe = CBPE("accuracy").fit(y[:2000], p[:2000])
    >>> est = cbpe.estimate(p[2000:], p[2000:] > 0.5)
    >>> realised = np.mean((p[2000:] > 0.5) == y[2000:])
    >>> bool(est.lower <= realised <= est.upper), round(est.value, 2)
    (True, 0.75)

References:
    NannyML, "Confidence-based Performance Estimation" and "Direct Loss Estimation" (docs, 2023).
    Platt (1999). Probabilistic outputs for support vector machines.
    Zadrozny, Elkan (2002). Transforming classifier scores into accurate multiclass probability
    estimates. KDD.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from retrainer.errors import DataError
from retrainer.metrics import from_counts
from retrainer.training import predict

if TYPE_CHECKING:
    from retrainer.artifacts import ArtifactStore

CBPE_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
DLE_METRICS = ("mae", "rmse", "r2")


@dataclass(frozen=True)
class Estimate:
    """An estimated metric on ``n`` unlabelled rows, with its sampling-error band."""

    metric: str
    value: float
    lower: float
    upper: float
    sd: float
    n: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)

    def covers(self, realised: float) -> bool:
        """Whether a realised value lies in the band."""
        return self.lower <= realised <= self.upper


def _as_binary(values: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array.astype(float)
    array = array.astype(float)
    if not np.isin(array, (0.0, 1.0)).all():
        raise DataError(f"{what} must be 0/1 (1 = the positive class); got {np.unique(array)[:5]}")
    return array


def _expected_metric(metric: str, p: np.ndarray, pred: np.ndarray, score: np.ndarray) -> float:
    """The metric on the expected confusion matrix (AUC: on expected TPR and FPR curves)."""
    if metric == "roc_auc":
        order = np.argsort(-score, kind="stable")
        s, q = score[order], p[order]
        ends = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # last row of each tied score
        tp, fp = np.cumsum(q)[ends], np.cumsum(1.0 - q)[ends]
        if tp[-1] <= 0 or fp[-1] <= 0:
            return float("nan")
        tpr, fpr = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
        return float(np.trapezoid(tpr, fpr))
    tp, fp = float(np.sum(pred * p)), float(np.sum(pred * (1 - p)))
    fn, tn = float(np.sum((1 - pred) * p)), float(np.sum((1 - pred) * (1 - p)))
    return float(_from_counts(metric, tp, fp, fn, tn))


def _from_counts(metric: str, tp, fp, fn, tn):
    """A metric from confusion-matrix counts (scalars or arrays of draws)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if metric == "balanced_accuracy":
            return 0.5 * (tp / (tp + fn) + tn / (tn + fp))
        if metric == "f1":
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    raise ValueError(f"CBPE estimates {', '.join(CBPE_METRICS)}; not {metric!r}")


def _drawn_metric(
    metric: str, p: np.ndarray, pred: np.ndarray, score: np.ndarray, draws: int, seed: int
) -> np.ndarray:
    """The realised metric on ``draws`` label sets drawn from the calibrated probabilities."""
    rng = np.random.default_rng(seed)
    ranks = rankdata(score) if metric == "roc_auc" else None
    out = []
    step = max(1, min(draws, 2_000_000 // max(p.size, 1)))
    for start in range(0, draws, step):
        y = (rng.random((min(step, draws - start), p.size)) < p).astype(float)
        if ranks is not None:
            n1 = y.sum(axis=1)
            n0 = p.size - n1
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append((y @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0))
            continue
        tp, fn = y @ pred, y @ (1 - pred)
        fp, tn = pred.sum() - tp, (1 - pred).sum() - fn
        out.append(_from_counts(metric, tp, fp, fn, tn))
    values = np.concatenate(out)
    return values[np.isfinite(values)]


class CBPE:
    """Confidence-based performance estimation of a binary classifier.

    Parameters:
        metric: ``accuracy``, ``balanced_accuracy``, ``f1`` or ``roc_auc``.
        calibration: ``isotonic`` or ``sigmoid`` (Platt scaling) of the positive-class score.
        draws: Monte Carlo label draws for the sampling-error band.
        z: half-width of the band in standard deviations (3, as NannyML).
        seed: seed of the draws.

    Example:
        >>> import numpy as np
        >>> score = np.linspace(0, 1, 1001)
        >>> cbpe = CBPE("f1", calibration="sigmoid").fit(np.random.default_rng(1).random(1001)
        ...                                             < score, score)
        >>> cbpe.calibrated([0.1, 0.9]).round(1).tolist()
        [0.1, 0.8]
    """

    _fitted = "calibrator_"

    def __init__(
        self,
        metric: str = "accuracy",
        calibration: str = "isotonic",
        draws: int = 400,
        z: float = 3.0,
        seed: int = 0,
    ) -> None:
        if metric not in CBPE_METRICS:
            raise ValueError(f"CBPE estimates {', '.join(CBPE_METRICS)}; not {metric!r}")
        if calibration not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration must be 'isotonic' or 'sigmoid'; got {calibration!r}")
        self.metric = metric
        self.calibration = calibration
        self.draws = draws
        self.z = z
        self.seed = seed

    def fit(self, y_true: ArrayLike, y_score: ArrayLike) -> CBPE:
        """Calibrate on reference rows: true 0/1 labels and the positive-class scores."""
        y = _as_binary(y_true, "reference labels")
        score = np.asarray(y_score, dtype=float)
        if y.size != score.size or y.size == 0:
            raise DataError(f"CBPE.fit: {y.size} labels and {score.size} scores (need equal, > 0)")
        if self.calibration == "isotonic":
            self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator_.fit(score, y)
        else:
            if np.unique(y).size < 2:
                raise DataError("CBPE.fit: Platt scaling needs both classes in the reference")
            self.calibrator_ = LogisticRegression().fit(score.reshape(-1, 1), y)
        self.n_reference_ = int(y.size)
        return self

    def calibrated(self, y_score: ArrayLike) -> np.ndarray:
        """Calibrated probabilities of the positive class."""
        score = np.asarray(y_score, dtype=float).reshape(-1)
        if self.calibration == "isotonic":
            return np.clip(self.calibrator_.predict(score), 0.0, 1.0)
        return self.calibrator_.predict_proba(score.reshape(-1, 1))[:, 1]

    def estimate(self, y_score: ArrayLike, y_pred: ArrayLike) -> Estimate:
        """The estimated metric on unlabelled rows: scores and 0/1 predictions of the model."""
        score = np.asarray(y_score, dtype=float).reshape(-1)
        pred = _as_binary(y_pred, "predictions").reshape(-1)
        if score.size == 0 or score.size != pred.size:
            raise DataError(f"CBPE.estimate: {score.size} scores and {pred.size} predictions")
        p = self.calibrated(score)
        value = _expected_metric(self.metric, p, pred, score)
        drawn = _drawn_metric(self.metric, p, pred, score, self.draws, self.seed)
        sd = float(np.std(drawn)) if drawn.size > 1 else float("nan")
        sd *= np.sqrt(1.0 + score.size / self.n_reference_)
        lower, upper = max(0.0, value - self.z * sd), min(1.0, value + self.z * sd)
        return Estimate(self.metric, value, lower, upper, sd, int(score.size), "cbpe")

    def estimate_model(self, model: Any, X: pd.DataFrame) -> Estimate:
        """The estimated metric of a fitted binary classifier on the feature rows ``X``."""
        pred, proba = predict(model, X)
        if not isinstance(proba, pd.Series):
            raise DataError("CBPE needs a binary classifier with predict_proba")
        return self.estimate(proba.to_numpy(), (pred.to_numpy() == model.classes_[1]))

    def spec(self) -> dict:
        return {
            "method": "cbpe",
            "metric": self.metric,
            "calibration": self.calibration,
            "draws": self.draws,
            "z": self.z,
            "seed": self.seed,
            "n_reference": self.n_reference_,
        }


class MulticlassCBPE:
    """Confidence-based performance estimation of a multi-class classifier (one-vs-rest).

    Parameters:
        metric: ``accuracy``, ``balanced_accuracy``, ``f1`` (macro) or ``roc_auc``
            (one-vs-rest macro).
        draws: Monte Carlo label draws for the sampling-error band.
        z: half-width of the band in standard deviations.
        seed: seed of the draws.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> p = rng.dirichlet([1, 1, 1], 6000)          # calibrated by construction
        >>> y = (rng.random(6000)[:, None] > p.cumsum(axis=1)).sum(axis=1)
        >>> cbpe = MulticlassCBPE("accuracy").fit(y[:3000], p[:3000], classes=[0, 1, 2])
        >>> est = cbpe.estimate(p[3000:], p[3000:].argmax(axis=1))
        >>> realised = np.mean(p[3000:].argmax(axis=1) == y[3000:])
        >>> bool(est.covers(realised)), round(est.value, 2)
        (True, 0.62)
    """

    _fitted = "calibrators_"

    def __init__(
        self, metric: str = "accuracy", draws: int = 400, z: float = 3.0, seed: int = 0
    ) -> None:
        if metric not in MULTICLASS_METRICS:
            raise ValueError(
                f"multi-class CBPE estimates {', '.join(MULTICLASS_METRICS)}; not {metric!r}"
            )
        self.metric = metric
        self.draws = draws
        self.z = z
        self.seed = seed

    def fit(self, y_true: ArrayLike, y_score: ArrayLike, classes: ArrayLike) -> MulticlassCBPE:
        """Calibrate on reference rows: true labels, the scores of each class (one column per
        entry of ``classes``, in that order)."""
        labels, classes = np.asarray(y_true), np.asarray(classes)
        score = np.asarray(y_score, dtype=float)
        if score.ndim != 2 or score.shape != (labels.size, classes.size) or labels.size == 0:
            raise DataError(
                f"MulticlassCBPE.fit: {labels.size} labels and scores of shape {score.shape} "
                f"for {classes.size} classes (need one row per label, one column per class)"
            )
        unknown = ~np.isin(labels, classes)
        if unknown.any():
            raise DataError(
                f"MulticlassCBPE.fit: label {labels[unknown].tolist()[0]!r} is not one of the "
                f"classes {classes.tolist()} (the model never saw it)"
            )
        absent = [c for c in classes.tolist() if c not in set(labels.tolist())]
        if absent:
            raise DataError(
                f"class {absent[0]!r} not among the {labels.size} reference rows (the model "
                f"knows classes {classes.tolist()}): its scores cannot be calibrated, and "
                "without it the estimate would be biased"
            )
        self.calibrators_ = [
            IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                score[:, c], (labels == label).astype(float)
            )
            for c, label in enumerate(classes)
        ]
        self.n_reference_ = int(labels.size)
        return self

    def calibrated(self, y_score: ArrayLike) -> np.ndarray:
        """Calibrated class probabilities (rows sum to one; all-zero rows become uniform)."""
        score = np.asarray(y_score, dtype=float)
        p = np.column_stack([c.predict(score[:, i]) for i, c in enumerate(self.calibrators_)])
        p = np.clip(p, 0.0, 1.0)
        total = p.sum(axis=1, keepdims=True)
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])

    def estimate(self, y_score: ArrayLike, y_pred: ArrayLike) -> Estimate:
        """The estimated metric on unlabelled rows: class scores and the predicted class index
        (a column of ``y_score``) of each row."""
        score = np.asarray(y_score, dtype=float)
        pred = np.asarray(y_pred).reshape(-1)
        k = len(self.calibrators_)
        if score.ndim != 2 or score.shape != (pred.size, k) or pred.size == 0:
            raise DataError(
                f"MulticlassCBPE.estimate: scores of shape {score.shape} and {pred.size} "
                f"predictions (need {k} columns, one row per prediction)"
            )
        if not np.isin(pred, np.arange(k)).all():
            raise DataError(
                f"MulticlassCBPE.estimate: predictions must be class indices 0..{k - 1}"
            )
        p = self.calibrated(score)
        chosen = np.eye(k)[pred]
        if self.metric == "roc_auc":
            each = [_expected_metric("roc_auc", p[:, c], pred, score[:, c]) for c in range(k)]
            value = float(np.mean(each))
        else:
            value = float(
                from_counts(
                    self.metric, (chosen * p).sum(axis=0), p.sum(axis=0), chosen.sum(axis=0)
                )
            )
        drawn = self._drawn(p, pred, score)
        sd = float(np.std(drawn)) if drawn.size > 1 else float("nan")
        sd *= np.sqrt(1.0 + pred.size / self.n_reference_)
        lower, upper = max(0.0, value - self.z * sd), min(1.0, value + self.z * sd)
        return Estimate(self.metric, value, lower, upper, sd, int(pred.size), "cbpe_multiclass")

    def _drawn(self, p: np.ndarray, pred: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The realised metric on label sets drawn from the calibrated probabilities."""
        rng = np.random.default_rng(self.seed)
        cumulative = p.cumsum(axis=1)
        k = p.shape[1]
        predicted = np.bincount(pred, minlength=k).astype(float)
        auc = self.metric == "roc_auc"
        ranks = np.column_stack([rankdata(score[:, c]) for c in range(k)]) if auc else None
        out = []
        step = max(1, min(self.draws, 2_000_000 // max(pred.size, 1)))
        for start in range(0, self.draws, step):
            u = rng.random((min(step, self.draws - start), pred.size, 1))
            y = np.minimum((u > cumulative).sum(axis=2), k - 1)
            classes = np.arange(k)[:, None, None]
            if auc:  # Mann-Whitney U of each class against the rest
                hit = (y == classes).astype(float)
                n1 = hit.sum(axis=2)
                with np.errstate(divide="ignore", invalid="ignore"):
                    u = np.einsum("cdn,nc->cd", hit, ranks) - n1 * (n1 + 1) / 2
                    out.append((u / (n1 * (pred.size - n1))).mean(axis=0))
                continue
            actual = (y == classes).sum(axis=2).T.astype(float)
            tp = ((y == classes) & (pred == classes)).sum(axis=2).T.astype(float)
            out.append(from_counts(self.metric, tp, actual, predicted))
        values = np.concatenate(out)
        return values[np.isfinite(values)]

    def estimate_model(self, model: Any, X: pd.DataFrame) -> Estimate:
        """The estimated metric of a fitted multi-class classifier on the feature rows ``X``."""
        score = model.predict_proba(X)
        pred = np.searchsorted(model.classes_, model.predict(X))
        return self.estimate(score, pred)

    def spec(self) -> dict:
        return {
            "method": "cbpe_multiclass",
            "metric": self.metric,
            "draws": self.draws,
            "z": self.z,
            "seed": self.seed,
            "n_reference": self.n_reference_,
        }


class DLE:
    """Direct loss estimation of a regressor: a model of its loss on its inputs.

    Parameters:
        metric: ``mae`` (absolute loss), ``rmse`` or ``r2`` (squared loss).
        estimator: the loss model (default HistGradientBoostingRegressor); it reads the numeric
            features and the champion's prediction.
        z: half-width of the band in standard errors.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from sklearn.linear_model import LinearRegression
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"x": rng.uniform(0, 1, 4000)})
        >>> y = 2 * X["x"] + rng.normal(0, 0.1 + X["x"], 4000)   # noisier for large x
        >>> model = LinearRegression().fit(X, y)
        >>> dle = DLE("mae").fit_model(model, X[:2000], y[:2000])
        >>> shifted = X[X["x"] > 0.5]                           # covariate shift to noisy rows
        >>> est = dle.estimate_model(model, shifted)
        >>> realised = float(np.mean(np.abs(y[shifted.index] - model.predict(shifted))))
        >>> bool(est.value > 0.55), bool(abs(est.value - realised) < 0.05)
        (True, True)
    """

    _fitted = "loss_model_"

    def __init__(self, metric: str = "mae", estimator: Any = None, z: float = 3.0) -> None:
        if metric not in DLE_METRICS:
            raise ValueError(f"DLE estimates {', '.join(DLE_METRICS)}; not {metric!r}")
        self.metric = metric
        self.estimator = estimator
        self.z = z

    def _inputs(self, X: pd.DataFrame, y_pred: ArrayLike) -> pd.DataFrame:
        numeric = X.select_dtypes(include=["number", "bool"]).astype(float)
        return numeric.assign(__prediction__=np.asarray(y_pred, dtype=float))

    def _loss(self, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        error = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
        return np.abs(error) if self.metric == "mae" else error**2

    def fit(self, X: pd.DataFrame, y_true: ArrayLike, y_pred: ArrayLike) -> DLE:
        """Fit the loss model on reference rows (features, true values, the model's predictions)."""
        loss = self._loss(y_true, y_pred)
        if loss.size == 0 or not np.isfinite(loss).all():
            raise DataError("DLE.fit: the reference needs finite true values and predictions")
        base = self.estimator or HistGradientBoostingRegressor(max_iter=100, random_state=0)
        self.loss_model_ = clone(base).fit(self._inputs(X, y_pred), loss)
        self.loss_sd_ = float(np.std(loss))
        self.n_reference_ = int(loss.size)
        return self

    def fit_model(self, model: Any, X: pd.DataFrame, y_true: ArrayLike) -> DLE:
        """Fit on reference rows the fitted ``model`` did not train on."""
        return self.fit(X, y_true, model.predict(X))

    def estimate(self, X: pd.DataFrame, y_pred: ArrayLike) -> Estimate:
        """The estimated metric on unlabelled rows and the model's predictions for them."""
        n = len(X)
        if n == 0:
            raise DataError("DLE.estimate: no rows")
        loss = np.clip(self.loss_model_.predict(self._inputs(X, y_pred)), 0.0, None)
        mean = float(loss.mean())
        se = self.loss_sd_ * np.sqrt(1.0 / n + 1.0 / self.n_reference_)
        if self.metric == "r2":
            spread = float(np.var(np.asarray(y_pred, dtype=float)))
            total = spread + mean
            value = 1.0 - mean / total if total > 0 else float("nan")
            sd = se * spread / total**2 if total > 0 else float("nan")
            return Estimate(
                self.metric, value, value - self.z * sd, min(1.0, value + self.z * sd), sd, n, "dle"
            )
        if self.metric == "rmse":
            value = float(np.sqrt(mean))
            sd = se / (2 * value) if value > 0 else float("nan")
        else:
            value, sd = mean, se
        return Estimate(
            self.metric, value, max(0.0, value - self.z * sd), value + self.z * sd, sd, n, "dle"
        )

    def estimate_model(self, model: Any, X: pd.DataFrame) -> Estimate:
        """The estimated metric of a fitted regressor on the feature rows ``X``."""
        return self.estimate(X, model.predict(X))

    def spec(self) -> dict:
        return {
            "method": "dle",
            "metric": self.metric,
            "z": self.z,
            "loss_sd": self.loss_sd_,
            "n_reference": self.n_reference_,
        }


PerformanceEstimator = CBPE | MulticlassCBPE | DLE


def fit_estimator(
    task: str, metric: str, model: Any, X: pd.DataFrame, y: ArrayLike
) -> PerformanceEstimator | None:
    """The estimator for a fitted model, fitted on reference rows it did not train on; None when
    the metric or model cannot be estimated (no ``predict_proba``).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from retrainer.datasets import load_elec2
        >>> elec = load_elec2()
        >>> features = ["period", "nswprice", "nswdemand"]
        >>> model = LogisticRegression().fit(elec[features][:2000], elec["target"][:2000])
        >>> est = fit_estimator("classification", "accuracy", model, elec[features][2000:4000],
        ...                     elec["target"][2000:4000])
        >>> type(est).__name__, est.estimate_model(model, elec[features][4000:5000]).n
        ('CBPE', 1000)
    """
    if task == "regression":
        return DLE(metric).fit_model(model, X, y) if metric in DLE_METRICS else None
    classes = getattr(model, "classes_", [])
    if not hasattr(model, "predict_proba") or len(classes) < 2:
        return None
    if len(classes) > 2:
        if metric not in MULTICLASS_METRICS:
            return None
        return MulticlassCBPE(metric).fit(np.asarray(y), model.predict_proba(X), classes)
    if metric not in CBPE_METRICS:
        return None
    scores = model.predict_proba(X)[:, 1]
    return CBPE(metric).fit(np.asarray(y) == classes[1], scores)


def save_estimator(estimator: PerformanceEstimator, artifacts: ArtifactStore) -> dict:
    """Store the fitted part (a scikit-learn object, skops format); return its spec with the
    artifact hash, to keep with the model version."""
    sha = artifacts.put_model(getattr(estimator, estimator._fitted))
    return estimator.spec() | {"artifact": sha}


def load_estimator(spec: dict, artifacts: ArtifactStore) -> PerformanceEstimator:
    """Rebuild an estimator from :func:`save_estimator`'s spec (the artifact is verified)."""
    fitted = artifacts.get_model(spec["artifact"])
    if spec["method"] == "cbpe":
        estimator = CBPE(
            spec["metric"], spec["calibration"], spec["draws"], spec["z"], spec["seed"]
        )
        estimator.calibrator_, estimator.n_reference_ = fitted, int(spec["n_reference"])
        return estimator
    if spec["method"] == "cbpe_multiclass":
        several = MulticlassCBPE(spec["metric"], spec["draws"], spec["z"], spec["seed"])
        several.calibrators_, several.n_reference_ = list(fitted), int(spec["n_reference"])
        return several
    estimator = DLE(spec["metric"], z=spec["z"])
    estimator.loss_model_, estimator.loss_sd_ = fitted, float(spec["loss_sd"])
    estimator.n_reference_ = int(spec["n_reference"])
    return estimator
