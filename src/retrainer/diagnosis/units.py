"""Known unit changes: name the affine map between a batch's column and its reference, and pick
the conversion of numbers that arrive as text with a unit suffix (``"1014.7 hPa"``).

A unit change upstream maps every value by one ``y = a * x + b`` (x1000, hPa to Pa, Celsius to
Fahrenheit, an offset), so the batch's quantiles lie on a line against the reference's. A
location-scale move of real data lies on a line too (a summer month against a whole year), so a
line alone names nothing. The map must be one of the ``KNOWN`` conversions, a pure offset (slope
1) that moves the batch beyond the reference's central range, or a map fitted to the quantiles
that enlarges the spread ``GENERIC_SCALE`` times or more and puts ``BEYOND`` of the batch
outside the reference's whole range (rows drawn towards a heavy tail, all real values, stay
inside): real data rarely spreads that much wider keeping its shape, while a quieter stretch of
real data (a sensor at rest, a calm day) does shrink, so a fitted map never shrinks (a shrinking
unit change must be a known one). The fitted slope is the median ratio of the batch's spans
between symmetric quantiles to the reference's, kept within the slopes under which the batch
mapped back is consistent with the reference; the known factor nearest to it names the map
when it fits too: with no offset if that fits (``x100``, one parameter fewer), else with its
offset refitted (``g to m/s^2 with an offset of -9.81``; on 30 rows several factors fit, so the
name is a proposal to confirm). A known map that passes is
preferred to a fitted one.

In every case the batch mapped back must be consistent with the reference (Kolmogorov-Smirnov
p >= ``CONSISTENT_P``, on the batch's quantiles against the reference's histogram; a fitted map
p >= ``FITTED_P``, as its parameters come from the batch, and so must a pure factor within
``LEVEL_FACTOR`` of 1: a real level change of skewed data scales it so) while the
batch as it is is not (p < ``MOVED_P``), nor shifted back by its median shift (a plain mean
shift is drift); a known map also needs no different known map nearly as good (p within
``AMBIGUOUS`` of the best: too few rows to tell), and where the quantiles lie off a line
(R^2 < ``R2_MIN``) it needs p >= ``FITTED_P`` too: the quantiles of 30 rows of a two-mode sensor
scatter off any line (R^2 0.55-0.92 under an exact Celsius to Fahrenheit map), and the KS test,
which counts the rows, is what says whether they fit.
A transformed batch whose own distribution also moved (a summer month in other units against a
whole year in the old ones) is not recognised: compare it with a reference of the same season.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(15.0, 8.0, 5000)              # Celsius
    >>> edges = np.quantile(ref, np.linspace(0, 1, 33))
    >>> hist = [0, *np.histogram(ref, edges)[0], 0]
    >>> batch = np.quantile(rng.normal(15.0, 8.0, 90) * 1.8 + 32, QUANTILES)
    >>> match_transform(edges, hist, batch, 90).words
    'Celsius to Fahrenheit'
    >>> warm = np.quantile(rng.normal(25.0, 4.0, 90), QUANTILES)  # a warm month: no unit
    >>> match_transform(edges, hist, warm, 90) is None
    True
    >>> ms2 = np.quantile(rng.normal(15.0, 8.0, 90) * 9.81 + 200, QUANTILES)  # with an offset
    >>> found = match_transform(edges, hist, ms2, 90)
    >>> found.fitted, round(found.a)
    (True, 10)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = tuple(np.round(np.linspace(0.025, 0.975, 39), 3))
R2_MIN = 0.95  # quantiles off a line (a small batch of multimodal data): a known map needs FITTED_P
CONSISTENT_P = 0.01  # mapped back, the batch must be consistent with the reference
MOVED_P = 1e-3  # as it is, the batch must not be
MOVED_MASS = 0.5  # and most of its mass moved (KS distance), as a unit change of factor 1.6+ does
AMBIGUOUS = 0.1  # another known map within this ratio of the best one's p-value: ambiguous
# a fitted map's two parameters come from the batch itself, so its KS distance is smaller
# than a fixed map's: Lilliefors' 1 % critical value with location and scale estimated
# (1.031 / sqrt(n)) is the standard table's 20 % one (1.07 / sqrt(n))
FITTED_P = 0.2
GENERIC_SCALE = 3.0  # a fitted map (no known unit) must enlarge the spread this much
# a pure factor this close to 1 (kilometres to miles, feet to metres) is also what a real change
# of level of positive, skewed data does (a cheaper week of prices): it needs the fitted maps' p
LEVEL_FACTOR = 4.0
BEYOND = 0.5  # and move this share of the batch beyond anything the reference held

_POWERS = [(10.0**k, 0.0, f"x{10**k:g}" if k > 0 else f"/{10**-k:g}") for k in range(-6, 7) if k]
KNOWN: tuple[tuple[float, float, str], ...] = (
    (1.8, 32.0, "Celsius to Fahrenheit"),
    (5 / 9, -160 / 9, "Fahrenheit to Celsius"),
    (1.0, 273.15, "Celsius to Kelvin"),
    (1.0, -273.15, "Kelvin to Celsius"),
    (5 / 9, -459.67 * 5 / 9, "Fahrenheit to Kelvin"),
    (1.8, -459.67, "Kelvin to Fahrenheit"),
    (100.0, 0.0, "hPa to Pa (x100)"),
    (0.01, 0.0, "Pa to hPa (/100)"),
    (1 / 33.8639, 0.0, "hPa to inHg"),
    (33.8639, 0.0, "inHg to hPa"),
    (2.54, 0.0, "inches to centimetres"),
    (1 / 2.54, 0.0, "centimetres to inches"),
    (25.4, 0.0, "inches to millimetres"),
    (1 / 25.4, 0.0, "millimetres to inches"),
    (0.3048, 0.0, "feet to metres"),
    (1 / 0.3048, 0.0, "metres to feet"),
    (1.609344, 0.0, "miles to kilometres"),
    (1 / 1.609344, 0.0, "kilometres to miles"),
    (0.45359237, 0.0, "pounds to kilograms"),
    (1 / 0.45359237, 0.0, "kilograms to pounds"),
    (3.6, 0.0, "m/s to km/h"),
    (1 / 3.6, 0.0, "km/h to m/s"),
    (1 / 1.609344 * 3.6, 0.0, "m/s to mph"),
    (1.609344 / 3.6, 0.0, "mph to m/s"),
    (9.80665, 0.0, "g to m/s^2"),
    (1 / 9.80665, 0.0, "m/s^2 to g"),
    *_POWERS,
)

# Units of text values, each as (family, a, b): the value in the family's base unit is a*x+b.
UNITS: dict[str, tuple[str, float, float]] = {
    "Pa": ("pressure", 1.0, 0.0),
    "hPa": ("pressure", 100.0, 0.0),
    "mbar": ("pressure", 100.0, 0.0),
    "mb": ("pressure", 100.0, 0.0),
    "kPa": ("pressure", 1000.0, 0.0),
    "bar": ("pressure", 1e5, 0.0),
    "psi": ("pressure", 6894.757, 0.0),
    "inHg": ("pressure", 3386.389, 0.0),
    "mmHg": ("pressure", 133.322, 0.0),
    "K": ("temperature", 1.0, 0.0),
    "C": ("temperature", 1.0, 273.15),
    "°C": ("temperature", 1.0, 273.15),
    "degC": ("temperature", 1.0, 273.15),
    "F": ("temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    "°F": ("temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    "degF": ("temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    "mm": ("length", 0.001, 0.0),
    "cm": ("length", 0.01, 0.0),
    "m": ("length", 1.0, 0.0),
    "km": ("length", 1000.0, 0.0),
    "in": ("length", 0.0254, 0.0),
    "ft": ("length", 0.3048, 0.0),
    "mi": ("length", 1609.344, 0.0),
    "g": ("mass", 0.001, 0.0),
    "kg": ("mass", 1.0, 0.0),
    "lb": ("mass", 0.45359237, 0.0),
    "m/s": ("speed", 1.0, 0.0),
    "km/h": ("speed", 1 / 3.6, 0.0),
    "mph": ("speed", 0.44704, 0.0),
    "kn": ("speed", 0.514444, 0.0),
    "%": ("share", 1.0, 0.0),
}


@dataclass(frozen=True)
class Transform:
    """A map ``batch = a * reference + b``: its name, the R^2 of the quantiles' line and the
    Kolmogorov-Smirnov distance and p-value of the batch mapped back (and as it is)."""

    a: float
    b: float
    words: str
    r2: float
    ks: float
    p_value: float
    p_identity: float
    fitted: bool = False  # fitted to the quantiles (no known conversion)

    @property
    def inverse(self) -> list[float]:
        """``[a, b]`` of the map back to the reference's units (``x / a - b / a``)."""
        return [_round(1 / self.a), _round(-self.b / self.a)]

    def shown(self) -> str:
        return f"x*{self.a:.6g}{self.b:+.6g}" if self.b else f"x*{self.a:.6g}"

    @property
    def level_like(self) -> bool:
        """Whether a change of level of real data could look the same: a pure factor within
        ``LEVEL_FACTOR`` of 1 (kilometres to miles; a cheaper week of prices)."""
        return self.b == 0 and abs(math.log(self.a)) < math.log(LEVEL_FACTOR)


