"""What the reference's own batches say about a new batch, for a column that moves batch by
batch.

A day's flights share that day's weather: their temperatures are a few hourly readings, and a
cold day after four mild ones lies wholly outside their range. Rules that count rows as
independent draws (a range that 900 values leave, a null share far beyond the reference's)
then read every change of the weather as a fault. Where the reference's batches differ from
each other beyond what their rows' spread explains (a one-way analysis of variance of the batch
means, a homogeneity test of their null shares, both at ``HETEROGENEITY_P``), the unit of
evidence is the batch: a new batch is judged against the spread of the reference's batches,
with a Student-t prediction interval on ``k - 1`` degrees of freedom for ``k`` batches (of
their means, of their null shares). Four
reference days tell little, and the interval says so: it is wide.

Where the batches agree (rows drawn alike in every batch), the functions return None and the
row-level rules stand as they are.

Example:
    >>> from retrainer.profile import ColumnProfile
    >>> days = ((900, 0, 41.0, 3.0), (900, 0, 30.0, 2.0), (900, 0, 45.0, 4.0), (900, 0, 38.0, 3.0))
    >>> ref = ColumnProfile("temp", "numeric", count=3600, batch_moments=days)
    >>> round(mean_p(ref, 20.0), 3)  # a cold day: far from the rows, not from the days
    0.08
    >>> same = tuple((900, 0, 40.0 + d, 3.0) for d in (0.0, 0.1, -0.1, 0.05))
    >>> mean_p(ColumnProfile("temp", "numeric", count=3600, batch_moments=same), 20.0) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from retrainer.profile import ColumnProfile

HETEROGENEITY_P = 0.01  # the reference's batches differ beyond their rows' spread below this


def mean_p(ref: ColumnProfile, mean: float | None, since: int | None = None) -> float | None:
    """The two-sided chance that a batch of the reference's kind has a mean this far from what
    its batches' means predict; None when those means agree as far as their rows' spread tells
    (then rows, not batches, are the unit).

    Without ``since``, the prediction is the mean of the batches' means (t on ``k - 1`` degrees
    of freedom). With ``since`` (how many batches after the reference's newest this one is) and
    three batches or more, it is also their straight line in time, read at this batch (t on
    ``k - 2``): a season's trend (October cooling) carries on, and the interval widens with the
    distance from the reference, as a regression's prediction interval does. The batch is
    beyond the batches only where neither reading explains it (an intersection-union test: the
    larger of the two chances). A line does not continue for ever: a month's number climbs from
    1 to 8 without a residual, and a later September is no fault.

    Example:
        >>> from retrainer.profile import ColumnProfile
        >>> noise = [1.5, -2.0, 0.5, 2.0, -1.5, 1.0, -2.5, 1.0]  # 8 days cooling 2 degrees a day
        >>> days = tuple((900, 0, 70.0 - 2 * d + noise[d], 3.0) for d in range(8))
        >>> ref = ColumnProfile("temp", "numeric", count=7200, batch_moments=days)
        >>> round(mean_p(ref, 30.0), 4), round(mean_p(ref, 30.0, since=8), 2)  # 8 days later
        (0.0007, 0.06)
        >>> months = ColumnProfile("month", "numeric", count=400,
        ...                        batch_moments=tuple((50, 0, m, 0.0) for m in range(1, 9)))
        >>> round(mean_p(months, 9.0, since=13), 2)  # the next year's September: not beyond
        0.13
    """
    batches = [(r - n, m, s) for r, n, m, s in ref.moments_by_batch if m is not None and r > n]
    return batches_p(batches, mean, since)


def batches_p(
    batches: Sequence[tuple[float, float, float]], mean: float | None, since: int | None = None
) -> float | None:
    """:func:`mean_p` on batches given as (values, mean, std with ``ddof=0``), oldest first:
    a category's share per batch is a Bernoulli's mean, with std ``sqrt(p (1 - p))``.

    Example:
        >>> years = [(545, p, (p * (1 - p)) ** 0.5) for p in (0.288, 0.358, 0.448, 0.501)]
        >>> round(batches_p(years, 0.541, since=1), 2)  # the next year's share of the married
        0.27
    """
    if len(batches) < 2 or mean is None or not math.isfinite(mean):
        return None
    from scipy.stats import f, t  # imported when a column moved

    n = np.array([b[0] for b in batches], dtype="float64")
    means = np.array([b[1] for b in batches])
    within = float(np.sum(n * np.array([b[2] for b in batches]) ** 2))
    k, total = len(batches), float(n.sum())
    grand = float(np.sum(n * means) / total)
    between = float(np.sum(n * (means - grand) ** 2))
    if total <= k or between <= 0:
        return None
    spread = within / (total - k)
    if spread > 0 and f.sf((between / (k - 1)) / spread, k - 1, total - k) >= HETEROGENEITY_P:
        return None
    scale = float(np.std(means, ddof=1)) * math.sqrt(1 + 1 / k)
    level = float(2 * t.sf(abs(mean - float(means.mean())) / scale, k - 1))
    if since is None or k < 3:
        return level
    x = np.arange(k, dtype="float64")
    slope, intercept = np.polyfit(x, means, 1)
    at = k - 1 + since
    residual = math.sqrt(float(np.sum((means - intercept - slope * x) ** 2)) / (k - 2))
    spread_x = float(np.sum((x - x.mean()) ** 2))
    scale = residual * math.sqrt(1 + 1 / k + (at - x.mean()) ** 2 / spread_x)
    if scale <= 0:
        return level
    return max(level, float(2 * t.sf(abs(mean - (intercept + slope * at)) / scale, k - 2)))


def null_limit(ref: ColumnProfile, alpha: float) -> float | None:
    """The null share a batch exceeds with chance ``alpha`` when the reference's batches' null
    shares differ beyond chance (a t prediction bound on ``k - 1`` degrees of freedom of their
    shares: above 1 when even an all-null batch is within it); None when they agree (a
    chi-squared homogeneity test) or are fewer than two.

    Example:
        >>> gusts = ((900, 240, None, None), (900, 470, None, None), (900, 750, None, None))
        >>> null_limit(ColumnProfile("gust", "numeric", count=2700, batch_moments=gusts),
        ...            1e-3) > 1  # a calm day without a gust is within
        True
        >>> even = ((900, 90, None, None), (900, 95, None, None), (900, 85, None, None))
        >>> null_limit(ColumnProfile("p", "numeric", count=2700, batch_moments=even), 1e-3)
    """
    batches = [(r, n) for r, n, _, _ in ref.moments_by_batch if r > 0]
    nulls = np.array([n for _, n in batches], dtype="float64")
    rows = np.array([r for r, _ in batches], dtype="float64")
    if len(batches) < 2 or nulls.sum() in (0, rows.sum()):
        return None
    from scipy.stats import chi2_contingency, t  # imported when a column has nulls

    if chi2_contingency(np.stack([nulls, rows - nulls], axis=1))[1] >= HETEROGENEITY_P:
        return None
    shares, k = nulls / rows, len(batches)
    scale = float(np.std(shares, ddof=1)) * math.sqrt(1 + 1 / k)
    return float(shares.mean()) + float(t.isf(alpha, k - 1)) * scale
