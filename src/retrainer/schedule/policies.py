"""Retraining policies simulated on a score matrix, each seeing only what it would see live.

At boundary ``t`` (before batch ``t`` is predicted) a policy sees the labelled batches
``j <= t - label_delay``: the errors of every candidate model on them (``View.err``) and the
serving model's per-row errors. It answers retrain or not, with the expected errors saved
against the cost where it forecasts them, and a sentence.

Policies: fixed schedules, a drift detector on the error stream (DDM, ADWIN), CARA's threshold,
cumulative-threshold and periodic variants (Mahadevan and Mathioudakis 2024), UPF (Regol et al.
2025), and :class:`GainForecast`, ours.

Example:
    >>> import numpy as np
    >>> E = np.array([[5, 5, 50, 50], [0, 5, 50, 50], [0, 0, 5, 5], [0, 0, 0, 5]], dtype=float)
    >>> E[np.tril_indices(4, -1)] = np.nan
    >>> run = simulate(E, np.full(4, 100), Every(2), cost=10, label_delay=1)
    >>> run.schedule.retrain_at, run.schedule.total
    ((2,), 30.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from retrainer.schedule.optimal import Schedule, evaluate


@dataclass
class View:
    """What a policy may know at boundary ``t``: nothing about a batch whose labels are due."""

    errors: np.ndarray
    rows: np.ndarray
    t: int
    champion: int
    cost: float
    label_delay: int
    row_errors: Any = None  # callable: model -> its per-row errors from its own first batch on
    reference: Any = None  # callable: model -> its errors on its reference sample (held out)
    shadows: int = 0  # live: labelled batches where a shadow candidate was scored (the diagonal)
    # one row's error variance over its mean: 1 for a count of wrong predictions (Poisson), a
    # regressor's for its absolute or squared errors (in their units); and their name in words
    dispersion: float = 1.0
    unit: str = "errors"

    @property
    def observed(self) -> int:
        """The last labelled batch (-1 before any)."""
        return self.t - self.label_delay

    @property
    def age(self) -> int:
        return self.t - self.champion

    @property
    def remaining(self) -> int:
        return len(self.rows) - self.t

    def err(self, model: int, batch: int) -> float:
        if batch > self.observed:
            raise LookupError(f"batch {batch} has no labels yet at boundary {self.t}")
        return float(self.errors[model, batch])

    def fresh(self, batch: int, recent: int = 8) -> float:
        """Errors of a fresh model on ``batch``: the candidate of that boundary where it was
        scored, else the error rate fresh models had on their first batch (the median over the
        last ``recent`` known), times the batch's rows. Live only the models that served are
        scored (:mod:`retrainer.schedule.live`), so this is where the estimate comes in."""
        known = self.err(batch, batch)
        if math.isfinite(known):
            return known
        diagonal = [
            self.errors[j, j] / self.rows[j]
            for j in range(self.observed, -1, -1)
            if math.isfinite(self.errors[j, j])
        ][:recent]
        return float(np.median(diagonal)) * float(self.rows[batch]) if diagonal else math.nan

    def staleness(self, batch: int) -> float:
        """The champion's extra errors on ``batch`` over a fresh model (:meth:`fresh`)."""
        return self.err(self.champion, batch) - self.fresh(batch)


@dataclass(frozen=True)
class Choice:
    retrain: bool
    reason: str
    saved: float | None = None  # expected errors saved by retraining now (over the horizon)


@dataclass(frozen=True)
class Run:
    name: str
    schedule: Schedule
    choices: tuple[Choice, ...] = field(repr=False, default=())
    gates: tuple[Any, ...] = field(repr=False, default=())  # (boundary, GateResult) per retrain


