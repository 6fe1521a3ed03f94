"""The diagnosis rules: give every alarm a cause, a confidence, its evidence and an action.

Four causes:

- ``upstream_change``: a producer changed what it sends: a renamed, dropped or re-typed column,
  a unit or scale change (x1000), re-coded or swapped category codes, a new default or fill
  value, a column that was one constant fill value in the reference and now varies.
  Action: fix or map the input; do not retrain on it. Where the mapping is evident, the alarm
  carries a ``fix`` (a ``data.fixes`` snippet) that ``retrainer accept-fix`` applies at ingest.
- ``data_quality``: nulls, non-finite or unreadable values, a stuck sensor (one value repeated
  row after row), an out-of-range burst (a minority of wild values, the bulk unchanged),
  duplicated rows, a truncated batch. Action: quarantine the batch, alert the data owner.
- ``changed_relation``: the champion's error rose more than the movement of its inputs can
  explain: the same inputs now get other labels. Action: retrain on recent labelled data.
- ``covariate_drift``: the inputs moved and nothing above explains it. Action: watch, or
  retrain with the new region.

Each column gets at most one structural finding (the first rule that matches, in the order
above), plus null and non-finite findings, which can hold together with anything. Structural
evidence outranks statistical drift: upstream and quality findings have confidence 0.85-0.95,
covariate drift at most 0.8. Several causes can hold at once; a :class:`Diagnosis` ranks them
by combined confidence (noisy-or of their findings).

Example:
    >>> from retrainer.checks.result import CheckResult
    >>> missing = CheckResult("quality", "missing_column", "price", True, "error",
    ...                       detail={"renamed_to": "price_v2"})
    >>> alarm = diagnose([missing])[0]
    >>> alarm.cause, alarm.blocking, alarm.fix
    ('upstream_change', True, {'rename': {'price_v2': 'price'}})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from retrainer.checks.batch_level import batches_p, mean_p
from retrainer.checks.quality import FAR_COUNT
from retrainer.checks.result import CheckResult
from retrainer.diagnosis.alarms import (
    ACTIONS,
    COVARIATE_MAX,
    Alarm,
    Diagnosis,
    rank,
)
from retrainer.diagnosis.batch_size import ALPHA as SIZE_ALPHA
from retrainer.diagnosis.batch_size import MOST_SHARE
from retrainer.diagnosis.signals import (
    ALPHA,
    NATURAL_SHARE,
    BatchSignals,
    ColumnSignal,
    in_blocks,
    unusual_share,
)
from retrainer.diagnosis.unit_rules import affine, retyped
from retrainer.diagnosis.units import mapped_back_p
from retrainer.profile import BatchProfile, ColumnProfile, histogram
from retrainer.profile.column import FAR, OTHER

if TYPE_CHECKING:
    from retrainer.checks.concept.sequential import Finding

SCALE_TOLERANCE = math.log(2.0)  # the spread within x/2 of a power of ten (batches vary)
SCALE_P = 1e-3  # mapped back, a batch this unlikely under the reference is another shape
BATCH_BLOCK_P = 1e-5  # a batch beyond the reference's batches blocks only below this
JUMP = 10  # a batch whose first value is within this many median steps of the last goes on
SENTINEL_WORDS = frozenset(
    {"", "?", "-", "na", "n/a", "none", "null", "nan", "unknown", "missing", "default", "-1"}
)
SHARE_RULE_ROWS = 30  # values inside the range the share-burst rule needs for its KS test
TEST_VALUES = 30  # a reference's spread or shares of codes need as many values as a drift test
DRIFT_P = 1e-3  # a column drifts for the diagnosis only below this p-value
BATCH_P = 0.01  # and below this over the columns tested (Bonferroni): at most 1 in 100 batches
VERDICT = "__verdict__"  # key of a column's drift verdict (the first drift result of a column)
HANDLED = {
    "missing_column", "extra_column", "type_change", "null_rate", "non_finite", "out_of_range",
    "unseen_category", "vanished_category", "constant", "stuck", "psi", "jensen_shannon",
}  # fmt: skip
RELATION_P = 1e-3
RELATION_MIN_RISE = 0.03


def _alarm(
    cause: str,
    check: str,
    column: str | None,
    message: str,
    confidence: float,
    *,
    severity: str = "error",
    evidence: Sequence[dict] = (),
    fix: dict | None = None,
    action: str | None = None,
) -> Alarm:
    return Alarm(
        cause,
        action or ACTIONS[cause],
        severity,
        check,
        column,
        message,
        confidence,
        tuple(evidence),
        fix,
    )


def _cite(r: CheckResult) -> dict:
    return {
        "check": f"{r.kind}.{r.name}",
        "column": r.column,
        "statistic": r.statistic,
        "p_value": r.p_value,
        "message": r.message,
    }


def _g(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


# --------------------------------------------------------------------------- numeric rules
def _sentinel(value: float, ref: ColumnProfile) -> bool:
    """A fill-like value: ``FAR`` reference widths beyond its range, zero or negative whole, or
    all nines. A value with decimals just beyond the range is a reading (a floor price the
    reference's month did not reach), as one inside it is."""
    if ref.min is not None and ref.max is not None and not ref.min <= value <= ref.max:
        width = ref.max - ref.min
        if value < ref.min - FAR * width or value > ref.max + FAR * width:
            return True
    return _coded(value, ref)


def _coded(value: float, ref: ColumnProfile) -> bool:
    """Written as a code: whole, zero or negative or all nines (-1, -999, 9999), and not a
    reading the reference holds often."""
    if value != round(value) or _common(value, ref):
        return False  # a value the reference holds often is a reading, not a fill value
    return value <= 0 or set(str(int(abs(value)))) == {"9"}


def _common(value: float, ref: ColumnProfile) -> bool:
    """Whether the reference may hold ``value`` in ``NATURAL_SHARE`` of its rows or more: one
    of its kept modes that common, or a value inside its range while even its rarest kept mode
    is that common (rounded readings with many frequent levels). Never outside its range."""
    if ref.modes is None or ref.min is None or not ref.min <= value <= ref.max:
        return False
    share = ref.mode_share(value)
    return share is not None and share >= NATURAL_SHARE


def _bin(ref: ColumnProfile, value: float) -> int:
    """The index of the reference's histogram bin holding ``value`` (0 and the last: beyond
    its range)."""
    return int(np.argmax(histogram(np.array([value]), np.asarray(ref.edges))))


def _bin_share(ref: ColumnProfile, value: float) -> float:
    """The reference's share of the histogram bin holding ``value`` (an upper bound of the
    reference's share of that single value)."""
    if not ref.hist or not ref.values:
        return 0.0
    return ref.hist[_bin(ref, value)] / ref.values


def _crowded(value: float, count: int, ref: ColumnProfile, cur: ColumnProfile) -> bool:
    """Whether the batch's rows other than the ``count`` at ``value`` crowd the reference bin
    that holds it too (3 times the reference's share and 5 points more, as a new value must): a
    fill value stands alone among readings distributed as before."""
    if not ref.hist or not cur.hist or not ref.values or len(cur.hist) != len(ref.hist):
        return False
    index, others = _bin(ref, value), cur.values - count
    if others <= 0 or index in (0, len(ref.hist) - 1):  # beyond the range a value stands alone
        return False
    return (cur.hist[index] - count) / others >= 3 * ref.hist[index] / ref.values + 0.05


def _came_alive(name: str, ref: ColumnProfile, cur: ColumnProfile) -> Alarm | None:
    if not (ref.values and cur.values) or ref.min != ref.max or cur.min == cur.max:
        return None
    other = (cur.hist[0] + cur.hist[-1]) if cur.hist and len(cur.hist) == 3 else cur.values
    message = (
        f"column {name!r} held one value ({_g(ref.min)}) in every reference row and now varies "
        f"in {other} of {cur.values} rows (range [{_g(cur.min)}, {_g(cur.max)}]): the producer "
        "stopped sending a fill value and started sending real values"
    )
    return _alarm(
        "upstream_change",
        "fill_ended",
        name,
        message,
        0.9,
        severity="warning",
        evidence=[{"reference_value": ref.min, "varying_rows": other, "rows": cur.values}],
        action="confirm with the data owner that the values are real; the model learnt nothing "
        "from a constant, so retrain on batches since the change",
    )


def _scale(
    name: str, ref: ColumnProfile, cur: ColumnProfile, sig: BatchSignals | None
) -> Alarm | None:
    """A power of ten between the batch's and the reference's spread (within a factor 2), with
    the mean moved by the same factor (within 1.5); called only when most of the mass left its
    reference bins (TV >= 0.5), so a heavy tail present in one side only is no unit change. A
    shrinking factor needs the batch multiplied back not to contradict the reference (KS p >=
    ``SCALE_P``): real data shrinks far more often than it grows tenfold (a sensor lying still
    has a tenth of the mean and spread it has in motion, and another shape). A scale keeps
    zeros zeros, so where the reference's share of exact zeros is known its batch share must
    not contradict it (``zeros_kept``): a dry month's rain against a wet one's grows a
    hundredfold, but most of its zeros are gone."""
    if not (ref.std and cur.std and ref.values and cur.values):
        return None
    ratio = cur.std / ref.std
    if not math.isfinite(ratio) or ratio <= 0:
        return None
    factor = 10.0 ** round(math.log10(ratio))
    if factor == 1.0 or abs(math.log(ratio / factor)) > SCALE_TOLERANCE:
        return None
    if abs(ref.mean) > 0.5 * ref.std:  # a mean near zero says nothing about the factor
        means = cur.mean / ref.mean
        if means <= 0 or abs(math.log(means / ratio)) > math.log(1.5):
            return None  # spread and level must move by the same factor
    elif factor < 1:
        return None  # a quiet stretch of a signal around zero looks the same (HAPT at rest)
    col = sig.columns.get(name) if sig else None
    if col is not None and not zeros_kept(ref, col):
        return None
    if ref.values < TEST_VALUES:
        return None  # the spread of 3 budgets says little
    grown = cur.hist[0] + cur.hist[-1] if cur.hist and len(cur.hist) >= 3 else cur.values
    if factor > 1 and outside_by_chance(ref.values, cur.values, grown) >= SCALE_P:
        return None  # a tenfold unit change leaves the range; a few famous films' votes do not
    p = None
    if factor < 1 and col is not None and col.quantiles and ref.edges and ref.hist:
        p = mapped_back_p(ref.edges, ref.hist, col.quantiles, cur.values, factor)
        if p < SCALE_P:
            return None
    shown = f"{factor:g}" if factor >= 1 else f"1/{1 / factor:g}"
    back = f"; mapped back, KS p={p:.2g}" if p is not None else ""
    message = (
        f"column {name!r} is x{shown} the reference (mean {_g(ref.mean)} -> {_g(cur.mean)}, "
        f"std {_g(ref.std)} -> {_g(cur.std)}{back}): a unit or scale change upstream"
    )
    return _alarm(
        "upstream_change",
        "scale",
        name,
        message,
        0.92,
        evidence=[{"std_ratio": ratio, "factor": factor, "mean": [ref.mean, cur.mean]}],
        fix={"scale": {name: _round_factor(1 / factor)}},
    )


def zero_share(ref: ColumnProfile) -> float | None:
    """The reference's share of exact zeros where the profile tells it: a kept mode, no zero
    in its range, or a histogram bin from 0 whose values sum to 0 (non-negative values); None
    when unknown.

    Example:
        >>> zero_share(ColumnProfile("x", "numeric", count=4, min=0.0, max=5.0,
        ...            edges=[0.0, 1.0, 5.0], hist=[0, 3, 1, 0], sums=[0.0, 0.0, 4.0, 0.0]))
        0.75
        >>> zero_share(ColumnProfile("x", "numeric", count=4, min=1.0, max=5.0))
        0.0
    """
    if not ref.values or ref.min is None or ref.max is None:
        return None
    if ref.min > 0 or ref.max < 0:
        return 0.0
    if ref.modes is not None and 0.0 in dict(ref.modes):
        return dict(ref.modes)[0.0] / ref.values
    if ref.min < 0 or not ref.edges or not ref.hist or not ref.sums:
        return None
    for j in range(1, len(ref.edges)):
        if ref.edges[j - 1] == 0.0 < ref.edges[j] and ref.sums[j] == 0.0:
            return ref.hist[j] / ref.values
    return None


def zeros_kept(ref: ColumnProfile, col: ColumnSignal) -> bool:
    """Whether the batch's exact zeros can be the reference's under a scale change (which maps
    0 to 0): its zero count is not beyond ``SCALE_P`` (two-sided binomial at the reference's
    share, smoothed by half a row) either way. The batch's zeros are its mode's count when the
    mode is 0, else at most that count. True when the reference's share is unknown.

    Example:
        >>> ref = ColumnProfile("rain", "numeric", count=61, min=0.0, max=0.3,
        ...                     modes=((0.0, 58), (0.3, 3)))
        >>> zeros_kept(ref, ColumnSignal(mode=0.0, mode_count=13, run=3, run_value=0.0, values=31))
        False
        >>> zeros_kept(ref, ColumnSignal(mode=0.0, mode_count=29, run=9, run_value=0.0, values=31))
        True
    """
    share = zero_share(ref)
    if share is None or not col.values:
        return True
    from scipy.stats import binom  # imported when a zero share is known

    rate = (share * ref.values + 0.5) / (ref.values + 1)
    low, high = (col.mode_count, col.mode_count) if col.mode == 0.0 else (0, col.mode_count)
    tail = min(float(binom.cdf(high, col.values, rate)), float(binom.sf(low - 1, col.values, rate)))
    return 2 * tail >= SCALE_P


def _affine(
    name: str, ref: ColumnProfile, cur: ColumnProfile, sig: BatchSignals | None, checks: dict
) -> Alarm | None:
    """A known unit change (Celsius to Fahrenheit, hPa to Pa, x1000, an offset) of a column
    that moved (see ``unit_rules.affine``)."""
    moved = [checks.get(k) for k in (VERDICT, "out_of_range")]
    moved = [r for r in moved if r is not None and r.alarm]
    col = sig.columns.get(name) if sig else None
    if continues(name, ref, cur, sig):
        return None  # no jump where the batch began: the level moved, the unit did not
    found = affine(name, ref, cur, col) if moved and col is not None else None
    if found is None:
        return None
    return _alarm(**{**found, "evidence": [*map(_cite, moved), *found["evidence"]]})


def _round_factor(x: float) -> float:
    return float(f"{x:.6g}")


def _point_mass(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    sig: BatchSignals | None,
    checks: dict,
) -> Alarm | None:
    """A stuck sensor (one value in a long run of consecutive rows, beyond the calibrated
    ``stuck`` check) or a new fill value (a share the reference's own share of that value
    explains with probability below ``ALPHA``, see ``unusual_share``). A value the reference
    holds in ``NATURAL_SHARE`` of its rows or more is a real reading (an instrument's maximum,
    a sensor at rest): more of it is drift, never a fill value. So is a value held in blocks of
    consecutive rows (``in_blocks``) none of which the ``stuck`` check finds too long: a
    reading carried forward until the next one came in. The batch's commonest value is read
    first, then a code (``_coded``) among the next commonest: a code for a missing reading need
    not be the commonest value (Miami's TMY2 visibility: 9999 in 32 of a week's 168 hours, the
    hours of two days observed every third hour, below the 16.1 km of clear days)."""
    col = sig.columns.get(name) if sig else None
    if col is None or col.mode is None or not cur.values or not ref.std:
        return None
    candidates = [(col.mode, col.mode_count, col.mode_runs)]
    # after it, a value written as a code and spread over two or more blocks of rows (one
    # block is a run or a step, which the stuck and burst rules read); not a value far beyond
    # the range alone: a thunderstorm's gust repeated over an hour's flights is a reading
    candidates += [c for c in col.others if c[2] >= 2 and _coded(c[0], ref)]
    for value, count, blocks in candidates:
        found = _point_mass_at(name, ref, cur, col, (value, count, blocks), checks)
        if found is not None:
            return found
    return None


def _point_mass_at(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    col: ColumnSignal,
    mass: tuple[float, int, int],
    checks: dict,
) -> Alarm | None:
    """:func:`_point_mass` of one value: ``mass`` is the value, its rows in the batch and the
    blocks of consecutive rows they form."""
    value, count, blocks = mass
    share = count / cur.values
    before = _bin_share(ref, value)
    exact = ref.mode_share(value)
    if exact is None:
        if share < 0.1 or share < 3 * before + 0.05:
            return None
    elif share < 0.1 or not unusual_share(count, cur.values, exact, ALPHA, ref.values):
        return None
    outside = (cur.hist[0] + cur.hist[-1]) if cur.hist else 0
    inside_mode = ref.min is not None and ref.min <= value <= (ref.max or 0.0)
    if outside - (0 if inside_mode else count) > 0.05 * cur.values:
        return None  # the other values moved too: not one fill value
    known = before if exact is None else exact
    evidence = [{"value": value, "rows": count, "of": cur.values, "reference_share": known}]
    contiguous = col.run_value == value and col.run >= 0.8 * count
    sentinel = _sentinel(value, ref)
    held = contiguous or (not sentinel and in_blocks(count, blocks, col.values))
    stuck = checks.get("stuck")
    if held and stuck is not None and not stuck.alarm:
        return None  # runs the reference's own repeats explain (rounded readings, a heat wave,
        # a poll carried forward between releases)
    if contiguous and not sentinel:
        message = (
            f"column {name!r} is stuck at {_g(value)} for {col.run} consecutive rows "
            f"({100 * col.run / cur.values:.0f}% of the batch; at most {100 * known:.1f}% of "
            "the reference lies near that value): a frozen sensor or a stalled feed"
        )
        evidence += [_cite(stuck)] if stuck is not None else []
        return _alarm("data_quality", "stuck", name, message, 0.9, evidence=evidence)
    if _common(value, ref):
        return None  # a common reading (a capped maximum, a sensor at rest): drift, not a fill
    if not sentinel and share < 0.5:
        return None  # a plateau of real values (a regulated price, a set point) is no fill
    if _crowded(value, count, ref, cur):
        return None  # the other rows gathered round it too: a real reading (a posture near 0)
    evidence[0]["fill_like"] = sentinel
    where = "in one stretch of consecutive rows" if blocks == 1 else "spread over the batch"
    message = (
        f"column {name!r}: {count} of {cur.values} rows ({100 * share:.0f}%) hold "
        f"{_g(value)}, {where} (at most {100 * known:.1f}% of the reference lies near that "
        "value): a new default or fill value upstream"
    )
    return _alarm(
        "upstream_change",
        "default_value",
        name,
        message,
        0.88,
        evidence=evidence,
        fix={"missing_values": {name: [value]}},
    )


def continues(
    name: str, ref: ColumnProfile, cur: ColumnProfile, sig: BatchSignals | None
) -> str | None:
    """Words for a column that goes on from the batch before in steps like its own: a level
    that moves (an exchange rate, a price, a temperature), so a range it left, or a factor
    between its quantiles and the reference's, is where the series went, not a unit change.
    Its first value lies within ``JUMP`` median steps (of consecutive values in the batch) of
    the last value of the batch before, while its mean moved further than that from the
    reference's: a unit change or an offset at the batch's start would jump by about as much
    as the mean moved. No step within the batch goes beyond ``JUMP`` median steps either (a
    glitch is one, and so is a unit change inside the batch). None where any of that fails or
    is unknown (no accepted batch before it: see ``diagnosis.loop.previous_last``).

    Example:
        >>> from retrainer.diagnosis.signals import BatchSignals, ColumnSignal
        >>> ref = ColumnProfile("rate", "numeric", count=400, min=2.1, max=2.5, mean=2.3)
        >>> cur = ColumnProfile("rate", "numeric", count=21, min=2.0, max=2.1, mean=2.06)
        >>> col = ColumnSignal(None, 0, 1, None, first=2.05, median_step=0.01, largest_step=0.04)
        >>> sig = BatchSignals(21, columns={"rate": col}, previous_last={"rate": 2.07})
        >>> continues("rate", ref, cur, sig)
        'it goes on from the batch before (last value 2.07, first 2.05; median step 0.01)'
        >>> jumped = BatchSignals(21, columns={"rate": col}, previous_last={"rate": 2.3})
        >>> continues("rate", ref, cur, jumped) is None
        True
    """
    col = sig.columns.get(name) if sig is not None else None
    last = sig.previous_last.get(name) if sig is not None else None
    if col is None or last is None or col.first is None or not col.median_step:
        return None
    if ref.mean is None or cur.mean is None:
        return None
    reach = JUMP * col.median_step
    if abs(cur.mean - ref.mean) <= reach or abs(col.first - last) > reach:
        return None  # no telling a jump from a step, or it jumped
    if (col.largest_step or 0.0) > reach:
        return None  # a jump inside the batch
    return (
        f"it goes on from the batch before (last value {_g(last)}, first {_g(col.first)}; "
        f"median step {_g(col.median_step)})"
    )


def _far_burst(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    checks: dict,
    small: bool = False,
    sig: BatchSignals | None = None,
) -> Alarm | None:
    """A few impossible values (``FAR_COUNT`` or more, under a tenth of the batch, ``FAR``
    reference widths beyond its range): caught in any batch size, before rules that read the
    spread (which a few wild values inflate). ``small``: up to a fifth of a batch too small for
    the share rule (:func:`_out_of_range`: 30 values inside the range; 3-5 of 30 rows) whose
    column did not move as a whole (no drift below ``DRIFT_P``), asked after the unit rules (a
    unit change the rules cannot name moves the column and leaves a few values far out)."""
    r = checks.get("out_of_range")
    far = _far_count(r, cur)
    inside = sum(cur.hist[1:-1]) if cur.hist and len(cur.hist) >= 3 else cur.values
    calm = small and inside < SHARE_RULE_ROWS and _drift(name, checks) is None
    ceiling = 0.2 if calm else 0.1
    if r is None or not r.alarm or far < FAR_COUNT or far >= ceiling * cur.values:
        return None
    if continues(name, ref, cur, sig):
        return None  # the level went there, step by step: no value stands apart
    message = (
        f"column {name!r}: {far} of {cur.values} values lie {FAR:g} reference widths or "
        f"more beyond the reference range [{_g(ref.min)}, {_g(ref.max)}] (batch "
        f"[{_g(cur.min)}, {_g(cur.max)}]): impossible values, an instrument or transfer fault"
    )
    evidence = [_cite(r), {"far": far, "rows": cur.values}]
    return _alarm("data_quality", "out_of_range_burst", name, message, 0.9, evidence=evidence)


def outside_by_chance(n: int, m: int, outside: int) -> float:
    """The chance that ``outside`` or more of ``m`` batch values lie outside the range of ``n``
    reference values drawn from the same distribution (any continuous one: each interleaving of
    the two samples is equally likely; ``outside`` of them in the two outer gaps). A moved
    column is claimed only when this is small: 1 budget beyond the range of 3 happens half the
    time, 400 film lengths beyond the range of 200 never.

    Example:
        >>> round(outside_by_chance(3, 1, 1), 3), outside_by_chance(200, 400, 400) < 1e-100
        (0.5, True)
    """
    if n < 2 or outside <= 0:
        return 1.0
    from scipy.special import gammaln, logsumexp  # imported when a column moved out

    def log_comb(a, b):
        return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)

    j = np.arange(outside, m + 1)
    terms = np.log(j + 1) + log_comb(m - j + n - 2, n - 2) - log_comb(n + m, m)
    return float(min(1.0, np.exp(logsumexp(terms))))


