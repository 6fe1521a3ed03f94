"""Multivariate drift on raw rows: a domain classifier, MMD and PCA reconstruction error.

Univariate tests miss a change of the joint distribution whose margins stay put (two columns
that stop being correlated). These three checks read samples of rows of the reference and of the
batch (at most ``max_rows`` of each, drawn with a fixed seed, so a run is repeatable):

- ``domain_classifier``: a gradient-boosted classifier learns to tell batch rows from reference
  rows; its cross-validated ROC AUC is 0.5 when they cannot be told apart. A bootstrap of the
  out-of-fold scores gives a band; the check alarms when the band's lower end exceeds
  ``0.5 + margin``.
- ``mmd``: the maximum mean discrepancy with a Gaussian kernel (median-distance bandwidth), the
  unbiased MMD^2 with a permutation p-value; above ``max_rows`` rows per side, the linear-time
  statistic of Gretton et al. (2012, section 6) with its normal p-value.
- ``pca_reconstruction``: PCA fitted on half of the reference keeps ``variance`` of it; the mean
  reconstruction error of the batch over that of the other half of the reference rises when the
  batch leaves the reference's subspace. Alarm: Mann-Whitney p < ``alpha`` and a ratio of at
  least ``min_ratio``.

Rows are encoded alike for all three: numeric columns standardised by the reference (NaN -> 0
plus a missing flag when the column has nulls), categorical columns one-hot on the reference's
20 most frequent values.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 2))
    >>> ref = pd.DataFrame({"a": x[:, 0], "b": x[:, 0] + 0.1 * x[:, 1]})
    >>> cur = pd.DataFrame({"a": x[:, 1], "b": x[:, 0]})  # same margins, no correlation
    >>> mmd(ref, cur, permutations=100).alarm
    True

References:
    D. Lopez-Paz and M. Oquab (2017), "Revisiting classifier two-sample tests", ICLR.
    A. Gretton, K. Borgwardt, M. Rasch, B. Schoelkopf, A. Smola (2012), "A kernel two-sample
    test", JMLR 13.
    S. Rabanser, S. Guennemann, Z. Lipton (2019), "Failing loudly: an empirical study of methods
    for detecting dataset shift", NeurIPS.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from retrainer.checks.result import CheckResult
from retrainer.data.schema import kind_of

TOP = 20
MIN_ROWS = 20


class Encoder:
    """Numeric matrix of rows: numbers standardised by the reference, categories one-hot.

    Example:
        >>> enc = Encoder(pd.DataFrame({"x": [1.0, 3.0], "c": ["a", "b"]}))
        >>> enc.transform(pd.DataFrame({"x": [2.0], "c": ["b"]})).tolist()
        [[0.0, 0.0, 1.0]]
    """

    def __init__(self, reference: pd.DataFrame):
        self.numeric: dict[str, tuple[float, float, bool]] = {}
        self.categories: dict[str, list[str]] = {}
        for name in reference.columns:
            series = reference[name]
            kind = kind_of(series)
            if kind == "numeric":
                values = pd.to_numeric(series, errors="coerce").astype("float64")
                finite = values[np.isfinite(values)]
                mean = float(finite.mean()) if len(finite) else 0.0
                std = float(finite.std()) if len(finite) > 1 else 0.0
                self.numeric[str(name)] = (mean, std or 1.0, bool(len(finite) < len(values)))
            elif kind == "categorical":
                top = series.dropna().astype(str).value_counts().index[:TOP]
                self.categories[str(name)] = [str(v) for v in top]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded rows of ``frame`` (columns absent from it read as missing)."""
        parts: list[np.ndarray] = []
        n = len(frame)
        for name, (mean, std, flag) in self.numeric.items():
            raw = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            bad = ~np.isfinite(values)
            parts.append(np.where(bad, 0.0, (values - mean) / std)[:, None])
            if flag:
                parts.append(bad[:, None].astype("float64"))
        for name, top in self.categories.items():
            raw = frame[name] if name in frame.columns else pd.Series(None, index=frame.index)
            text = raw.astype(str).to_numpy()
            parts.append((text[:, None] == np.array(top)[None, :]).astype("float64"))
        return np.hstack(parts) if parts else np.zeros((n, 0))


def _sample(frame: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]


def _too_small(name: str, ref: pd.DataFrame, cur: pd.DataFrame) -> CheckResult | None:
    small = min(len(ref), len(cur))
    if small >= MIN_ROWS:
        return None
    return CheckResult(
        "drift",
        name,
        None,
        False,
        status="insufficient",
        message=f"{name}: {small} rows, at least {MIN_ROWS} needed on each side",
        detail={"minimum": MIN_ROWS, "rows": small},
    )