def simulate(
    errors: np.ndarray,
    rows: np.ndarray,
    policy: Any,
    *,
    cost: float,
    label_delay: int,
    row_errors: Any = None,
    reference: Any = None,
    name: str | None = None,
    gate: Any = None,
    dispersion: float = 1.0,
    unit: str = "errors",
) -> Run:
    """Run ``policy`` through every boundary of the matrix and price its schedule; with a
    ``gate`` (:class:`retrainer.schedule.gated.Gate`) a retrain goes into service only if it
    passes the gate against the champion, as live (a rejected retrain is paid for all the same).
    ``row_errors`` and ``reference`` give a model's per-row errors on the stream and on its
    reference sample (:meth:`~retrainer.schedule.scores.ScoreMatrix.reference`), for detector
    triggers;
    ``dispersion`` and ``unit`` say what one error is (:class:`View`).
    """
    policy.reset()
    champion, at, rejected, choices, gates = 0, [], [], [], []
    for t in range(1, len(rows)):
        view = View(
            errors, rows, t, champion, float(cost), label_delay, row_errors, reference,
            dispersion=dispersion, unit=unit,
        )  # fmt: skip
        choice = policy.decide(view)
        choices.append(choice)
        if not choice.retrain:
            continue
        result = gate(t, champion) if gate is not None else None
        gates.append((t, result))
        if result is None or result.passed:
            champion = t
            at.append(t)
        else:
            rejected.append(t)
    schedule = evaluate(errors, rows, at, cost, rejected)
    return Run(name or policy.name, schedule, tuple(choices), tuple(gates))


class Every:
    """Retrain every ``period`` batches."""

    def __init__(self, period: int) -> None:
        self.period = int(period)
        self.name = f"every {self.period} batches"

    def reset(self) -> None:
        pass

    def decide(self, v: View) -> Choice:
        if v.age >= self.period:
            return Choice(
                True, f"schedule: the champion is {v.age} batches old (every {self.period})"
            )
        return Choice(False, f"schedule: {v.age} of {self.period} batches")


class DetectorTrigger:
    """Retrain when a streaming detector (the project's DDM, ADWIN, ...) signals a change in the
    champion's error stream; a fresh detector per champion, primed as live
    (``Cycle._primed`` in :mod:`retrainer.cycle`) on the champion's errors on its reference
    sample (the gate copy's on the held-out rows) where the view has them (``reference``).
    Drift signalled while priming is not reported.

    >>> import numpy as np
    >>> from retrainer.checks.concept import DDM
    >>> bits = {0: np.r_[np.zeros(300), np.ones(300)].astype(np.uint8)}
    >>> E = np.array([[0, 0, 150, 150]] * 4, dtype=float)
    >>> policy = DetectorTrigger("DDM", DDM)
    >>> run = simulate(E, np.full(4, 150), policy, cost=1, label_delay=1, row_errors=bits.get)
    >>> run.schedule.retrain_at
    (3,)

    Models wrong on a quarter of the rows of every batch: a fresh detector takes that for their
    error rate; primed on reference samples where they were wrong on a tenth, it signals on each
    champion's first labelled batch.

    >>> stream = (np.arange(600) % 4 == 0).astype(np.uint8)
    >>> bits = {k: stream[150 * k :] for k in range(4)}
    >>> E = np.full((4, 4), 38.0)
    >>> fresh = simulate(E, np.full(4, 150), policy, cost=1, label_delay=1, row_errors=bits.get)
    >>> held_out = (np.arange(200) % 10 == 0).astype(np.uint8)
    >>> primed = simulate(E, np.full(4, 150), policy, cost=1, label_delay=1, row_errors=bits.get,
    ...                   reference=lambda k: held_out)
    >>> fresh.schedule.retrain_at, primed.schedule.retrain_at
    ((), (1, 2, 3))
    """

    def __init__(self, name: str, factory: Any) -> None:
        self.name, self.factory = name, factory

    def reset(self) -> None:
        self.detector, self.fed, self.model = None, -1, -1

    def decide(self, v: View) -> Choice:
        if self.model != v.champion:
            self.detector, self.model, self.fed = self.factory(), v.champion, v.champion - 1
            if v.reference is not None:
                self.detector.update_many(v.reference(v.champion))
        fired = False
        starts = np.r_[0, np.cumsum(v.rows[v.champion :])]
        run = None
        while self.fed < v.observed:
            self.fed += 1
            run = v.row_errors(v.champion) if run is None else run
            j = self.fed - v.champion
            fired |= len(self.detector.update_many(run[starts[j] : starts[j + 1]])) > 0
        if fired:
            return Choice(True, f"{self.name}: change in the champion's error stream")
        return Choice(False, f"{self.name}: no change")