def _far_count(r: CheckResult | None, cur: ColumnProfile) -> int:
    """Values ``FAR`` reference widths beyond the range: the out-of-range check's count (against
    the champion's reference), else the batch profile's."""
    return int((r.detail.get("far") if r is not None else 0) or cur.far)


def _out_of_range(
    name: str, ref: ColumnProfile, cur: ColumnProfile, checks: dict, sig: BatchSignals | None
) -> Alarm | None:
    """Values outside the range: the check alarms against the contract's range, the share
    that counts is the one outside the champion's reference (its histogram's open outer bins),
    so a contract inferred from an old batch does not keep firing once the model saw the new
    range. A burst of glitches stands apart from the range: most of the values beyond it lie
    ``FAR`` reference widths out. Values that continue the range's tail (a week of price
    spikes, most just beyond a calm month's maximum, a few far) are drift, and do not block."""
    r = checks.get("out_of_range")
    if r is None or not r.alarm or not cur.hist or not ref.hist or len(cur.hist) < 3:
        return None
    share = (cur.hist[0] + cur.hist[-1]) / cur.values if cur.values else 0.0
    if share <= 0.05:
        return None
    inner_cur, inner_ref = cur.hist[1:-1], ref.hist[1:-1]
    low, high = ref.min, ref.max
    outside = cur.hist[0] + cur.hist[-1]
    if share >= 0.9 and outside_by_chance(ref.values, cur.values, outside) >= SCALE_P:
        return None  # a range of a few values says little (3 budgets of early films)
    if share >= 0.9:
        # a column whose batches move as a whole (a day's weather) is judged by its batches:
        # within them it is no finding; beyond them a warning, and an error only far beyond
        # (weather's tails are heavy: a cold snap lies 4 of the days' spreads out)
        moves = mean_p(ref, cur.mean, r.detail.get("batches_since"))
        if moves is not None and moves >= SCALE_P:
            return None
        message = (
            f"column {name!r}: {100 * share:.0f}% of the values lie outside the reference range "
            f"[{_g(low)}, {_g(high)}] (batch [{_g(cur.min)}, {_g(cur.max)}]) and no "
            "simple factor maps them back: an offset or unit change upstream"
        )
        weather = moves is not None and moves >= BATCH_BLOCK_P
        going_on = continues(name, ref, cur, sig)
        if weather:
            message += (
                f"? The reference's batches move as a whole and this one lies beyond them "
                f"(p={moves:.2g}, not below {BATCH_BLOCK_P:g}): a warning, as weather would be"
            )
        elif going_on:
            message += f"? No: {going_on}, a level that moved, as a rate or a price does: a warning"
        severity = "warning" if weather or going_on else "error"
        evidence = [_cite(r)] + ([{"batches_p": moves}] if moves is not None else [])
        return _alarm(
            "upstream_change", "moved_out", name, message, 0.7, severity=severity, evidence=evidence
        )
    far = _far_count(r, cur)
    if share >= 0.5 or sum(inner_cur) < SHARE_RULE_ROWS or far < 0.5 * outside:
        return None  # values that continue the range's tail (most of them near it) are drift
    if _a_step_of_its_batches(ref, cur, r.detail.get("batches_since")):
        return None
    from retrainer.checks.drift import ks_from_histograms  # SciPy: imported when used

    d, p = ks_from_histograms(inner_ref, inner_cur)
    if p < 0.01:
        return None
    message = (
        f"column {name!r}: a burst of {100 * share:.1f}% values outside the reference range "
        f"[{_g(low)}, {_g(high)}] ({far} of {outside} {FAR:g} reference widths or more beyond "
        f"it; batch [{_g(cur.min)}, {_g(cur.max)}]) while the "
        f"values inside it are unchanged (KS D={d:.3f}, p={p:.2g}): glitches or wild values"
    )
    evidence = [_cite(r), {"inner_ks": d, "inner_p": p}]
    return _alarm("data_quality", "out_of_range_burst", name, message, 0.85, evidence=evidence)


