"""Retraining triggers and the policy that turns evidence into a decision with reasons.

The same policy runs live (one call per cycle) and in a replay. Time is the data's time when the
project names a time column, so that replays of history honour schedules and cooldowns.

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> policy = Policy([ScheduleTrigger(every=timedelta(days=7))], cooldown=timedelta(days=1))
    >>> now = datetime(2024, 1, 10, tzinfo=UTC)
    >>> policy.decide(Evidence(now=now, last_retrain=now - timedelta(days=8))).action
    'retrain'
    >>> policy.decide(Evidence(now=now, last_retrain=now - timedelta(days=2))).action
    'hold'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from retrainer.config import PolicySettings, TriggerSettings, format_duration
from retrainer.diagnosis.alarms import Alarm
from retrainer.metrics import BOOTSTRAPPED, higher_is_better, is_worse


@dataclass(frozen=True)
class Evidence:
    """What a cycle knows when the policy decides."""

    now: datetime
    last_retrain: datetime | None = None
    new_labelled_rows: int = 0
    alarms: Sequence[Alarm] = ()
    drifted_columns: Sequence[str] = ()
    dataset_drift: bool = False
    concept_drift: bool = False
    metric: str = "accuracy"
    performance: float | None = None
    reference_performance: float | None = None
    performance_rows: int = 0  # labelled rows behind ``performance`` (0: not known)
    reference_rows: int = 0  # holdout rows behind ``reference_performance`` (0: not known)
    performance_spread: float = 0.0  # a loss's rows: sd of their losses (``row_losses``)
    reference_spread: float = 0.0  # the same on the champion's holdout (0: not known)
    estimated_spread: float = 0.0  # standard error of ``estimated_performance`` (0: not known)
    performance_se: float = 0.0  # BOOTSTRAPPED metrics: bootstrap standard error (0: not known)
    reference_se: float = 0.0  # the same of the champion's holdout score (0: not known)
    manual: str | None = None
    has_champion: bool = True
    estimated_performance: float | None = None
    recent_retrains: Sequence[datetime] = ()  # clock times of recent retraining runs
    recent_reasons: Sequence[tuple[datetime, str]] = ()  # reasons of recent retrain decisions
    last_deploy: datetime | None = None  # clock time of the last promotion
    serving: Any = None  # the record as a score matrix (retrainer.schedule.live), for the cost


@dataclass(frozen=True)
class Decision:
    """``retrain``, ``hold`` or ``alert``, with the reasons that fired and those suppressed."""

    action: str
    reasons: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "suppressed": list(self.suppressed),
        }


@dataclass(frozen=True)
class ScheduleTrigger:
    """Fires when ``every`` has passed since the last retrain, or at each ``cron`` slot."""

    every: timedelta | None = None
    cron: str | None = None

    def fire(self, ev: Evidence) -> str | None:
        if ev.last_retrain is None:
            return None
        if self.every is not None and ev.now - ev.last_retrain >= self.every:
            since, every = format_duration(ev.now - ev.last_retrain), format_duration(self.every)
            return f"schedule: {since} since the last retrain (every {every})"
        if self.cron is not None:
            from croniter import croniter

            slot = croniter(self.cron, ev.last_retrain).get_next(datetime)
            if slot <= ev.now:
                return f"schedule: cron slot {slot.isoformat()} ({self.cron}) has passed"
        return None


@dataclass(frozen=True)
class VolumeTrigger:
    """Fires when at least ``min_rows`` new labelled rows arrived since the last retrain."""

    min_rows: int

    def fire(self, ev: Evidence) -> str | None:
        if ev.new_labelled_rows >= self.min_rows:
            return f"volume: {ev.new_labelled_rows} new labelled rows (>= {self.min_rows})"
        return None


@dataclass(frozen=True)
class DriftTrigger:
    """Fires on dataset-level data drift, or on drift of any of the named ``columns``."""

    columns: tuple[str, ...] = ()

    def fire(self, ev: Evidence) -> str | None:
        if self.columns:
            hit = sorted(set(self.columns) & set(ev.drifted_columns))
            return f"drift: columns {', '.join(hit)} drifted" if hit else None
        if ev.dataset_drift:
            return f"drift: dataset drift ({', '.join(ev.drifted_columns)} drifted)"
        return None


@dataclass(frozen=True)
class ConceptTrigger:
    """Fires when the error-stream detector signals concept drift."""

    def fire(self, ev: Evidence) -> str | None:
        return "concept: the error-stream detector signalled drift" if ev.concept_drift else None


@dataclass(frozen=True)
class PerformanceTrigger:
    """Fires when performance dropped more than ``max_drop`` below the champion's holdout
    score, or below ``min_value``; ``source`` says whether realised (labels) or estimated.

    ``max_drop`` and ``min_value`` are the effect sizes. On realised accuracy with the rows
    behind both scores known (``Evidence.performance_rows``, ``reference_rows``), the drop must
    also be significant: a one-sided z-test that the accuracy of this cycle's labelled rows is
    below the holdout accuracy minus ``max_drop`` (below ``min_value``), the holdout's own
    sampling noise included, at level ``alpha``. So an unchanged stream fires it in at most
    ``alpha`` of the cycles (normal approximation, independent rows), however few rows a batch
    has: a 30-row accuracy is a coin of +-0.15 (two standard errors), which a raw 0.05 drop
    took for a change in about a third of the batches. On a loss (mae, rmse) with the spread
    of the rows' losses known on both sides (``performance_spread``, ``reference_spread``), the
    rise is tested the same way on the mean loss (the mean squared error for rmse): a z-test
    with both sides' standard errors. On f1, balanced accuracy, roc_auc and r2 with the
    bootstrap standard error of the rows' score known (``performance_se``; the holdout's
    ``reference_se``), the drop is tested the same way with both. An estimate with its
    standard error known (``estimated_spread``, from the estimator's own sampling band) is
    tested the same way: a drop its band cannot tell from noise does not fire. Without a
    standard error (a version registered before it was stored, an AUC without scores) the
    drop is compared raw.

    Parameters:
        max_drop: the largest drop from the champion's holdout score that is tolerated.
        min_value: a floor for the score.
        source: ``realised`` (labels) or ``estimated`` (label-free estimate).
        alpha: the one-sided test's level, the chance that a cycle without a drop fires.

    Example:
        >>> from datetime import datetime, UTC
        >>> def ev(acc, n):
        ...     return Evidence(now=datetime(2024, 1, 1, tzinfo=UTC), performance=acc,
        ...         performance_rows=n, reference_performance=0.8, reference_rows=270)
        >>> trigger = PerformanceTrigger(max_drop=0.05)
        >>> trigger.fire(ev(0.7, 30)) is None  # 3 more errors in 30 rows: noise
        True
        >>> for part in trigger.fire(ev(0.45, 30)).split(" ("):
        ...     print(part)
        performance: accuracy=0.4500 on 30 rows dropped more than 0.05 from the champion's 0.8000
        holdout, n=270): one-sided z-test p=0.00014 < 0.01
        >>> trigger.fire(ev(0.7, 3000)) is None  # the holdout's own 270 rows are noise too
        True
        >>> trigger.fire(ev(0.65, 3000)) is None
        False

    On a loss (mae, rmse) a drop is a rise, and ``min_value`` is a ceiling:

        >>> loss = Evidence(now=datetime(2024, 1, 1, tzinfo=UTC), metric="mae",
        ...     performance=2.4, reference_performance=1.9)
        >>> PerformanceTrigger(max_drop=0.05).fire(loss)
        "performance: mae=2.4000 rose more than 0.05 from the champion's 1.9000"
        >>> PerformanceTrigger(min_value=2.0).fire(loss)
        'performance: mae=2.4000 is above the ceiling 2.0'
        >>> PerformanceTrigger(max_drop=0.1, relative=True).fire(loss)  # max_drop: 10%
        "performance: mae=2.4000 rose more than 10% (0.19) from the champion's 1.9000"
        >>> PerformanceTrigger(max_drop=0.3, relative=True).fire(loss) is None
        True
        >>> noisy = replace(loss, performance_rows=30, reference_rows=200,
        ...                 performance_spread=1.5, reference_spread=1.5)
        >>> PerformanceTrigger(max_drop=0.05).fire(noisy) is None  # 30 rows: +-0.55 (2 se)
        True
        >>> fired = PerformanceTrigger(max_drop=0.05).fire(replace(noisy, performance=3.0))
        >>> for part in fired.split(" ("):
        ...     print(part)
        performance: mae=3.0000 on 30 rows rose more than 0.05 from the champion's 1.9000
        holdout, n=200): one-sided z-test p=0.00017 < 0.01
    """

    max_drop: float | None = None
    min_value: float | None = None
    source: str = "realised"
    alpha: float = 0.01
    relative: bool = False  # max_drop is a share of the champion's holdout score

    def fire(self, ev: Evidence) -> str | None:
        estimated = self.source == "estimated"
        value = ev.estimated_performance if estimated else ev.performance
        ref = ev.reference_performance
        if value is None:
            return None
        what = f"estimated {ev.metric}" if estimated else ev.metric
        loss = not higher_is_better(ev.metric) and ev.performance_spread > 0  # mae, rmse
        booted = ev.metric in BOOTSTRAPPED and ev.performance_se > 0
        tested = not estimated and (ev.metric == "accuracy" or loss or booted)
        n = ev.performance_rows if tested else 0
        what += f"={value:.4f}" + (f" on {n} rows" if n else "")
        banded = estimated and ev.estimated_spread > 0
        what += f" (standard error {ev.estimated_spread:.4f})" if banded else ""
        if self.min_value is not None and is_worse(ev.metric, value, self.min_value):
            p = self._p(ev, value, n, self.min_value) if n else None
            p = _estimated_p(ev, value, self.min_value) if banded else p
            if p is None or p < self.alpha:
                bound = "below the floor" if higher_is_better(ev.metric) else "above the ceiling"
                return f"performance: {what} is {bound} {self.min_value}{self._test(p)}"
        if self.max_drop is None or ref is None:
            return None
        drop = self.max_drop * abs(ref) if self.relative else self.max_drop
        if is_worse(ev.metric, value, ref, drop):
            m = ev.reference_rows
            known = n and m and (not loss or ev.reference_spread > 0)
            p = self._p(ev, value, n, ref, drop, m) if known else None
            if banded:
                noise = ref * (1 - ref) / m if ev.metric == "accuracy" and m else 0.0
                worse = ref - drop if higher_is_better(ev.metric) else ref + drop
                p = _estimated_p(ev, value, worse, noise)
            if p is None or p < self.alpha:
                holdout = "" if p is None else f" (holdout, n={m})"
                moved = "dropped more than" if higher_is_better(ev.metric) else "rose more than"
                shown = f"{self.max_drop:.0%} ({drop:.4g})" if self.relative else f"{drop}"
                return (
                    f"performance: {what} {moved} {shown} from the "
                    f"champion's {ref:.4f}{holdout}{self._test(p)}"
                )
        return None

    def _test(self, p: float | None) -> str:
        """The test's words; a p-value below the smallest double reads ``p<1e-300``, not 0.

        >>> PerformanceTrigger(max_drop=0.05)._test(0.0)
        ': one-sided z-test p<1e-300 < 0.01'
        """
        if p is None:
            return ""
        shown = f"={p:.2g}" if p > 0 else "<1e-300"
        return f": one-sided z-test p{shown} < {self.alpha}"

    @staticmethod
    def _p(ev: Evidence, value: float, n: int, ref: float, drop: float = 0.0, m: int = 0):
        """The one-sided p-value that ``value`` on ``n`` rows is no worse than ``ref`` moved by
        ``drop`` (``ref`` an estimate on ``m`` holdout rows, a fixed bound when ``m`` is 0)."""
        if ev.metric == "accuracy":
            return _below(value, n, ref - drop, ref * (1 - ref) / m if m else 0.0)
        if higher_is_better(ev.metric):  # BOOTSTRAPPED metrics: bootstrap standard errors
            return _worse_p(
                ref - drop - value, ev.performance_se**2 + (ev.reference_se**2 if m else 0.0)
            )
        square = ev.metric == "rmse"  # tested on the mean squared error
        bound = (ref + drop) ** 2 if square else ref + drop
        bound_variance = ev.reference_spread**2 / m if m else 0.0
        loss = value**2 if square else value
        return _worse_p(loss - bound, ev.performance_spread**2 / n + bound_variance)


def _worse_p(gap: float, variance: float) -> float:
    """One-sided p-value of a z-test: the chance that a figure lies ``gap`` or more on the worse
    side of a bound it does not cross, the difference having ``variance``.

    Example:
        >>> rows, holdout = 1.5**2 / 30, 1.5**2 / 200  # an MAE of 30 rows, errors' sd 1.5
        >>> round(_worse_p(2.4 - 1.95, rows), 3), round(_worse_p(2.4 - 1.95, rows + holdout), 3)
        (0.05, 0.063)
    """
    from statistics import NormalDist

    return 1 - NormalDist().cdf(gap / math.sqrt(variance))


def _below(value: float, n: int, bound: float, bound_variance: float = 0.0) -> float:
    """One-sided p-value that an accuracy ``value`` on ``n`` rows comes from an accuracy of at
    least ``bound`` (an estimate with ``bound_variance``, 0 for a fixed number): a z-test with
    the rows' variance at the bound (a score test's, so that 30 right rows still have one).

    Example:
        >>> round(_below(0.6, 30, 0.75), 3), round(_below(0.6, 30, 0.75, 0.8 * 0.2 / 270), 3)
        (0.029, 0.035)
    """
    b = min(max(bound, 1e-6), 1 - 1e-6)
    return _worse_p(bound - value, b * (1 - b) / n + bound_variance)


def _estimated_p(ev: Evidence, value: float, bound: float, bound_variance: float = 0.0):
    """One-sided p-value that an estimate ``value`` with standard error
    ``ev.estimated_spread`` comes from a metric no worse than ``bound`` (an estimate itself
    with ``bound_variance``, 0 for a fixed number): a z-test.

    Example:
        >>> from datetime import datetime, UTC
        >>> ev = Evidence(now=datetime(2024, 1, 1, tzinfo=UTC), estimated_spread=0.15)
        >>> round(_estimated_p(ev, 0.28, 0.30), 3), round(_estimated_p(ev, 0.0, 0.5), 4)
        (0.447, 0.0004)
    """
    gap = bound - value if higher_is_better(ev.metric) else value - bound
    return _worse_p(gap, ev.estimated_spread**2 + bound_variance)


@dataclass(frozen=True)
class CostTrigger:
    """Fires when a retrain now is expected to save more errors than it costs (a classifier's
    wrong predictions, a regressor's absolute or squared error: ``Evidence.serving.unit``).

    It runs the backtest's cost-aware policy,
    :class:`~retrainer.schedule.policies.GainForecast`, on the run's record
    (``Evidence.serving``, read from the store by :func:`retrainer.schedule.live.store_view`):
    the typical extra errors of an older model over a fresh one by age, the champion's own
    errors against a fresh model's (the shadow candidates of ``policy.shadow``, else the gates
    of past retrains and each version's first batch), and a plan over the next batches that
    weighs keeping the champion against paying ``retrain_cost`` (in those errors) for a fresh
    model.

    Example:
        >>> from datetime import datetime, UTC
        >>> from retrainer.schedule.live import serving_view
        >>> now = datetime(2024, 1, 1, tzinfo=UTC)
        >>> def record(late):  # the first model, 10 % wrong at first, then ``late`` wrong
        ...     return serving_view(batches=[(b, 1000) for b in range(1, 8)],
        ...         scored=[(b, 1, 100 if b < 4 else late) for b in range(1, 7)],
        ...         served={b: 1 for b in range(1, 7)}, gates=[], champion=1, horizon=4)
        >>> cost = CostTrigger(retrain_cost=500)
        >>> cost.fire(Evidence(now=now, serving=record(late=110))) is None
        True
        >>> fired = cost.fire(Evidence(now=now, serving=record(late=400)))
        >>> for part in fired.split("rows ")[-1].split("; "):
        ...     print(part)
        a retrain now saves ~1,148 errors against a retrain cost of 500
        retrain now (plan 500 < 787)
    """

    retrain_cost: float

    def choice(self, ev: Evidence) -> Any:
        """The policy's choice on the record (None before the champion has labelled batches)."""
        from retrainer.schedule.policies import GainForecast

        view = ev.serving
        if view is None:
            return None
        return GainForecast().decide(replace(view, cost=self.retrain_cost))

    def assess(self, ev: Evidence) -> str:
        """The decision in words: errors expected to be saved against the cost."""
        choice = self.choice(ev)
        if choice is None:
            return (
                f"cost: no record of served batches yet, so nothing to weigh: ~0 errors "
                f"against a retrain cost of {self.retrain_cost:,.0f}; hold"
            )
        return self._words(ev, choice)

    def fire(self, ev: Evidence) -> str | None:
        choice = self.choice(ev)
        return self._words(ev, choice) if choice is not None and choice.retrain else None

    @staticmethod
    def _words(ev: Evidence, choice: Any) -> str:
        """The choice's reason, and whether shadow candidates gave fresh models' errors."""
        import numpy as np

        view = ev.serving
        if not view.shadows:
            return f"cost: {choice.reason}"
        labelled = int(np.isfinite(view.errors[:, : view.observed + 1]).any(axis=0).sum())
        return (
            f"cost: {choice.reason}; a fresh model's errors from shadow candidates on "
            f"{view.shadows} of the {labelled} labelled batches read"
        )


@dataclass(frozen=True)
class ManualTrigger:
    """Fires when someone asked for a retrain; ignores the cooldown."""

    def fire(self, ev: Evidence) -> str | None:
        return f"manual: {ev.manual}" if ev.manual else None


@dataclass(frozen=True)
class TriggerGroup:
    """Triggers combined with ``any`` (one firing is enough) or ``all`` (every one must fire).

    Example:
        >>> from datetime import datetime, UTC
        >>> both = TriggerGroup((DriftTrigger(), ConceptTrigger()), mode="all")
        >>> both.fire(Evidence(now=datetime(2024, 1, 1, tzinfo=UTC), concept_drift=True)) is None
        True
    """

    triggers: Sequence[Trigger] = ()
    mode: str = "any"

    def fire(self, ev: Evidence) -> str | None:
        reasons = combine(self.triggers, self.mode, ev)
        return (" AND " if self.mode == "all" else "; ").join(reasons) or None


def combine(triggers: Sequence[Trigger], mode: str, ev: Evidence) -> list[str]:
    """The reasons of the triggers that fired; with ``mode="all"`` none unless every one fired."""
    reasons = [reason for t in triggers if (reason := t.fire(ev))]
    if mode == "all" and len(reasons) < len(triggers):
        return []
    return reasons


Trigger = (
    ScheduleTrigger
    | VolumeTrigger
    | DriftTrigger
    | ConceptTrigger
    | PerformanceTrigger
    | ManualTrigger
    | TriggerGroup
    | CostTrigger
)


def trigger_from_settings(s: TriggerSettings, cost: float | None = None) -> Trigger:
    """Build one trigger from its project-file entry (``cost``: a retrain's cost in errors)."""
    if s.type == "schedule":
        return ScheduleTrigger(every=s.every, cron=s.cron)
    if s.type == "volume":
        return VolumeTrigger(min_rows=s.min_rows)
    if s.type == "drift":
        return DriftTrigger(columns=tuple(s.columns or ()))
    if s.type == "concept":
        return ConceptTrigger()
    if s.type == "performance":
        return PerformanceTrigger(
            max_drop=s.max_drop,
            min_value=s.min_value,
            source=s.source,
            alpha=s.alpha,
            relative=s.relative_drop,
        )
    if s.type == "group":
        return TriggerGroup(tuple(trigger_from_settings(t, cost) for t in s.triggers), s.mode)
    if s.type == "cost":
        return CostTrigger(retrain_cost=float(cost or 0.0))
    return ManualTrigger()


@dataclass(frozen=True)
class Policy:
    """Triggers firing (combined with ``mode``) mean retrain, unless a blocking alarm, a
    deduplicated alarm, too little new data, the quiet period after a deploy, the cooldown or the
    budget holds it back; a manual request ignores all but blocking alarms.

    Parameters:
        triggers: the triggers (a manual trigger always counts on its own).
        cooldown: minimum time between retrains.
        block_on: alarm causes that block retraining and raise an alert instead.
        mode: ``any`` (one trigger is enough) or ``all`` (every non-manual trigger must fire).
        budget: ``(n, period)``: at most ``n`` retrains in any ``period``.
        dedup: a trigger that led to a retrain stays silent for this long (schedules excepted).
        min_new_rows: new labelled rows needed since the last retrain.
        quiet_after_deploy: no retrain this soon after the last promotion.
        on_covariate_drift: ``triggers`` (drift triggers decide), ``retrain`` (a diagnosed
            covariate drift fires a retrain) or ``watch`` (drift reasons are dropped). A
            diagnosed changed relation always fires a retrain, unless a cost trigger prices it.

    Example:
        >>> from datetime import datetime, timedelta, UTC
        >>> now = datetime(2024, 1, 10, tzinfo=UTC)
        >>> policy = Policy([ConceptTrigger()], budget=(2, timedelta(days=30)))
        >>> recent = (now - timedelta(days=3), now - timedelta(days=9))
        >>> policy.decide(Evidence(now=now, concept_drift=True, recent_retrains=recent)).reasons
        ('budget: 2 retrains in the last 30 days (at most 2)',)
    """

    triggers: Sequence[Trigger] = field(default_factory=tuple)
    cooldown: timedelta | None = None
    block_on: Sequence[str] = ("data_quality", "upstream_change")
    mode: str = "any"
    budget: tuple[int, timedelta] | None = None
    dedup: timedelta | None = None
    min_new_rows: int | None = None
    quiet_after_deploy: timedelta | None = None
    on_covariate_drift: str = "triggers"

    @classmethod
    def from_settings(cls, s: PolicySettings) -> Policy:
        cost = s.cost.errors if s.cost else None
        return cls(
            tuple(trigger_from_settings(t, cost) for t in s.triggers),
            s.cooldown,
            tuple(s.block_on),
            mode=s.mode,
            budget=(s.budget.max_retrains, s.budget.per) if s.budget else None,
            dedup=s.dedup,
            min_new_rows=s.min_new_rows,
            quiet_after_deploy=s.quiet_after_deploy,
            on_covariate_drift=s.on_covariate_drift,
        )

    def diagnosed(self, ev: Evidence, fired: list[str]) -> list[str]:
        """The fired reasons with those of the diagnosis: a changed relation (unless a cost
        trigger prices the retrain), covariate drift per ``on_covariate_drift``."""
        fired = [r for r in fired if not (self.on_covariate_drift == "watch" and r[:5] == "drift")]
        if not any(isinstance(t, CostTrigger) for t in self.triggers):  # else the cost decides
            fired += [
                f"changed relation: {a.message}" for a in ev.alarms if a.cause == "changed_relation"
            ]
        moved = sorted({a.column for a in ev.alarms if a.cause == "covariate_drift" and a.column})
        if moved and self.on_covariate_drift == "retrain":
            fired.append(f"covariate drift: {', '.join(moved)} moved")
        return fired

    def false_alarm_rate(self, rates: Mapping[str, float]) -> float:
        """The chance that a cycle without any change retrains, from each trigger type's chance
        of a false alarm per cycle (``rates``, e.g. ``{"concept": 0.01}``), assuming the
        triggers err independently; types not given (schedule, manual) count as 0.

        Example:
            >>> policy = Policy([DriftTrigger(), ConceptTrigger()])
            >>> round(policy.false_alarm_rate({"drift": 0.02, "concept": 0.01}), 4)
            0.0298
        """
        return _false_alarm_rate(
            [t for t in self.triggers if not isinstance(t, ManualTrigger)], self.mode, rates
        )

    def decide(self, ev: Evidence) -> Decision:
        """The decision for this evidence."""
        if not ev.has_champion:
            return Decision("retrain", ("bootstrap: no champion yet",))
        manual = [r for t in self.triggers if isinstance(t, ManualTrigger) and (r := t.fire(ev))]
        others = [t for t in self.triggers if not isinstance(t, ManualTrigger)]
        fired = self.diagnosed(ev, [*combine(others, self.mode, ev), *manual])
        blocking = [a for a in ev.alarms if a.blocking and a.cause in self.block_on]
        if blocking:
            causes = sorted({f"{a.cause}: {a.message}" for a in blocking})
            return Decision("alert", tuple(f"blocked by {c}" for c in causes), tuple(fired))
        if not fired:
            alarms = tuple(sorted({f"{a.cause}: {a.check}" for a in ev.alarms}))
            watch_only = all(a.cause == "covariate_drift" for a in ev.alarms)
            priced = tuple(t.assess(ev) for t in others if isinstance(t, CostTrigger))
            return Decision("hold" if watch_only else "alert", (*priced, *alarms))
        if manual:
            return Decision("retrain", tuple(fired))
        fired, repeated = self._dedup(fired, ev)
        if not fired:
            within = format_duration(self.dedup)
            note = f"dedup: every trigger that fired already led to a retrain within {within}"
            return Decision("hold", (note,), tuple(repeated))
        notes = self._holds(ev)
        if notes:
            return Decision("hold", tuple(notes), (*fired, *repeated))
        return Decision("retrain", tuple(fired), tuple(repeated))

    def _dedup(self, fired: list[str], ev: Evidence) -> tuple[list[str], list[str]]:
        """Split the reasons into fresh ones and repeats of a recent retrain's alarm."""
        if self.dedup is None:
            return fired, []
        recent = {
            _alarm_key(reason): when
            for when, reason in sorted(ev.recent_reasons)
            if ev.now - when < self.dedup
        }
        fresh, repeated = [], []
        for reason in fired:
            key = _alarm_key(reason)
            if key in recent and "schedule" not in key:
                when = recent[key]
                repeated.append(f"{reason} [dedup: the same alarm retrained at {when.isoformat()}]")
            else:
                fresh.append(reason)
        return fresh, repeated

    def _holds(self, ev: Evidence) -> list[str]:
        """Why a retrain must wait: too little new data, quiet period, cooldown, budget."""
        notes = []
        if self.min_new_rows is not None and ev.new_labelled_rows < self.min_new_rows:
            notes.append(
                f"min_new_rows: {ev.new_labelled_rows} new labelled rows (< {self.min_new_rows})"
            )
        since_deploy = ev.now - ev.last_deploy if ev.last_deploy else None
        if self.quiet_after_deploy and since_deploy is not None:
            if since_deploy < self.quiet_after_deploy:
                notes.append(
                    f"quiet_after_deploy: {format_duration(since_deploy)} since the last "
                    f"promotion (< {format_duration(self.quiet_after_deploy)})"
                )
        if (
            self.cooldown is not None
            and ev.last_retrain is not None
            and ev.now - ev.last_retrain < self.cooldown
        ):
            since, cooldown = (
                format_duration(ev.now - ev.last_retrain),
                format_duration(self.cooldown),
            )
            notes.append(f"cooldown: {since} since the last retrain (< {cooldown})")
        if self.budget is not None:
            limit, period = self.budget
            used = sum(1 for when in ev.recent_retrains if ev.now - when < period)
            if used >= limit:
                within = format_duration(period)
                notes.append(f"budget: {used} retrains in the last {within} (at most {limit})")
        return notes


_KINDS = {
    ScheduleTrigger: "schedule",
    VolumeTrigger: "volume",
    DriftTrigger: "drift",
    ConceptTrigger: "concept",
    PerformanceTrigger: "performance",
}


def _false_alarm_rate(triggers: Sequence[Trigger], mode: str, rates: Mapping[str, float]) -> float:
    each = [
        _false_alarm_rate(t.triggers, t.mode, rates)
        if isinstance(t, TriggerGroup)
        else float(rates.get(_KINDS.get(type(t), ""), 0.0))
        for t in triggers
    ]
    if not each:
        return 0.0
    if mode == "all":
        return float(math.prod(each))
    return 1.0 - math.prod(1.0 - r for r in each)


def _alarm_key(reason: str) -> tuple[str, ...]:
    """The trigger types behind a reason (``"drift: ..."`` -> ``("drift",)``)."""
    return tuple(part.split(":", 1)[0].strip() for part in reason.split(" AND "))