def _round(x: float) -> float:
    return float(f"{x:.10g}")


def _cdf_bounds(edges: np.ndarray, hist: np.ndarray):
    """The reference's CDF at ``x`` as bounds: inside a bin it lies between the cumulative
    shares at the bin's edges (ties make it jump anywhere in between)."""
    inner = np.asarray(hist[1:-1], float)
    at_edges = np.concatenate([[0.0], np.cumsum(inner) / inner.sum()])

    def bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
        low, high = at_edges[i], at_edges[i + 1]
        below, above = x < edges[0], x > edges[-1]
        return np.where(below, 0.0, np.where(above, 1.0, low)), np.where(
            below, 0.0, np.where(above, 1.0, high)
        )

    return bounds, at_edges


def _ks(bounds, cur_q: np.ndarray, probs: np.ndarray, a: float, b: float) -> float:
    """A lower bound of the KS distance between the batch mapped back by ``(x - b) / a`` (its
    quantiles ``cur_q`` at ``probs``) and the binned reference (its CDF ``bounds``)."""
    low, high = bounds((cur_q - b) / a)
    return float(np.maximum(0.0, np.maximum(low - probs, probs - high)).max())


def mapped_back_p(edges, hist, batch_quantiles, rows: int, a: float, quantiles=QUANTILES) -> float:
    """The Kolmogorov-Smirnov p-value of the batch divided by ``a`` against the reference (its
    histogram on its quantile ``edges``), as :func:`match_transform` tests a map.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ref = rng.normal(0.8, 0.3, 5000)
        >>> edges = np.quantile(ref, np.linspace(0, 1, 33))
        >>> hist = [0, *np.histogram(ref, edges)[0], 0]
        >>> tenfold = np.quantile(rng.normal(0.8, 0.3, 90) * 10, QUANTILES)
        >>> lying = np.quantile(rng.normal(0.06, 0.02, 90), QUANTILES)  # another posture
        >>> mapped_back_p(edges, hist, tenfold, 90, 10.0) > 0.05
        True
        >>> mapped_back_p(edges, hist, lying, 90, 0.1) < 1e-6
        True
    """
    from scipy import stats

    edges, hist = np.asarray(edges, float), np.asarray(hist, float)
    bounds, _ = _cdf_bounds(edges, hist)
    n = rows * hist.sum() / (rows + hist.sum())
    d = _ks(bounds, np.asarray(batch_quantiles, float), np.asarray(quantiles, float), a, 0.0)
    return float(stats.kstwo.sf(d, max(1, round(n))))


