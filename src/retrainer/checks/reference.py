"""Which data a batch's drift check compares with: a fixed, a rolling or a seasonal reference,
and a hint when drift looks periodic.

- ``fixed``: the champion's reference (its training window), as before.
- ``rolling``: the batches of the last ``window`` before the batch (by data time).
- ``seasonal``: the batches within ``window`` around the same time one ``period`` ago
  (``period: 365d`` for a yearly cycle, ``7d`` for a weekly one), so the season the batch is in
  is compared with the same season: a summer batch with last summer, a Monday with last Monday.

The reference of a batch is the merge of the stored profiles of the chosen batches (profiles
on the champion's histogram edges merge by adding counts). When the chosen batches hold fewer
than ``min_rows`` rows (the first period of a seasonal reference, say), a seasonal reference
falls back to the rolling window, and a rolling one to the fixed reference; the note says which.

Example:
    >>> from datetime import datetime, timedelta
    >>> day = datetime(2024, 1, 1)
    >>> history = [Candidate(i, day + timedelta(days=i), 10) for i in range(400)]
    >>> spec = ReferenceSpec("seasonal", timedelta(days=4), timedelta(days=365))
    >>> [c.batch_id for c in choose(history, day + timedelta(days=380), spec)]
    [13, 14, 15, 16, 17]
    >>> [c.batch_id for c in choose(history, day + timedelta(days=380), spec.as_rolling())]
    [376, 377, 378, 379]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from retrainer.config import format_duration
from retrainer.profile import BatchProfile

KINDS = ("fixed", "rolling", "seasonal")
PERIODS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "365d": timedelta(days=365)}
HINT_BATCHES = 10  # the last batches whose drift alarms a hint reads
# drift in at least this share of them: the verdict's false alarms are at most 1 % a batch
# (``checks.drift.batch_alpha``), and a champion retrained on the season drifts less often (a
# fixed reference on ELEC2's yearly cycle: 60 % of batches, never 8 of 10 in a row of 10)
HINT_SHARE = 0.5
HINT_HISTORY = 60  # batches whose column means are fitted with a cycle
HINT_R2 = 0.6  # share of the means' variance a cycle must explain
MIN_REFERENCE_ROWS = 30  # the fewest rows a hint's setting asks of a seasonal window


@dataclass(frozen=True)
class ReferenceSpec:
    """A reference choice (``checks.drift.reference`` of the project file)."""

    kind: str = "fixed"
    window: timedelta = timedelta(days=28)
    period: timedelta | None = None
    min_rows: int = 200
    periods: int = 1  # seasonal: the same season in each of the last ``periods`` periods

    def __post_init__(self) -> None:
        if self.periods < 1:
            raise ValueError(f"periods must be at least 1, not {self.periods}")
        if self.kind not in KINDS:
            raise ValueError(f"reference kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "seasonal" and self.period is None:
            raise ValueError("a seasonal reference needs a period (e.g. 365d or 7d)")

    def as_rolling(self) -> ReferenceSpec:
        return replace(self, kind="rolling", period=None)


@dataclass(frozen=True)
class Candidate:
    """A stored batch that can join a reference: its id, data time and row count."""

    batch_id: int
    at: datetime
    rows: int


def choose(history: Sequence[Candidate], at: datetime, spec: ReferenceSpec) -> list[Candidate]:
    """The batches of ``history`` that form the reference of a batch at time ``at``
    (none for a fixed reference); a seasonal window is centred one period before ``at``."""
    if spec.kind == "fixed":
        return []
    if spec.kind == "rolling":
        low, high = at - spec.window, at
        return [c for c in history if low <= c.at < high]
    centres = [at - k * spec.period for k in range(1, spec.periods + 1)]
    half = spec.window / 2
    return [c for c in history if any(t - half <= c.at <= t + half for t in centres)]


@dataclass(frozen=True)
class Chosen:
    """The reference a batch is checked against and a sentence on how it was chosen."""

    profile: BatchProfile
    kind: str  # the kind used (after any fallback)
    batches: tuple[int, ...]
    note: str
    dispersion: dict[str, float] = field(default_factory=dict)  # column -> (>= 1)
    newest: int | None = None  # the newest batch it holds (None: not known)
    # categorical column -> degrees of freedom of its dispersion (its tests read an F tail)
    dispersion_df: dict[str, int] = field(default_factory=dict)


FIXED_NOTE = "fixed reference (the champion's training window)"


def fixed_reference(fixed: BatchProfile) -> Chosen:
    """The champion's reference, unchanged, with the dispersion of its batches (read from the
    moments and category counts it keeps of each).

    Example:
        >>> import pandas as pd
        >>> from retrainer.data.schema import Schema
        >>> days = pd.DataFrame({"shop": ["a"] * 50 + ["b"] * 50 + ["a"] * 90 + ["b"] * 10})
        >>> schema = Schema.infer(days)
        >>> merged = BatchProfile.from_frame(days, schema, batches=np.repeat([0, 1], 100))
        >>> chosen = fixed_reference(merged)
        >>> round(chosen.dispersion["shop"], 1), chosen.dispersion_df
        (38.1, {'shop': 1})
    """
    spreads = _moment_spreads(fixed)
    return Chosen(fixed, "fixed", (), FIXED_NOTE, _factors(spreads), dispersion_df=_dfs(spreads))


def reference_for(
    fixed: BatchProfile,
    history: Sequence[Candidate],
    at: datetime,
    spec: ReferenceSpec,
    profile_of: Callable[[int], BatchProfile],
) -> Chosen:
    """The reference of a batch at time ``at``: the merged profiles of the batches ``spec``
    chooses from ``history`` (``profile_of(batch_id)`` gives one on ``fixed``'s edges), with the
    fallbacks of the module doc.

    Example:
        >>> import pandas as pd
        >>> from retrainer.data.schema import Schema
        >>> frame = pd.DataFrame({"x": [float(i % 7) for i in range(700)]})
        >>> schema = Schema.infer(frame)
        >>> fixed = BatchProfile.from_frame(frame, schema)
        >>> part = BatchProfile.from_frame(frame.head(100), schema, edges=fixed.edges())
        >>> t0 = datetime(2024, 1, 1)
        >>> history = [Candidate(i, t0 + timedelta(days=i), 100) for i in range(3)]
        >>> chosen = reference_for(fixed, history, t0 + timedelta(days=3),
        ...                        ReferenceSpec("rolling", timedelta(days=7)), lambda i: part)
        >>> chosen.kind, chosen.batches, chosen.profile.n_rows
        ('rolling', (0, 1, 2), 300)
        >>> reference_for(fixed, history[:1], t0 + timedelta(days=3),
        ...               ReferenceSpec("rolling", timedelta(days=7)), lambda i: part).note
        'rolling reference: 100 rows in the last 7 days, fewer than 200; the fixed reference used'
    """
    if spec.kind == "fixed":
        return fixed_reference(fixed)
    picked = choose(history, at, spec)
    rows = sum(c.rows for c in picked)
    where = (
        f"within {format_duration(spec.window)} around {format_duration(spec.period)} before"
        if spec.kind == "seasonal"
        else f"in the last {format_duration(spec.window)}"
    )
    if rows < spec.min_rows:
        short = f"{spec.kind} reference: {rows} rows {where}, fewer than {spec.min_rows}"
        if spec.kind == "seasonal":
            fallback = reference_for(fixed, history, at, spec.as_rolling(), profile_of)
            return replace(fallback, note=f"{short}; {fallback.note}")
        return replace(fixed_reference(fixed), note=f"{short}; the fixed reference used")
    profiles = [profile_of(c.batch_id) for c in picked]
    merged = profiles[0]
    for other in profiles[1:]:
        merged = merged.merge(other)
    ids = tuple(c.batch_id for c in picked)
    note = f"{spec.kind} reference: {len(ids)} batches ({merged.n_rows} rows) {where}"
    spreads = _spreads(profiles)
    return Chosen(merged, spec.kind, ids, note, _factors(spreads), max(ids), _dfs(spreads))


def _counts_of(profiles: Sequence[BatchProfile], name: str) -> np.ndarray | None:
    columns = [p.columns.get(name) for p in profiles]
    if any(c is None or c.missing or c.kind != "categorical" for c in columns):
        return None
    return _table([c.categories or {} for c in columns])


def _table(counts: Sequence[dict[str, int]]) -> np.ndarray:
    """Batches by categories: each batch's count of each category any batch holds."""
    labels = sorted({k for c in counts for k in c})
    return np.array([[c.get(k, 0) for k in labels] for c in counts], float)


def _design_effect(profiles: Sequence[BatchProfile], name: str) -> float | None:
    """The design effect of a column from one profile per batch (:func:`anova_f`)."""
    columns = [p.columns.get(name) for p in profiles]
    if any(c is None or c.missing or c.kind != "numeric" or not c.values for c in columns):
        return None
    n = np.array([c.values for c in columns], float)
    mean = np.array([c.mean for c in columns], float)
    var = np.array([(c.std or 0.0) ** 2 for c in columns], float)
    return anova_f(n, mean, var)


def anova_f(n: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float | None:
    """One-way ANOVA F of batches of ``n`` values with these means and variances (``ddof=1``):
    between-batch over within-batch mean square, an estimate of the design effect ``1 + (m -
    1) * icc`` of rows clustered in batches of ``m``, so at most ``m`` (the mean batch size): a
    column with one value a batch (a month's count of listings) counts a batch as one row.

    Example:
        >>> anova_f(np.array([30.0, 30.0]), np.array([1.0, 5.0]), np.array([0.0, 0.0]))
        30.0
    """
    if len(n) < 2 or n.sum() <= len(n) or not np.isfinite(mean + var).all():
        return None
    grand = float((n * mean).sum() / n.sum())
    between = float((n * (mean - grand) ** 2).sum()) / (len(n) - 1)
    within = float(((n - 1) * var).sum()) / float(n.sum() - len(n))
    if within <= 0:
        return float(n.mean()) if between > 0 else None
    return min(between / within, float(n.mean()))


def _moment_spreads(profile: BatchProfile) -> dict[str, tuple[float, int | None]]:
    """:func:`_spreads` of one profile that keeps its batches' moments and category counts (a
    champion's reference: ``batch_moments``, ``batch_counts``)."""
    out: dict[str, tuple[float, int | None]] = {}
    for name, col in profile.columns.items():
        if col.kind == "categorical":
            spread = _count_dispersion(_table(col.counts_by_batch))
            if spread is not None:
                out[name] = spread
            continue
        moments = [m for m in (col.batch_moments or ()) if m[2] is not None]
        if col.kind != "numeric" or len(moments) < 2:
            continue
        n = np.array([rows - nulls for rows, nulls, _, _ in moments], float)
        mean = np.array([m[2] for m in moments], float)
        std0 = np.array([m[3] or 0.0 for m in moments], float)
        var = std0**2 * n / np.maximum(n - 1, 1)  # the batches' std is ddof=0
        effect = anova_f(n, mean, var)
        if effect is not None:
            out[name] = (max(1.0, effect), None)
    return out


def _factors(spreads: dict[str, tuple[float, int | None]]) -> dict[str, float]:
    return {name: factor for name, (factor, _) in spreads.items()}


def _dfs(spreads: dict[str, tuple[float, int | None]]) -> dict[str, int]:
    return {name: df for name, (_, df) in spreads.items() if df}


def _count_dispersion(table: np.ndarray) -> tuple[float, int] | None:
    """Pearson's chi-square of homogeneity of a batches-by-categories table of counts over its
    degrees of freedom, at least 1, and those degrees of freedom (None: fewer than 2 batches or
    categories with counts)."""
    if table.ndim != 2 or not table.size:
        return None
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    return max(1.0, stat / df), df


def dispersion(profiles: Sequence[BatchProfile]) -> dict[str, float]:
    """Per column, how much more the batches differ than independent sampling explains, at
    least 1 (fewer than 2 batches: no entry). Numbers: the one-way ANOVA F of the batch means
    (the design effect of rows clustered in batches: real series move in level from batch to
    batch, and a level is what a KS test on a small batch sees first). Categories: Pearson's
    chi-square of homogeneity of their counts over its degrees of freedom. Both have
    expectation 1 when every batch is an independent sample of one distribution; with 2
    batches the estimate has 1 degree of freedom (numbers), so a reference of 4 or more
    batches is steadier.

    Example:
        >>> import pandas as pd
        >>> from retrainer.data.schema import Schema
        >>> rng = np.random.default_rng(0)
        >>> weeks = [pd.DataFrame({"same": rng.normal(size=300),
        ...                        "moves": rng.normal(loc=i / 2, size=300)}) for i in range(3)]
        >>> schema = Schema.infer(weeks[0])
        >>> first = BatchProfile.from_frame(pd.concat(weeks), schema)
        >>> profiles = [BatchProfile.from_frame(w, schema, edges=first.edges()) for w in weeks]
        >>> {k: round(v, 1) for k, v in dispersion(profiles).items()}
        {'same': 1.0, 'moves': 67.7}
    """
    return _factors(_spreads(profiles))


def _spreads(profiles: Sequence[BatchProfile]) -> dict[str, tuple[float, int | None]]:
    """Per column, :func:`dispersion` and, for categories, the degrees of freedom of its
    chi-square (None for numbers)."""
    if len(profiles) < 2:
        return {}
    out: dict[str, tuple[float, int | None]] = {}
    for name in profiles[0].columns:
        effect = _design_effect(profiles, name)
        if effect is not None:
            out[name] = (max(1.0, effect), None)
            continue
        table = _counts_of(profiles, name)
        spread = None if table is None else _count_dispersion(table)
        if spread is not None:
            out[name] = spread
    return out


# ------------------------------------------------------------------------------ the hint
@dataclass(frozen=True)
class Periodicity:
    """Periodic drift seen in recent batches: which cycle, how well it fits, on which column."""

    period: str
    column: str
    r2: float
    drifted: int
    batches: int
    spacing: timedelta | None = None  # the recent batches' median step in data time
    rows: float | None = None  # and their median rows

    def hint(self, spec: ReferenceSpec | None = None) -> str:
        """The sentence, with a setting that takes hold on this data: a window that holds
        ``min_rows`` (else the widest that keeps the season, a quarter period, and a
        ``min_rows`` it holds) where ``spec``'s window would hold fewer and fall back."""
        seen = (
            f"drift in {self.drifted} of the last {self.batches} batches follows a "
            f"~{self.period} cycle (column {self.column!r}, the cycle explains "
            f"{100 * self.r2:.0f}% of its batch means' variance)"
        )
        spec = spec or ReferenceSpec()
        fitted = self._fitted(spec)
        if fitted is None:
            return f"{seen}; set checks.drift.reference.kind: seasonal, period: {self.period}"
        window, min_rows, held, fits = fitted
        days = format_duration(spec.window)
        why = (
            f"a window of {days} holds about {held:.0f} rows of these batches, fewer than "
            f"{spec.min_rows}, so the check would fall back to the fixed reference"
            if spec.window <= PERIODS[self.period] / 4
            else f"a window of {days} spans more than a quarter of the cycle"
        )
        if min_rows != spec.min_rows:
            why += f"; one of {format_duration(window)} holds about {fits:.0f}"
        extra = f", min_rows: {min_rows}" if min_rows != spec.min_rows else ""
        return (
            f"{seen} ({why}); set checks.drift.reference: {{kind: seasonal, period: "
            f"{self.period}, window: {_duration_setting(window)}{extra}}}"
        )

    def _fitted(self, spec: ReferenceSpec) -> tuple[timedelta, int, float, float] | None:
        """(window, min_rows, rows spec's window holds, rows the window holds) when spec's
        window does not fit: too wide for the season or too few rows. The window spans an odd
        number of batch steps, so it holds the same batch a period ago and as many neighbours
        on each side, whatever the day it is centred on."""
        period = PERIODS[self.period]
        if not self.spacing or not self.rows or self.spacing <= timedelta(0):
            return None
        held = self.rows * (min(spec.window, period) / self.spacing)
        if spec.window <= period / 4 and held >= spec.min_rows:
            return None
        most = max(1, round((period / 4) / self.spacing))  # months: 91 days / 31 -> 3
        most -= 1 - most % 2  # the widest odd number of steps in about a quarter period
        need = math.ceil(spec.min_rows / self.rows)
        need += 1 - need % 2
        if need <= most:
            return self.spacing * need, spec.min_rows, held, need * self.rows
        fits = most * self.rows
        return self.spacing * most, max(MIN_REFERENCE_ROWS, int(0.6 * fits)), held, fits


def cycle_fit(times: Sequence[float], values: Sequence[float], period: float) -> float:
    """R^2 of a least-squares fit ``a + b cos(2 pi t / period) + c sin(2 pi t / period)``
    (times and period in the same unit).

    Example:
        >>> t = np.arange(24) * 30.0
        >>> round(cycle_fit(t, np.sin(2 * np.pi * t / 365) + 5, 365), 3)
        1.0
        >>> cycle_fit(t, np.zeros(24), 365)
        0.0
    """
    t, y = np.asarray(times, float), np.asarray(values, float)
    total = float(((y - y.mean()) ** 2).sum())
    if len(y) < 4 or total <= 0:
        return 0.0
    angle = 2 * math.pi * t / period
    design = np.column_stack([np.ones_like(t), np.cos(angle), np.sin(angle)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = float(((y - design @ coef) ** 2).sum())
    return max(0.0, 1.0 - residual / total)


def periodic_drift(
    times: Sequence[datetime],
    means: dict[str, Sequence[float]],
    drifted: Sequence[bool],
    rows: Sequence[int] | None = None,
) -> Periodicity | None:
    """A hint when drift is periodic: at least half of the last 10 batches drifted and one
    column's batch means follow a 1-day, 7-day or 365-day cycle (the cycle explains at least
    60 % of their variance, clearly more than a straight trend, over at least half a period of
    data, at least 3 batches per period).

    Parameters:
        times: data time of each batch, oldest first.
        means: per column, the batch means in the same order (NaN when absent).
        drifted: per batch, whether the drift check alarmed.
        rows: per batch, its rows (the hint then fits its window to them).

    Example:
        >>> t0 = datetime(2020, 1, 1)
        >>> times = [t0 + timedelta(days=30 * i) for i in range(24)]
        >>> temp = [10 + 8 * math.sin(2 * math.pi * 30 * i / 365) for i in range(24)]
        >>> periodic_drift(times, {"temp": temp}, [True] * 24).period
        '365d'
        >>> periodic_drift(times, {"temp": temp}, [False] * 24) is None
        True
    """
    recent = list(drifted)[-HINT_BATCHES:]
    if len(recent) < HINT_BATCHES or sum(recent) < HINT_SHARE * len(recent):
        return None
    times = list(times)[-HINT_HISTORY:]
    seconds = np.array([(t - times[0]).total_seconds() for t in times])
    span = seconds[-1] - seconds[0] if len(seconds) else 0.0
    best: Periodicity | None = None
    for label, period in PERIODS.items():
        p = period.total_seconds()
        spacing = float(np.median(np.diff(seconds))) if len(seconds) > 1 else p
        if span < p / 2 or spacing <= 0 or spacing > p / 3:
            continue
        for column, values in means.items():
            y = np.asarray(list(values)[-HINT_HISTORY:], float)
            ok = np.isfinite(y)
            if ok.sum() < 6:
                continue
            r2 = cycle_fit(seconds[ok], y[ok], p)
            trend = _trend_fit(seconds[ok], y[ok])
            if r2 >= HINT_R2 and r2 - trend >= 0.1 and (best is None or r2 > best.r2):
                best = Periodicity(label, column, r2, int(sum(recent)), len(recent))
    if best is None or rows is None:
        return best
    step = float(np.median(np.diff(seconds))) if len(seconds) > 1 else 0.0
    return replace(best, spacing=timedelta(seconds=step), rows=float(np.median(rows)))


def _duration_setting(span: timedelta) -> str:
    """A duration as the project file writes it: whole days, else whole hours (at least 1)."""
    hours = span.total_seconds() / 3600
    return f"{round(hours / 24)}d" if hours >= 24 else f"{max(1, round(hours))}h"


def _trend_fit(t: np.ndarray, y: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    design = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return max(0.0, 1.0 - float(((y - design @ coef) ** 2).sum()) / total)
