"""Backtest of retraining policies: replay one labelled history through the live loop under each
policy (a fresh store per policy, the same :class:`~retrainer.triggers.Policy` objects the live
loop uses) and compare prequential performance, retrains, compute and retrains that led nowhere.

Two baselines are always included: a fixed schedule (``every 14d`` by default) and ``never``:
the first model of that replay scored on every batch (the loop's ``baseline`` role), never
retrained. (A policy cannot stand for "never": a diagnosed changed relation always retrains.)
When the true drift points are known (a synthetic stream), a third one, ``oracle``, retrains
at the first cycle whose labels include rows after each drift point and at each following
cycle until the training window holds rows of the new concept only, and at no other time.

Policies are compared on the same rows. A replay scores only the batches it did not quarantine,
and not a batch's rows set aside (far-out values); both follow the champion's reference, so they
differ between policies. Each policy's figure (``PolicyResult.mean``) is therefore taken on the
batches that every policy scored, with the same rows set aside (:func:`common_batches`); its
figure on every batch it scored is kept as ``own_mean``.

Example:
    >>> import tempfile
    >>> from retrainer.datasets import load_elec2
    >>> settings = {"data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    ...             "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier",
    ...                         "params": {"max_depth": 4}, "min_rows": 100}}
    >>> result = backtest(load_elec2().iloc[: 336 * 8], settings, {}, folder=tempfile.mkdtemp())
    >>> [(p.name, p.retrains) for p in result.policies]
    [('every 14d', 2), ('never', 0)]
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from sqlalchemy import select  # noqa: E402

from retrainer import views  # noqa: E402
from retrainer.config import PolicySettings, _describe  # noqa: E402
from retrainer.errors import ConfigError, DataError  # noqa: E402
from retrainer.ingest import utc_times  # noqa: E402
from retrainer.replay import replay, split_periods  # noqa: E402
from retrainer.store.tables import RunRow  # noqa: E402
from retrainer.triggers import Decision, Evidence, ManualTrigger, Policy  # noqa: E402


@dataclass(frozen=True)
class PolicyResult:
    """How one policy fared on the history: ``mean`` on the batches every policy of the
    backtest scored with the same rows (:func:`common_batches`), ``own_mean`` on every batch
    this policy scored."""

    name: str
    metric: str
    mean: float | None  # row-weighted prequential metric on the batches every policy scored
    retrains: int  # runs after the first model (bootstrap)
    promoted: int
    led_nowhere: int  # runs rejected by the gate, skipped or failed
    train_seconds: float
    decisions: dict[str, int]
    seconds: float
    series: list[tuple[str, float, int]] = field(default_factory=list)  # data time, value, rows
    retrain_times: list[str] = field(default_factory=list)
    own_mean: float | None = None  # the same on every batch this policy scored
    set_aside: dict[str, list[int]] = field(default_factory=dict)  # data time -> rows not scored

    @property
    def scored(self) -> int:
        """How many batches this policy scored."""
        return len(self.series)

    def to_dict(self) -> dict:
        return asdict(self) | {"scored": self.scored}


@dataclass(frozen=True)
class BacktestResult:
    """Every policy's result, ranked best first by the metric."""

    metric: str
    batches: int  # the history's batch and the streamed ones
    policies: tuple[PolicyResult, ...]
    plot: str | None = None
    common: int = 0  # streamed batches every policy scored, on the same rows

    @property
    def condition(self) -> str:
        """The rows the policies' figures are computed on, in words."""
        return (
            f"on the {self.common} of {self.batches - 1} streamed batches every policy scored "
            "(not quarantined, same rows set aside)"
        )

    def table(self) -> list[dict]:
        """One row per policy, best first (fewer retrains break ties); the metric on the
        batches every policy scored, then on every batch the policy scored (``own``)."""
        from retrainer.metrics import higher_is_better

        sign = -1.0 if higher_is_better(self.metric) else 1.0
        ranked = sorted(
            self.policies,
            key=lambda p: (sign * p.mean if p.mean is not None else float("inf"), p.retrains),
        )
        return [
            {
                "rank": i + 1,
                "policy": p.name,
                self.metric: None if p.mean is None else round(p.mean, 4),
                "retrains": p.retrains,
                "promoted": p.promoted,
                "led nowhere": p.led_nowhere,
                "train s": round(p.train_seconds, 1),
                "replay s": round(p.seconds, 1),
                f"own {self.metric}": None if p.own_mean is None else round(p.own_mean, 4),
                "scored": p.scored,
            }
            for i, p in enumerate(ranked)
        ]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "batches": self.batches,
            "common": self.common,
            "condition": self.condition,
            "table": self.table(),
            "policies": [p.to_dict() for p in self.policies],
            "plot": self.plot,
        }