def _a_step_of_its_batches(ref: ColumnProfile, cur: ColumnProfile, since: int | None) -> bool:
    """Whether the values beyond the range lie where the reference's batches step: a column
    whose batches differ as a whole (a setting, a monthly figure) takes a new level at some row,
    and the rows from there on leave a range its rows alone drew. Each side they leave is read
    at the batch's extreme as a batch's level (``mean_p``); within what the reference's batches
    do it is a step, as a whole batch there would be, not glitches. A TMY3 station's albedo is
    one figure a month: 0.11-0.12 for six weeks, 0.14 from 1 September, in 48 of a week's 168
    rows, was "a burst of glitches" and quarantined the week, while the week after (168 rows at
    0.14) passed.

    Example:
        >>> from retrainer.profile import ColumnProfile
        >>> weeks = tuple((168, 0, m, 0.0) for m in (0.12, 0.12, 0.1129, 0.11, 0.11, 0.11))
        >>> ref = ColumnProfile("albedo", "numeric", count=1008, batch_moments=weeks)
        >>> def batch(high):
        ...     return ColumnProfile("albedo", "numeric", min=0.11, max=high, hist=[0, 120, 48])
        >>> [_a_step_of_its_batches(ref, batch(high), None) for high in (0.14, 1.4)]
        [True, False]
    """
    ends = ([cur.min] if cur.hist[0] else []) + ([cur.max] if cur.hist[-1] else [])
    chances = [mean_p(ref, end, since) for end in ends]
    return bool(chances) and all(p is not None and p >= SCALE_P for p in chances)


