"""Data-quality checks of a batch profile against the reference profile and the schema.

Checks, one result per (check, column) that ran:

- ``missing_column`` (error): a schema column is absent; a probable rename (an extra column of
  the same kind with the same statistics) is named in the message.
- ``extra_column`` (warning): a column outside the schema.
- ``type_change`` (error): values that cannot be read as the column's kind.
- ``null_rate`` (error): the null share rose by more than ``max_null_increase`` (absolute)
  above the reference's, or above the most nulls one of the reference's batches had; where
  those batches' shares differ beyond chance, above what one of them exceeds with chance
  ``ALPHA`` too (``batch_level.null_limit``), unless the column is gone: null in every row
  where every reference batch held it in half its rows or more.
- ``non_finite`` (error): a numeric column holds +-inf.
- ``out_of_range`` (warning): the share of finite values outside the schema's min..max (the
  reference's range when the schema has none) exceeds ``max_out_of_range``, or at least
  ``FAR_COUNT`` values lie ``FAR`` reference widths or more beyond the reference's range (a burst
  of impossible values, caught in a small batch too: no sample of the reference distribution
  reaches that far; with a contract range, only the far values outside it count: a value
  inside the declared range is possible; the check's detail carries that ``far`` count).
- ``unseen_category`` (warning): categorical values neither in the schema nor in the reference;
  id-like columns (no category list) get status ``excluded_id_like``.
- ``vanished_category`` (warning): reference categories of at least 1 % share that the batch
  lacks although it should hold at least 5 of each.
- ``constant`` (warning): a numeric column that varied in the reference holds one value in more
  rows than its repeat share explains and than twice its longest run (see ``stuck``).
- ``stuck`` (warning): one value repeated in at least ``stuck_run`` consecutive rows (honoured as
  given: never fewer) and in more rows than the reference's own repeats allow: twice its
  longest run, and the run a batch of this size reaches with probability ``ALPHA`` when each row
  repeats the previous one with the reference's repeat share ``q`` and a run goes on with its
  share ``c`` of repeats that follow a repeat (the expected number of runs of that length is at
  most ``ALPHA``; see ``run_limit``). ``c`` is taken as ``sqrt(c)``: tuned on ELEC2, where it
  doubles in log-odds between seasons. Rounded or discrete readings get a longer limit.
- ``row_count`` (error): the batch has fewer than ``schema.min_rows`` or more than
  ``schema.max_rows`` rows (only when the contract sets them).
- ``timestamp_order`` (warning): a datetime column that steps back in time between rows.
- ``future_timestamp`` (error): timestamps later than ``now`` (plus ``future_slack``).

Renamed columns are named here; unit changes, re-coded categories and duplicated rows are
recognised by ``retrainer.diagnosis`` from these results and the profiles.

Missing-column, extra-column and type-change alarms point to an upstream change; the others to
a data-quality issue. Either kind of error blocks retraining on the batch.

Example:
    >>> import pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> from retrainer.profile import BatchProfile
    >>> ref = pd.DataFrame({"x": [0.0, 1.0, 2.0], "c": ["a", "b", "a"]})
    >>> schema = Schema.infer(ref)
    >>> reference = BatchProfile.from_frame(ref, schema)
    >>> batch = BatchProfile.from_frame(pd.DataFrame({"x": [5.0, None, 1.0]}), schema,
    ...                                 edges=reference.edges())
    >>> [(r.name, r.column) for r in check_quality(reference, batch, schema) if r.alarm]
    [('null_rate', 'x'), ('out_of_range', 'x'), ('missing_column', 'c')]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from retrainer.checks.batch_level import null_limit
from retrainer.checks.result import CheckResult
from retrainer.data.schema import ColumnSpec, Schema
from retrainer.profile import BatchProfile, ColumnProfile
from retrainer.profile.column import FAR, OTHER

SHOW = 10
RENAME_MEAN = 0.25
RENAME_STD = 1.25
RENAME_SHARE = 0.05
VANISHED_SHARE = 0.01
VANISHED_EXPECTED = 5
ALPHA = 1e-3  # false-alarm rate per column per batch of the calibrated stuck rule
FAR_COUNT = 2  # this many values FAR reference widths beyond the range alarm in any batch


@dataclass(frozen=True)
class _Rules:
    max_null_increase: float
    max_out_of_range: float
    stuck_run: int
    now: datetime
    future_slack: timedelta


def _result(name: str, column: str | None, alarm: bool, severity: str, **kw) -> CheckResult:
    return CheckResult("quality", name, column, bool(alarm), severity if alarm else "info", **kw)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def same_stats(ref: ColumnProfile, other: ColumnProfile) -> bool:
    """Whether ``other`` looks like ``ref`` under another name (same kind, moments, null share).

    Numeric: means within 0.25 reference standard deviations, standard deviations within a factor
    1.25, null shares within 5 points. Categorical: category shares within 5 points (total
    variation distance).

    Example:
        >>> a = ColumnProfile("a", "numeric", count=10, mean=1.0, m2=10.0)
        >>> same_stats(a, ColumnProfile("b", "numeric", count=10, mean=1.05, m2=11.0))
        True
    """
    if ref.kind != other.kind or not ref.values or not other.values:
        return False
    if abs(ref.null_share - other.null_share) > RENAME_SHARE:
        return False
    if ref.kind == "categorical":
        a, b = ref.categories or {}, other.categories or {}
        na, nb = sum(a.values()), sum(b.values())
        keys = set(a) | set(b)
        tv = 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)
        return tv <= RENAME_SHARE
    sa, sb = ref.std or 0.0, other.std or 0.0
    if sa == 0.0 or sb == 0.0:
        return sa == sb and abs(ref.mean - other.mean) <= 1e-9 * max(1.0, abs(ref.mean))
    return (
        abs(ref.mean - other.mean) <= RENAME_MEAN * sa and 1 / RENAME_STD <= sb / sa <= RENAME_STD
    )


def check_quality(
    reference: BatchProfile,
    current: BatchProfile,
    schema: Schema,
    *,
    max_null_increase: float = 0.1,
    max_out_of_range: float = 0.05,
    stuck_run: int = 20,
    now: datetime | None = None,
    future_slack: timedelta = timedelta(hours=1),
    batches_since: int | None = None,
    calendar: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Quality checks of ``current`` against ``reference`` and ``schema`` (see the module doc).

    Parameters:
        reference: profile of the reference data.
        current: profile of the batch, taken on ``reference.edges()``.
        schema: the schema both were profiled with.
        max_null_increase: largest allowed rise of a column's null share (absolute, 0..1).
        max_out_of_range: largest allowed share of values outside the expected range.
        stuck_run: shortest run of one repeated value reported as stuck.
        now: the time after which timestamps are in the future (default: the wall clock).
        future_slack: clock skew tolerated before a timestamp counts as in the future.
        batches_since: how many batches after the reference's newest this one is (new
            members add up over them).
        calendar: the batch's columns that are a date part of its time column (see
            ``checks.calendar``), with the part: beyond the reference's range they are time
            moving on, not a fault.
    """
    rules = _Rules(
        max_null_increase, max_out_of_range, stuck_run, now or datetime.now(UTC), future_slack
    )
    results: list[CheckResult] = []
    row_count = _row_count(schema, current)
    if row_count is not None:
        results.append(row_count)
    missing = [
        spec.name
        for spec in schema.columns
        if spec.name not in current.columns or current.columns[spec.name].missing
    ]
    renames = _renames(reference, current, missing)
    for spec in schema.columns:
        cur = current.columns.get(spec.name)
        ref = reference.columns.get(spec.name) or ColumnProfile(spec.name, spec.kind)
        results.append(_missing(spec, spec.name in missing, renames))
        if spec.name in missing:
            continue
        results.append(_type_change(spec, cur))
        results.append(_null_rate(spec, ref, cur, rules))
        if spec.kind == "numeric":
            results.append(_non_finite(spec, cur))
            part = (calendar or {}).get(spec.name)
            results.append(_out_of_range(spec, ref, cur, rules, batches_since, part))
            results += _constant_or_stuck(spec, ref, cur, rules)
        if spec.kind == "categorical":
            results.append(_unseen(spec, ref, cur, batches_since))
            results.append(_vanished(spec, ref, cur))
        if spec.kind == "datetime":
            results += _timestamps(spec, cur, rules)
    inverse = {new: old for old, new in renames.items()}
    for name in current.extra:
        guess = f"; probably {inverse[name]!r} renamed" if name in inverse else ""
        message = f"column {name!r} is not in the schema{guess}"
        detail = {"renamed_from": inverse.get(name)}
        results.append(
            _result("extra_column", name, True, "warning", message=message, detail=detail)
        )
    return results