def _prepare(
    reference: pd.DataFrame, current: pd.DataFrame, max_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref, cur = _sample(reference, max_rows, rng), _sample(current, max_rows, rng)
    enc = Encoder(ref)
    return enc.transform(ref), enc.transform(cur)


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    folds: int = 5,
    max_rows: int = 5000,
    margin: float = 0.05,
    bootstrap: int = 200,
    seed: int = 0,
) -> CheckResult:
    """Cross-validated ROC AUC of a classifier telling batch rows from reference rows.

    Parameters:
        reference, current: raw rows (the same columns).
        folds: cross-validation folds.
        max_rows: rows sampled from each side at most.
        margin: the alarm needs the bootstrap band's lower end above ``0.5 + margin``.
        bootstrap: resamples of the out-of-fold scores for the 95 % band.
        seed: sampling, folds and model seed.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    skipped = _too_small("domain_classifier", reference, current)
    if skipped is not None:
        return skipped
    ref, cur = _prepare(reference, current, max_rows, seed)
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    model = HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # small fits: OpenMP threads on a shared machine only cost
        scores = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, scores))
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(bootstrap):
        pick = rng.integers(0, y.size, y.size)
        if 0 < y[pick].sum() < y.size:
            aucs.append(roc_auc_score(y[pick], scores[pick]))
    low, high = (float(v) for v in np.quantile(aucs, [0.025, 0.975]))
    alarm = low > 0.5 + margin
    return CheckResult(
        "drift",
        "domain_classifier",
        None,
        alarm,
        "warning" if alarm else "info",
        statistic=auc,
        threshold=0.5 + margin,
        message=f"a classifier tells batch rows from reference rows with ROC AUC {auc:.3f} "
        f"(95 % band {low:.3f}-{high:.3f}; drift when the band is above {0.5 + margin:.2f})",
        detail={"auc_low": low, "auc_high": high, "rows": [len(ref), len(cur)], "folds": folds},
    )


def _bandwidth(x: np.ndarray, rng: np.random.Generator) -> float:
    pick = x[rng.choice(len(x), min(len(x), 500), replace=False)]
    d2 = distance.cdist(pick, pick, "sqeuclidean")
    median = float(np.median(d2[np.triu_indices(len(pick), 1)]))
    return median if median > 0 else 1.0


def mmd_unbiased(kernel: np.ndarray, is_batch: np.ndarray) -> float | np.ndarray:
    """Unbiased MMD^2 from the joint kernel matrix of all rows and a mask of the batch rows (or
    one per column of a 2-d mask: all permutations in one matrix product).

    Example:
        >>> mmd_unbiased(np.eye(4), np.array([False, False, True, True]))
        0.0
    """
    y = is_batch.astype("float64")
    x = 1.0 - y
    n, m = x.sum(axis=0), y.sum(axis=0)
    diag = np.diag(kernel)
    ky = kernel @ y
    kx = (kernel.sum(axis=1) if y.ndim == 1 else kernel.sum(axis=1)[:, None]) - ky
    sxx = ((x * kx).sum(axis=0) - diag @ x) / (n * (n - 1))
    syy = ((y * ky).sum(axis=0) - diag @ y) / (m * (m - 1))
    out = sxx + syy - 2 * (x * ky).sum(axis=0) / (n * m)
    return float(out) if is_batch.ndim == 1 else out


def mmd(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    alpha: float = 0.05,
    permutations: int = 200,
    max_rows: int = 1000,
    seed: int = 0,
    design_effect: float = 1.0,
) -> CheckResult:
    """MMD two-sample test with a Gaussian kernel: permutation p-value, or the linear-time
    statistic when a side has more than ``max_rows`` rows.

    Rows of a real series are no independent draws: neighbouring weeks differ by that week's
    weather or market. With ``design_effect`` *d* (the reference's batches differ *d* times
    more than their rows' spread explains), each row counts as 1/*d* of an independent one, as
    in the univariate tests: MMD^2's spread under the null grows as 1/rows, so the statistic is
    read at 1/*d* of its size against the permutations' (the linear statistic's standard error
    times *d*).

    Parameters:
        reference, current: raw rows.
        alpha: significance level.
        permutations: permutations for the p-value (quadratic statistic).
        max_rows: above this many rows on a side, the linear-time test on all rows.
        seed: bandwidth sample and permutation seed.
        design_effect: at least 1 (see above; ``detail["design_effect"]`` when above 1).

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ref = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
        >>> week = pd.DataFrame({"a": rng.normal(0.4, 1, 200), "b": rng.normal(size=200)})
        >>> mmd(ref, week).alarm, mmd(ref, week, design_effect=8.0).alarm
        (True, False)
    """
    d = max(1.0, float(design_effect))
    skipped = _too_small("mmd", reference, current)
    if skipped is not None:
        return skipped
    rng = np.random.default_rng(seed)
    if max(len(reference), len(current)) > max_rows:
        ref, cur = _prepare(reference, current, max(len(reference), len(current)), seed)
        width = _bandwidth(np.vstack([ref[:max_rows], cur[:max_rows]]), rng)
        stat, p, variant = *_linear_mmd(ref, cur, width, rng, d), "linear"
    else:
        ref, cur = _prepare(reference, current, max_rows, seed)
        x = np.vstack([ref, cur])
        width = _bandwidth(x, rng)
        d2 = distance.cdist(x, x, "sqeuclidean")
        kernel = np.exp(-d2 / width)
        mask = np.arange(len(x)) >= len(ref)
        stat = mmd_unbiased(kernel, mask)
        shuffled = np.stack([rng.permutation(mask) for _ in range(permutations)], axis=1)
        hits = int((mmd_unbiased(kernel, shuffled) >= stat / d).sum())
        p, variant = (hits + 1) / (permutations + 1), "permutation"
    alarm = p < alpha
    detail = {"variant": variant, "bandwidth": width, "rows": [len(ref), len(cur)]}
    counted = ""
    if d > 1:
        detail["design_effect"] = d
        counted = f"; rows counted as 1/{d:.2g} of an independent row"
    return CheckResult(
        "drift",
        "mmd",
        None,
        alarm,
        "warning" if alarm else "info",
        statistic=stat,
        p_value=p,
        threshold=alpha,
        message=f"MMD^2 {stat:.4g} ({variant} p={p:.3g}, alpha {alpha:g}{counted})",
        detail=detail,
    )


def _linear_mmd(
    ref: np.ndarray, cur: np.ndarray, width: float, rng: np.random.Generator, d: float = 1.0
) -> tuple[float, float]:
    """Gretton et al. (2012) linear-time MMD^2 over disjoint pairs, one-sided normal p-value."""
    half = min(len(ref), len(cur)) // 2
    x = ref[rng.permutation(len(ref))[: 2 * half]]
    y = cur[rng.permutation(len(cur))[: 2 * half]]
    x1, x2, y1, y2 = x[:half], x[half:], y[:half], y[half:]

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a - b) ** 2).sum(-1) / width)

    h = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    stat = float(h.mean())
    se = float(h.std(ddof=1) / math.sqrt(half)) if half > 1 else 0.0
    p = float(stats.norm.sf(stat / (se * d))) if se > 0 else (0.0 if stat > 0 else 1.0)
    return stat, p


def pca_reconstruction(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    variance: float = 0.95,
    alpha: float = 0.05,
    min_ratio: float = 1.1,
    max_rows: int = 20000,
    seed: int = 0,
) -> CheckResult:
    """Ratio of the batch's mean PCA reconstruction error to the reference's (held-out half).

    Parameters:
        reference, current: raw rows.
        variance: share of the reference's variance the kept components explain.
        alpha: level of the one-sided Mann-Whitney test of the errors.
        min_ratio: the alarm also needs the error ratio to reach this.
        max_rows: rows sampled from each side at most.
        seed: sampling seed.
    """
    from sklearn.decomposition import PCA

    skipped = _too_small("pca_reconstruction", reference, current)
    if skipped is not None:
        return skipped
    ref, cur = _prepare(reference, current, max_rows, seed)
    order = np.random.default_rng(seed).permutation(len(ref))
    fit, held = ref[order[: len(ref) // 2]], ref[order[len(ref) // 2 :]]
    pca = PCA(n_components=variance, svd_solver="full").fit(fit)

    def error(x: np.ndarray) -> np.ndarray:
        return ((x - pca.inverse_transform(pca.transform(x))) ** 2).sum(axis=1)

    base, now = error(held), error(cur)
    ratio = float(now.mean() / base.mean()) if base.mean() > 0 else float(now.mean() > 0) + 1.0
    p = float(stats.mannwhitneyu(now, base, alternative="greater").pvalue)
    alarm = p < alpha and ratio >= min_ratio
    return CheckResult(
        "drift",
        "pca_reconstruction",
        None,
        alarm,
        "warning" if alarm else "info",
        statistic=ratio,
        p_value=p,
        threshold=min_ratio,
        message=f"PCA reconstruction error of the batch is {ratio:.3g} x the reference's "
        f"({pca.n_components_} components keep {100 * variance:.0f}% of the variance; "
        f"Mann-Whitney p={p:.3g})",
        detail={"components": int(pca.n_components_), "rows": [len(ref), len(cur)]},
    )


def check_multivariate(
    reference: pd.DataFrame, current: pd.DataFrame, *, alpha: float = 0.05, seed: int = 0
) -> list[CheckResult]:
    """The three multivariate checks with their defaults.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ref = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
        >>> [r.name for r in check_multivariate(ref.head(150), ref.tail(150))]
        ['domain_classifier', 'mmd', 'pca_reconstruction']
    """
    return [
        domain_classifier(reference, current, seed=seed),
        mmd(reference, current, alpha=alpha, seed=seed),
        pca_reconstruction(reference, current, alpha=alpha, seed=seed),
    ]
