"""The live loop's record read as a score matrix, so that the cost-aware policy
(:class:`~retrainer.schedule.policies.GainForecast`) decides live on what the store holds.

Batches (not quarantined) in arrival order are the columns; a version sits in the row of the
first batch it served as champion (its boundary). Known entries are the errors the loop scored
of every batch's champion and a fresh model's errors on a batch (the diagonal: a model that has
not seen that batch's labels): the shadow candidate's (``policy.shadow``, fitted on the window
before each newly labelled batch and scored on it, the ``shadow`` role), else, for a retrain
whose gate compared on accuracy, the gate copy's error rate on the held-out rows of the window's
newest batch. The first model's errors on every batch (the ``baseline`` role) are left out: its
gap to the champion mixes a changed concept with ageing. Everything else is unknown (NaN): the
backtest's matrix has a candidate at every boundary, live has only the models that served, so
the policy falls back to the error rate fresh models had where a fresh model was not scored
(:meth:`~retrainer.schedule.policies.View.fresh`).

Example:
    >>> view = serving_view(
    ...     batches=[(1, 100), (2, 100), (3, 100), (4, 100)],
    ...     scored=[(1, 1, 10), (2, 1, 12), (3, 2, 11)],
    ...     served={1: 1, 2: 1, 3: 2}, gates=[(2, 0.1)], champion=2, horizon=2)
    >>> view.t, view.champion, view.observed, view.errors.shape
    (4, 2, 2, (6, 6))
    >>> float(view.errors[0, 1]), float(view.errors[1, 1]), float(view.errors[2, 2])
    (12.0, 10.0, 11.0)
    >>> bool(np.isnan(view.errors[0, 2]))  # the first model did not serve batch 3
    True
    >>> shadowed = serving_view(
    ...     batches=[(1, 100), (2, 100), (3, 100), (4, 100)],
    ...     scored=[(1, 1, 10), (2, 1, 12), (3, 1, 30)],
    ...     served={1: 1, 2: 1, 3: 1}, gates=[], shadows=[(2, 0.08), (3, 0.1)], champion=1,
    ...     horizon=2)
    >>> np.diag(shadowed.errors)[:3].tolist(), shadowed.shadows  # batch 1: the first model's
    ([10.0, 8.0, 10.0], 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from retrainer.schedule.candidates import unit
from retrainer.schedule.policies import View


def serving_view(
    *,
    batches: Iterable[tuple[int, int]],
    scored: Iterable[tuple[int, int, float]],
    served: dict[int, int],
    gates: Iterable[tuple[int, float]],
    champion: int,
    horizon: int,
    cost: float = 0.0,
    shadows: Iterable[tuple[int, float]] = (),
    dispersion: float = 1.0,
    unit: str = "errors",
) -> View | None:
    """A :class:`View` of the record: ``batches`` as ``(batch id, rows)`` in arrival order,
    ``scored`` as ``(batch id, version, errors)``, ``served`` the champion version of each batch
    id, ``gates`` as ``(newest batch id of the window, the gate copy's error rate)``, the current
    ``champion`` version, ``horizon`` future batches of the recent size, and ``shadows`` as
    ``(batch id, the shadow candidate's error rate)`` (where the batch's champion was not itself
    fresh; before a gate copy's); ``dispersion`` and ``unit`` say what one error is (a
    regressor's, :class:`View`); None before any batch."""
    order = {batch: j for j, (batch, _) in enumerate(batches)}
    if not order:
        return None
    t = len(order)
    size = np.array([rows for _, rows in batches], dtype=float)
    boundary: dict[int, int] = {}
    for batch in sorted(served, key=lambda b: order.get(b, t)):
        if batch in order:
            boundary.setdefault(served[batch], order[batch])
    boundary.setdefault(champion, t)
    errors = np.full((t + horizon, t + horizon), np.nan)
    for batch, version, wrong in scored:
        k, j = boundary.get(version), order.get(batch)
        if k is not None and j is not None and k <= j:
            errors[k, j] = float(wrong)
    labelled = [j for j in range(t) if np.isfinite(errors[:, j]).any()]
    shadowed = 0
    for fresh, is_shadow in ((shadows, True), (gates, False)):
        for batch, rate in fresh:
            j = order.get(batch)
            if j is not None and np.isnan(errors[j, j]):
                errors[j, j] = rate * size[j]
                shadowed += is_shadow
    what = {"dispersion": dispersion, "unit": unit}
    if not labelled:
        return View(errors, np.r_[size, np.full(horizon, size.mean())], t, boundary[champion],
                    cost, t + 1, **what)  # fmt: skip
    observed = labelled[-1]
    recent = size[labelled[-4:]].mean()
    rows = np.r_[size, np.full(horizon, recent)]
    return View(
        errors, rows, t, boundary[champion], float(cost), t - observed, shadows=shadowed, **what
    )


def store_view(
    store: Any, *, champion: int | None, horizon: int, keep: int = 260, metric: str = ""
) -> View | None:
    """:func:`serving_view` of a project's store over its last ``keep`` batches (errors as the
    loop recorded them, shadow candidates' too; runs whose gate compared on accuracy, or on a
    regressor's mae or rmse, add the gate copy's error per row). ``metric``: a regressor's
    gate metric, whose row errors (absolute or squared) are counted, else empty.
    A champion older than that counts as ``keep`` batches old."""
    from sqlalchemy import select

    from retrainer.store.tables import BatchRow, CheckRow, RunRow

    if champion is None:
        return None
    with store.session() as s:
        batches = s.execute(
            select(BatchRow.id, BatchRow.n_rows)
            .where(BatchRow.status != "quarantined")
            .order_by(BatchRow.id.desc())
            .limit(keep)
        ).all()[::-1]
        first = batches[0][0] if batches else 0
        checks = [
            dict(d)
            for d in s.scalars(
                select(CheckRow.detail).where(
                    CheckRow.kind == "performance", CheckRow.batch_id >= first
                )
            )
        ]
        runs = s.execute(select(RunRow.window, RunRow.metrics).order_by(RunRow.id)).all()
    for c in checks:
        c["sum"] = error_sum(c)
    labelled = {c["batch"]: c["n"] for c in checks if c["sum"] is not None}
    scored = [
        (c["batch"], c["version"], c["sum"])
        for c in checks
        if c["sum"] is not None and c.get("role") == "champion"
    ]
    served = {c["batch"]: c["version"] for c in checks if c.get("role") == "champion"}
    shadows = [
        (c["batch"], c["sum"] / c["n"])
        for c in checks
        if c.get("role") == "shadow" and c["sum"] is not None and c.get("n")
    ]
    gates = []
    for window, metrics in runs:
        gate = (metrics or {}).get("gate") or {}
        rate = _gate_rate(gate.get("metric"), gate.get("challenger"))
        if rate is not None:
            gates.append(((window or {}).get("last_batch"), rate))
    regressor = [  # the champion's scored batches of a regressor: their row losses' spread
        c for c in checks if metric and c.get("role") == "champion" and c.get("loss") is not None
    ]
    return serving_view(
        batches=[(b, labelled.get(b, rows)) for b, rows in batches],
        scored=scored,
        served=served,
        gates=gates,
        champion=champion,
        horizon=horizon,
        shadows=shadows,
        dispersion=_dispersion(regressor) if regressor else 1.0,
        unit=unit(metric),
    )


def error_sum(check: dict) -> float | None:
    """A performance check's errors: a classifier's wrong predictions, a regressor's absolute
    or squared errors summed (its mean row loss times its rows); None if it has neither.

    >>> error_sum({"errors": 3, "n": 10}), error_sum({"errors": None, "loss": 0.5, "n": 10})
    (3, 5.0)
    """
    if check.get("errors") is not None:
        return check["errors"]
    if check.get("loss") is not None and check.get("n"):
        return float(check["loss"]) * int(check["n"])
    return None


def _gate_rate(metric: str | None, challenger: Any) -> float | None:
    """The gate copy's error per row from its gate score: a classifier's error rate, a
    regressor's mean absolute or squared error."""
    if challenger is None:
        return None
    value = float(challenger)
    return {"accuracy": 1.0 - value, "mae": value, "rmse": value**2}.get(metric or "")


def _dispersion(checks: list[dict]) -> float:
    """One row's error variance over its mean, pooled over a regressor's checks (each keeps
    its mean row loss and mean square): what a count's Poisson variance is to wrong
    predictions."""
    n = np.array([c["n"] for c in checks], dtype=float)
    mean = np.array([c["loss"] for c in checks], dtype=float)
    square = np.array([c.get("loss_squares", c["loss"] ** 2) for c in checks], dtype=float)
    total = float((n * mean).sum())
    return float((n * (square - mean**2)).sum()) / total if total > 0 else 1.0