def _best_parameter(v: View, make: Any, grid: Sequence[Any]) -> Any:
    """The parameter of ``grid`` whose policy costs least on the labelled past (the sub-matrix
    of batches ``0..observed``)."""
    o = v.observed + 1
    E, rows = v.errors[:o, :o], v.rows[:o]
    costs = [
        simulate(E, rows, make(p), cost=v.cost, label_delay=v.label_delay).schedule.total
        for p in grid
    ]
    return grid[int(np.argmin(costs))]


class CARA:
    """Cost-aware retraining (Mahadevan and Mathioudakis, KBS 2024, arXiv 2310.04216), our
    reading: the staleness cost of the champion on a batch is its extra errors over a model
    retrained at that batch; the threshold variant (``"T"``) retrains when the latest staleness
    exceeds ``tau``, the cumulative one (``"CT"``) when the staleness summed since the last retrain
    does, the periodic one (``"P"``) every ``period`` batches. ``tau`` / ``period`` are chosen as
    the values of least total cost on the labelled past (re-chosen at every boundary), unless
    given.
    """

    def __init__(self, variant: str = "CT", parameter: float | None = None) -> None:
        if variant not in ("T", "CT", "P"):
            raise ValueError(f"CARA variant must be T, CT or P, not {variant!r}")
        self.variant, self.parameter = variant, parameter
        self.name = f"CARA-{variant}" + ("" if parameter is None else f" ({parameter:g})")

    def reset(self) -> None:
        pass

    def _grid(self, cost: float) -> list[float]:
        if self.variant == "P":
            return [1, 2, 3, 4, 6, 8, 12, 16, 26, 52]
        if self.variant == "T":
            return [cost / h for h in (1, 2, 4, 8, 16, 32, 64, 128)]
        return [cost * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]

    def decide(self, v: View) -> Choice:
        param = self.parameter
        if param is None:
            grid = self._grid(v.cost)
            default = {"P": 4, "T": v.cost / 8, "CT": v.cost}[self.variant]
            param = (
                _best_parameter(v, lambda p: CARA(self.variant, p), grid)
                if v.observed >= 2
                else default
            )
        if self.variant == "P":
            fire = v.age >= param
            return Choice(fire, f"CARA-P: champion {v.age} batches old (period {param:g})")
        seen = range(max(v.champion, 0), v.observed + 1)
        if not seen:
            return Choice(False, "CARA: no labelled batch since the last retrain")
        if self.variant == "T":
            value = v.staleness(seen[-1])
            what = "latest staleness"
        else:
            value = sum(v.staleness(j) for j in seen)
            what = "staleness since the last retrain"
        return Choice(value >= param, f"CARA-{self.variant}: {what} {value:.0f} vs {param:.0f}")


def _increments(v: View, window: int) -> dict[int, np.ndarray]:
    """Observed changes of a model's accuracy over ``d`` batches (``d -> values``), from every
    candidate on the last ``window`` labelled batches."""
    o = v.observed
    acc = 1.0 - v.errors[: o + 1, : o + 1] / v.rows[: o + 1]
    lo = max(0, o - window + 1)
    out: dict[int, list[float]] = {}
    for i in range(o + 1):
        path = acc[i, max(i, lo) : o + 1]
        for d in range(1, len(path)):
            out.setdefault(d, []).extend((path[d:] - path[:-d]).tolist())
    return {d: np.asarray(x) for d, x in out.items()}


