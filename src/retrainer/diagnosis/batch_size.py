"""The usual size of a batch, and how far below it a batch must fall to be called truncated.

A batch with half the rows of the recent ones (the median of the last ``RECENT``) is suspect.
Where a project's batch sizes vary by themselves (a month's listings, a season's matches), half
is within their own behaviour: the share below which a batch is called truncated is then the
lower ``ALPHA`` bound of a prediction from the earlier batches' log ratios to their own recent
median (Student's t, one-sided), and never more than half.

Example:
    >>> usual_size([336] * 20).rows, usual_size([336] * 20).share  # steady: half is suspect
    (336.0, 0.5)
    >>> months = [94, 95, 100, 108, 139, 176, 249, 298, 246, 283, 259, 275, 216, 292, 267, 307]
    >>> size = usual_size(months)
    >>> size.rows, round(size.share, 2)  # 100 rows would be no truncation here
    (271.0, 0.33)
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RECENT = 8  # batches whose median size is the usual size
MIN_HISTORY = 3  # fewest earlier batches before a batch can be called truncated
MOST_SHARE = 0.5  # a batch with fewer than this share of the usual rows is suspect
ALPHA = 1e-3  # false-alarm rate per batch where the sizes vary by themselves
PRIOR_BATCHES = 3  # the half rule's weight, in batches, while few batches calibrate the rule


@dataclass(frozen=True)
class UsualSize:
    """``rows``: the usual size; a batch of fewer than ``share`` x ``rows`` is truncated."""

    rows: float
    share: float = MOST_SHARE


def usual_size(sizes: Sequence[int]) -> UsualSize | None:
    """The usual size after batches of ``sizes`` (oldest first; None with fewer than
    ``MIN_HISTORY``) and the share below it that they reach by chance with probability
    ``ALPHA``."""
    if len(sizes) < MIN_HISTORY:
        return None
    logs = np.log(np.maximum(np.asarray(sizes, dtype=float), 1.0))
    ratios = [
        logs[i] - np.log(statistics.median(sizes[max(0, i - RECENT) : i]))
        for i in range(MIN_HISTORY, len(sizes))
    ]
    rows = float(statistics.median(sizes[-RECENT:]))
    if len(ratios) < 2:
        return UsualSize(rows, _early_share(logs))
    from scipy import stats  # here: `retrainer explain` reads diagnoses without SciPy

    n, spread = len(ratios), float(np.std(ratios, ddof=1))
    bound = np.mean(ratios) + stats.t.ppf(ALPHA, n - 1) * spread * np.sqrt(1 + 1 / n)
    return UsualSize(rows, float(min(MOST_SHARE, np.exp(bound))))


def _early_share(logs: np.ndarray) -> float:
    """The truncation share while too few batches calibrate the rule: the half rule, widened
    by how much the batches after the first already differ. The first file is left out (it
    often holds a backfill of several periods); each later batch's log ratio to the median of
    those before it (the first left out) is pooled with the half rule as a prior worth
    ``PRIOR_BATCHES`` batches, whose spread puts half the usual size at ``ALPHA``.

    Example:
        >>> _early_share(np.log([4 * 336, 336, 336]))  # a backfill, then steady weeks
        0.5
        >>> round(_early_share(np.log([1275, 3491, 1381])), 2)  # a cohort's yearly samples
        0.21
    """
    from statistics import NormalDist

    z = -NormalDist().inv_cdf(ALPHA)
    prior = (np.log(1 / MOST_SHARE) / z) ** 2
    steps = [logs[i] - float(np.median(logs[1:i])) for i in range(2, len(logs))]
    spread = np.sqrt((PRIOR_BATCHES * prior + float(np.sum(np.square(steps))))
                     / (PRIOR_BATCHES + len(steps)))  # fmt: skip
    return float(min(MOST_SHARE, np.exp(-z * spread)))
