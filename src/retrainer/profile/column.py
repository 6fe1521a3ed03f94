"""The profile of one column of a batch: counts, moments, a histogram or category counts.

A column is reduced in one pass to a small value that merges exactly with the profile of another
batch: counts and histograms add, moments (to the fourth) combine with the pairwise updates of
Chan et al. and Pebay. Each histogram bin also keeps the sum of its values, so distances that need
where the mass sits inside a bin (Wasserstein, energy) place it at the bin's mean. The longest run
of one repeated value (a stuck sensor), the number of consecutive rows that repeat a value
(``repeats``, how often readings naturally repeat; ``repeats2`` of them follow a repeat: how
runs go on) and, for timestamps, the number of steps back
in time are counted in row order. Numeric columns keep their most frequent exact values
(``modes``: rounded readings, a capped maximum) and, on given edges, how many values lie ``FAR``
reference widths or more beyond them (``far``: impossible values).
Numeric values are split into nulls (NaN, None), non-finite values (+-inf, counted apart and kept
out of the moments and histogram), values that cannot be read as the column's kind (``invalid``,
with the first one kept as an example) and finite values. The histogram is taken on given bin
edges with two open outer bins, so a batch outside the reference's range is still counted.
Categorical columns keep the counts of their ``top_k`` most frequent values and pool the rest in
``"__other__"``. Datetime columns are profiled as seconds since the epoch (UTC; naive timestamps
are read as UTC), without a histogram.

Example:
    >>> import pandas as pd
    >>> from retrainer.data.schema import ColumnSpec
    >>> spec = ColumnSpec("x", "numeric", True)
    >>> p = profile_column(pd.Series([1.0, 2.0, None, float("inf")]), spec)
    >>> p.values, p.nulls, p.non_finite, p.mean, p.variance
    (2, 1, 1, 1.5, 0.25)

References:
    T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm for
    computing sample variances", Stanford CS report STAN-CS-79-773, 1979.
    P. Pebay, "Formulas for robust, one-pass parallel computation of covariances and
    arbitrary-order statistical moments", Sandia report SAND2008-6212, 2008.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from importlib import import_module
from typing import Any

import numpy as np
import pandas as pd

from retrainer.data.schema import ColumnSpec, as_text, mostly_distinct

try:
    _strings = import_module("retrainer.profile._strings")
except ImportError:  # built without a C compiler: pandas counts object columns
    _strings = None

OTHER = "__other__"
TOP_K = 1000
EXAMPLE_CHARS = 100
MODES = 16  # most frequent exact values kept per numeric column
FAR = 2.0  # a value this many reference widths beyond the reference's range is far out
NULL_BATCH_ROWS = 30  # a batch's null share counts as one the reference has shown from this size
BatchMoments = tuple[int, int, float | None, float | None]  # rows, nulls, mean, std of a batch
_EPOCH = pd.Timestamp(0, tz="UTC")


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Unique quantile edges of finite ``values`` (at least two, equal for a constant column).

    Example:
        >>> quantile_edges(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 4).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
        >>> quantile_edges(np.array([5.0, 5.0]), 4).tolist()
        [5.0, 5.0]
    """
    if values.size == 0:
        return np.empty(0)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return np.repeat(edges, 2) if edges.size == 1 else edges