class UPF:
    """Uncertainty-aware performance forecasting (Regol et al., ICML 2025, arXiv 2505.14903),
    our reading: forecast each model's accuracy on the coming ``horizon`` batches with a
    Gaussian (mean and variance of how a model's accuracy changed over ``d`` batches in the
    history of past models), for the champion from its latest labelled accuracy and for a model
    retrained now from the accuracy fresh models had; retrain when the ``quantile`` of the
    forecast gain in errors over the horizon exceeds the retrain cost.
    """

    name = "UPF"

    def __init__(self, horizon: int = 8, quantile: float = 0.25, window: int = 52) -> None:
        # horizon and quantile tuned like ours, on SEA, STAGGER and HAPT
        self.horizon, self.quantile, self.window = horizon, quantile, window

    def reset(self) -> None:
        pass

    def decide(self, v: View) -> Choice:
        o = v.observed
        if o < max(v.champion, 1):
            return Choice(False, "UPF: no labelled batch of the champion yet")
        inc = _increments(v, self.window)
        H = min(self.horizon, v.remaining)
        n = float(np.mean(v.rows[max(0, o - 3) : o + 1]))
        fresh = np.array([1.0 - v.errors[j, j] / v.rows[j] for j in range(max(0, o - 3), o + 1)])
        mu_f, var_f = float(fresh.mean()), float(fresh.var()) if len(fresh) > 1 else 0.0
        last = 1.0 - v.err(v.champion, o) / v.rows[o]

        def moment(d: int) -> tuple[float, float]:
            if d <= 0:
                return 0.0, 0.0
            d = min(d, max(inc)) if inc else 0
            x = inc.get(d)
            return (0.0, 0.0) if x is None or not len(x) else (float(x.mean()), float(x.var()))

        mean = var = 0.0
        for h in range(H):
            m_new, s_new = moment(h)
            m_old, s_old = moment(v.t + h - o)
            mean += n * (mu_f + m_new - last - m_old)
            var += n * n * (var_f + s_new + s_old)
        gain = mean + math.sqrt(var) * float(stats.norm.ppf(self.quantile))
        return Choice(
            gain >= v.cost,
            f"UPF: {self.quantile:.0%} quantile of the forecast gain over {H} batches "
            f"{gain:.0f} {v.unit} vs cost {v.cost:.0f}",
            saved=mean,
        )


