"""Multiple testing over columns: Bonferroni and Benjamini-Hochberg adjusted p-values.

Testing 25 columns at ``alpha = 0.05`` raises a false alarm on about one batch in four when
nothing moved. Bonferroni controls the family-wise error rate (any false alarm) at ``alpha``;
Benjamini-Hochberg controls the false discovery rate (the expected share of false alarms among
the alarms), and the chance of any alarm when no column moved, at ``alpha``.

Example:
    >>> [round(p, 3) for p in adjust([0.01, 0.02, 0.03, 0.5], "bh")]
    [0.04, 0.04, 0.04, 0.5]
    >>> [round(p, 3) for p in adjust([0.01, 0.02, 0.03, 0.5], "bonferroni")]
    [0.04, 0.08, 0.12, 1.0]

References:
    Y. Benjamini and Y. Hochberg (1995), "Controlling the false discovery rate: a practical and
    powerful approach to multiple testing", J. R. Statist. Soc. B 57.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CORRECTIONS = ("none", "bonferroni", "bh")


def adjust(p_values: Sequence[float], method: str = "bh") -> list[float]:
    """Adjusted p-values (compare each with ``alpha``), in the order given.

    Parameters:
        p_values: the raw p-values, one per column tested.
        method: ``"bh"`` (Benjamini-Hochberg), ``"bonferroni"`` or ``"none"``.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r} is not one of {CORRECTIONS}")
    p = np.asarray(p_values, dtype="float64")
    if p.size == 0 or method == "none":
        return p.tolist()
    if ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("p-values must lie in [0, 1]")
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0).tolist()
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    ranked = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty_like(p)
    out[order] = ranked
    return out.tolist()