def _differs(t: tuple, u: tuple) -> bool:
    """Whether two maps differ by more than 10 % in slope or in level."""
    return abs(math.log(t[0] / u[0])) > 0.1 or abs(t[1] - u[1]) > 0.1 * max(abs(t[1]), 1.0)


def match_transform(
    edges, hist, batch_quantiles, rows: int, quantiles=QUANTILES
) -> Transform | None:
    """The known unit change (or a large pure offset) under which the batch (its ``quantiles``
    and row count) is the reference (its histogram on its own quantile ``edges``), or None (see
    the module doc)."""
    edges, hist = np.asarray(edges, float), np.asarray(hist, float)
    cur_q, probs = np.asarray(batch_quantiles, float), np.asarray(quantiles, float)
    if edges.size < 3 or hist.size != edges.size + 1 or hist[1:-1].sum() <= 0 or rows < 2:
        return None
    if not np.isfinite(cur_q).all() or np.ptp(cur_q) <= 0:
        return None
    bounds, at_edges = _cdf_bounds(edges, hist)
    ref_q = np.interp(probs, at_edges, edges)
    if np.ptp(ref_q) <= 0:
        return None
    central = (probs >= 0.1) & (probs <= 0.9)  # the binned reference's tails are coarse
    x, y = ref_q[central], cur_q[central]
    if np.ptp(x) <= 0 or np.ptp(y) <= 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - float(((y - slope * x - intercept) ** 2).sum()) / float(((y - y.mean()) ** 2).sum())
    if slope <= 0:
        return None
    n = rows * hist.sum() / (rows + hist.sum())
    from scipy import stats  # here: `retrainer explain` imports the diagnosis without SciPy

    def ks(a: float, b: float) -> float:
        return _ks(bounds, cur_q, probs, a, b)

    p_identity = float(stats.kstwo.sf(ks(1.0, 0.0), max(1, round(n))))
    if p_identity >= MOVED_P or ks(1.0, 0.0) < MOVED_MASS:
        return None

    def p_of(t: tuple) -> float:
        return float(stats.kstwo.sf(ks(t[0], t[1]), max(1, round(n))))

    shift = float(np.median(cur_q - ref_q))
    offset = abs(shift) >= float(np.ptp(ref_q))  # beyond the reference's central range
    candidates = list(KNOWN)
    if offset and abs(math.log(slope)) < 0.3:  # slope 1: a pure offset, named by its size
        candidates.append((1.0, shift, f"shifted by {shift:+.6g}"))
    ranked = sorted(candidates, key=lambda t: ks(t[0], t[1]))
    a, b, words = ranked[0]
    p, d = p_of(ranked[0]), ks(a, b)
    if not offset and p_of((1.0, shift)) >= CONSISTENT_P:
        return None  # a plain mean shift explains it as well: drift, not a unit
    rivals = [t for t in ranked[1:3] if _differs(ranked[0], t)]
    alone = not any(p_of(t) >= max(CONSISTENT_P, AMBIGUOUS * p) for t in rivals)
    found = Transform(a, b, words, r2, d, p, p_identity)
    strict = found.level_like or r2 < R2_MIN
    if p >= (FITTED_P if strict else CONSISTENT_P) and alone:
        return found
    # the slopes consistent with the batch (each with the median gap of the central quantiles
    # as offset; least squares bends on a gap between modes): the middle of that set is the fit
    grid = [(a, float(np.median(y - a * x))) for a in slope * np.exp(np.linspace(-1, 1, 81))]
    pure = [t for t in KNOWN if t[1] == 0 and grid[0][0] <= t[0] <= grid[-1][0]]
    kept = [t[0] for t in [*grid, *pure] if p_of(t) >= FITTED_P]
    if not kept:
        return None
    low, high = min(kept), max(kept)
    half = probs.size // 2  # spans between symmetric quantiles: each one's ratio estimates a
    spans = (cur_q[::-1] - cur_q)[:half], (ref_q[::-1] - ref_q)[:half]
    ratios = spans[0][spans[1] > 0] / spans[1][spans[1] > 0]
    slope = float(np.clip(np.median(ratios), low, high)) if ratios.size else math.sqrt(low * high)
    beyond = float(np.mean((cur_q < edges[0]) | (cur_q > edges[-1])))
    if slope < GENERIC_SCALE or beyond < BEYOND:
        return None  # no known map fits (or two do), and no fitted one may
    named = [
        (a, gap, f"{unit} with an offset of {gap:+.6g}" if gap else unit)
        for a, b, unit in KNOWN
        if b == 0 and low <= a <= high
        for gap in (0.0, float(f"{float(np.median(y - a * x)):.3g}"))
    ]  # a pure factor kept ``low`` or ``high`` where it fits better than with a median gap
    named = [t for t in named if p_of(t) >= FITTED_P]
    if named:  # a pure factor if one fits (one parameter fewer), then the nearest the slope
        a, b, words = min(named, key=lambda t: (t[1] != 0, abs(math.log(t[0] / slope))))
    else:
        a, b = float(f"{slope:.3g}"), float(f"{float(np.median(y - slope * x)):.3g}")
        words = (
            f"x*{a:.6g}{b:+.6g} fitted to the quantiles (no known unit; slopes "
            f"{low:.3g} to {high:.3g} fit)"
        )
    return Transform(a, b, words, r2, ks(a, b), p_of((a, b)), p_identity, fitted=True)