class GainForecast:
    """Ours: forecast what a retrain now saves and plan the next retrains against the cost.

    Every batch a shadow candidate is trained on the labelled window (not deployed); on the
    labelled batches it shows the **gap**: how many more errors per row a model of age ``a``
    makes than a fresh one (``E[j-a, j] - E[j, j]``, out of sample). The typical gap by age adds
    up, age by age, the median extra errors of a model one batch older on the same batch, over
    the last ``window`` labelled batches (a one-off change shows up at one age per batch only,
    so the median ignores it; steady ageing does not), made non-decreasing with isotonic
    regression; the champion's own gap since it last changed (:meth:`own_shift`) shifts its
    forecast (a sudden change shows up there first, and only the batches after it count). A
    dynamic programme over the next ``horizon`` batches (or fewer, if the history ends) then
    weighs, batch by batch, keeping the current model against paying the cost for a fresh one,
    which ages in turn; retrain now when the plan starts with a retrain. A gap measured beyond
    its noise (``z`` standard errors) is assumed to last over the horizon.

    Live the record holds the models that served, the first model, a shadow candidate's errors
    on each labelled batch (``policy.shadow``) and, at each retrain, the gate copy's errors
    (:mod:`retrainer.schedule.live`); the same code reads what is there
    (:class:`LiveInformation` prices that in the backtest).
    """

    name = "ours (gain forecast)"

    def __init__(
        self,
        horizon: int = 8,
        window: int = 26,
        z: float = 1.0,
        delta: float = 0.05,
    ) -> None:  # horizon, z, delta: tuned on the tuning group (bench/backtest_cost.py)
        self.horizon, self.window, self.z, self.delta = horizon, window, z, delta

    def reset(self) -> None:
        pass

    def gap_by_age(self, v: View, ages: int) -> np.ndarray:
        """Typical extra errors per row of a model ``0..ages-1`` batches old over a fresh one.

        On each labelled batch the models scored on it are taken in order of age; each one's
        extra errors over the next younger one are spread evenly over the ages between them
        (with a candidate at every boundary, as in the backtest, that is one model one batch
        older; live, fewer models were scored, see :mod:`retrainer.schedule.live`)."""
        from sklearn.isotonic import IsotonicRegression

        o = v.observed
        lo = max(0, o - self.window + 1)
        diff = np.full((o + 1 - lo, ages), np.nan)
        for row, j in enumerate(range(lo, o + 1)):
            known = np.flatnonzero(np.isfinite(v.errors[: j + 1, j]))[::-1]  # youngest first
            known = known[j - known < ages]
            young, old = known[:-1], known[1:]
            d = (v.errors[old, j] - v.errors[young, j]) / v.rows[j] / (young - old)
            span = young - old
            first = np.repeat(j - young + 1, span)
            ages_of = first + np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
            diff[row, ages_of] = np.repeat(d, span)
        n = np.isfinite(diff).sum(axis=0)
        step = np.zeros(ages)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(diff, axis=0)
            se = 1.2533 * np.nanstd(diff, axis=0, ddof=1) / np.sqrt(n)
        shrunk = np.sign(med) * np.maximum(np.abs(med) - self.z * se, 0.0)
        step[1:] = np.where(n[1:] >= 2, shrunk[1:], np.nan)
        seen = np.isfinite(step)
        step[~seen] = np.median(step[seen][1:]) if seen[1:].any() else 0.0
        x = np.arange(ages)
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip")
        fitted = iso.fit(x, np.cumsum(step)).predict(x)
        return np.maximum(fitted - fitted[0], 0.0)

    def own_shift(self, v: View, G: np.ndarray) -> tuple[float, float, int]:
        """The champion's own gap off the typical one since it last changed, raw and beyond its
        noise (``z`` standard errors), and over how many labelled batches.

        The run since the change is the longest run of the champion's latest labelled batches
        (at most ``window``) that no split divides into two parts whose mean gaps differ beyond
        their noise (ADWIN's rule, Bifet and Gavalda 2007, here on the gap per batch at
        confidence ``1 - delta`` over all the splits tried, with the noise of the gap from batch
        to batch: Poisson's on the two error counts, times :meth:`dispersion` where it varies
        more). The shift is shrunk by ``z`` Poisson standard errors of its mean."""
        o = v.observed
        batches = [
            j
            for j in range(max(v.champion, o - self.window + 1), o + 1)
            if math.isfinite(v.staleness(j))
        ]
        if not batches:
            return 0.0, 0.0, 0
        n = np.array([v.rows[j] for j in batches], dtype=float)
        gap = np.array([v.staleness(j) - G[j - v.champion] * v.rows[j] for j in batches])
        noise = np.array([v.err(v.champion, j) + v.fresh(j) for j in batches]) * v.dispersion
        spread = noise * self.dispersion(gap, noise, v.dispersion)
        first, splits = 0, len(batches) * (len(batches) - 1) / 2
        cut = float(stats.norm.isf(self.delta / 2 / max(splits, 1)))
        for start in range(len(batches) - 2, -1, -1):  # grow the run backwards
            g, m, s = (np.cumsum(a[start:][::-1])[::-1] for a in (gap, n, spread))
            right_g, right_n, right_s = g[1:], m[1:], s[1:]  # the newer part of each split
            left_g, left_n, left_s = g[0] - right_g, m[0] - right_n, s[0] - right_s
            diff = np.abs(right_g / right_n - left_g / left_n)
            if (diff > cut * np.sqrt(right_s / right_n**2 + left_s / left_n**2)).any():
                first = start + 1
                break
        raw = float(gap[first:].sum() / n[first:].sum())
        se = math.sqrt(noise[first:].sum()) / n[first:].sum()
        return raw, math.copysign(max(abs(raw) - self.z * se, 0.0), raw), len(batches) - first

    @staticmethod
    def dispersion(gap: np.ndarray, noise: np.ndarray, row: float = 1.0) -> float:
        """How much more the gap varies from batch to batch than the Poisson bound says: the
        median squared difference of successive batches over its Poisson variance (at least
        ``row``, one row's), over the median of a chi-square with one degree of freedom (a
        change of level moves one difference only); at least 1, and 1 with fewer than three
        differences."""
        if len(gap) < 4:
            return 1.0
        ratio = np.diff(gap) ** 2 / np.maximum(noise[1:] + noise[:-1], row)
        return max(1.0, float(np.median(ratio)) / stats.chi2.ppf(0.5, 1))

    def decide(self, v: View) -> Choice:
        o = v.observed
        if o < max(v.champion, 1):
            return Choice(
                False,
                "gain forecast: no labelled batch of the champion yet, so nothing to weigh: "
                f"~0 {v.unit} against a retrain cost of {v.cost:,.0f}; wait",
            )
        H = max(1, min(self.horizon, v.remaining))
        A = v.age
        G = self.gap_by_age(v, A + H + 1)
        raw, shift, since = self.own_shift(v, G)
        n = float(np.mean(v.rows[max(0, o - 3) : o + 1]))
        champ = np.maximum(G[A : A + H] + shift, 0.0) * n  # champion's extra errors, batch t + h
        fresh = G * n
        # backwards over the horizon: Wf[a], the least cost of the batches left when a model of
        # the fresh lineage, a batches old, is in service; Wc, the same with the champion
        Wf, Wc = np.zeros(H + 2), 0.0
        ages = np.arange(1, H + 1)
        for h in range(H - 1, -1, -1):
            retrain = v.cost + fresh[0] + Wf[1]
            keep = champ[h] + Wc
            Wc = min(keep, retrain)
            nxt = np.zeros(H + 2)
            nxt[ages] = np.minimum(fresh[ages] + Wf[ages + 1], retrain)
            Wf = nxt
        retrain_now, keep_champ = retrain, keep
        saved = float(champ.sum() - fresh[:H].sum())
        words = (
            f"gain forecast: the champion ({A} batches old) makes {shift + G[A]:+.3f} {v.unit} "
            f"per row over a fresh model (typical at that age {G[A]:.3f}, its own last {since} "
            f"labelled batch{'' if since == 1 else 'es'} (since its gap last changed) "
            f"{raw:+.3f} off that, {shift:+.3f} beyond the noise); over the next {H} "
            f"batches of ~{n:.0f} rows a retrain "
            f"now saves ~{saved:,.0f} {v.unit} against a retrain cost of {v.cost:,.0f}"
        )
        if retrain_now < keep_champ:
            return Choice(
                True, words + f"; retrain now (plan {retrain_now:.0f} < {keep_champ:.0f})", saved
            )
        return Choice(False, words + f"; wait (plan {keep_champ:.0f} <= {retrain_now:.0f})", saved)