def _search(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    index = np.searchsorted(edges[:-1], values, side="right")
    index += values > edges[-1]
    return index


BLOCK = 1 << 15  # values per block: a block's temporaries stay in the CPU cache
LOOKUP_MIN = 4096  # fewer values: a binary search each is as fast as the lookup table
CELLS_PER_EDGE = 64


TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float: narrower cells overflow


@dataclass(frozen=True)
class _Lookup:
    """Bins by a table on a uniform grid of ``CELLS_PER_EDGE`` cells per edge.

    The grid spans the inner edges ``e1 .. e(k-1)`` (the outer edges are the reference's
    extremes: a long tail would make the cells coarse). Each cell covers its stretch widened by
    1e-6 cell (rounding); one more cell holds everything above the grid, and the last entry
    (index -1) everything below ``e1`` (exactly: ``value - e1 < 0``). Without the last edge
    (added after: ``value > ek``), a cell in which the bin cannot change has ``cut`` +inf and its
    bin in ``low``; where it changes once, ``low`` is the first bin and ``cut`` the change point
    (bin = low + (value >= cut)); where it changes more often (edges closer than a cell),
    ``low`` is negative and the values go to a binary search, as ``mixed`` says.
    """

    low: np.ndarray
    cut: np.ndarray
    start: float
    scale: float
    cells: int
    last: float
    mixed: bool

    @classmethod
    def of(cls, edges: np.ndarray) -> _Lookup | None:
        inner = edges[:-1]
        if inner.size < 3 or not inner[-1] > inner[1]:
            return None
        cells = CELLS_PER_EDGE * edges.size
        start, width = float(inner[1]), float((inner[-1] - inner[1]) / cells)
        if not np.isfinite(width) or width < TINY or not np.isfinite(1.0 / width):
            return None  # a subnormal cell (edges 1e-311 apart): its scale overflows to inf
        grid = start + width * np.arange(cells + 1)
        margin = width * 1e-6
        lower = np.r_[start, grid[1:] - margin, -np.inf]
        upper = np.r_[grid[1:] + margin, np.inf, np.nextafter(start, -np.inf)]
        first = np.searchsorted(inner, lower, side="right")
        changes = np.searchsorted(inner, upper, side="right") - first
        cut = np.where(changes == 1, inner[np.minimum(first, inner.size - 1)], np.inf)
        low = np.where(changes <= 1, first, -(edges.size + 2)).astype(np.intp)
        mixed = bool((changes > 1).any())
        return cls(low, cut, start, 1.0 / width, cells, float(edges[-1]), mixed)

    def index(self, values: np.ndarray, edges: np.ndarray, scratch: _Scratch) -> np.ndarray:
        """The bin of each value (see ``histogram``); ``scratch`` holds buffers of its size."""
        real, cell, index, cut, above = (getattr(scratch, f) for f in _Scratch.FIELDS)
        with np.errstate(over="ignore"):  # far outside the grid: clipped to the outer cells
            np.subtract(values, self.start, out=real)
            np.multiply(real, self.scale, out=real)
        np.floor(real, out=real)
        np.clip(real, -1.0, float(self.cells), out=cell, casting="unsafe")
        np.take(self.low, cell, out=index)
        np.take(self.cut, cell, out=cut)
        np.greater_equal(values, cut, out=above)
        np.add(index, above, out=index)
        np.greater(values, self.last, out=above)
        np.add(index, above, out=index)
        if self.mixed:
            unsure = index < 0
            if unsure.any():
                index[unsure] = _search(values[unsure], edges)
        return index


@dataclass(frozen=True)
class _Scratch:
    """Buffers for ``_Lookup.index`` on blocks of up to ``size`` values."""

    real: np.ndarray
    cut: np.ndarray
    cell: np.ndarray
    index: np.ndarray
    above: np.ndarray

    FIELDS = ("real", "cell", "index", "cut", "above")

    @classmethod
    def of(cls, size: int) -> _Scratch:
        return cls(
            np.empty(size),
            np.empty(size),
            np.empty(size, dtype=np.intp),
            np.empty(size, dtype=np.intp),
            np.empty(size, dtype=bool),
        )

    def head(self, size: int) -> _Scratch:
        return _Scratch(*(buffer[:size] for buffer in vars(self).values()))


def _binned(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and sums of finite ``values`` in the bins of ``histogram``, block by block.

    Many values go through a lookup table (see ``_Lookup``): the result is that of the binary
    search for every value, several times faster.
    """
    size = edges.size + 1
    lookup = _Lookup.of(edges) if values.size >= LOOKUP_MIN else None
    if lookup is None:
        index = _search(values, edges)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.bincount(index, minlength=size), np.bincount(
                index, weights=values, minlength=size
            )
    counts, sums = np.zeros(size, dtype=np.intp), np.zeros(size)
    scratch = _Scratch.of(min(BLOCK, values.size))
    for start in range(0, values.size, BLOCK):
        block = values[start : start + BLOCK]
        index = lookup.index(block, edges, scratch.head(block.size))
        counts += np.bincount(index, minlength=size)
        with np.errstate(over="ignore", invalid="ignore"):
            sums += np.bincount(index, weights=block, minlength=size)
    return counts, sums


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` in ``len(edges) + 1`` bins.

    The bins are ``(-inf, e0)``, ``[e0, e1)``, ..., ``[e(k-1), ek]`` and ``(ek, +inf)``: the last
    inner bin is closed so the reference's maximum is inside, and the outer bins count values
    outside the reference range.

    Example:
        >>> histogram(np.array([-5.0, 0.0, 0.5, 1.0, 9.0]), np.array([0.0, 1.0])).tolist()
        [1, 3, 1]
    """
    return _binned(np.asarray(values, dtype="float64"), np.asarray(edges, dtype="float64"))[0]


def _moments(finite: np.ndarray) -> tuple[float, float, float, float]:
    """Mean and central moment sums M2, M3, M4 of finite values (two passes, block by block)."""
    with np.errstate(over="ignore", invalid="ignore"):  # |values| near 1e308 overflow to inf
        mean = float(finite.mean())
        m2 = m3 = m4 = 0.0
        buffers = np.empty((3, min(BLOCK, finite.size)))
        for start in range(0, finite.size, BLOCK):
            block = finite[start : start + BLOCK]
            c, sq, product = buffers[:, : block.size]
            np.subtract(block, mean, out=c)
            np.multiply(c, c, out=sq)
            m2 += float(sq.sum())
            m3 += float(np.multiply(sq, c, out=product).sum())
            m4 += float(np.multiply(sq, sq, out=product).sum())
    return mean, m2, m3, m4


def longest_run(values: np.ndarray) -> int:
    """Length of the longest run of one repeated value in row order (NaN breaks a run).

    Example:
        >>> longest_run(np.array([1.0, 2.0, 2.0, 2.0, np.nan, np.nan, 3.0]))
        3
    """
    if values.size == 0:
        return 0
    same = values[1:] == values[:-1]
    if not same.any():
        return 1
    change = np.flatnonzero(~same)
    bounds = np.concatenate([[-1], change, [values.size - 1]])
    return int(np.diff(bounds).max())


def _clean_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class ColumnProfile:
    """Counts, moments and a histogram (numeric) or category counts of one column.

    ``count`` is the number of rows of the batches that had the column, ``missing`` tells if
    some batch lacked it. ``values`` (finite, or non-null for categorical columns) is what the
    moments, histogram and categories describe. ``batch_null_max`` is the highest null share of
    one batch of ``NULL_BATCH_ROWS`` or more among those merged (None: a single batch);
    ``batch_new_max`` the highest share of one such batch's values in categories that the
    batches merged before it did not hold (None: a single batch, or not categorical).
    ``batch_moments`` holds, for each such batch, its rows, nulls and the mean and standard
    deviation of its finite values (None for a categorical column): what the reference's own
    batches show of a column that moves batch by batch (a day's weather). ``batch_counts`` is
    the same for a categorical column: each such batch's counts of its categories (None for a
    numeric column): a share that climbs year by year (men of a panel marrying).
    """

    name: str
    kind: str
    count: int = 0
    nulls: int = 0
    invalid: int = 0
    invalid_example: str | None = None
    non_finite: int = 0
    below_min: int = 0
    above_max: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0
    edges: tuple[float, ...] | None = None
    hist: tuple[int, ...] | None = None
    sums: tuple[float, ...] | None = None
    max_run: int = 0
    disorder: int = 0
    categories: dict[str, int] | None = None
    missing: bool = False
    top_k: int = TOP_K
    distinct: int = 0
    repeats: int = 0
    repeats2: int = 0
    modes: tuple[tuple[float, int], ...] | None = None
    far: int = 0
    batch_null_max: float | None = None
    batch_new_max: float | None = None
    batch_moments: tuple[BatchMoments, ...] | None = None
    batch_counts: tuple[dict[str, int], ...] | None = None

    @property
    def values(self) -> int:
        """Number of finite (numeric, datetime) or non-null (categorical) values."""
        return self.count - self.nulls - self.invalid - self.non_finite

    @property
    def id_like(self) -> bool:
        """Whether a categorical column looks like an id: 90 % distinct values in 50 or more, or
        most values pooled beyond the ``top_k`` categories with a quarter of them distinct (merged
        profiles of ids undercount distinct values). Thousands of real categories in many more
        rows are not id-like: they are tested on the top-k categories plus the pool."""
        if self.kind != "categorical" or not self.values:
            return False
        many = mostly_distinct(self.values, self.distinct)
        pooled = (self.categories or {}).get(OTHER, 0) > self.values / 2
        return many or (pooled and self.distinct >= self.values / 4)

    @property
    def null_share(self) -> float:
        """Share of nulls among the rows that had the column (0.0 for no rows)."""
        return self.nulls / self.count if self.count else 0.0

    @property
    def variance(self) -> float | None:
        """Population variance of the finite values (None without values)."""
        return self.m2 / self.values if self.values else None

    @property
    def std(self) -> float | None:
        var = self.variance
        return None if var is None else math.sqrt(var)

    @property
    def skewness(self) -> float | None:
        """Sample skewness ``g1`` of the finite values (None without spread)."""
        if not self.values or not self.m2 > 0 or not math.isfinite(self.m2):
            return None
        return math.sqrt(self.values) * self.m3 / self.m2**1.5

    @property
    def kurtosis(self) -> float | None:
        """Sample excess kurtosis ``g2`` of the finite values (None without spread)."""
        if not self.values or not self.m2 > 0 or not math.isfinite(self.m2):
            return None
        return self.values * self.m4 / self.m2**2 - 3.0

    def edges_array(self) -> np.ndarray | None:
        return None if self.edges is None else np.asarray(self.edges, dtype="float64")

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both batches together (exact for counts, histograms and moments).

        Example:
            >>> spec = ColumnSpec("x", "numeric", True)
            >>> a = profile_column(pd.Series([1.0, 2.0]), spec, edges=np.array([0.0, 3.0]))
            >>> b = profile_column(pd.Series([3.0]), spec, edges=np.array([0.0, 3.0]))
            >>> ab = a.merge(b)
            >>> ab.values, ab.mean, ab.hist
            (3, 2.0, (0, 3, 0))
        """
        if (self.name, self.kind) != (other.name, other.kind):
            raise ValueError(
                f"cannot merge the profile of column {self.name!r} ({self.kind}) with that of "
                f"{other.name!r} ({other.kind})"
            )
        edges, hist, sums = _merge_hist(self, other)
        mean, m2, m3, m4 = _merge_moments(self, other)
        return replace(
            self,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            invalid=self.invalid + other.invalid,
            invalid_example=self.invalid_example or other.invalid_example,
            non_finite=self.non_finite + other.non_finite,
            below_min=self.below_min + other.below_min,
            above_max=self.above_max + other.above_max,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
            mean=mean,
            m2=m2,
            m3=m3,
            m4=m4,
            edges=edges,
            hist=hist,
            sums=sums,
            categories=_merge_categories(self, other),
            missing=self.missing or other.missing,
            distinct=max(self.distinct, other.distinct),
            max_run=max(self.max_run, other.max_run),
            disorder=self.disorder + other.disorder,
            repeats=self.repeats + other.repeats,
            repeats2=self.repeats2 + other.repeats2,
            modes=_merge_modes(self.modes, other.modes),
            far=self.far + other.far,
            batch_null_max=max(self.most_nulls_of_a_batch, other.most_nulls_of_a_batch),
            batch_new_max=_most_new(self, other),
            batch_moments=self.moments_by_batch + other.moments_by_batch,
            batch_counts=self.counts_by_batch + other.counts_by_batch or None,
        )

    @property
    def most_nulls_of_a_batch(self) -> float:
        """The highest null share of one batch in this profile (0.0 when none had enough rows
        to count: ``NULL_BATCH_ROWS``)."""
        if self.batch_null_max is not None:
            return self.batch_null_max
        return self.null_share if self.count >= NULL_BATCH_ROWS else 0.0

    @property
    def moments_by_batch(self) -> tuple[BatchMoments, ...]:
        """Rows, nulls, mean and std of each batch of ``NULL_BATCH_ROWS`` rows or more merged
        here (this profile's own when it is one batch's).

        Example:
            >>> spec = ColumnSpec("x", "numeric", True)
            >>> edges = np.array([0.0, 6.0])
            >>> a = profile_column(pd.Series([1.0, 3.0] * 15), spec, edges=edges)
            >>> b = profile_column(pd.Series([5.0, None] * 15), spec, edges=edges)
            >>> a.merge(b).moments_by_batch
            ((30, 0, 2.0, 1.0), (30, 15, 5.0, 0.0))
        """
        if self.batch_moments is not None:
            return self.batch_moments
        if self.count < NULL_BATCH_ROWS:
            return ()
        if self.kind != "numeric":
            return ((self.count, self.nulls, None, None),)
        return ((self.count, self.nulls, self.mean, self.std),)

    @property
    def counts_by_batch(self) -> tuple[dict[str, int], ...]:
        """Category counts of each batch of ``NULL_BATCH_ROWS`` rows or more merged here (this
        profile's own when it is one batch's; none for a numeric column).

        Example:
            >>> spec = ColumnSpec("married", "categorical", True)
            >>> a = profile_column(pd.Series(["no"] * 24 + ["yes"] * 6), spec)
            >>> b = profile_column(pd.Series(["no"] * 18 + ["yes"] * 12), spec)
            >>> a.merge(b).counts_by_batch
            ({'no': 24, 'yes': 6}, {'no': 18, 'yes': 12})
        """
        if self.batch_counts is not None:
            return self.batch_counts
        if self.kind != "categorical" or self.count < NULL_BATCH_ROWS or not self.categories:
            return ()
        return ({k: n for k, n in self.categories.items() if k != OTHER},)

    def mode_share(self, value: float) -> float | None:
        """The share of the finite values equal to ``value`` (an upper bound when ``value`` is
        not among the kept ``modes``: the rarest kept mode's share, else 1/values); None when
        the modes were not counted (a batch profiled on given edges).

        Example:
            >>> spec = ColumnSpec("x", "numeric", True)
            >>> p = profile_column(pd.Series([1.0, 1.0, 2.0, 3.0]), spec)
            >>> p.mode_share(1.0), p.mode_share(2.5)
            (0.5, 0.25)
        """
        if self.modes is None or not self.values:
            return None if self.modes is None else 0.0
        counts = dict(self.modes)
        if value in counts:
            return counts[value] / self.values
        floor = min(counts.values()) if len(counts) >= MODES else 1
        return floor / self.values

    @property
    def repeat_share(self) -> float:
        """The share of consecutive finite values that repeat the previous one (0..1)."""
        return self.repeats / (self.values - 1) if self.values > 1 else 0.0

    @property
    def continue_share(self) -> float:
        """The share of repeats followed by another repeat (how runs go on once started; 0..1).

        Example:
            >>> spec = ColumnSpec("x", "numeric", True)
            >>> p = profile_column(pd.Series([1.0, 1.0, 1.0, 2.0, 3.0, 3.0]), spec)
            >>> p.repeat_share, round(p.continue_share, 3)
            (0.6, 0.333)
        """
        return self.repeats2 / self.repeats if self.repeats else 0.0

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (plain numbers; None for NaN or inf, an overflowed m2 too)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "count": int(self.count),
            "nulls": int(self.nulls),
            "invalid": int(self.invalid),
            "invalid_example": self.invalid_example,
            "non_finite": int(self.non_finite),
            "below_min": int(self.below_min),
            "above_max": int(self.above_max),
            "min": _clean_float(self.min),
            "max": _clean_float(self.max),
            "mean": _clean_float(self.mean),
            "m2": _clean_float(self.m2),
            "m3": _clean_float(self.m3),
            "m4": _clean_float(self.m4),
            "edges": None if self.edges is None else [float(e) for e in self.edges],
            "hist": None if self.hist is None else [int(c) for c in self.hist],
            "sums": None if self.sums is None else [_clean_float(x) for x in self.sums],
            "max_run": int(self.max_run),
            "disorder": int(self.disorder),
            "categories": None
            if self.categories is None
            else {str(k): int(v) for k, v in self.categories.items()},
            "missing": bool(self.missing),
            "top_k": int(self.top_k),
            "distinct": int(self.distinct),
            "repeats": int(self.repeats),
            "repeats2": int(self.repeats2),
            "modes": None if self.modes is None else [[float(v), int(n)] for v, n in self.modes],
            "far": int(self.far),
            "batch_null_max": _clean_float(self.batch_null_max),
            "batch_new_max": _clean_float(self.batch_new_max),
            "batch_moments": None
            if self.batch_moments is None
            else [
                [int(r), int(n), _clean_float(m), _clean_float(s)]
                for r, n, m, s in self.batch_moments
            ],
            "batch_counts": None
            if self.batch_counts is None
            else [{str(k): int(v) for k, v in c.items()} for c in self.batch_counts],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ColumnProfile:
        edges, hist, cats, sums = d.get("edges"), d.get("hist"), d.get("categories"), d.get("sums")
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            count=int(d.get("count", 0)),
            nulls=int(d.get("nulls", 0)),
            invalid=int(d.get("invalid", 0)),
            invalid_example=d.get("invalid_example"),
            non_finite=int(d.get("non_finite", 0)),
            below_min=int(d.get("below_min", 0)),
            above_max=int(d.get("above_max", 0)),
            min=d.get("min"),
            max=d.get("max"),
            mean=d.get("mean"),
            m2=_read_float(d, "m2"),
            m3=_read_float(d, "m3"),
            m4=_read_float(d, "m4"),
            edges=None if edges is None else tuple(float(e) for e in edges),
            hist=None if hist is None else tuple(int(c) for c in hist),
            sums=None if sums is None else tuple(math.nan if x is None else float(x) for x in sums),
            max_run=int(d.get("max_run", 0)),
            disorder=int(d.get("disorder", 0)),
            categories=None if cats is None else {str(k): int(v) for k, v in cats.items()},
            missing=bool(d.get("missing", False)),
            top_k=int(d.get("top_k", TOP_K)),
            distinct=int(d.get("distinct", 0)),
            repeats=int(d.get("repeats", 0)),
            repeats2=int(d.get("repeats2", 0)),
            modes=None
            if d.get("modes") is None
            else tuple((float(v), int(n)) for v, n in d["modes"]),
            far=int(d.get("far", 0)),
            batch_null_max=d.get("batch_null_max"),
            batch_new_max=d.get("batch_new_max"),
            batch_moments=None
            if d.get("batch_moments") is None
            else tuple((int(r), int(n), m, s) for r, n, m, s in d["batch_moments"]),
            batch_counts=None
            if d.get("batch_counts") is None
            else tuple({str(k): int(v) for k, v in c.items()} for c in d["batch_counts"]),
        )


def new_share(before: ColumnProfile, batch: ColumnProfile) -> float | None:
    """The share of ``batch``'s values in categories ``before`` did not hold (None when that
    is not known: too few values, or categories pooled beyond ``top_k`` in ``before``).

    Example:
        >>> spec = ColumnSpec("team", "categorical", True)
        >>> season = profile_column(pd.Series(["a", "b", "c"] * 10), spec)
        >>> promoted = profile_column(pd.Series(["a", "b", "d"] * 10), spec)
        >>> round(new_share(season, promoted), 3)
        0.333
    """
    known, counts = before.categories or {}, batch.categories or {}
    if not known or not counts or known.get(OTHER) or batch.values < NULL_BATCH_ROWS:
        return None
    return sum(n for k, n in counts.items() if k not in known) / batch.values


def _most_new(a: ColumnProfile, b: ColumnProfile) -> float | None:
    """``batch_new_max`` of ``a`` and ``b`` merged, ``b`` the later."""
    if a.kind != "categorical":
        return None
    found = [v for v in (a.batch_new_max, b.batch_new_max, new_share(a, b)) if v is not None]
    return max(found) if found else None


def _read_float(d: dict, key: str) -> float:
    """A moment sum from a dict: absent is 0.0 (an older profile), None an overflow (inf)."""
    return math.inf if d.get(key, 0.0) is None else float(d.get(key, 0.0))


def _merge_moments(a: ColumnProfile, b: ColumnProfile) -> tuple[Any, float, float, float]:
    """Mean and central moment sums M2..M4 of both (Pebay 2008, eq. 1.5-1.6)."""
    if a.mean is None or b.mean is None:
        src = a if b.mean is None else b
        return src.mean, src.m2, src.m3, src.m4
    na, nb = a.values, b.values
    n = na + nb
    delta = b.mean - a.mean
    with np.errstate(over="ignore", invalid="ignore"):
        mean = a.mean + delta * nb / n
        m2 = a.m2 + b.m2 + delta**2 * na * nb / n
        m3 = (
            a.m3
            + b.m3
            + delta**3 * na * nb * (na - nb) / n**2
            + 3 * delta * (na * b.m2 - nb * a.m2) / n
        )
        m4 = (
            a.m4
            + b.m4
            + delta**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
            + 6 * delta**2 * (na * na * b.m2 + nb * nb * a.m2) / n**2
            + 4 * delta * (na * b.m3 - nb * a.m3) / n
        )
    return mean, m2, m3, m4


def _pick(fn, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return fn(a, b)


def _merge_hist(a: ColumnProfile, b: ColumnProfile) -> tuple[Any, Any, Any]:
    if a.hist is None or b.hist is None:
        return (a.edges, a.hist, a.sums) if b.hist is None else (b.edges, b.hist, b.sums)
    if a.edges == b.edges:
        hist = tuple(x + y for x, y in zip(a.hist, b.hist, strict=True))
        sums = None
        if a.sums is not None and b.sums is not None:
            sums = tuple(x + y for x, y in zip(a.sums, b.sums, strict=True))
        return a.edges, hist, sums
    if a.values == 0 and not any(a.hist):
        return b.edges, b.hist, b.sums
    if b.values == 0 and not any(b.hist):
        return a.edges, a.hist, a.sums
    raise ValueError(
        f"column {a.name!r}: the two profiles have different histogram edges; profile later "
        "batches with edges=reference.edges() so they can be merged and compared"
    )


def _merge_modes(a: tuple | None, b: tuple | None) -> tuple[tuple[float, int], ...] | None:
    """Kept modes of both (approximate: a value kept on one side only counts that side)."""
    if a is None or b is None:
        return None
    total: dict[float, int] = dict(a)
    for value, n in b:
        total[value] = total.get(value, 0) + n
    return tuple(sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:MODES])


def _modes(ordered: np.ndarray) -> tuple[tuple[float, int], ...]:
    """The ``MODES`` most frequent of sorted finite values that occur at least twice (ties by
    value): ``np.unique`` without its sort, the values being sorted once for the edges too.

    Example:
        >>> _modes(np.array([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0]))
        ((3.0, 3), (2.0, 2))
    """
    if ordered.size == 0:
        return ()
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    values, counts = ordered[starts], np.diff(np.r_[starts, ordered.size])
    keep = np.flatnonzero(counts >= 2)
    order = keep[np.lexsort((values[keep], -counts[keep]))][:MODES]
    return tuple((float(values[i]), int(counts[i])) for i in order)


def _repeats(values: np.ndarray) -> tuple[int, int]:
    """Rows repeating the previous finite value, and repeats that follow a repeat."""
    if values.size < 2:
        return 0, 0
    same = values[1:] == values[:-1]
    return int(same.sum()), int((same[1:] & same[:-1]).sum())


def _far(finite: np.ndarray, edges: np.ndarray) -> int:
    """Values ``FAR`` reference widths or more beyond the edges (0 for a constant reference)."""
    return int(far_mask(finite, edges).sum())


def far_mask(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Which ``values`` lie ``FAR`` reference widths or more beyond the edges (none for a
    constant reference; NaN and +-inf are not far values).

    Example:
        >>> far_mask(np.array([0.5, 3.5, -2.5, np.nan, np.inf]), np.array([0.0, 1.0])).tolist()
        [False, True, True, False, False]
    """
    values = np.asarray(values, dtype="float64")
    width = float(edges[-1] - edges[0]) if edges.size else 0.0
    if not width > 0:
        return np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        far = (values < edges[0] - FAR * width) | (values > edges[-1] + FAR * width)
    return far & np.isfinite(values)


def _merge_categories(a: ColumnProfile, b: ColumnProfile) -> dict[str, int] | None:
    if a.categories is None or b.categories is None:
        return a.categories if b.categories is None else b.categories
    total = dict(a.categories)
    for key, n in b.categories.items():
        total[key] = total.get(key, 0) + n
    return _cap(total, a.top_k)


def _cap(counts: dict[str, int], top_k: int) -> dict[str, int]:
    """Keep the ``top_k`` most frequent values (ties by value) and pool the rest in OTHER."""
    other = counts.pop(OTHER, 0)
    if len(counts) > top_k:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        other += sum(n for _, n in ranked[top_k:])
        counts = dict(ranked[:top_k])
    if other:
        counts[OTHER] = other
    return counts


def text_counts(series: pd.Series) -> pd.Series:
    """Non-null values counted by their text (:func:`as_text`), most frequent first.

    Values are counted first and only the distinct ones are turned into text, so an ``object``,
    Arrow or ``category`` column costs one hash pass, never a string per row; an ``object``
    column of strings is counted by the C extension without holding the GIL, when built.

    Example:
        >>> text_counts(pd.Series([1.0, 2.0, 1.0, None])).to_dict()
        {'1': 2, '2': 1}
        >>> text_counts(pd.Series(["b", "a", "b"], dtype="category")).to_dict()
        {'b': 2, 'a': 1}
    """
    raw = _string_counts(series)
    if raw is None:
        raw = series.value_counts(sort=False, dropna=True)
    raw = raw[raw.to_numpy() > 0]  # a category's unused levels count 0
    values = raw.index.to_series(index=range(len(raw)))
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.dtype.categories.dtype)
    counts = raw.groupby(as_text(values).to_numpy(), sort=False).sum()  # "1" and 1 are one
    return counts.sort_values(ascending=False, kind="stable").astype("int64")


def _string_counts(series: pd.Series) -> pd.Series | None:
    """Counts of an ``object`` column of str (None and NaN skipped) by the C extension, like
    ``value_counts(sort=False)``; None without the extension or for other values.

    Example:
        >>> found = _string_counts(pd.Series(["b", None, "a", "b"], dtype=object))
        >>> found is None or found.to_dict() == {"b": 2, "a": 1}
        True
    """
    if _strings is None or series.dtype != object:
        return None
    items = np.ascontiguousarray(series.to_numpy(), dtype=object)
    found = _strings.count(items, items.ctypes.data, items.size)  # ``items`` keeps them alive
    if found is None:
        return None
    firsts, counts = found
    index = pd.Index(items[np.asarray(firsts, dtype=np.intp)], dtype=object)
    return pd.Series(counts, index=index, dtype="int64")


def _top_counts(counts: pd.Series, top_k: int) -> dict[str, int]:
    """The ``top_k`` most frequent of ``counts`` (ties by value), the rest pooled in OTHER."""
    if len(counts) > top_k:
        cut = counts.iloc[top_k - 1]
        above = counts[counts > cut]
        tied = counts[counts == cut].sort_index().iloc[: top_k - len(above)]
        other = int(counts.sum() - above.sum() - tied.sum())
        kept = {str(k): int(v) for k, v in pd.concat([above, tied]).items()}
        kept[OTHER] = kept.get(OTHER, 0) + other
        return kept
    return {str(k): int(v) for k, v in counts.items()}


def _example(series: pd.Series, bad: np.ndarray) -> str | None:
    if not bad.any():
        return None
    return str(series.iloc[int(np.flatnonzero(bad)[0])])[:EXAMPLE_CHARS]


def _numbers(series: pd.Series, kind: str) -> tuple[np.ndarray, int, str | None]:
    """Float values (NaN for nulls and invalid values), the invalid count and an example."""
    dtype = series.dtype
    if kind == "numeric":
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return series.to_numpy(dtype="float64", na_value=np.nan), 0, None
        if pd.api.types.is_datetime64_any_dtype(dtype):
            bad = series.notna().to_numpy()
            return np.full(len(series), np.nan), int(bad.sum()), _example(series, bad)
        coerced = pd.to_numeric(series, errors="coerce")
    else:
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            stamps = (
                series if isinstance(dtype, pd.DatetimeTZDtype) else series.dt.tz_localize("UTC")
            )
        elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            bad = series.notna().to_numpy()
            return np.full(len(series), np.nan), int(bad.sum()), _example(series, bad)
        else:
            stamps = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
        coerced = (stamps - _EPOCH).dt.total_seconds()
    values = coerced.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(values) & series.notna().to_numpy()
    return values, int(bad.sum()), _example(series, bad)


def profile_column(
    series: pd.Series | None,
    spec: ColumnSpec,
    *,
    edges: np.ndarray | None = None,
    bins: int = 32,
    top_k: int = TOP_K,
    with_histogram: bool = True,
) -> ColumnProfile:
    """Profile one column in one pass (``series=None`` records a missing column).

    Parameters:
        series: the column, or None when the batch lacks it.
        spec: its schema spec (kind, and min/max to count values outside them).
        edges: histogram edges (a reference's); None takes ``bins`` quantile edges of the column.
        bins: number of quantile bins when ``edges`` is None.
        top_k: categories kept before pooling the rest in ``"__other__"``.
        with_histogram: False skips the histogram of a numeric column.

    Example:
        >>> spec = ColumnSpec("c", "categorical", True)
        >>> profile_column(pd.Series(["a", "b", "a", None]), spec).categories
        {'a': 2, 'b': 1}
    """
    if series is None:
        return ColumnProfile(spec.name, spec.kind, missing=True, top_k=top_k)
    count = len(series)
    if spec.kind == "categorical":
        counts = text_counts(series)
        cats = _top_counts(counts, top_k)
        return ColumnProfile(
            spec.name,
            spec.kind,
            count=count,
            nulls=count - int(counts.sum()),
            categories=cats,
            top_k=top_k,
            distinct=len(counts),
        )
    values, invalid, example = _numbers(series, spec.kind)
    finite_mask = np.isfinite(values)
    n_finite = int(finite_mask.sum())
    finite = values if n_finite == count else values[finite_mask]
    nan_count = 0 if n_finite == count else int(np.isnan(values).sum())
    non_finite = count - n_finite - nan_count
    profile = ColumnProfile(
        spec.name,
        spec.kind,
        count=count,
        nulls=nan_count - invalid,
        invalid=invalid,
        invalid_example=example,
        non_finite=non_finite,
        top_k=top_k,
    )
    # a reference's numeric column: sorted once for its modes and its quantile edges
    ordered = np.sort(finite) if spec.kind == "numeric" and edges is None else None
    if finite.size:
        mean, m2, m3, m4 = _moments(finite)
        repeats = _repeats(values) if spec.kind == "numeric" else (0, 0)
        profile = replace(
            profile,
            min=float(finite.min()),
            max=float(finite.max()),
            mean=mean,
            m2=m2,
            m3=m3,
            m4=m4,
            max_run=longest_run(values),
            repeats=repeats[0],
            repeats2=repeats[1],
            modes=None if ordered is None else _modes(ordered),
            disorder=int((np.diff(finite) < 0).sum()) if spec.kind == "datetime" else 0,
            below_min=int((finite < spec.min).sum()) if spec.min is not None else 0,
            above_max=int((finite > spec.max).sum()) if spec.max is not None else 0,
        )
    if spec.kind != "numeric" or not with_histogram:
        return profile
    given = edges is not None
    if edges is None:
        edges = quantile_edges(finite if ordered is None else ordered, bins)
    edges = np.asarray(edges, dtype="float64")
    if edges.size == 0:
        return replace(profile, edges=(), hist=(), sums=())
    counts, sums = _binned(finite, edges)
    return replace(
        profile,
        far=_far(finite, edges) if given else 0,
        edges=tuple(edges.tolist()),
        hist=tuple(counts.tolist()),
        sums=tuple(sums.tolist()),
    )
