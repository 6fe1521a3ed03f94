"""Diagnosis rules for units: an affine unit change of a numeric column (named, with the
inverse as a proposed fix) and a numeric column that arrives as text (a re-typed column, numbers
with a unit suffix, unreadable rows named).

Each rule returns the keyword arguments of one alarm (``cause``, ``check``, ``column``,
``message``, ``confidence``, ``evidence``, ``fix``) or None; ``diagnosis.engine`` adds the
checks it read and builds the alarm.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.data.schema import Schema
    >>> from retrainer.diagnosis.signals import batch_signals
    >>> from retrainer.profile import BatchProfile
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"t": rng.normal(15.0, 8.0, 3000)})
    >>> reference = BatchProfile.from_frame(ref, Schema.infer(ref))
    >>> batch = pd.DataFrame({"t": rng.normal(15.0, 8.0, 90) * 1.8 + 32})
    >>> col = batch_signals(batch, ["t"]).columns["t"]
    >>> found = affine("t", reference.columns["t"], None, col)
    >>> found["check"], found["fix"]["affine"]["t"]
    ('affine', [0.5555555556, -17.77777778])
"""

from __future__ import annotations

from retrainer.checks.result import CheckResult
from retrainer.diagnosis.signals import ColumnSignal
from retrainer.diagnosis.units import match_transform, unit_conversions
from retrainer.profile import ColumnProfile

RETYPED_SHARE = 0.5  # at least this share unreadable: the column was re-typed


def affine(
    name: str, ref: ColumnProfile, cur: ColumnProfile | None, col: ColumnSignal
) -> dict | None:
    """A known unit change between the reference's quantiles and the batch's (``col``)."""
    if not ref.edges or not ref.hist or not col.quantiles:
        return None
    rows = cur.values if cur is not None else col.values
    t = match_transform(ref.edges, ref.hist, col.quantiles, rows)
    if t is None:
        return None
    means = f"; mean {ref.mean:.6g} -> {cur.mean:.6g}" if cur is not None and cur.mean else ""
    how = (
        f"fitted to its quantiles on {rows} rows"
        if t.fitted
        else f"its quantiles lie on that line, R^2 {t.r2:.4f}"
    )
    check = "; confirm the units with the data owner before accepting the fix" * t.fitted
    message = (
        f"column {name!r} looks like {t.shown()} of the reference: {t.words} ({how}; mapped "
        f"back it matches the reference, KS p={t.p_value:.2g}, as sent p={t.p_identity:.2g}"
        f"{means}): a unit change upstream, not drift{check}"
    )
    a, b = t.inverse
    fix = {"scale": {name: a}} if t.b == 0 else {"affine": {name: [a, b]}}
    return {
        "cause": "upstream_change",
        "check": "scale" if t.b == 0 else "affine",
        "column": name,
        "message": message,
        "confidence": 0.85 if t.fitted else 0.92,
        "evidence": [
            {
                "transform": [t.a, t.b],
                "words": t.words,
                "r2": t.r2,
                "ks": t.ks,
                "p": t.p_value,
                "fitted": t.fitted,
                "level_like": t.level_like,
            }  # fmt: skip
        ],
        "fix": fix,
    }


def retyped(name: str, r: CheckResult, col: ColumnSignal | None, ref: ColumnProfile | None) -> dict:
    """A re-typed column (most values unreadable as numbers; with unit suffixes, the parse
    and conversion as a proposed fix), a missing-value marker (one word, the only text among
    numbers: ``"nil"``, ``"#VALUE!"``; read as missing by the proposed fix) or unreadable values
    (a minority), rows named."""
    share = float(r.statistic or 0.0)
    example = r.detail.get("example")
    rows = ""
    if col is not None and col.bad_rows:
        more = f" and {col.bad - len(col.bad_rows)} more" if col.bad > len(col.bad_rows) else ""
        shown = ", ".join(map(str, col.bad_rows))
        rows = f"; unreadable rows (0-based) {shown}{more}"
    found = {"column": name, "confidence": 0.9, "evidence": [], "fix": None}
    marker = _missing_marker(col)
    if marker is not None:
        message = (
            f"column {name!r}: {100 * share:.0f}% of the values read {marker!r}, the only text "
            f"among its numbers{rows}: a missing-value marker (readings missing, not a re-typed "
            f"column); accept the fix to read {marker!r} as missing, and the null-rate rules "
            "judge the batch"
        )
        evidence = [{"marker": marker, "rows": col.bad}]
        return {**found, "cause": "data_quality", "check": "missing_marker", "message": message,
                "confidence": 0.85, "fix": {"missing_values": {name: [marker]}},
                "evidence": evidence}  # fmt: skip
    if share < RETYPED_SHARE:
        message = f"column {name!r}: {100 * share:.1f}% unreadable values (e.g. {example!r}){rows}"
        return {**found, "cause": "data_quality", "check": "bad_values", "message": message,
                "confidence": 0.85}  # fmt: skip
    units = col.units if col is not None else {}
    if units and ref is not None and ref.min is not None:
        factors = unit_conversions(units, col.unit_numbers, ref.min, ref.max)
        seen = ", ".join(f"{u!r} in {n} rows" for u, n in units.items())
        how = ", ".join(
            f"{u!r} read as x*{a:.6g}{b:+.6g}" if b else f"{u!r} read as x*{a:.6g}"
            for u, (a, b) in factors.items()
        )
        odd = col.unparsed
        left = ""
        if odd:
            shown = ", ".join(f"{i} ({v!r})" for i, v in odd.items())
            left = (
                f"; no unit reads rows {shown}: the fix reads "
                f"{', '.join(map(repr, dict.fromkeys(odd.values())))} as missing"
            )
        message = (
            f"column {name!r} arrives as text: {100 * share:.0f}% of the values are no numbers "
            f"(e.g. {example!r}), numbers with a unit suffix ({seen}){rows}{left}: re-typed "
            f"upstream; accept the fix to strip the unit ({how}, to the reference's range "
            f"[{ref.min:.6g}, {ref.max:.6g}])"
        )
        fix = {"parse_units": {name: factors}}
        if odd:
            fix["missing_values"] = {name: list(dict.fromkeys(odd.values()))}
        evidence = [{"units": units, "conversions": factors}]
        return {**found, "cause": "upstream_change", "check": "retyped", "message": message,
                "fix": fix, "evidence": evidence}  # fmt: skip
    message = (
        f"column {name!r}: {100 * share:.0f}% of the values are no longer of its type "
        f"(e.g. {example!r}){rows}: re-typed upstream"
    )
    return {**found, "cause": "upstream_change", "check": "retyped", "message": message}


def _missing_marker(col: ColumnSignal | None) -> str | None:
    """The one word a numeric column holds beside its numbers, without a unit: a producer's
    mark for a missing reading (a sensor's ``"nil"``, a spreadsheet's ``"#VALUE!"``). A column
    that keeps no number (``"low"``, ``"high"``) or holds several words is re-typed instead.

    Example:
        >>> import pandas as pd
        >>> from retrainer.diagnosis.signals import batch_signals
        >>> batch = pd.DataFrame({"isig": ["21.5", "nil", "nil", "20.9"]})
        >>> _missing_marker(batch_signals(batch, ["isig"]).columns["isig"])
        'nil'
        >>> batch = pd.DataFrame({"isig": ["21.5", "nil", "off", "20.9"]})
        >>> _missing_marker(batch_signals(batch, ["isig"]).columns["isig"]) is None
        True
    """
    if col is None or not col.values or col.units or len(col.words) != 1:
        return None
    word, count = next(iter(col.words.items()))
    return word if count == col.bad else None
