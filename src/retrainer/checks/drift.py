"""Univariate data-drift checks computed from profiles, and the dataset-level verdict.

Numeric columns are compared on the reference's histogram bins: the two-sample
Kolmogorov-Smirnov statistic D is the largest difference of the two empirical CDFs at the bin
edges, a lower bound of the exact D on the raw values (it can miss at most the largest share of
one bin of either sample); its p-value comes from the two-sample Kolmogorov distribution with
``n*m/(n+m)`` observations (SciPy's ``kstwo``, as ``ks_2samp(method="asymp")``; its limit
``kstwobign`` above 10,000), so it is conservative. PSI and the Jensen-Shannon distance measure
the size of the change on the same bins. Categorical columns get a chi-square test of the
2 x k table of category counts (categories unseen in the reference pooled in one column), plus
PSI and Jensen-Shannon on the category shares. Datetime columns are not tested (time moves by
design).

The rule for a column's alarm: the test is significant (``p < alpha``) **and** the effect is
not negligible (``PSI >= min_psi``, default 0.02, about a 0.14 standard-deviation shift of a
normal). With a million rows every tiny shift is significant; the effect floor keeps those from
drifting. The ``psi`` result alarms when ``p < alpha`` and ``PSI > psi_threshold`` (a large
shift); the ``jensen_shannon`` result is informational. A column with fewer than ``min_rows``
values in either profile gets status ``insufficient`` and no alarm.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> from retrainer.profile import BatchProfile
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000)})
    >>> schema = Schema.infer(ref)
    >>> reference = BatchProfile.from_frame(ref, schema)
    >>> shifted = BatchProfile.from_frame(ref + 1.0, schema, edges=reference.edges())
    >>> [(r.name, r.alarm) for r in check_drift(reference, shifted)]
    [('ks', True), ('psi', True), ('jensen_shannon', False)]

References:
    A. N. Kolmogorov (1933); N. Smirnov (1948), "Table for estimating the goodness of fit of
    empirical distributions", Ann. Math. Statist. 19.
    B. Yurdakul, "Statistical properties of population stability index", PhD thesis, Western
    Michigan University, 2018.
    J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37, 1991.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special, stats

from retrainer.checks.result import CheckResult
from retrainer.profile import BatchProfile, ColumnProfile

PSI_FLOOR = 1e-4
EXACT_N = 10_000  # above this effective n, the limiting Kolmogorov distribution (1 % close, fast)
UNSEEN = "__unseen__"


def _counts(x) -> np.ndarray:
    counts = np.asarray(x, dtype="float64")
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("counts must be a 1-d sequence of non-negative numbers")
    return counts


def ks_from_histograms(ref_counts, cur_counts) -> tuple[float, float]:
    """Two-sample KS statistic D and its asymptotic p-value from counts on the same bins.

    D is the largest difference of the cumulative shares at the bin edges (a lower bound of the
    exact D on raw values); the p-value is ``kstwo.sf(D, en)`` with ``en = round(n*m/(n+m))``,
    as ``scipy.stats.ks_2samp(method="asymp")``. Above ``en = 10_000`` it is the limiting
    Kolmogorov distribution ``kstwobign.sf(D * sqrt(en))`` (within 1 % of ``kstwo`` there,
    slightly larger, and 1000 times faster). Empty counts give ``(0.0, 1.0)``.

    Example:
        >>> d, p = ks_from_histograms([50, 50, 0], [0, 50, 50])
        >>> round(d, 2), p < 1e-6
        (0.5, True)
    """
    ref, cur = _counts(ref_counts), _counts(cur_counts)
    n, m = ref.sum(), cur.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m).max())
    en = _effective_n(n, m)
    if en > EXACT_N:
        return d, float(stats.kstwobign.sf(d * np.sqrt(en)))
    return d, float(stats.kstwo.sf(d, en))


def _effective_n(n: float, m: float) -> int:
    return max(1, round(n * m / (n + m)))


def min_detectable_d(n: float, m: float, alpha: float) -> float:
    """The smallest KS D that is significant at ``alpha`` for sample sizes ``n`` and ``m``.

    Example:
        >>> round(min_detectable_d(1000, 1000, 0.05), 3)
        0.06
    """
    en = _effective_n(n, m)
    if en > EXACT_N:
        return float(stats.kstwobign.isf(alpha) / np.sqrt(en))
    return float(stats.kstwo.isf(alpha, en))


def _shares(ref_counts, cur_counts) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = _counts(ref_counts), _counts(cur_counts)
    if ref.shape != cur.shape:
        raise ValueError(f"counts have different lengths ({ref.size} and {cur.size})")
    if ref.sum() == 0 or cur.sum() == 0:
        raise ValueError("counts must not be all zero")
    return ref / ref.sum(), cur / cur.sum()


def psi(ref_counts, cur_counts) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over bin shares.

    Shares are floored at 1e-4 so empty bins give a finite value. Rule of thumb: below 0.1 no
    change, 0.1-0.2 a moderate one, above 0.2 a large one.

    Example:
        >>> round(psi([50, 50], [60, 40]), 4)
        0.0405
    """
    p, q = (np.maximum(s, PSI_FLOOR) for s in _shares(ref_counts, cur_counts))
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(ref, cur, *, base: float = 2.0) -> float:
    """Jensen-Shannon distance (square root of the divergence) of two count vectors.

    With ``base=2`` it lies in [0, 1]; it equals
    ``scipy.spatial.distance.jensenshannon(ref, cur, base)``.

    Example:
        >>> jensen_shannon([1, 0], [0, 1])
        1.0
    """
    p, q = _shares(ref, cur)
    mid = (p + q) / 2
    divergence = (special.rel_entr(p, mid).sum() + special.rel_entr(q, mid).sum()) / 2
    return float(np.sqrt(max(divergence, 0.0) / np.log(base)))


