"""Far-out values that related columns share on the same rows: a real event, not a fault.

A burst of far-out values in one column (``out_of_range_burst``) reads as an instrument or
transfer fault: the rows are set aside, or the batch quarantined. A real event moves related
readings together (a market-wide price spike: both states' prices and demand leave their ranges
in the same half hours); a faulty sensor moves one. A burst is a **joint excursion** when another
numeric column, its partner,

- is correlated with the burst's column in the champion's reference sample (Spearman's
  ``|rho| >= MIN_RHO``),
- lies beyond its own reference range in at least half of the far rows (``FAR_COUNT`` at least),
  on the side that correlation predicts, and
- has its excursions concentrated on those rows: a one-sided Fisher exact test of the far rows
  against the rest of the batch, ``p < ALPHA`` (a hot week whose demand leaves a winter range in
  most rows explains nothing about a few far prices).

Such a burst is covariate drift, a warning that names its partners: the rows are kept and
trained on. The price: a fault that writes wild values into two correlated columns of the same
rows, in the direction of their correlation, is read as an event.

The same reading holds for a **unit change** (``scale``, ``affine``): a new unit upstream maps
one column, while rows selected differently (a week of price spikes) move the columns related to
it as well, and may scale one column's spread and level by ten. A unit change whose column is
correlated (``|rho| >= MIN_RHO`` in the reference sample) with a column that drifted in the same
batch, the way that correlation predicts (a price up, demand up), is read as covariate drift
(:func:`selected_rows`). The price: a unit change that arrives in the very batch in which a
related column drifts that way is called drift.

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.diagnosis import ACTIONS, Alarm
    >>> rng = np.random.default_rng(0)
    >>> load = rng.uniform(0.0, 1.0, 400)
    >>> reference = pd.DataFrame({"load": load, "price": load + rng.normal(0.0, 0.1, 400)})
    >>> edges = {c: np.quantile(reference[c], np.linspace(0, 1, 11)) for c in reference}
    >>> batch = reference.iloc[:30].reset_index(drop=True)
    >>> batch.loc[[3, 7], ["load", "price"]] = [[1.4, 5.0], [1.3, 6.0]]  # a spike, seen twice
    >>> burst = Alarm("data_quality", ACTIONS["data_quality"], "error", "out_of_range_burst",
    ...               "price", "2 far values")
    >>> joint_excursion(burst, batch, edges, reference).check
    'joint_excursion'
    >>> batch.loc[[3, 7], "load"] = [0.5, 0.4]  # the price alone: a fault
    >>> joint_excursion(burst, batch, edges, reference) is None
    True
    >>> unit = Alarm("upstream_change", ACTIONS["upstream_change"], "error", "scale", "price",
    ...              "x10 of the reference")
    >>> high = reference.nlargest(30, "load")  # rows of high load: the price rises with it
    >>> selected_rows(unit, high, {"load"}, reference).check
    'selected_rows'
    >>> selected_rows(unit, high, set(), reference) is None  # no related column drifted
    True
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from retrainer.checks.quality import FAR_COUNT
from retrainer.diagnosis.alarms import ACTIONS, Alarm
from retrainer.profile.column import far_mask

MIN_RHO = 0.3  # a partner's rank correlation with the burst's column in the reference sample
ALPHA = 0.01  # the partner's excursions concentrate on the far rows (one-sided Fisher)
UNIT_CHECKS = ("scale", "affine")


def reread(
    alarms: Sequence[Alarm],
    frame: pd.DataFrame,
    edges: Mapping[str, np.ndarray],
    reference: pd.DataFrame,
    bursts: Collection[Alarm],
) -> list[Alarm]:
    """``alarms`` with each of the ``bursts`` that related columns share read as a joint
    excursion, and each unit change whose related columns drifted too read as drift."""
    drifted = {a.column for a in alarms if a.cause == "covariate_drift" and a.column}
    return [
        (
            joint_excursion(a, frame, edges, reference)
            if a in bursts
            else selected_rows(a, frame, drifted, reference)
        )
        or a
        for a in alarms
    ]


def selected_rows(
    alarm: Alarm, frame: pd.DataFrame, drifted: Collection[str], reference: pd.DataFrame
) -> Alarm | None:
    """``alarm`` (a unit change of one column) read again as covariate drift when a column of
    ``drifted`` is correlated with it in the reference sample and moved (in ``frame``, the
    batch) the way that correlation predicts; None when none did (or the alarm is no unit
    change)."""
    name = alarm.column
    if alarm.check not in UNIT_CHECKS or not name or name not in reference or name not in frame:
        return None
    others = [c for c in drifted if c != name and c in reference and c in frame]
    if not others:
        return None
    numbers, rhos = _rank_correlations(reference, name, others)
    way = _moved(frame, numbers, name)
    partners = [
        {"column": c, "rho": float(rhos[c])}
        for c in others
        if abs(rhos[c]) >= MIN_RHO and way * np.sign(rhos[c]) * _moved(frame, numbers, c) > 0
    ]
    if not partners:
        return None
    said = ", ".join(f"{p['column']!r} (rank correlation {p['rho']:+.2f})" for p in partners)
    message = (
        f"{alarm.message.rstrip('.')}; but columns related to {name!r} in the reference drifted "
        f"in the same batch: {said}. A unit change maps one column; rows selected differently "
        "move related columns together, so this is read as drift"
    )
    return Alarm(
        "covariate_drift",
        ACTIONS["covariate_drift"],
        "warning",
        "selected_rows",
        name,
        message,
        0.7,
        evidence=(*alarm.evidence, *partners),
    )


def joint_excursion(
    alarm: Alarm, frame: pd.DataFrame, edges: Mapping[str, np.ndarray], reference: pd.DataFrame
) -> Alarm | None:
    """``alarm`` (a burst of far-out values) read again as covariate drift when a correlated
    column leaves its range on the same rows; None when no column does (or the alarm is no
    burst, or its column is not in ``frame``, ``edges`` and ``reference``)."""
    name = alarm.column
    if alarm.check != "out_of_range_burst" or not _numeric(name, frame, edges, reference):
        return None
    values = _values(frame, name)
    far = far_mask(values, np.asarray(edges[name], dtype="float64"))
    if far.sum() < FAR_COUNT:
        return None
    high = values[far] > float(edges[name][-1])
    others = [c for c in edges if c != name and _numeric(c, frame, edges, reference)]
    _, rhos = _rank_correlations(reference, name, others)
    partners = [
        found
        for other in others
        for found in [_partner(other, float(rhos[other]), frame, edges, far, high)]
        if found is not None
    ]
    if not partners:
        return None
    said = "; ".join(
        f"{p['column']!r} beyond its range in {p['rows']} of them (rank correlation "
        f"{p['rho']:+.2f} in the reference; Fisher p={p['p']:.2g})"
        for p in partners
    )
    message = (
        f"column {name!r}: {int(far.sum())} of {len(frame)} values lie far beyond the reference "
        f"range, on rows where related columns leave theirs too: {said}. A joint excursion is "
        "a real event (a faulty sensor moves one column), so the rows are kept"
    )
    return Alarm(
        "covariate_drift",
        ACTIONS["covariate_drift"],
        "warning",
        "joint_excursion",
        name,
        message,
        0.8,
        evidence=(*alarm.evidence, *partners),
    )


def _rank_correlations(
    reference: pd.DataFrame, name: str, others: list[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """The reference's ``name`` and ``others`` as numbers, and each one's Spearman correlation
    with ``name`` (pairwise complete rows; NaN for a constant or categorical column)."""
    numbers = reference[[name, *others]].apply(pd.to_numeric, errors="coerce")
    return numbers, numbers.corr(method="spearman")[name]


def _moved(frame: pd.DataFrame, reference: pd.DataFrame, name: str) -> float:
    """Which way a column moved: the sign of the mean rank of the batch's values among the
    reference's, less one half (0: not at all, or no values).

    Example:
        >>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
        >>> _moved(pd.DataFrame({"x": [5.0, 3.0]}), ref, "x"), _moved(ref, ref, "x")
        (1.0, 0.0)
    """
    before = np.sort(reference[name].dropna().to_numpy(dtype="float64"))
    values = _values(frame, name)
    values = values[np.isfinite(values)]
    if not before.size or not values.size:
        return 0.0
    below = np.searchsorted(before, values, "left") + np.searchsorted(before, values, "right")
    return float(np.sign(round(below.mean() / (2 * before.size) - 0.5, 12)))


def _numeric(
    name: str | None, frame: pd.DataFrame, edges: Mapping, reference: pd.DataFrame
) -> bool:
    return bool(name) and name in frame and name in edges and name in reference


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _partner(
    other: str,
    rho: float,
    frame: pd.DataFrame,
    edges: Mapping[str, np.ndarray],
    far: np.ndarray,
    high: np.ndarray,
) -> dict | None:
    """The evidence that ``other`` (rank correlation ``rho`` with the burst's column in the
    reference) leaves its range with the burst's far rows (None if not)."""
    if not abs(rho) >= MIN_RHO:  # NaN (a constant column) is no partner
        return None
    values, bounds = _values(frame, other), np.asarray(edges[other], dtype="float64")
    with np.errstate(invalid="ignore"):
        above, below = values > bounds[-1], values < bounds[0]
    expected_high = high if rho > 0 else ~high
    joined = int(np.where(expected_high, above[far], below[far]).sum())
    if joined < max(FAR_COUNT, math.ceil(0.5 * far.sum())):
        return None
    from scipy.stats import fisher_exact  # here: the cycle imports this module for every batch

    out = above | below
    rest = int(out[~far].sum())
    _, p = fisher_exact(
        [[joined, int(far.sum()) - joined], [rest, int((~far).sum()) - rest]],
        alternative="greater",
    )
    if not p < ALPHA:
        return None
    return {"column": other, "rows": joined, "of": int(far.sum()), "rho": rho, "p": float(p)}