def unit_conversions(units: dict[str, int], numbers: pd.Series, low: float, high: float) -> dict:
    """For each unit suffix seen, ``[a, b]`` converting its numbers to the reference's unit:
    the unit of its family under which most numbers land inside the reference's range
    ``[low, high]`` (the unit itself on a tie); ``[1, 0]`` for a unit this table does not know.

    Parameters:
        units: unit suffix -> how many values carry it.
        numbers: the numbers in front of each suffix, indexed like ``units`` keys (a frame's
            ``number`` and ``unit`` columns from ``data.schema.UNIT``).
        low, high: the reference's range.

    Example:
        >>> numbers = pd.DataFrame({"number": [101470.0, 1014.7], "unit": ["Pa", "hPa"]})
        >>> unit_conversions({"Pa": 1, "hPa": 1}, numbers, 950.0, 1050.0)
        {'Pa': [0.01, 0.0], 'hPa': [1.0, 0.0]}
    """
    out = {}
    for unit in units:
        x = numbers.loc[numbers["unit"] == unit, "number"].to_numpy(float)
        if unit not in UNITS or not x.size:
            out[unit] = [1.0, 0.0]
            continue
        family, a_u, b_u = UNITS[unit]

        def inside(target: str, x=x, a_u=a_u, b_u=b_u) -> float:
            _, a_t, b_t = UNITS[target]
            y = (a_u * x + b_u - b_t) / a_t
            return float(((y >= low) & (y <= high)).mean())

        targets = [t for t, (f, _, _) in UNITS.items() if f == family]
        target = max(targets, key=lambda t: (inside(t), t == unit))
        _, a_t, b_t = UNITS[target]
        out[unit] = [_round(a_u / a_t), _round((b_u - b_t) / a_t)]
    return out