def _aligned(ref_counts: dict, cur_counts: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Count vectors over the reference's categories plus one pooled column of unseen ones."""
    keys = sorted(ref_counts)
    ref = [ref_counts[k] for k in keys]
    cur = [cur_counts.get(k, 0) for k in keys]
    unseen = sum(n for k, n in cur_counts.items() if k not in ref_counts)
    if unseen:
        keys.append(UNSEEN)
        ref.append(0)
        cur.append(unseen)
    return keys, np.asarray(ref, dtype="float64"), np.asarray(cur, dtype="float64")


def chi_square(ref_counts: dict, cur_counts: dict) -> tuple[float, float]:
    """Chi-square test of homogeneity of two category-count dicts (no continuity correction).

    Categories absent from the reference are pooled in one column, and categories with no count
    in either are dropped. Fewer than two categories give ``(0.0, 1.0)``.

    Example:
        >>> stat, p = chi_square({"a": 50, "b": 50}, {"a": 50, "b": 50, "c": 10})
        >>> round(stat, 2), p < 0.01
        (9.55, True)
    """
    _, ref, cur = _aligned(ref_counts, cur_counts)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return stat, float(stats.chi2.sf(stat, table.shape[1] - 1))


def _single(column: str, name: str, status: str, message: str, **detail) -> CheckResult:
    return CheckResult("drift", name, column, False, status=status, message=message, detail=detail)


def _untestable(
    name: str, test: str, ref: ColumnProfile | None, cur: ColumnProfile | None, min_rows: int
) -> CheckResult | None:
    """A result with a non-ok status when the column cannot be tested, else None."""
    if ref is None or cur is None or ref.missing or cur.missing or ref.kind != cur.kind:
        side = "batch" if ref is not None and not ref.missing else "reference"
        return _single(
            name,
            test,
            "schema_error",
            f"column {name!r} is missing or of another kind in the {side}; not tested",
        )
    if cur.values == 0 and cur.non_finite > 0:
        return _single(name, test, "non_finite", f"column {name!r} has only non-finite values")
    if ref.id_like:
        return _single(
            name,
            test,
            "excluded_id_like",
            f"column {name!r} is id-like ({ref.distinct} distinct values in "
            f"{ref.values}); not tested",
        )
    small = min(ref.values, cur.values)
    if small < min_rows:
        where = "batch" if cur.values < min_rows else "reference"
        return _single(
            name,
            test,
            "insufficient",
            f"column {name!r}: {small} values in the {where}, at least {min_rows} "
            "needed for a drift test",
            minimum=min_rows,
            values=small,
        )
    return None


def _verdicts(
    name: str,
    test: str,
    statistic: float,
    p: float,
    ref: np.ndarray,
    cur: np.ndarray,
    rules: dict,
    detail: dict,
) -> list[CheckResult]:
    alpha, psi_threshold, min_psi = rules["alpha"], rules["psi_threshold"], rules["min_psi"]
    effect = psi(ref, cur)
    distance = jensen_shannon(ref, cur)
    significant = p < alpha
    drifted = significant and effect >= min_psi
    detail = dict(detail, psi=effect, jensen_shannon=distance, min_psi=min_psi)
    label = "KS D" if test == "ks" else "chi-square"
    if drifted:
        verdict = "drifted"
    elif significant:
        verdict = f"changed too little to matter (PSI {effect:.3g} < {min_psi:g})"
    else:
        verdict = "did not drift"
    message = (
        f"column {name!r} {verdict}: {label} {statistic:.4g} (p={p:.3g}, alpha {alpha:g}), "
        f"PSI {effect:.3g}, n={int(ref.sum())} reference / {int(cur.sum())} batch"
    )
    big = significant and effect > psi_threshold
    return [
        CheckResult(
            "drift",
            test,
            name,
            drifted,
            "warning" if drifted else "info",
            statistic=statistic,
            p_value=p,
            threshold=alpha,
            message=message,
            detail=detail,
        ),
        CheckResult(
            "drift",
            "psi",
            name,
            big,
            "warning" if big else "info",
            statistic=effect,
            threshold=psi_threshold,
            message=f"column {name!r}: PSI {effect:.3g} (large above {psi_threshold:g}, p={p:.3g})",
        ),
        CheckResult(
            "drift",
            "jensen_shannon",
            name,
            False,
            statistic=distance,
            message=f"column {name!r}: Jensen-Shannon distance {distance:.3g} (base 2, 0..1)",
        ),
    ]


def check_drift(
    reference: BatchProfile,
    current: BatchProfile,
    *,
    alpha: float = 0.05,
    psi_threshold: float = 0.2,
    min_rows: int = 30,
    min_psi: float = 0.02,
) -> list[CheckResult]:
    """Drift results per column of the reference (see the module doc for the alarm rule).

    Parameters:
        reference: profile of the reference data.
        current: profile of the batch, taken on ``reference.edges()``.
        alpha: significance level of the KS and chi-square tests.
        psi_threshold: PSI above which a significant change is reported as large.
        min_rows: fewest values in either profile for a test to run.
        min_psi: effect floor: a significant change with a smaller PSI does not alarm.

    Returns ``ks``/``chi2``, ``psi`` and ``jensen_shannon`` results for each tested column, and
    one ``ks``/``chi2`` result with a non-ok status for each column that could not be tested.
    """
    rules = {"alpha": alpha, "psi_threshold": psi_threshold, "min_psi": min_psi}
    results: list[CheckResult] = []
    for name, ref in reference.columns.items():
        if ref.kind == "datetime":
            continue
        test = "chi2" if ref.kind == "categorical" else "ks"
        cur = current.columns.get(name)
        skipped = _untestable(name, test, ref, cur, min_rows)
        if skipped is not None:
            results.append(skipped)
            continue
        if test == "chi2":
            stat, p = chi_square(ref.categories or {}, cur.categories or {})
            _, ref_v, cur_v = _aligned(ref.categories or {}, cur.categories or {})
            detail = {"categories": len(ref_v)}
        else:
            if ref.edges != cur.edges:
                raise ValueError(
                    f"column {name!r}: the batch was profiled on other histogram edges than the "
                    "reference; profile it with edges=reference.edges()"
                )
            ref_v, cur_v = np.asarray(ref.hist, float), np.asarray(cur.hist, float)
            stat, p = ks_from_histograms(ref_v, cur_v)
            detail = {
                "min_detectable_d": min_detectable_d(ref_v.sum(), cur_v.sum(), alpha),
                "reference_mean": ref.mean,
                "batch_mean": cur.mean,
                "reference_std": ref.std,
                "batch_std": cur.std,
            }
        results.extend(_verdicts(name, test, stat, p, ref_v, cur_v, rules, detail))
    return results


def dataset_drift(results: Sequence[CheckResult], *, share: float = 0.5) -> CheckResult:
    """One ``dataset_drift`` result: alarm when at least ``share`` of the tested columns drifted.

    A column counts as tested when one of its drift results has status ``ok``, and as drifted
    when one of them alarms.

    Example:
        >>> rs = [CheckResult("drift", "ks", "a", True), CheckResult("drift", "ks", "b", False)]
        >>> r = dataset_drift(rs)
        >>> r.alarm, r.statistic, r.detail["drifted"]
        (True, 0.5, ['a'])
    """
    drift = [r for r in results if r.kind == "drift" and r.name != "dataset_drift"]
    tested = sorted({r.column for r in drift if r.status == "ok" and r.column is not None})
    drifted = sorted({r.column for r in drift if r.alarm and r.column is not None})
    if not tested:
        return CheckResult(
            "drift",
            "dataset_drift",
            None,
            False,
            status="insufficient",
            threshold=share,
            message="no column could be tested for drift",
        )
    fraction = len(drifted) / len(tested)
    alarm = fraction >= share
    return CheckResult(
        "drift",
        "dataset_drift",
        None,
        alarm,
        "warning" if alarm else "info",
        statistic=fraction,
        threshold=share,
        message=f"{len(drifted)} of {len(tested)} columns drifted ({100 * fraction:.0f}%, "
        f"alarm at {100 * share:.0f}%): {drifted}",
        detail={"drifted": drifted, "tested": tested},
    )