class LiveInformation:
    """``policy`` seeing only what the live loop records (:mod:`retrainer.schedule.live`): the
    errors of the model that served each batch and, at each retrain, a fresh model's errors on
    the newest labelled batch (the gate copy's; here the candidate of that batch's boundary on
    it). Everything else in the matrix is hidden, so the backtest prices the policy as it runs
    live. (The loop also scores the first model on every batch, but its gap to the champion
    mixes a changed concept with ageing, so it is left out: on the tuning sets it made the
    forecast worse.)

    >>> E = np.array([[5, 5, 50, 50], [0, 5, 50, 50], [0, 0, 5, 5], [0, 0, 0, 5]], dtype=float)
    >>> E[np.tril_indices(4, -1)] = np.nan
    >>> live = LiveInformation(Every(2))
    >>> simulate(E, np.full(4, 100), live, cost=10, label_delay=1).schedule.retrain_at
    (2,)
    >>> np.isfinite(live.known).sum(axis=0).tolist()  # entries seen per batch at the last call
    [1, 2, 1, 0]

    With ``shadow`` the loop also fits a shadow candidate for every labelled batch (on the window
    that ends before it) and scores it on that batch: the whole diagonal of the labelled batches
    is known, not only the retrains'. The candidate of that batch's boundary stands in for it:
    with labels one batch late the same fit; with ``label_delay`` d > 1 the live shadow, fitted
    once the batch's labels are in, also has the d - 1 batches labelled since that boundary, so
    this diagonal is the errors of a model d - 1 batches staler than live's (the matrix scores no
    model of that window on the batch).

    >>> shadow = LiveInformation(Every(5), shadow=True)  # never retrains here
    >>> simulate(E, np.full(4, 100), shadow, cost=10, label_delay=1).schedule.retrain_at
    ()
    >>> np.isfinite(shadow.known).sum(axis=0).tolist()  # the first model, and a fresh one
    [1, 2, 2, 0]
    """

    def __init__(self, policy: Any, shadow: bool = False) -> None:
        self.policy, self.shadow = policy, shadow
        what = "live information, shadow" if shadow else "live information"
        self.name = f"{policy.name} ({what})"

    def reset(self) -> None:
        self.policy.reset()
        self.served: dict[int, int] = {}
        self.asked: list[int] = []
        self.known = np.zeros((0, 0))

    def decide(self, v: View) -> Choice:
        self.served[v.t - 1] = v.champion  # the champion now is the one that served batch t - 1
        E = np.full(v.errors.shape, np.nan)
        for j in range(v.observed + 1):
            E[self.served[j], j] = v.errors[self.served[j], j]
        fresh = range(v.observed + 1) if self.shadow else (s - v.label_delay for s in self.asked)
        for b in fresh:
            if 0 <= b <= v.observed:
                E[b, b] = v.errors[b, b]
        self.known = E
        seen = replace(v, errors=E)
        choice = self.policy.decide(seen)
        if choice.retrain:
            self.asked.append(v.t)
        return choice