def _renames(reference: BatchProfile, current: BatchProfile, missing: list[str]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for name in missing:
        ref = reference.columns.get(name)
        if ref is None:
            continue
        for extra_name, extra in current.extra.items():
            if extra_name not in renames.values() and same_stats(ref, extra):
                renames[name] = extra_name
                break
    return renames


def _missing(spec: ColumnSpec, is_missing: bool, renames: dict[str, str]) -> CheckResult:
    if not is_missing:
        return _result(
            "missing_column", spec.name, False, "error", message=f"column {spec.name!r} is present"
        )
    new = renames.get(spec.name)
    guess = f"; probable rename to {new!r} (same stats)" if new else ""
    return _result(
        "missing_column",
        spec.name,
        True,
        "error",
        message=f"column {spec.name!r} is missing from the batch{guess}",
        detail={"renamed_to": new},
    )


def _type_change(spec: ColumnSpec, cur: ColumnProfile) -> CheckResult:
    share = cur.invalid / cur.count if cur.count else 0.0
    if not cur.invalid:
        message = f"column {spec.name!r}: every value reads as {spec.kind}"
    else:
        message = (
            f"column {spec.name!r} should be {spec.kind} but {cur.invalid} of {cur.count} values "
            f"({_pct(share)}) are not, e.g. {cur.invalid_example!r}"
        )
    return _result(
        "type_change",
        spec.name,
        cur.invalid > 0,
        "error",
        statistic=share,
        threshold=0.0,
        message=message,
        detail={"invalid": cur.invalid, "example": cur.invalid_example},
    )


def _null_rate(
    spec: ColumnSpec, ref: ColumnProfile, cur: ColumnProfile, rules: _Rules
) -> CheckResult:
    if not cur.count:
        return _result(
            "null_rate",
            spec.name,
            False,
            "error",
            status="insufficient",
            message=f"column {spec.name!r}: the batch has no rows",
        )
    # the rise is counted from the most nulls one of the reference's batches had: the model
    # was trained on that batch, so its share was accepted before
    seen = max(ref.null_share, ref.batch_null_max or 0.0)
    limit = seen + rules.max_null_increase
    # where the reference's batches' null shares differ beyond chance (a day without gusts),
    # the limit is what a batch of theirs exceeds with chance ALPHA, if that is higher; a
    # column that held values in most rows of every reference batch and now holds none is gone
    gone = cur.nulls == cur.count and ref.most_nulls_of_a_batch <= 0.5
    bound = None if gone else null_limit(ref, ALPHA)
    spread = bound is not None and bound > limit
    limit = bound if spread else limit
    alarm = cur.null_share > limit
    verb = "rose" if alarm else "is"
    most = f", {_pct(seen)} in one of its batches" if seen > ref.null_share else ""
    most += " that differ beyond chance" if spread else ""
    message = (
        f"column {spec.name!r}: null share {verb} {_pct(cur.null_share)} (reference "
        f"{_pct(ref.null_share)}{most}, limit {_pct(min(limit, 1.0))}; {cur.nulls} of "
        f"{cur.count} rows)"
    )
    return _result(
        "null_rate",
        spec.name,
        alarm,
        "error",
        statistic=cur.null_share,
        threshold=limit,
        message=message,
        detail={"nulls": cur.nulls, "rows": cur.count, "reference_share": ref.null_share},
    )


def _non_finite(spec: ColumnSpec, cur: ColumnProfile) -> CheckResult:
    share = cur.non_finite / cur.count if cur.count else 0.0
    message = f"column {spec.name!r}: {cur.non_finite} of {cur.count} values are +-inf"
    return _result(
        "non_finite",
        spec.name,
        cur.non_finite > 0,
        "error",
        statistic=share,
        threshold=0.0,
        message=message,
        detail={"non_finite": cur.non_finite},
    )


def _out_of_range(
    spec: ColumnSpec,
    ref: ColumnProfile,
    cur: ColumnProfile,
    rules: _Rules,
    batches_since: int | None = None,
    calendar_part: str | None = None,
) -> CheckResult:
    contract = spec.min is not None and spec.max is not None
    if contract:
        low, high, outside = spec.min, spec.max, cur.below_min + cur.above_max
    elif ref.edges and cur.edges == ref.edges and cur.hist:
        low, high, outside = ref.edges[0], ref.edges[-1], cur.hist[0] + cur.hist[-1]
    else:
        low = high = None
        outside = 0
    if calendar_part and not contract and low is not None and outside:
        message = (
            f"column {spec.name!r}: {outside} of {cur.values} values are outside the reference's "
            f"[{low:.6g}, {high:.6g}], and every value is the {calendar_part} of its row's time: "
            "the calendar moved on"
        )
        detail = {"outside": outside, "min": low, "max": high, "calendar": calendar_part}
        return _result("out_of_range", spec.name, False, "warning", message=message, detail=detail)
    if low is None or not cur.values:
        return _result(
            "out_of_range",
            spec.name,
            False,
            "warning",
            status="insufficient",
            message=f"column {spec.name!r}: no finite values or no expected range to compare",
        )
    share = outside / cur.values
    usual = _usual_outside(spec, ref)
    far_count = far_outside_contract(spec, cur)
    far_alarm = far_count >= FAR_COUNT and far_is_unusual(cur, ref, far_count)
    alarm = share - usual > rules.max_out_of_range or far_alarm
    far = (
        f"; {cur.far} lie {FAR:g} reference widths or more beyond the reference range"
        + (f" ({ref.far} of {ref.values} in the reference)" if ref.far else "")
        + (f", {far_count} of them outside the contract's range" if far_count < cur.far else "")
        if cur.far
        else ""
    )
    limit = _pct(rules.max_out_of_range) + (
        f" beyond the reference's own {_pct(usual)}" if usual else ""
    )
    message = (
        f"column {spec.name!r}: {outside} of {cur.values} values ({_pct(share)}) are outside "
        f"[{low:.6g}, {high:.6g}] (limit {limit}; batch range "
        f"[{cur.min:.6g}, {cur.max:.6g}]){far}"
    )
    return _result(
        "out_of_range",
        spec.name,
        alarm,
        "warning",
        statistic=share,
        threshold=rules.max_out_of_range,
        message=message,
        detail={
            "outside": outside,
            "min": low,
            "max": high,
            "far": far_count,
            "batches_since": batches_since,
        },
    )


def _usual_outside(spec: ColumnSpec, ref: ColumnProfile) -> float:
    """The reference's own share of values outside the range the batch is measured against:
    0 for the champion's reference (the range is its own), the season's share for a seasonal
    or rolling reference merged from batches profiled on the champion's edges."""
    if spec.min is not None and spec.max is not None:
        return (ref.below_min + ref.above_max) / ref.values if ref.values else 0.0
    if not ref.hist or not ref.values:
        return 0.0
    return (ref.hist[0] + ref.hist[-1]) / ref.values


def far_outside_contract(spec: ColumnSpec, cur: ColumnProfile) -> int:
    """The batch's far-out values (``far``) that can be impossible: all of them without a
    contract range; with one, at most the values outside it (a value inside the range the
    contract declares is possible, however far it lies beyond a calm reference).

    Example:
        >>> spec = ColumnSpec("x", "numeric", True, min=0.0, max=30.0)
        >>> far_outside_contract(spec, ColumnProfile("x", "numeric", far=2, below_min=1))
        1
        >>> far_outside_contract(ColumnSpec("x", "numeric", True), ColumnProfile("x", "numeric",
        ...                                                                       far=2))
        2
    """
    if spec.min is None or spec.max is None:
        return cur.far
    return min(cur.far, cur.below_min + cur.above_max)


def far_is_unusual(cur: ColumnProfile, ref: ColumnProfile, far: int | None = None) -> bool:
    """Whether the batch's far-out values (``far``) are more than the reference's own rate of
    them explains: always when the reference has none (the champion's reference, by
    construction), else when at least that many (``far``, default ``cur.far``) are less likely
    than ``ALPHA`` (binomial tail at the reference's rate; a season of price spikes has spikes
    in its reference too).

    Example:
        >>> ref = ColumnProfile("x", "numeric", count=180, far=2)
        >>> far_is_unusual(ColumnProfile("x", "numeric", count=90, far=2), ref)
        False
        >>> far_is_unusual(ColumnProfile("x", "numeric", count=90, far=9), ref)
        True
    """
    if not ref.far or not ref.values:
        return True
    from scipy.stats import binom  # imported when a reference has far-out values

    rate = min(1.0, ref.far / ref.values)
    count = cur.far if far is None else far
    return float(binom.sf(count - 1, cur.values, rate)) < ALPHA


def _known_categories(spec: ColumnSpec, ref: ColumnProfile) -> set[str] | None:
    if spec.categories is not None:
        return set(spec.categories)
    if ref.categories and not ref.id_like:
        return set(ref.categories)
    return None


def _missing_mass(ref: ColumnProfile) -> float | None:
    """The share of a batch's values that may fall in categories ``ref`` never held, by its
    categories seen once and twice: Good-Turing's estimate ``n1 / n`` plus 3 standard errors
    (Esty's: ``sqrt(n1 (1 - n1 / n) + 2 n2) / n``), so that a small reference, whose estimate is
    rough, does not make rare categories look new; at least ``3 / n``, as no new category in
    ``n`` values still allows (the rule of three). None when categories are pooled beyond top-k.

    >>> from retrainer.profile.column import ColumnProfile
    >>> counts = {"a": 94, "b": 2, "c": 2, "d": 1, "e": 1}
    >>> round(_missing_mass(ColumnProfile("c", "categorical", 100, categories=counts)), 3)
    0.093
    >>> _missing_mass(ColumnProfile("c", "categorical", 300, categories={"PG": 200, "R": 100}))
    0.01
    """
    counts = ref.categories or {}
    if not counts or counts.get(OTHER) or not ref.values:
        return None
    n, once = ref.values, sum(c == 1 for c in counts.values())
    twice = sum(c == 2 for c in counts.values())
    return max(3, once + 3 * math.sqrt(once * (1 - once / n) + 2 * twice)) / n


def _unseen(
    spec: ColumnSpec, ref: ColumnProfile, cur: ColumnProfile, batches_since: int | None = None
) -> CheckResult:
    known = _known_categories(spec, ref)
    if known is None:
        return _result(
            "unseen_category",
            spec.name,
            False,
            "warning",
            status="excluded_id_like",
            message=f"column {spec.name!r} is id-like or has too many categories; not checked",
        )
    unseen = {k: n for k, n in (cur.categories or {}).items() if k not in known and k != OTHER}
    count = sum(unseen.values())
    share = count / cur.values if cur.values else 0.0
    shown = sorted(unseen, key=lambda k: (-unseen[k], k))[:SHOW]
    message = (
        f"column {spec.name!r}: {count} of {cur.values} values ({_pct(share)}) are unseen "
        f"categories, e.g. {shown}"
        if unseen
        else f"column {spec.name!r}: no unseen categories"
    )
    return _result(
        "unseen_category",
        spec.name,
        bool(unseen),
        "warning",
        statistic=share,
        threshold=0.0,
        message=message,
        detail={
            "unseen": shown,
            "count": count,
            "values": cur.values,
            "reference_new": ref.batch_new_max,  # what one reference batch brought at most
            "reference_unseen": _missing_mass(ref),
            "batches_since": batches_since,
        },
    )


def _row_count(schema: Schema, current: BatchProfile) -> CheckResult | None:
    low, high = schema.min_rows, schema.max_rows
    if low is None and high is None:
        return None
    n = current.n_rows
    alarm = (low is not None and n < low) or (high is not None and n > high)
    expected = f"[{low if low is not None else 0}, {high if high is not None else 'inf'}]"
    verb = "outside" if alarm else "inside"
    return _result(
        "row_count",
        None,
        alarm,
        "error",
        statistic=float(n),
        message=f"the batch has {n} rows, {verb} the expected {expected}",
        detail={"rows": n, "min_rows": low, "max_rows": high},
    )


def _constant_or_stuck(
    spec: ColumnSpec, ref: ColumnProfile, cur: ColumnProfile, rules: _Rules
) -> list[CheckResult]:
    if cur.values < 2:
        return []
    natural = run_limit(ref.repeat_share, cur.values, continue_share=math.sqrt(ref.continue_share))
    longest = 2 * ref.max_run + 1  # a run the reference's own runs explain (a capped reading)
    constant = (
        cur.min == cur.max
        and ref.values >= 2
        and ref.min != ref.max
        and cur.values >= max(natural, longest)
    )
    limit = max(rules.stuck_run, longest, natural)
    stuck = cur.max_run >= limit
    return [
        _result(
            "constant",
            spec.name,
            constant,
            "warning",
            message=f"column {spec.name!r} holds one value ({cur.min:.6g}) in all {cur.values} "
            f"rows; it varied in the reference"
            if constant
            else f"column {spec.name!r} is not constant",
            detail={"value": cur.min if constant else None},
        ),
        _result(
            "stuck",
            spec.name,
            stuck,
            "warning",
            statistic=float(cur.max_run),
            threshold=float(limit),
            message=f"column {spec.name!r}: one value repeats in {cur.max_run} consecutive rows "
            f"(limit {limit}: stuck_run {rules.stuck_run}, twice the reference's longest run "
            f"{ref.max_run}, {natural} rows at its repeat shares {ref.repeat_share:.3f} and "
            f"{ref.continue_share:.3f} and false-alarm rate {ALPHA:g})"
            + (": a stuck reading?" if stuck else ""),
            detail={
                "run": cur.max_run,
                "reference_run": ref.max_run,
                "repeat_share": ref.repeat_share,
                "continue_share": ref.continue_share,
                "natural_limit": natural,
                "stuck_run": rules.stuck_run,
            },
        ),
    ]


def run_limit(
    repeat_share: float, rows: int, alpha: float = ALPHA, continue_share: float | None = None
) -> int:
    """The shortest run of one value that ``rows`` readings reach with probability at most
    ``alpha`` when each repeats the previous one with probability ``repeat_share`` and, once
    repeating, goes on repeating with probability ``continue_share`` (default: the same;
    real readings cluster: a plateau at night, a heat wave).

    A run starts at the first row or after a change (expected ``1 + (rows - 1) * (1 - q)``
    starts) and reaches length L >= 2 with probability ``q * c ** (L - 2)``, so by Markov's
    inequality P(longest run >= L) <= (1 + (rows - 1) * (1 - q)) * q * c ** (L - 2).

    Example:
        >>> run_limit(0.0, 30), run_limit(0.5, 30), run_limit(0.5, 3000)
        (2, 15, 22)
        >>> run_limit(0.1, 30, continue_share=0.5)
        14
    """
    q = min(max(repeat_share, 0.0), 0.999)
    c = q if continue_share is None else min(max(continue_share, 0.0), 0.999)
    if q == 0.0 or rows <= 1:
        return 2
    starts = 1 + (rows - 1) * (1 - q)
    if starts * q <= alpha:
        return 2
    if c == 0.0:
        return 3
    return 2 + max(0, math.ceil(math.log(alpha / (starts * q)) / math.log(c)))


def _vanished(spec: ColumnSpec, ref: ColumnProfile, cur: ColumnProfile) -> CheckResult:
    ref_counts = {k: n for k, n in (ref.categories or {}).items() if k != OTHER}
    total = ref.values
    if not total or not cur.values or ref.id_like:
        return _result(
            "vanished_category",
            spec.name,
            False,
            "warning",
            status="insufficient" if not ref.id_like else "excluded_id_like",
            message=f"column {spec.name!r}: no categories to compare",
        )
    seen = cur.categories or {}
    gone = {
        k: n / total
        for k, n in ref_counts.items()
        if k not in seen
        and n / total >= VANISHED_SHARE
        and n / total * cur.values >= VANISHED_EXPECTED
    }
    shown = sorted(gone, key=lambda k: (-gone[k], k))[:SHOW]
    share = sum(gone.values())
    message = (
        f"column {spec.name!r}: {len(gone)} reference categories ({_pct(share)} of the "
        f"reference) are absent from the batch, e.g. {shown}"
        if gone
        else f"column {spec.name!r}: no category vanished"
    )
    return _result(
        "vanished_category",
        spec.name,
        bool(gone),
        "warning",
        statistic=share,
        threshold=0.0,
        message=message,
        detail={"vanished": shown, "count": len(gone)},
    )


def _timestamps(spec: ColumnSpec, cur: ColumnProfile, rules: _Rules) -> list[CheckResult]:
    if not cur.values:
        return []
    order = _result(
        "timestamp_order",
        spec.name,
        cur.disorder > 0,
        "warning",
        statistic=float(cur.disorder),
        threshold=0.0,
        message=f"column {spec.name!r}: {cur.disorder} of {cur.values - 1} steps go back in time",
        detail={"backward_steps": cur.disorder},
    )
    limit = (rules.now + rules.future_slack).timestamp()
    latest = datetime.fromtimestamp(cur.max, UTC)
    future = cur.max > limit
    verb = "is in the future" if future else "is not in the future"
    return [
        order,
        _result(
            "future_timestamp",
            spec.name,
            future,
            "error",
            message=f"column {spec.name!r}: the latest timestamp {latest.isoformat()} {verb} "
            f"(now {rules.now.isoformat()}, slack {rules.future_slack})",
            detail={"latest": latest.isoformat(), "now": rules.now.isoformat()},
        ),
    ]
