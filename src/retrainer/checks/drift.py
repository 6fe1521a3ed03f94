"""Per-column data drift from profiles, the dataset-level verdict, and output (prediction) drift.

For each column of the reference, ``check_drift`` picks a test (``choose_test`` in
``retrainer.checks.univariate``: p-value tests up to 1,000 values in the smaller sample,
distances with a fixed threshold above, because at that size every p-value is tiny), runs it on
the two profiles (histograms on the reference's quantile edges, or category counts) or, when
raw rows of both sides are given and small, on the raw values, and returns one verdict result
named after the test, saying which test ran and why.

Every verdict also reports, in ``detail``:

- ``effect_size``: the size of the change whatever its significance: the Wasserstein distance
  in reference standard deviations for numbers (a location shift of 0.3 sd reads 0.3), Cramer's
  V (``sqrt(chi2 / N)``) for categories;
- ``min_detectable_effect``: the smallest effect, in the same unit, that the test flags at this
  batch's size (for numbers also ``min_detectable_shift_sd``, the smallest shift of a normal
  mean in sd); a column with fewer than ``min_rows`` values gets status ``insufficient`` with
  the minimum and the effect it could have detected, and no alarm.

The alarm rule of a column: a p-value test alarms when its p-value, adjusted over the columns
tested with p-values (``correction``: ``bh``, ``bonferroni`` or ``none``), is below ``alpha``
**and** PSI is at least ``min_psi`` (an effect floor); a distance alarms at its threshold. The
result list holds exactly one verdict per column; the extra measures are fields of it, in
``detail["measures"]``: ``psi``, ``jensen_shannon`` and ``psi_large`` (the column drifted and
PSI exceeds ``psi_threshold``). Datetime columns are not tested (time moves by design), nor the
date parts of the time column a caller names (``calendar``: a monthly file's month).

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> from retrainer.profile import BatchProfile
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000)})
    >>> schema = Schema.infer(ref)
    >>> reference = BatchProfile.from_frame(ref, schema)
    >>> shifted = BatchProfile.from_frame(ref.head(500) + 1.0, schema, edges=reference.edges())
    >>> [(r.name, r.alarm) for r in check_drift(reference, shifted)]
    [('ks', True)]
    >>> check_drift(reference, shifted)[0].detail["measures"]["psi_large"]
    True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, stats

from retrainer.checks.multiple import CORRECTIONS, adjust
from retrainer.checks.result import CheckResult
from retrainer.checks.univariate import (
    QUASI_TESTS,
    SMALL,
    TESTS,
    Pair,
    binned_distance,
    chi_square_table,
    choose_test,
    cvm_p_value,
    jensen_shannon,
    ks_from_histograms,
    min_detectable_d,
    psi,
    quasi_p,
)
from retrainer.data.schema import ColumnSpec, Schema, kind_of
from retrainer.profile import BatchProfile, ColumnProfile

__all__ = [
    "check_drift",
    "dataset_drift",
    "ks_from_histograms",
    "min_detectable_d",
    "min_detectable_shift",
    "output_drift",
    "psi",
]

SENSITIVITIES = ("effect", "significance")
BATCH_ALPHA = 0.01  # false-alarm rate per batch of the dataset verdict (any dependence)
JS_TO_V = math.sqrt(2 * math.log(2))  # small changes: Cramer's V ~ JS distance (base 2) * this
CVM_NORMAL = 1 / (2 * math.pi * math.sqrt(3))  # int phi^3: T ~ en * shift^2 * this (normal)


def _shift_from_d(d: float) -> float:
    """The shift of a normal mean (in sd) whose KS distance is ``d``: D = 2 Phi(shift/2) - 1."""
    return float(2 * stats.norm.ppf((1 + min(d, 1 - 1e-12)) / 2))


def min_detectable_shift(test: str, n: float, m: float, alpha: float) -> float:
    """The smallest shift of a normal mean, in sd, that ``test`` flags (at half power).

    KS: the shift whose D is the critical D; Cramer-von Mises: from its asymptotic critical
    value; other p-value tests use the KS value; a distance test its threshold (a Wasserstein
    distance in sd reads the shift directly).

    Example:
        >>> round(min_detectable_shift("ks", 1000, 1000, 0.05), 3)
        0.152
        >>> min_detectable_shift("wasserstein", 1000, 1000, 0.05)
        0.1
    """
    test_obj = TESTS.get(test)
    if test_obj is not None and test_obj.is_distance:
        return float(test_obj.threshold)
    if test == "cramer_von_mises":
        en = n * m / (n + m)
        t_crit = optimize.brentq(lambda t: cvm_p_value(t, n, m) - alpha, 1e-6, 50.0)
        return float(math.sqrt(t_crit / (en * CVM_NORMAL)))
    return _shift_from_d(min_detectable_d(n, m, alpha))


def _cramers_v(pair: Pair) -> float:
    stat, _ = chi_square_table(np.vstack([pair.ref, pair.cur]))
    return math.sqrt(stat / (pair.n + pair.m))


def _min_v(pair: Pair, test: str, alpha: float) -> float:
    test_obj = TESTS[test]
    if test_obj.is_distance:
        scale = JS_TO_V if test == "jensen_shannon" else 1.0
        return float(test_obj.threshold * scale)
    df = max(1, int(((pair.ref + pair.cur) > 0).sum()) - 1)
    return float(math.sqrt(stats.chi2.isf(alpha, df) / (pair.n + pair.m)))


@dataclass(frozen=True)
class _Column:
    """One tested column before the multiple-testing correction."""

    name: str
    pair: Pair
    test: str
    reason: str
    statistic: float
    p_value: float | None
    effect: float
    detail: dict


def _single(column: str, name: str, status: str, message: str, **detail) -> CheckResult:
    return CheckResult("drift", name, column, False, status=status, message=message, detail=detail)


def _untestable(
    name: str,
    test: str,
    ref: ColumnProfile | None,
    cur: ColumnProfile | None,
    min_rows: int,
    alpha: float,
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
        where = "batch" if cur.values == small else "reference"
        mde = (
            _shift_from_d(min_detectable_d(ref.values, cur.values, alpha))
            if small > 0 and ref.kind == "numeric"
            else None
        )
        could = f" (it could only detect shifts above {mde:.2g} sd)" if mde is not None else ""
        return _single(
            name,
            test,
            "insufficient",
            f"column {name!r}: {small} values in the {where}, at least {min_rows} "
            f"needed for a drift test{could}",
            minimum=min_rows,
            values=small,
            min_detectable_shift_sd=mde,
        )
    return None


def _finite(frame: pd.DataFrame | None, name: str) -> np.ndarray | None:
    if frame is None or name not in frame.columns:
        return None
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def _pair(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    reference_rows: pd.DataFrame | None,
    current_rows: pd.DataFrame | None,
    exact_max: int,
) -> Pair:
    if ref.kind == "categorical":
        return Pair.categorical(ref.categories or {}, cur.categories or {})
    if ref.edges != cur.edges:
        raise ValueError(
            f"column {name!r}: the batch was profiled on other histogram edges than the "
            "reference; profile it with edges=reference.edges()"
        )
    low = min(ref.min, cur.min)
    high = max(ref.max, cur.max)
    bounds = np.concatenate([[low], np.asarray(ref.edges, dtype="float64"), [high]])
    raw = {}
    if min(ref.values, cur.values) <= exact_max:
        ref_values, cur_values = _finite(reference_rows, name), _finite(current_rows, name)
        if ref_values is not None and cur_values is not None and ref_values.size * cur_values.size:
            raw = {"ref_values": ref_values, "cur_values": cur_values}
    return Pair.numeric(
        ref.hist, cur.hist, bounds, ref_std=ref.std, ref_sums=ref.sums, cur_sums=cur.sums, **raw
    )


def _pick(pair: Pair, method: str | Mapping[str, str], small: int) -> tuple[str, str]:
    chosen = method.get(pair.kind, "auto") if isinstance(method, Mapping) else method
    if chosen == "auto":
        return choose_test(pair, small=small)
    if chosen not in TESTS:
        raise ValueError(f"unknown drift test {chosen!r}; registered: {sorted(TESTS)}")
    if pair.kind not in TESTS[chosen].kinds:
        return choose_test(pair, small=small)
    if chosen in ("z", "fisher") and (pair.ref + pair.cur > 0).sum() > 2:
        return choose_test(pair, small=small)
    return chosen, f"configured ({chosen})"


def deflate(pair: Pair, phi: float) -> Pair:
    """``pair`` with each row counted as ``1 / phi`` of an independent row (``phi`` >= 1, the
    reference's dispersion, see ``retrainer.checks.reference.dispersion``): counts and bin
    sums divided by ``phi``, raw values dropped (an exact test would count every row again).

    Example:
        >>> pair = Pair.categorical({"a": 60, "b": 40}, {"a": 30, "b": 50})
        >>> deflate(pair, 2.0).cur.tolist()
        [15.0, 25.0]
    """
    if phi <= 1.0:
        return pair
    sums = {}
    if pair.ref_sums is not None and pair.cur_sums is not None:
        sums = {"ref_sums": pair.ref_sums / phi, "cur_sums": pair.cur_sums / phi}
    return replace(
        pair, ref=pair.ref / phi, cur=pair.cur / phi, ref_values=None, cur_values=None, **sums
    )


def _run(
    name: str, pair: Pair, test: str, reason: str, alpha: float, phi: float, phi_df: int
) -> _Column:
    seen = pair if TESTS[test].is_distance else deflate(pair, phi)  # as the test counts rows
    statistic, p = TESTS[test].run(seen)
    detail: dict = {"test": test, "reason": reason, "method": _method(seen, test)}
    if seen is not pair:
        detail["dispersion"] = phi
        if phi_df and test in QUASI_TESTS:  # Fisher's exact test keeps its own p
            p = quasi_p(test, seen, statistic, p, phi_df)
            detail["dispersion_df"] = phi_df
    if pair.kind == "numeric":
        effect = binned_distance(pair) / (pair.ref_std or 1.0)
        shift = min_detectable_shift(test, seen.n, seen.m, alpha)
        detail.update(
            effect_measure="wasserstein_sd",
            min_detectable_effect=shift,
            min_detectable_shift_sd=shift,
        )
        if test in ("ks", "cramer_von_mises") and not TESTS[test].is_distance:
            detail["ks_critical_d"] = min_detectable_d(seen.n, seen.m, alpha)
    else:
        effect = _cramers_v(pair)
        detail.update(
            effect_measure="cramers_v",
            min_detectable_effect=_min_v(seen, test, alpha),
            categories=len(pair.labels or ()),
        )
    detail.update(effect_size=effect, n_reference=int(pair.n), n_batch=int(pair.m))
    return _Column(name, pair, test, reason, statistic, p, effect, detail)


def _method(pair: Pair, test: str) -> str:
    if pair.kind == "categorical":
        return "exact" if test == "fisher" else "counts"
    return "exact" if pair.exact and TESTS[test].exact else "profile"


def check_drift(
    reference: BatchProfile,
    current: BatchProfile,
    *,
    alpha: float = 0.05,
    psi_threshold: float = 0.2,
    min_rows: int = 30,
    min_psi: float = 0.02,
    method: str | Mapping[str, str] = "auto",
    correction: str = "none",
    small: int = SMALL,
    thresholds: Mapping[str, float] | None = None,
    reference_rows: pd.DataFrame | None = None,
    current_rows: pd.DataFrame | None = None,
    exact_max: int = SMALL,
    sensitivity: str = "effect",
    dispersion: Mapping[str, float] | None = None,
    dispersion_df: Mapping[str, int] | None = None,
    calendar: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Drift results per column of the reference (see the module doc for the alarm rule).

    Parameters:
        reference: profile of the reference data.
        current: profile of the batch, taken on ``reference.edges()``.
        alpha: significance level of the p-value tests (after ``correction``).
        psi_threshold: PSI above which a drifted column is reported as largely changed.
        min_rows: fewest values in either profile for a test to run.
        min_psi: effect floor: a significant change with a smaller PSI does not alarm.
        method: ``"auto"``, a registered test name, or a mapping kind -> name (``{"numeric":
            "cramer_von_mises"}``); a test that does not fit a column falls back to auto.
        correction: ``"bh"``, ``"bonferroni"`` or ``"none"`` over the p-value tests.
        small: the automatic choice takes p-value tests up to this many values.
        thresholds: distance thresholds by test name, overriding the defaults.
        reference_rows, current_rows: raw frames; when both are given and the smaller side has
            at most ``exact_max`` values, numeric tests with an exact form use the raw values.
        sensitivity: ``"effect"`` (the automatic choice above: a distance with a threshold
            above ``small`` values, so a large batch alarms on a change of a stated size) or
            ``"significance"`` (p-value tests at every size and no ``min_psi`` floor: any change
            the batch can resolve alarms; the smallest flagged shift shrinks as 1/sqrt(n)).
        dispersion: per column, the reference's between-batch dispersion (at least 1; see
            ``retrainer.checks.reference.dispersion``): p-value tests count each row as
            ``1 / dispersion`` of an independent one (``detail["dispersion"]``).
        dispersion_df: per categorical column, the degrees of freedom of that dispersion's
            estimate: its chi-square, G or z test reads p from an F tail
            (:func:`~retrainer.checks.univariate.quasi_p`; ``detail["dispersion_df"]``).
        calendar: the batch's date parts of its time column (``retrainer.checks.calendar``),
            with the part: not tested, as datetime columns are not (time moves by design).

    Returns one verdict per column (named after the test that ran, or with a non-ok status);
    a tested column's verdict carries ``detail["measures"]`` (``psi``, ``jensen_shannon``,
    ``psi_large``).
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r} is not one of {CORRECTIONS}")
    if sensitivity not in SENSITIVITIES:
        raise ValueError(f"sensitivity {sensitivity!r} is not one of {SENSITIVITIES}")
    if sensitivity == "significance":
        small, min_psi = sys.maxsize, 0.0
    limits = dict(thresholds or {})
    results: dict[str, CheckResult] = {}
    tested: list[_Column] = []
    for name, ref in reference.columns.items():
        if ref.kind == "datetime":
            continue
        default = "chi2" if ref.kind == "categorical" else "ks"
        if name in (calendar or {}):
            part = calendar[name]
            message = f"column {name!r} is the {part} of each row's time: it moves by design"
            results[name] = _single(name, default, "excluded_calendar", message, calendar=part)
            continue
        cur = current.columns.get(name)
        skipped = _untestable(name, default, ref, cur, min_rows, alpha)
        if skipped is not None:
            results[name] = skipped
            continue
        pair = _pair(name, ref, cur, reference_rows, current_rows, exact_max)
        test, reason = _pick(pair, method, small)
        try:
            phi = float((dispersion or {}).get(name, 1.0))
            phi_df = int((dispersion_df or {}).get(name, 0))
            tested.append(_run(name, pair, test, reason, alpha, phi, phi_df))
        except ValueError as exc:
            results[name] = _single(name, test, "insufficient", f"column {name!r}: {exc}")
    p_tests = [c for c in tested if c.p_value is not None]
    adjusted = dict(
        zip(
            (c.name for c in p_tests), adjust([c.p_value for c in p_tests], correction), strict=True
        )
    )
    for col in tested:
        results[col.name] = _verdict(
            col, adjusted.get(col.name), alpha, psi_threshold, min_psi, correction, limits,
            tests=len(p_tests),
        )  # fmt: skip
    return [results[name] for name in reference.columns if name in results]


def _verdict(
    col: _Column,
    p_adj: float | None,
    alpha: float,
    psi_threshold: float,
    min_psi: float,
    correction: str,
    limits: Mapping[str, float],
    tests: int = 1,
) -> CheckResult:
    pair, name = col.pair, col.name
    effect_psi = psi(pair.ref, pair.cur)
    distance = jensen_shannon(pair.ref, pair.cur)
    test = TESTS[col.test]
    detail = dict(col.detail, psi=effect_psi, jensen_shannon=distance, min_psi=min_psi)
    if test.is_distance:
        threshold = limits.get(col.test, test.threshold)
        drifted = col.statistic >= threshold
        verdict = "drifted" if drifted else "did not drift"
        evidence = f"{col.test} {col.statistic:.4g} (threshold {threshold:g})"
    else:
        threshold = alpha
        significant = p_adj < alpha
        drifted = significant and effect_psi >= min_psi
        if drifted:
            verdict = "drifted"
        elif significant:
            verdict = f"changed too little to matter (PSI {effect_psi:.3g} < {min_psi:g})"
        else:
            verdict = "did not drift"
        adj = f", {correction}-adjusted {p_adj:.3g}" if correction != "none" else ""
        evidence = f"{col.test} {col.statistic:.4g} (p={col.p_value:.3g}{adj}, alpha {alpha:g})"
        detail.update(p_adjusted=p_adj, correction=correction, tests=tests)  # the family
    unit = "sd" if pair.kind == "numeric" else "V"
    message = (
        f"column {name!r} {verdict}: {evidence}; effect {col.effect:.3g} {unit} (detectable "
        f"from {detail['min_detectable_effect']:.3g} {unit}), PSI {effect_psi:.3g}, "
        f"n={int(pair.n)} reference / {int(pair.m)} batch; {col.reason}"
    )
    if "dispersion" in detail:
        message += (
            f"; rows counted as 1/{detail['dispersion']:.2g} of an independent row (the "
            "reference's batches differ that much more than sampling explains)"
        )
    if "dispersion_df" in detail:
        message += f", p from an F tail with {detail['dispersion_df']} df for that estimate"
    large = drifted and effect_psi > psi_threshold
    detail["measures"] = {"psi": effect_psi, "jensen_shannon": distance, "psi_large": large}
    if large:
        message += f"; PSI large (above {psi_threshold:g})"
    return CheckResult(
        "drift",
        col.test,
        name,
        drifted,
        "warning" if drifted else "info",
        statistic=col.statistic,
        p_value=col.p_value,
        threshold=threshold,
        message=message,
        detail=detail,
    )


def dataset_drift(
    results: Sequence[CheckResult], *, share: float = 0.5, batch_alpha: float = BATCH_ALPHA
) -> CheckResult:
    """One ``dataset_drift`` result: alarm when at least ``share`` of the tested columns drifted,
    at a stated false-alarm rate per batch, ``batch_alpha``, whatever the dependence between
    the columns.

    A column counts as tested when its verdict has status ``ok``. With ``m`` columns tested
    by p-values and ``r = ceil(share * tested)`` needed, a column counts as drifted when its
    verdict alarms and its raw p-value is at most ``r * batch_alpha / m`` (a distance verdict,
    which has no p-value, counts when it alarms). On a batch where no column moved, the chance
    that ``r`` columns pass that level is at most ``batch_alpha`` by Markov's inequality on
    their count (Rüger's bound for the r-th smallest p-value), also when the columns move
    together (prices and demand with the weather): the per-column correction (``bh``) bounds
    that chance only by ``alpha``. ``detail["drifted"]`` lists the columns whose own verdict
    alarms, ``detail["counted"]`` those the batch verdict counts.

    Example:
        >>> rs = [CheckResult("drift", "ks", "a", True), CheckResult("drift", "ks", "b", False)]
        >>> r = dataset_drift(rs)
        >>> r.alarm, r.statistic, r.detail["drifted"]
        (True, 0.5, ['a'])
        >>> moved = [CheckResult("drift", "ks", c, True, p_value=0.004) for c in "abc"]
        >>> quiet = [CheckResult("drift", "ks", c, False, p_value=0.5) for c in "def"]
        >>> r = dataset_drift(moved + quiet)  # 3 needed: p <= 3 * 0.01 / 6 = 0.005
        >>> r.alarm, r.detail["counted"]
        (True, ['a', 'b', 'c'])
        >>> dataset_drift([*moved[:2], CheckResult("drift", "ks", "c", True, p_value=0.02),
        ...                *quiet]).alarm
        False

    References:
        L. Rüger (1978), "Das Maximum der Wahrscheinlichkeit eines Fehlers erster Art bei
        beliebiger Abhängigkeit", Metrika 25; R. Morgenstern (1980), same bound.
    """
    if not 0 < batch_alpha < 1:
        raise ValueError(f"batch_alpha must lie in (0, 1), not {batch_alpha}")
    verdicts = [r for r in results if r.kind == "drift" and r.name != "dataset_drift"]
    tested = sorted({r.column for r in verdicts if r.status == "ok" and r.column is not None})
    drifted = sorted({r.column for r in verdicts if r.alarm and r.column is not None})
    corrections = sorted({r.detail.get("correction") for r in verdicts} - {None})
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
    needed = max(1, math.ceil(share * len(tested) - 1e-9))
    with_p = {r.column for r in verdicts if r.status == "ok" and r.p_value is not None}
    level = needed * batch_alpha / max(1, len(with_p))
    counted = sorted(
        {
            r.column
            for r in verdicts
            if r.alarm and r.column is not None and (r.p_value is None or r.p_value <= level)
        }
    )
    fraction = len(counted) / len(tested)
    alarm = len(counted) >= needed
    weak = sorted(set(drifted) - set(counted))
    message = (
        f"{len(counted)} of {len(tested)} columns drifted ({100 * fraction:.0f}%, alarm at "
        f"{100 * share:.0f}%: {needed} columns, each at p <= {level:.3g} for a false-alarm rate "
        f"of {batch_alpha:g} per batch): {counted}"
    )
    if weak:
        message += f"; {weak} drifted on their own, below the batch's level"
    return CheckResult(
        "drift",
        "dataset_drift",
        None,
        alarm,
        "warning" if alarm else "info",
        statistic=fraction,
        threshold=share,
        message=message,
        detail={
            "drifted": drifted,
            "counted": counted,
            "tested": tested,
            "correction": corrections,
            "batch_alpha": batch_alpha,
            "level": level,
        },
    )


def output_drift(
    reference: pd.Series,
    current: pd.Series,
    *,
    name: str = "prediction",
    kind: str | None = None,
    **options,
) -> list[CheckResult]:
    """Drift of a model output or of the target between two samples (same tests as features).

    Parameters:
        reference: predictions (or labels) on the reference data.
        current: predictions (or labels) on the batch.
        name: the column name reported (``"prediction"``, ``"target"``, ...).
        kind: ``"numeric"`` or ``"categorical"``; inferred from ``reference`` when None.
        options: passed to ``check_drift`` (alpha, method, ...). Raw values are used for exact
            tests when the batch is small.

    Example:
        >>> ref = pd.Series(["yes"] * 500 + ["no"] * 500)
        >>> cur = pd.Series(["yes"] * 300 + ["no"] * 100)
        >>> r = output_drift(ref, cur)[0]
        >>> r.name, r.column, r.alarm
        ('z', 'prediction', True)
    """
    spec = ColumnSpec(name, kind or kind_of(reference), True)
    schema = Schema((spec,))
    ref_frame = pd.DataFrame({name: reference.to_numpy()})
    cur_frame = pd.DataFrame({name: current.to_numpy()})
    ref_profile = BatchProfile.from_frame(ref_frame, schema)
    cur_profile = BatchProfile.from_frame(cur_frame, schema, edges=ref_profile.edges())
    options.setdefault("reference_rows", ref_frame)
    options.setdefault("current_rows", cur_frame)
    return check_drift(ref_profile, cur_profile, **options)