def schedule_policy(every: str = "14d") -> dict:
    """The fixed-schedule baseline: retrain every ``every``, nothing else.

    >>> schedule_policy("7d")
    {'triggers': [{'type': 'schedule', 'every': '7d'}]}
    """
    return {"triggers": [{"type": "schedule", "every": every}]}


def load_policy(path: str | Path) -> tuple[str, dict]:
    """A policy from a YAML file: a policy mapping, or a project file (its ``policy`` and
    ``checks`` sections are kept, as ``{"policy": ..., "checks": ...}``); named after the file.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "drift.yaml"
    >>> _ = path.write_text("triggers: [{type: drift}]\\ncooldown: 7d\\n")
    >>> load_policy(path)
    ('drift', {'triggers': [{'type': 'drift'}], 'cooldown': '7d'})
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"cannot read the policy: {exc}"], str(path)) from None
    if isinstance(data, dict) and "policy" in data:
        data = {key: data[key] for key in ("policy", "checks") if key in data}
    if not isinstance(data, dict):
        raise ConfigError(["a policy file holds a mapping (triggers, cooldown, ...)"], str(path))
    try:
        PolicySettings.model_validate(data.get("policy", data))
    except ValidationError as exc:
        problems = [f"policy.{_describe(err)}" for err in exc.errors()]
        raise ConfigError(problems, str(path)) from None
    return path.stem, data


@dataclass(frozen=True)
class OraclePolicy(Policy):
    """Retrains only when asked (the backtest asks right after each true drift point, see
    :func:`oracle_requests`); every trigger and alarm is ignored; blocking alarms still block.

    Example:
        >>> from datetime import datetime, UTC
        >>> oracle, now = OraclePolicy(), datetime(2024, 1, 1, tzinfo=UTC)
        >>> oracle.decide(Evidence(now=now, concept_drift=True, manual=None)).action
        'hold'
        >>> oracle.decide(Evidence(now=now, manual="oracle: true drift at row 5250")).reasons
        ('manual: oracle: true drift at row 5250',)
    """

    triggers: Sequence = (ManualTrigger(),)

    def decide(self, ev: Evidence) -> Decision:
        if ev.has_champion and not ev.manual:
            return Decision("hold", ("oracle: no true drift point since the last retrain",))
        return super().decide(ev)

    def diagnosed(self, ev: Evidence, fired: list[str]) -> list[str]:
        return fired


def oracle_requests(
    frame: pd.DataFrame,
    time_column: str,
    drift_points: Sequence[Any],
    *,
    period: str = "7D",
    history: int = 4,
    label_delay: int = 1,
    refresh: int = 0,
) -> dict[int, str]:
    """Replay step -> reason of the oracle's retrain requests: for each drift point, the step
    whose cycle first sees labels of rows at or after it, and the ``refresh`` steps after it
    (so that a training window of ``refresh`` batches ends up holding the new concept only).
    Drift points inside the history are skipped: the first model already trains on them.

    >>> from retrainer.datasets.synthetic import drift_stream
    >>> stream = drift_stream("stagger", rows_per_concept=1000, batch_rows=250)
    >>> sorted(oracle_requests(stream.frame, "timestamp", stream.drift_times, refresh=1))
    [1, 2, 5, 6]
    """
    periods = split_periods(with_times(frame, time_column), time_column, period)[history:]
    ends = [p[time_column].max() for p in periods]
    requests: dict[int, str] = {}
    for point in sorted(pd.Timestamp(t) for t in drift_points):
        step = next((i for i, end in enumerate(ends) if end >= point), None)
        if step is None or point < periods[0][time_column].min():
            continue
        for extra in range(refresh + 1):
            what = f"oracle: true drift at {point.isoformat()}"
            when = f" (window refresh {extra} of {refresh})" if extra else ""
            requests[step + label_delay + extra] = what + when
    return requests


def window_batches(settings: Mapping[str, Any], period: str, rows_per_batch: float = 0) -> int:
    """How many batches of ``period`` the trainer's window spans (0 for the whole history; with
    ``batches`` and ``days``, the longer); with ``window.min_rows``, at least as many batches of
    ``rows_per_batch`` as hold them.

    >>> window_batches({"trainer": {"window": {"days": 10}}}, "7D")
    2
    >>> window_batches({"trainer": {}}, "7D")
    4
    >>> window_batches({"trainer": {"window": {"batches": 4, "min_rows": 1000}}}, "1D", 30)
    34
    >>> both = {"trainer": {"window": {"batches": 4, "days": 28}}}
    >>> window_batches(both, "1D"), window_batches(both, "30D")
    (28, 4)
    """
    window = (settings.get("trainer") or {}).get("window") or {}
    if window.get("all"):
        return 0
    spans = int(window.get("batches") or (0 if window.get("days") else 4))
    if window.get("days"):  # with batches too, the longer of the two
        spans = max(spans, math.ceil(pd.Timedelta(days=window["days"]) / pd.Timedelta(period)))
    if window.get("min_rows") and rows_per_batch > 0:
        spans = max(spans, math.ceil(window["min_rows"] / rows_per_batch))
    return spans


def _rows_per_period(frame: pd.DataFrame, settings: Mapping[str, Any], period: str) -> float:
    """The median rows of a batch of ``period`` in ``frame`` (time column parsed)."""
    time = settings["data"]["time_column"]
    return float(statistics.median(len(p) for p in split_periods(frame, time, period)))


def first_periods(
    frame: pd.DataFrame, time_column: str, period: str, n: int, zone: str | None = None
) -> pd.DataFrame:
    """The rows of the first ``n`` periods (times read as :func:`with_times` reads them).

    >>> from retrainer.datasets import load_elec2
    >>> len(first_periods(load_elec2(), "timestamp", "7D", 2))
    672
    """
    periods = split_periods(with_times(frame, time_column, zone), time_column, period)
    return pd.concat(periods[:n])


def with_times(frame: pd.DataFrame, time_column: str, zone: str | None = None) -> pd.DataFrame:
    """``frame`` with its time column as UTC timestamps, read as ingest reads them
    (:func:`retrainer.ingest.utc_times`): times without an offset are local times of ``zone``
    (``data.timezone``) and refused without one, so that the backtest's periods are the ones
    the live loop would cut.

    >>> with_times(pd.DataFrame({"t": ["2024-01-01T00:00:00+00:00"]}), "t")["t"].dt.year.tolist()
    [2024]
    >>> with_times(pd.DataFrame({"t": ["2024-05-01 00:00"]}), "t", "Europe/Zurich")["t"].tolist()
    [Timestamp('2024-04-30 22:00:00+0000', tz='UTC')]
    """
    if time_column not in frame:
        raise DataError(f"backtest: no time column {time_column!r} in {list(frame.columns)}")
    where = f"backtest: column {time_column!r}"
    return frame.assign(**{time_column: utc_times(frame[time_column], where, zone)})


def backtest(
    frame: pd.DataFrame,
    settings: Mapping[str, Any],
    policies: Mapping[str, dict],
    *,
    folder: str | Path,
    period: str = "7D",
    history: int = 4,
    label_delay: int = 1,
    every: str = "14d",
    plot: str | Path | None = None,
    on_policy: Any = None,
    drift_points: Sequence[Any] = (),
    on_batch: Any = None,
) -> BacktestResult:
    """Replay ``frame`` under the baselines and each of ``policies``.

    Parameters:
        frame: the labelled history (time, id, features, target columns of ``settings``).
        settings: a project file as a dict; its ``policy`` and ``store`` are replaced.
        policies: name -> policy section (as in a project file), or a dict with ``policy``
            and optionally ``checks`` (e.g. a calibrated concept detector) to replace.
        folder: where each policy's store and artifacts go (``folder/<name>``; replaced).
        period, history, label_delay: as :func:`retrainer.replay.replay`.
        every: the fixed schedule of the baseline.
        plot: write the comparison plot (PNG) here.
        on_policy: called with each policy's name before its replay.
        on_batch: called with a policy's name, the batch about to be replayed (1-based) and
            the batches of its replay, for a progress bar.
        drift_points: the true drift points (times), when known: adds the ``oracle`` policy
            (:func:`oracle_requests`, refreshed for the trainer's window).
    """
    from retrainer.project import Project

    folder = Path(folder)
    frame = with_times(frame, settings["data"]["time_column"], settings["data"].get("timezone"))
    oracle: dict[str, dict | None] = {"oracle": None} if len(drift_points) else {}
    every_policy = {f"every {every}": schedule_policy(every), **oracle, **policies}
    requests = (
        oracle_requests(
            frame,
            settings["data"]["time_column"],
            drift_points,
            period=period,
            history=history,
            label_delay=label_delay,
            refresh=window_batches(settings, period, _rows_per_period(frame, settings, period)),
        )
        if oracle
        else {}
    )
    results = []
    metric = "accuracy"
    for i, (name, policy) in enumerate(every_policy.items()):
        if on_policy:
            on_policy(name)
        # absolute: the project resolves relative paths against its own folder (``sub``)
        sub = folder.resolve() / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "policy")
        if sub.exists():
            shutil.rmtree(sub)
        sub.mkdir(parents=True)
        changes = policy if policy is None or "policy" in policy else {"policy": policy}
        config = {k: v for k, v in settings.items() if k not in ("store", "policy", "report")}
        config |= {k: changes[k] for k in ("policy", "checks") if changes and k in changes}
        config |= {
            "store": {"url": f"sqlite:///{sub / 'store.db'}", "artifacts": str(sub / "artifacts")},
            "report": {"baseline": "first" if i == 0 else "none"},
        }
        project = Project.from_dict(config, root=sub)
        metric = project.config.gate.metric
        ask = None
        if policy is None:
            project.policy = OraclePolicy(block_on=project.policy.block_on)
            ask = _asker(project, requests)

        def on_step(step: int, total: int, name: str = name, ask: Any = ask) -> None:
            if ask:
                ask(step, total)
            if on_batch:
                on_batch(name, min(step + 1, total), total)

        summary = replay(
            project,
            frame,
            period=period,
            history=history,
            label_delay=label_delay,
            on_step=on_step,
        )
        results.append(_result(project, name, summary.seconds))
        if i == 0:
            results.append(_result(project, "never", 0.0, role="baseline"))
    batches = len(split_periods(frame, settings["data"]["time_column"], period)) - history + 1
    common = common_batches(results)
    results = [replace(p, mean=row_weighted(p.series, common)) for p in results]
    result = BacktestResult(metric, batches, tuple(results), common=len(common))
    if plot is not None:
        result = replace(result, plot=str(write_plot(result, plot)))
    return result


def common_batches(policies: Sequence[PolicyResult]) -> set[str]:
    """The batches (data times) that every policy scored, with the same rows set aside.

    A policy's replay does not score a batch it quarantined nor a batch's rows it set aside, and
    both depend on its champion's reference; a batch scored on other rows by another policy is
    left out too, so that every policy's figure is taken on the same rows.

    >>> a = PolicyResult("a", "accuracy", None, 0, 0, 0, 0.0, {}, 0.0,
    ...                  series=[("w1", 0.8, 10), ("w2", 0.7, 10), ("w3", 0.9, 8)],
    ...                  set_aside={"w3": [4, 7]})
    >>> b = PolicyResult("b", "accuracy", None, 0, 0, 0, 0.0, {}, 0.0,
    ...                  series=[("w1", 0.6, 10), ("w3", 0.9, 9)], set_aside={"w3": [4]})
    >>> sorted(common_batches([a, b]))  # b quarantined w2; w3 lost other rows in a and b
    ['w1']
    """
    scored = [{t for t, _, _ in p.series} for p in policies]
    common = set.intersection(*scored) if scored else set()
    return {t for t in common if len({tuple(p.set_aside.get(t, ())) for p in policies}) == 1}


def row_weighted(series: Sequence[tuple[str, float, int]], keep: set[str]) -> float | None:
    """Row-weighted mean of the per-batch values of ``series`` (data time, value, rows) on
    the batches in ``keep``; exact for accuracy. None when none is kept.

    >>> row_weighted([("w1", 0.8, 10), ("w2", 0.5, 30), ("w3", 0.9, 8)], {"w1", "w2"})
    0.575
    """
    kept = [(value, n) for t, value, n in series if t in keep]
    rows = sum(n for _, n in kept)
    return sum(value * n for value, n in kept) / rows if rows else None


def _asker(project: Any, requests: dict[int, str]) -> Any:
    """A replay step hook that asks ``project`` for a retrain at the steps of ``requests``."""

    def ask(step: int, total: int) -> None:
        if step in requests:
            project.request_retrain(requests[step], actor="oracle")

    return ask


def _result(project: Any, name: str, seconds: float, role: str = "champion") -> PolicyResult:
    perf = views.performance(project)
    mine = perf[perf["role"] == role].sort_values("data_time")
    with project.store.session() as s:
        runs = s.scalars(select(RunRow).order_by(RunRow.id)).all()
        later = runs[1:] if role == "champion" else []  # the first run trains the first model
        train = sum((r.finished_at - r.started_at).total_seconds() for r in later if r.finished_at)
        times = [r.window.get("clock", "") for r in later]
        promoted = sum(bool(r.metrics.get("promoted")) for r in later)
    decisions = views.decisions(project)
    if mine.empty:
        raise DataError(f"backtest {name!r}: no batch was scored; is the history long enough?")
    own = views.overall(perf, role)
    return PolicyResult(
        name=name,
        metric=project.config.gate.metric,
        mean=own,  # until the batches every policy scored are known
        retrains=len(later),
        promoted=promoted,
        led_nowhere=len(later) - promoted,
        train_seconds=train,
        decisions=decisions["action"].value_counts().to_dict() if later else {},
        seconds=seconds,
        series=[
            (t.isoformat(), float(v), int(n))
            for t, v, n in mine[["data_time", "value", "n"]].itertuples(index=False)
        ],
        retrain_times=times,
        own_mean=own,
        set_aside={
            t.isoformat(): aside
            for b, t in mine[["batch", "data_time"]].itertuples(index=False)
            if (aside := project.set_aside(int(b)))
        },
    )


def write_plot(result: BacktestResult, path: str | Path, smooth: int = 4) -> Path:
    """Every policy's metric over time (mean of ``smooth`` batches), retrains marked below."""
    path = Path(path)
    fig, (ax, marks) = plt.subplots(
        2, 1, figsize=(11, 5.2), dpi=100, sharex=True, gridspec_kw={"height_ratios": [4, 1]}
    )
    for i, p in enumerate(result.policies):
        series = pd.DataFrame(p.series, columns=["t", "value", "n"])
        series["t"] = pd.to_datetime(series["t"], utc=True)
        rolled = series["value"].rolling(smooth, min_periods=1).mean()
        mean = "" if p.mean is None else f" {p.mean:.3f}"
        line = ax.plot(series["t"], rolled, lw=1.3, label=f"{p.name}:{mean}, {p.retrains} retrains")
        when = pd.to_datetime(pd.Series(p.retrain_times), utc=True, errors="coerce").dropna()
        marks.plot(when, [i] * len(when), "|", ms=8, color=line[0].get_color())
    ax.set_ylabel(f"{result.metric} ({smooth}-batch mean)")
    ax.set_title(
        f"backtest: {result.metric} over time under each policy\n(legend: {result.condition})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    marks.set_yticks(range(len(result.policies)), [p.name for p in result.policies], fontsize=7)
    marks.set_ylim(-0.7, len(result.policies) - 0.3)
    marks.set_xlabel("retrains")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