# ----------------------------------------------------------------------- categorical rules
def _shares(col: ColumnProfile) -> dict[str, float]:
    counts = {k: v for k, v in (col.categories or {}).items() if k != OTHER}
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def _tv(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _norm(code: str) -> str:
    text = code.strip().lower()
    return text.lstrip("0") or "0" if text.isdigit() else text


def _recode(
    name: str, ref: ColumnProfile, cur: ColumnProfile, since: int | None = None
) -> Alarm | None:
    """Swapped or re-coded category codes: the shares are the reference's under other codes.

    The codes are read from the shares, so they must explain most of the change (the distance
    to the reference at least halved) as well as fit: two near-even categories whose shares
    moved partway (a league's 39 % of players becoming 51 %) are closer swapped, not swapped.
    Nor is a change the reference's own batches were making (``since``: how many batches after
    the reference's newest this one is)."""
    p, q = _shares(ref), _shares(cur)
    if not p or not q or ref.id_like or ref.values < TEST_VALUES:
        return None  # 9 rating codes of early films are no shares to re-code
    before = _tv(p, q)
    n = max(cur.values, 1)

    def tol(k: str) -> float:  # three standard errors of a share, plus half a point
        share = p.get(k, q.get(k, 0.0))
        return 3 * math.sqrt(share * (1 - share) / n) + 0.005

    if before < 0.05:
        return None
    lost = [k for k in p if q.get(k, 0.0) < p[k] - tol(k)]
    gained = [k for k in q if q[k] > p.get(k, 0.0) + tol(k)]
    mapping: dict[str, str] = {}
    by_norm = {_norm(k): k for k in lost}
    for k in gained:
        if k not in p and _norm(k) in by_norm:
            mapping[k] = by_norm.pop(_norm(k))
    rest = sorted({*lost, *gained} - set(mapping) - set(mapping.values()))
    ref_order = sorted(rest, key=lambda k: -p.get(k, 0.0))
    cur_order = sorted(rest, key=lambda k: -q.get(k, 0.0))
    mapping |= {c: r for c, r in zip(cur_order, ref_order, strict=True) if q.get(c, 0.0) > 0}
    mapping = {c: r for c, r in mapping.items() if c != r}
    if not mapping:
        return None
    mapped: dict[str, float] = {}
    for k, v in q.items():
        mapped[mapping.get(k, k)] = mapped.get(mapping.get(k, k), 0.0) + v
    after = _tv(p, mapped)
    if after > before / 2:
        return None  # codes read from the shares must explain most of the change, not some
    reference_counts = {k: v for k, v in (ref.categories or {}).items() if k != OTHER}
    p_before = _homogeneity(reference_counts, {k: v * n for k, v in q.items()})
    p_after = _homogeneity(reference_counts, {k: v * n for k, v in mapped.items()})
    if p_before >= DRIFT_P or p_after < 0.01:
        return None  # under the mapping the batch must be consistent with the reference
    if _shares_carry_on(ref, q, {*mapping, *mapping.values()}, since):
        return None
    targets = sorted(set(mapping.values()), key=lambda k: -p.get(k, 0.0))
    ambiguous = any(p.get(a, 0.0) - p.get(b, 0.0) < tol(a) for a, b in pairwise(targets))
    kind = "swapped" if set(mapping) == set(mapping.values()) else "re-coded"
    shown = ", ".join(f"{c!r} -> {r!r}" for c, r in sorted(mapping.items()))
    message = (
        f"column {name!r}: categories are {kind} ({shown}): under that mapping the batch's "
        f"shares are consistent with the reference's (total variation {before:.3f} -> "
        f"{after:.3f}, chi-square p {p_before:.2g} -> {p_after:.2g}; the mapping was read from "
        "the shares, so the second p-value is optimistic)"
    )
    return _alarm(
        "upstream_change",
        "recode",
        name,
        message,
        0.75 if ambiguous else 0.9,
        evidence=[
            {
                "mapping": mapping,
                "kind": kind,
                "known_codes": all(p.get(k, 0.0) > 0 for k in mapping),
                "tv": [before, after],
                "p_value": [p_before, p_after],
            }
        ],
        fix=None if ambiguous else {"recode": {name: mapping}},
    )


def _shares_carry_on(
    ref: ColumnProfile, shares: Mapping[str, float], categories: set[str], since: int | None
) -> bool:
    """Whether the batch's share of each of ``categories`` is what the reference's batches'
    shares predict (:func:`batches_p` on each category's share per batch, a Bernoulli's spread
    within): a share that climbs batch by batch crosses the reference's mirror image and reads
    as a swap. A panel's men marry as they age (29, 36, 45 and 50 % married in the reference's
    years, 54 % the next) and 'yes' and 'no' were "swapped". Where the batches' shares agree,
    nothing but the shares speaks, and the swap stands; with few batches that moved a lot, no
    share is beyond them.

    Example:
        >>> years = [{"no": 388, "yes": 157}, {"no": 350, "yes": 195},
        ...          {"no": 301, "yes": 244}, {"no": 272, "yes": 273}]
        >>> ref = ColumnProfile("married", "categorical", count=2180, batch_counts=tuple(years))
        >>> _shares_carry_on(ref, {"no": 0.459, "yes": 0.541}, {"no", "yes"}, since=1)
        True
        >>> steady = ColumnProfile("sex", "categorical", count=2180,
        ...                        batch_counts=({"F": 262, "M": 283}, {"F": 265, "M": 280}) * 2)
        >>> _shares_carry_on(steady, {"F": 0.52, "M": 0.48}, {"F", "M"}, since=1)  # swapped
        False
    """
    batches = [c for c in ref.counts_by_batch if sum(c.values())]
    if len(batches) < 2:
        return False
    for k in categories:
        levels = [(sum(c.values()), c.get(k, 0) / sum(c.values())) for c in batches]
        moments = [(rows, p, math.sqrt(p * (1 - p))) for rows, p in levels]
        chance = batches_p(moments, shares.get(k, 0.0), since)
        if chance is None or chance < SCALE_P:
            return False
    return True


def _homogeneity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """P-value of Pearson's chi-square test that two count dicts share one distribution."""
    keys = sorted(set(a) | set(b))
    table = np.array([[a.get(k, 0.0) for k in keys], [b.get(k, 0.0) for k in keys]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    from scipy import stats  # here: `retrainer explain` should not wait for SciPy

    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _repeated(name: str, ref: ColumnProfile, checks: dict) -> Alarm | None:
    """The quality checks' ``constant`` or ``stuck`` result, when no row signals were given."""
    r = checks.get("constant") if checks.get("constant") else checks.get("stuck")
    if r is None or not r.alarm:
        return None
    value = r.detail.get("value")
    if r.name == "constant" and value is not None and _sentinel(float(value), ref):
        message = f"{r.message}: the value looks like a fill value, a new default upstream"
        fix = {"missing_values": {name: [value]}}
        return _alarm(
            "upstream_change", "default_value", name, message, 0.85, evidence=[_cite(r)], fix=fix
        )
    return _alarm("data_quality", "stuck", name, r.message, 0.85, evidence=[_cite(r)])


def _unseen(name: str, ref: ColumnProfile, checks: dict) -> Alarm | None:
    r = checks.get("unseen_category")
    if r is None or not r.alarm or (r.statistic or 0.0) < 0.02:
        return None
    share = float(r.statistic)
    shown = list(r.detail.get("unseen", []))
    fills = [v for v in shown if str(v).strip().lower() in SENTINEL_WORDS]
    if fills:
        message = (
            f"column {name!r}: {100 * share:.1f}% of the values are unseen, among them "
            f"fill values {fills}: a new default value upstream"
        )
        return _alarm(
            "upstream_change",
            "default_value",
            name,
            message,
            0.85,
            evidence=[_cite(r)],
            fix={"missing_values": {name: fills}},
        )
    if ref.values < TEST_VALUES:
        return None  # 16 codes do not tell which codes exist (1 film of 3 rated NC-17)
    churn, gap = r.detail.get("reference_new") or 0.0, max(1, r.detail.get("batches_since") or 1)
    churn = 1 - (1 - churn) ** gap  # a batch k after the reference: k batches' new members
    usual = max(churn, r.detail.get("reference_unseen") or 0.0)
    if usual and not _beyond_usual(int(r.detail["count"]), r.detail["values"], usual):
        return None  # members come and go, rare ones go unseen: as the reference's batches did
    message = (
        f"column {name!r}: {100 * share:.1f}% of the values are categories the model never saw, "
        f"e.g. {shown[:5]}: new codes upstream"
    )
    severity = "error" if share >= 0.1 else "warning"
    return _alarm(
        "upstream_change",
        "new_categories",
        name,
        message,
        0.7,
        severity=severity,
        evidence=[_cite(r)],
    )


def _beyond_usual(count: int, values: int, usual: float) -> bool:
    """Whether ``count`` of ``values`` in unseen categories is more than a batch bringing
    ``usual`` of its values new makes plausible (binomial, ``SCALE_P``). ``usual``: the most
    one of the reference's batches brought (a column whose members come and go, such as clubs,
    stores or products, brings new ones every batch), compounded over the batches since the
    reference's newest, or Good-Turing's share of new values (rare categories go unseen in a
    small reference)."""
    from scipy import stats  # here: `retrainer explain` should not wait for SciPy

    return bool(stats.binom.sf(count - 1, values, min(max(usual, 1e-9), 1.0)) < SCALE_P)


# ---------------------------------------------------------------------------- the engine
def _schema(
    name: str,
    checks: dict,
    signals: BatchSignals | None = None,
    ref: ColumnProfile | None = None,
) -> Alarm | None:
    r = checks.get("missing_column")
    if r is not None and r.alarm:
        new = r.detail.get("renamed_to")
        if new:
            message = (
                f"column {name!r} is missing and {new!r} arrived with the same statistics: "
                "renamed upstream"
            )
            fix = {"rename": {new: name}}
            return _alarm(
                "upstream_change", "rename", name, message, 0.95, evidence=[_cite(r)], fix=fix
            )
        message = f"column {name!r} is missing from the batch: dropped upstream"
        return _alarm("upstream_change", "missing_column", name, message, 0.9, evidence=[_cite(r)])
    r = checks.get("type_change")
    if r is not None and r.alarm:
        found = retyped(name, r, signals.columns.get(name) if signals else None, ref)
        return _alarm(**{**found, "evidence": [_cite(r), *found["evidence"]]})
    return None


def _others(name: str | None, checks: dict) -> list[Alarm]:
    """Quality alarms no rule reads (row counts, timestamps, checks added later)."""
    return [
        _alarm(
            "data_quality", r.name, name, r.message, 0.6, severity=r.severity, evidence=[_cite(r)]
        )
        for key, r in checks.items()
        if key != VERDICT and r.kind == "quality" and r.alarm and r.name not in HANDLED
    ]


def _additive(name: str, checks: dict) -> list[Alarm]:
    out = []
    r = checks.get("null_rate")
    if r is not None and r.alarm:
        out.append(_alarm("data_quality", "nulls", name, r.message, 0.9, evidence=[_cite(r)]))
    r = checks.get("non_finite")
    if r is not None and r.alarm:
        out.append(_alarm("data_quality", "non_finite", name, r.message, 0.9, evidence=[_cite(r)]))
    return out


def _drift(name: str, checks: dict) -> Alarm | None:
    """Covariate drift from the column's drift verdict: a p-value test below ``DRIFT_P`` and
    below ``BATCH_P`` over the columns tested (the diagnosis asks for more than the check's
    alpha: per-batch false alarms add up), or a distance test (large batches) above its
    threshold."""
    r = checks.get(VERDICT)
    if r is None or not r.alarm:
        return None
    level = min(DRIFT_P, BATCH_P / max(1, int(r.detail.get("tests", 1))))
    if r.p_value is not None and r.p_value >= level:
        return None
    size, visible = r.detail.get("effect_size"), r.detail.get("min_detectable_effect")
    if size is not None and visible is not None and size < visible:
        return None  # significant on the bins, but smaller than this batch size can resolve
    effect = float(r.detail.get("psi", 0.0))
    confidence = min(COVARIATE_MAX, 0.5 + 0.3 * min(1.0, effect / 0.5))
    return _alarm(
        "covariate_drift",
        "drift",
        name,
        r.message,
        confidence,
        severity="warning",
        evidence=[_cite(r)],
    )


def _column_shift(ref: ColumnProfile | None, cur: ColumnProfile | None) -> float:
    """Total-variation distance of one column's histogram or category shares (0..1)."""
    if ref is None or cur is None or ref.missing or cur.missing or ref.kind != cur.kind:
        return 0.0
    if ref.kind == "categorical":
        return 0.0 if ref.id_like else _tv(_shares(ref), _shares(cur))
    if not ref.hist or not cur.hist or ref.edges != cur.edges or not sum(ref.hist):
        return 0.0
    a = np.asarray(ref.hist, float) / sum(ref.hist)
    b = np.asarray(cur.hist, float) / max(sum(cur.hist), 1)
    return float(0.5 * np.abs(a - b).sum()) if sum(cur.hist) else 0.0


def _batch_alarms(sig: BatchSignals, reference: BatchProfile | None) -> list[Alarm]:
    out = []
    share = sig.duplicates / sig.n_rows if sig.n_rows else 0.0
    if share >= 0.05 and _redelivered(sig, reference):
        on = "the same key" if sig.keyed else "identical values in every column"
        message = (
            f"{sig.duplicates} of {sig.n_rows} rows ({100 * share:.0f}%) repeat an earlier row "
            f"({on}): a re-delivered or double-written batch"
        )
        evidence = [{"duplicates": sig.duplicates, "rows": sig.n_rows, "keyed": sig.keyed}]
        out.append(_alarm("data_quality", "duplicates", None, message, 0.9, evidence=evidence))
    share = sig.truncated_share
    if sig.expected_rows and sig.n_rows < share * sig.expected_rows:
        varied = (
            f" (fewer than {share:.2f} of them, which this project's batch sizes vary to in "
            f"fewer than 1 batch in {1 / SIZE_ALPHA:,.0f})"
            if share < MOST_SHARE
            else ""
        )
        message = (
            f"the batch has {sig.n_rows} rows where about {sig.expected_rows:.0f} are usual"
            f"{varied}: truncated in transfer or export, or a period not yet over (a backlog's "
            "newest file often is one)"
        )
        confidence = 0.9 if sig.n_rows < share / 2 * sig.expected_rows else 0.75
        evidence = [{"rows": sig.n_rows, "expected": sig.expected_rows, "share": share}]
        out.append(
            _alarm("data_quality", "truncated", None, message, confidence, evidence=evidence)
        )
    return out


def _redelivered(sig: BatchSignals, reference: BatchProfile | None) -> bool:
    """Whether a batch's repeated rows (5 % of it or more) say that rows were sent again.

    With a key, they do. Without one, rows also repeat by chance (a table of few distinct rows)
    and readings are held (a row like the one before, as the reference's own rows are): only a
    stretch of rows sent again in the same order (``resent``: 5 % of the batch, 3 rows at
    least: a reading may flip back once), rows like the one before more often than the
    reference's (binomial, ``ALPHA``) or other repeats beyond the reference's chance of two
    equal rows (Poisson, ``ALPHA``) say so.
    Against a reference profile stored before rows were compared, every repeat does."""
    known = reference is not None and None not in (reference.repeat_rate, reference.pair_rate)
    if sig.keyed or not known or sig.n_rows < 2:
        return True
    n = sig.n_rows
    if sig.resent >= max(3, 0.05 * n):
        return True
    if sig.repeats >= 0.05 * n and unusual_share(sig.repeats, n - 1, reference.repeat_rate):
        return True
    other = sig.duplicates - sig.repeats
    if other < 0.05 * n:
        return False
    from scipy import stats  # here: `retrainer explain` reads diagnoses without SciPy

    chance = reference.pair_rate * n * (n - 1) / 2
    return float(stats.poisson.sf(other - 1, chance)) < ALPHA


def _without_profiles(name: str | None, checks: dict[str, CheckResult]) -> list[Alarm]:
    """Causes for the failed checks of one column when no profiles are given."""
    found = _schema(name, checks) if name is not None else None
    alarms = [found] if found is not None else []
    alarms += _additive(name, checks)
    done = {"missing_column", "type_change", "null_rate", "non_finite", "dataset_drift"}
    alarms += [a for a in [_drift(name, checks)] if a is not None]
    for key, r in checks.items():
        if not r.alarm or r.name in done or key == VERDICT or r.kind == "drift":
            continue
        if r.kind in ("concept", "performance"):
            alarms.append(
                _alarm("changed_relation", r.name, name, r.message, 0.6, severity="warning")
            )
        elif r.kind == "quality":
            cause = "upstream_change" if r.name == "extra_column" else "data_quality"
            alarms.append(
                _alarm(
                    cause, r.name, name, r.message, 0.6, severity=r.severity, evidence=[_cite(r)]
                )
            )
    return alarms


def diagnose_batch(
    results: Sequence[CheckResult],
    reference: BatchProfile | None = None,
    current: BatchProfile | None = None,
    signals: BatchSignals | None = None,
) -> Diagnosis:
    """Diagnose one batch from its check results, its profile against the reference, and its
    row-level signals.

    Parameters:
        results: quality and drift results of the batch (``check_quality``, ``check_drift``).
        reference: the champion's reference profile; without it only the results are read.
        current: the batch's profile on the reference's edges.
        signals: row-level signals (``batch_signals``) for stuck sensors, fill values,
            duplicated rows and truncated batches.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from retrainer.checks.quality import check_quality
        >>> from retrainer.checks.drift import check_drift
        >>> from retrainer.data.schema import Schema
        >>> rng = np.random.default_rng(1)
        >>> ref = pd.DataFrame({"x": rng.gamma(2.0, size=2000), "y": rng.normal(size=2000)})
        >>> schema = Schema.infer(ref)
        >>> reference = BatchProfile.from_frame(ref, schema)
        >>> batch = ref.sample(500, random_state=2).assign(x=lambda d: d.x * 1000)
        >>> current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
        >>> results = check_quality(reference, current, schema) + check_drift(reference, current)
        >>> d = diagnose_batch(results, reference, current)
        >>> d.top, d.alarms[0].check, d.fix
        ('upstream_change', 'scale', {'scale': {'x': 0.001}})
    """
    by_column: dict[str | None, dict[str, CheckResult]] = {}
    for r in results:
        checks = by_column.setdefault(r.column, {})
        checks[r.name] = r
        if r.kind == "drift" and r.name != "dataset_drift" and r.column is not None:
            checks.setdefault(VERDICT, r)
    alarms: list[Alarm] = []
    renamed_to = set()
    shift = 0.0
    if reference is None or current is None:
        for name, checks in by_column.items():
            alarms += _without_profiles(name, checks)
        renamed_to = {r.detail.get("renamed_to") for r in results if r.name == "missing_column"}
    else:
        for name, ref in reference.columns.items():
            checks = by_column.get(name, {})
            cur = current.columns.get(name)
            if VERDICT in checks and checks[VERDICT].alarm:
                shift = max(shift, _column_shift(ref, cur))
            found = _schema(name, checks, signals, ref)
            if found is None and cur is not None and not cur.missing:
                found = _values(name, ref, cur, checks, signals)
            alarms += [found] if found is not None else []
            if found is None or found.check not in ("rename", "missing_column", "retyped"):
                alarms += _additive(name, checks)
            alarms += _others(name, checks)
            if found is not None and found.check == "rename":
                renamed_to |= set(found.fix["rename"])
        for r in results:
            if r.name == "extra_column" and r.alarm and r.column not in renamed_to:
                message = f"{r.message}: a new column upstream (not used by the model)"
                alarms.append(
                    _alarm(
                        "upstream_change",
                        "extra_column",
                        r.column,
                        message,
                        0.5,
                        severity="warning",
                        evidence=[_cite(r)],
                        action="map it if it replaces a known column; otherwise nothing to do",
                    )
                )
        alarms += _others(None, by_column.get(None, {}))
    if signals is not None:
        alarms += _batch_alarms(signals, reference)
    alarms = [a for a in alarms if not (a.check == "extra_column" and a.column in renamed_to)]
    return rank(_selected_rows(alarms, by_column), shift)


def _selected_rows(alarms: list[Alarm], by_column: dict) -> list[Alarm]:
    """Three readings of one column stand only while no other column drifted, because rows
    selected differently move a column too: codes re-coded among codes the reference holds
    (older people move a category's shares, and its codes sorted by share pair up as if
    swapped; with no children in a batch, military service's "not asked" vanishes as if
    renamed), a plateau that is no fill-like value (half a batch at a real reading, 0.500526,
    in weeks when the grid held its transfer there), and a unit change a change of level could
    mimic (a pure factor near 1, kilometres to miles: a week of low demand while every price
    moved). Such an alarm becomes the column's drift alarm, if any."""
    moved = {a.column for a in alarms if a.cause == "covariate_drift"}
    out = []
    for a in alarms:
        shares = a.check == "recode" and a.evidence[0].get("known_codes")
        plateau = a.check == "default_value" and a.evidence[0].get("fill_like") is False
        level = a.check in ("scale", "affine") and any(e.get("level_like") for e in a.evidence)
        if (shares or plateau or level) and moved - {a.column}:
            a = _drift(a.column, by_column.get(a.column, {}))
        out += [a] if a is not None else []
    return out


def _jumped(name: str, ref: ColumnProfile, cur: ColumnProfile, sig: BatchSignals | None) -> bool:
    """Most of the mass left its reference bins (TV >= 0.5), and not step by step from the
    batch before (:func:`continues`): what a unit change looks like."""
    return _column_shift(ref, cur) >= 0.5 and not continues(name, ref, cur, sig)


def _values(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    checks: dict,
    signals: BatchSignals | None,
) -> Alarm | None:
    if ref.kind == "numeric":
        for rule in (
            lambda: _came_alive(name, ref, cur),
            lambda: _far_burst(name, ref, cur, checks, sig=signals),
            lambda: _point_mass(name, ref, cur, signals, checks),
            lambda: _affine(name, ref, cur, signals, checks),
            lambda: _scale(name, ref, cur, signals) if _jumped(name, ref, cur, signals) else None,
            lambda: _far_burst(name, ref, cur, checks, small=True, sig=signals),
            lambda: _repeated(name, ref, checks),
            lambda: _out_of_range(name, ref, cur, checks, signals),
        ):
            found = rule()
            if found is not None:
                return found
    elif ref.kind == "categorical":
        unseen = checks.get("unseen_category")
        since = unseen.detail.get("batches_since") if unseen is not None else None
        found = _recode(name, ref, cur, since) or _unseen(name, ref, checks)
        if found is not None:
            return found
    return _drift(name, checks)


def diagnose(
    results: Sequence[CheckResult],
    reference: BatchProfile | None = None,
    current: BatchProfile | None = None,
    signals: BatchSignals | None = None,
) -> list[Alarm]:
    """The alarms of :func:`diagnose_batch`, first cause first."""
    return list(diagnose_batch(results, reference, current, signals).alarms)


def relation_alarm(
    error: float,
    n: int,
    expected: float,
    n_expected: int,
    *,
    shift: float = 0.0,
    detector: bool = False,
    metric: str = "error",
    sequential: Finding | None = None,
) -> Alarm | None:
    """A ``changed_relation`` alarm when the error rose more than the inputs' shift explains.

    Under covariate drift alone the error on the new inputs differs from the old by at most
    the total-variation distance of the two input distributions, so a rise above ``shift``
    (the largest distance among the columns a drift test flagged, a lower bound of the joint
    one) plus noise points to a changed relation. The rise is significant when a one-sided
    two-proportion z-test on these rows gives p < 0.001, or when the ``sequential`` test
    accumulated over batches (``retrainer.checks.concept.sequential``, at most one false alarm
    per 200 batches) fired; its rows then make the evidence. The error-stream ``detector``
    (DDM) is named when it fired, but does not make a changed relation on its own: it has no
    stated false-alarm rate, and on 30-row batches it fired on rises of p = 0.3 (the concept
    trigger acts on it, when the policy lists one).

    Parameters:
        error: the champion's error rate on the newly labelled rows.
        n: how many labelled rows.
        expected: its error rate on its own holdout.
        n_expected: holdout size.
        shift: the input shift of the labelled batches (0 when no drift test alarmed).
        detector: whether the error-stream detector signalled drift.
        metric: the metric's name, for the message.
        sequential: the accumulated test's finding, if one ran.

    Example:
        >>> relation_alarm(0.45, 336, 0.2, 300).cause
        'changed_relation'
        >>> relation_alarm(0.22, 336, 0.2, 300) is None
        True
        >>> relation_alarm(0.4, 30, 0.2, 300) is None  # one small batch: not significant alone
        True
        >>> relation_alarm(0.27, 30, 0.23, 270, detector=True) is None  # DDM alone: not enough
        True
        >>> from retrainer.checks.concept.sequential import error_rise
        >>> found = error_rise([(30, 13), (30, 14)], 0.23)
        >>> alarm = relation_alarm(0.45, 30, 0.2, 300, sequential=found)
        >>> alarm.cause, "the inputs did not move" in alarm.message
        ('changed_relation', True)
    """
    fired = sequential is not None and sequential.fired
    if fired:
        error, n = sequential.rate, sequential.n
    rise = error - expected
    if n <= 0 or n_expected <= 0 or rise < RELATION_MIN_RISE:
        return None
    pooled = (error * n + expected * n_expected) / (n + n_expected)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / n_expected))
    from scipy import stats

    p = float(stats.norm.sf(rise / se))
    if p >= RELATION_P and not fired:
        return None
    unexplained = rise - shift - 2 * se
    confidence = 0.6 + 0.3 * min(1.0, unexplained / 0.1) if unexplained > 0 else 0.4
    if shift <= 0:
        how = "the inputs did not move (no drift test alarmed on these batches)"
    elif unexplained > 0:
        how = f"the inputs moved less than that (largest drifted-column shift {shift:.3f})"
    else:
        how = (
            f"the inputs moved too (largest drifted-column shift {shift:.3f}), which may explain it"
        )
    tests = [f"p={p:.2g}"] + ["detector fired"] * detector
    tests += [f"sequential test: {sequential.sentence()}"] if fired else []
    message = (
        f"the champion's {metric} error rose from {expected:.3f} (its holdout, n={n_expected}) "
        f"to {error:.3f} on {n} labelled rows ({'; '.join(tests)}) while {how}: the same "
        "inputs now get other labels"
    )
    evidence = [{"error": error, "n": n, "expected": expected, "p_value": p, "shift": shift}]
    if sequential is not None:
        evidence[0]["sequential"] = sequential.to_dict()
    return _alarm(
        "changed_relation",
        "error_rise",
        None,
        message,
        max(0.0, min(0.9, confidence)),
        severity="warning",
        evidence=evidence,
    )


def with_relation(diagnosis: Diagnosis, alarm: Alarm | None) -> Diagnosis:
    """The diagnosis with a changed-relation alarm added and the causes re-ranked."""
    if alarm is None:
        return diagnosis
    return replace(rank([*diagnosis.alarms, alarm], diagnosis.shift), fix=diagnosis.fix)
