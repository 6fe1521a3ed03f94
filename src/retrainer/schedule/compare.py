"""Every policy against the hindsight optimum on one score matrix at one retrain cost, and the
plot of (retrains, accuracy) points with the optimal frontier over a range of costs.

Example:
    >>> import numpy as np
    >>> E = np.array([[5, 5, 50, 50], [0, 5, 50, 50], [0, 0, 5, 5], [0, 0, 0, 5]], dtype=float)
    >>> E[np.tril_indices(4, -1)] = np.nan
    >>> rows = compare(E, np.full(4, 100), cost=10, label_delay=1)
    >>> [(r["policy"], r["total cost"]) for r in rows[:2]]
    [('optimal (hindsight)', 30.0), ('best fixed in hindsight (every 2 batches)', 30.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.schedule.candidates import dispersion, unit
from retrainer.schedule.optimal import Schedule, evaluate, optimal_schedule
from retrainer.schedule.policies import (
    CARA,
    UPF,
    DetectorTrigger,
    Every,
    GainForecast,
    LiveInformation,
    simulate,
)

FIXED = (1, 2, 4, 8, 13, 26)
COSTS = (50, 500, 5000)  # a classifier's default retrain costs, in errors
BATCHES = (0.2, 2, 20)  # a regressor's, in batches of a fresh model's errors (in its units)


def default_costs(errors: np.ndarray, metric: str = "") -> tuple[float, ...]:
    """The retrain costs to compare when none are given: a classifier's :data:`COSTS` errors; a
    regressor's :data:`BATCHES` batches of a fresh model's errors (the median over the stream of
    each boundary's candidate on its first batch), to 3 significant digits, since its errors
    have the target's unit.

    >>> E = np.diag([40.0, 60.0, 50.0])
    >>> default_costs(E), default_costs(E, "mae")
    ((50, 500, 5000), (10.0, 100.0, 1000.0))
    """
    if not metric:
        return COSTS
    batch = float(np.median(np.diag(errors)))
    return tuple(float(f"{f * batch:.3g}") for f in BATCHES)


def chosen_words(metric: str = "") -> str:
    """How :func:`default_costs` chose the costs, in words."""
    if not metric:
        return "the default costs, " + ", ".join(f"{c:,}" for c in COSTS) + " errors"
    return (
        f"no --cost given: {', '.join(f'{f:g}' for f in BATCHES)} batches of a fresh model's "
        f"{unit(metric)} (the median over the history)"
    )


def default_policies(metric: str = "", **tuned: Any) -> dict[str, Any]:
    """The compared policies; ``tuned`` holds keyword arguments for ``ours`` and ``upf``. A
    regressor's (``metric`` mae or rmse) leave DDM out: it reads a stream of 0/1 errors (ADWIN
    reads a regressor's too).

    >>> "DDM trigger" in default_policies(), "DDM trigger" in default_policies("mae")
    (True, False)
    """
    from retrainer.checks.concept import ADWIN, DDM

    ddm = {} if metric else {"DDM trigger": DetectorTrigger("DDM", DDM)}
    return ddm | {
        "ADWIN trigger": DetectorTrigger("ADWIN", ADWIN),
        "CARA-T": CARA("T"),
        "CARA-CT": CARA("CT"),
        "CARA-P": CARA("P"),
        "UPF": UPF(**tuned.get("upf", {})),
        "ours (gain forecast)": GainForecast(**tuned.get("ours", {})),
        "ours (live information)": LiveInformation(GainForecast(**tuned.get("ours", {}))),
        "ours (live, shadow)": LiveInformation(GainForecast(**tuned.get("ours", {})), shadow=True),
    }


def quality(s: Schedule, metric: str = "") -> float:
    """A schedule's accuracy (a classifier's, ``metric`` empty) or a regressor's ``mae`` or
    ``rmse`` over the rows served, from its summed absolute or squared errors.

    >>> s = Schedule((), errors=40.0, retrains=0, cost=1.0, rows=10)
    >>> quality(s, "mae"), quality(s, "rmse")
    (4.0, 2.0)
    """
    if not metric:
        return s.accuracy
    mean = s.errors / s.rows if s.rows else float("nan")
    return float(np.sqrt(mean)) if metric == "rmse" else mean


def _row(name: str, s: Schedule, best: float, metric: str = "") -> dict:
    value = quality(s, metric)  # a regressor's in its target's unit: 4 significant digits
    return {
        "policy": name,
        "total cost": round(s.total, 1),
        "vs optimum": round(s.total / best, 3) if best else None,
        "errors": round(s.errors, 1) if metric else int(s.errors),
        "retrains": s.retrains,
        "rejected": len(s.rejected),
        metric or "accuracy": float(f"{value:.4g}") if metric else round(value, 4),
    }


def compare(
    errors: np.ndarray,
    rows: np.ndarray,
    *,
    cost: float,
    label_delay: int,
    row_errors: Callable[[int], np.ndarray] | None = None,
    reference: Callable[[int], np.ndarray] | None = None,
    policies: dict[str, Any] | None = None,
    fixed: Iterable[int] = (),
    gate: Any = None,
    metric: str = "",
) -> list[dict]:
    """One row per policy: the optimum, the best fixed schedule in hindsight, ``fixed`` ones,
    never retrained, then ``policies`` (detector triggers need ``row_errors``, and are primed on a
    new champion's ``reference`` errors where given, as live). With a ``gate``
    (:class:`retrainer.schedule.gated.Gate`) every policy's retrains go through it, as live; the
    optimum does not (it is the bound in hindsight). ``metric``: a regressor's ``mae`` or
    ``rmse`` (the errors are absolute or squared; the rows show it instead of accuracy; the
    policies read one row's noise off the first model's ``reference`` errors)."""
    T = len(rows)
    best = optimal_schedule(errors, cost, rows)
    spread = dispersion(reference(0)) if metric and reference is not None else 1.0
    everies = {
        p: simulate(errors, rows, Every(p), cost=cost, label_delay=label_delay, gate=gate)
        for p in range(1, T)
    }
    hindsight = min(everies.values(), key=lambda r: r.schedule.total)
    out = [
        _row("optimal (hindsight)", best, best.total, metric),
        _row(f"best fixed in hindsight ({hindsight.name})", hindsight.schedule, best.total, metric),
    ]
    out += [
        _row(everies[p].name, everies[p].schedule, best.total, metric)
        for p in fixed
        if p in everies
    ]
    out.append(_row("never retrained", evaluate(errors, rows, [], cost), best.total, metric))
    for name, policy in (policies or {}).items():
        if isinstance(policy, DetectorTrigger) and row_errors is None:
            continue
        run = simulate(
            errors,
            rows,
            policy,
            cost=cost,
            label_delay=label_delay,
            row_errors=row_errors,
            reference=reference,
            name=name,
            gate=gate,
            dispersion=spread,
            unit=unit(metric),
        )
        out.append(_row(name, run.schedule, best.total, metric))
    return out


def write_frontier_plot(
    errors: np.ndarray,
    rows: np.ndarray,
    table: list[dict],
    path: str | Path,
    *,
    cost: float,
    title: str = "",
    metric: str = "",
) -> Path:
    """Each policy as a point (retrains, accuracy, or a regressor's ``metric``) and the optimum
    over a range of costs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = np.geomspace(1, 100 * max(cost, 1), 40)
    line = sorted((optimal_schedule(errors, c, rows) for c in costs), key=lambda s: s.retrains)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=100)
    ax.plot(
        [s.retrains for s in line],
        [quality(s, metric) for s in line],
        "-",
        color="0.4",
        drawstyle="steps-post",
        label="optimal frontier (costs 1 .. 100x)",
    )
    markers = "osD^vPX*<>ph"
    for i, r in enumerate(table):
        ax.plot(
            r["retrains"],
            r[metric or "accuracy"],
            markers[i % len(markers)],
            ms=7,
            alpha=0.85,
            label=f"{r['policy']}: {r['total cost']:,.0f}",
        )
    ax.set_xlabel("retrains")
    ax.set_ylabel(metric or "accuracy")
    ax.set_title(
        title or f"policies at a retrain cost of {cost:g} {unit(metric)} (total cost in legend)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right" if metric else "lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def optimal_backtest(
    frame: Any,
    settings: dict,
    *,
    costs: Iterable[float] | None,
    folder: str | Path,
    period: str = "7D",
    history: int = 4,
    label_delay: int = 1,
    on_model: Callable[[int, int], None] | None = None,
    jobs: int | None = None,
) -> dict:
    """``retrainer backtest --optimal``: the score matrix of ``frame`` (cached under
    ``folder/scores``), every policy against the optimum at each cost, one frontier plot per
    cost and an HTML report (``folder/optimal.html``); a cold matrix is built by ``jobs`` worker
    processes (``None``: one per core when the work pays for them). ``costs`` None: the
    defaults (:func:`default_costs`)."""
    import html

    from retrainer.backtest import window_batches, with_times
    from retrainer.config import GateSettings, SampleSettings
    from retrainer.errors import RetrainerError
    from retrainer.replay import split_periods
    from retrainer.schedule.gated import Gate
    from retrainer.schedule.scores import cached_scores
    from retrainer.training import Trainer

    folder = Path(folder)
    gate_settings = GateSettings.model_validate(settings.get("gate") or {})
    metric = ""  # a classifier's errors are its wrong predictions
    if (settings.get("trainer") or {}).get("task") == "regression":
        metric = gate_settings.metric
        if metric not in ("mae", "rmse"):
            raise RetrainerError(
                "backtest --optimal prices a regressor's schedules in the gate metric's row "
                f"errors, absolute (gate.metric: mae) or squared (rmse); {metric} is not a sum "
                "of row errors, so set gate.metric: mae or rmse"
            )
    sample_rows = SampleSettings.model_validate(
        (settings.get("checks") or {}).get("sample") or {}
    ).rows
    d, t = settings["data"], settings.get("trainer") or {}
    frame = with_times(frame, d["time_column"], d.get("timezone"))
    labelled = frame[d["target"]].notna()  # a row whose label never came trains and scores nothing
    unlabelled, frame = int((~labelled).sum()), frame[labelled]
    skip = {d["target"], d.get("id_column"), d["time_column"]}
    features = d.get("features") or [c for c in frame.columns if c not in skip]
    batches = [
        (p[features].reset_index(drop=True), p[d["target"]].to_numpy())
        for p in split_periods(frame, d["time_column"], period)
    ]
    trainer = Trainer(
        t.get("estimator", "sklearn.ensemble.HistGradientBoostingClassifier"), t.get("params") or {}
    )
    matrix, path, cached = cached_scores(
        batches,
        trainer,
        folder=folder / "scores",
        history=history,
        label_delay=label_delay,
        window=window_batches(settings, period, float(np.median([len(y) for _, y in batches]))),
        holdout=gate_settings.holdout,
        on_model=on_model,
        threads=t.get("threads", 1),
        jobs=jobs,
        metric=metric,
    )
    gate = Gate.from_settings(matrix, gate_settings)
    policies = default_policies(metric)
    results, parts = [], []
    chosen = costs is None  # the defaults: the report says how they were chosen
    costs = default_costs(matrix.errors, metric) if chosen else tuple(costs)
    for cost in costs:
        table = compare(
            matrix.errors,
            matrix.rows,
            cost=cost,
            label_delay=label_delay,
            row_errors=matrix.row_errors,
            reference=lambda k: matrix.reference(k, sample_rows),
            policies=policies,
            fixed=FIXED,
            gate=gate,
            metric=metric,
        )
        plot = write_frontier_plot(
            matrix.errors,
            matrix.rows,
            table,
            folder / f"optimal-{cost:g}.png",
            cost=cost,
            metric=metric,
        )
        results.append({"cost": cost, "table": table, "plot": str(plot)})
        head = "".join(f"<th>{html.escape(k)}</th>" for k in table[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
            for r in table
        )
        parts.append(
            f"<h2>retrain cost {cost:g} {unit(metric)}</h2><table border=1 cellpadding=3>"
            f"<tr>{head}</tr>{body}</table><p><img src='{plot.name}'></p>"
        )
    gate_words = html.escape(
        f"{metric or 'accuracy'}, gate copy without the newest {gate_settings.holdout:.0%} of its "
        f"window vs the champion on those rows, tolerance {gate_settings.tolerance:g}, confidence "
        f"{gate_settings.confidence:g}, inconclusive: {gate_settings.on_inconclusive}"
    )
    report = folder / "optimal.html"
    report.write_text(
        "<html><head><meta charset='utf-8'><title>retraining schedules, priced</title></head>"
        f"<body><h1>When to retrain, priced</h1><p>{matrix.batches} batches after {history} "
        f"of history ({unlabelled:,} rows without a label left out), labels {label_delay} "
        f"batch(es) late; total cost = {unit(metric)} + "
        "retrains x cost; every policy simulated on the cached score matrix: a retrain is paid "
        "for and puts the candidate of that boundary in service only if it passes the project's "
        f"gate ({gate_words}), as live; the optimum in hindsight skips the gate."
        f"</p>{''.join(parts)}</body></html>",
        encoding="utf-8",
    )
    return {
        "gate": gate_words,
        "unit": unit(metric),
        "chosen costs": chosen_words(metric) if chosen else None,
        "unlabelled rows": unlabelled,
        "batches": matrix.batches,
        "scores": str(path),
        "cached": cached,
        "report": str(report),
        "costs": results,
    }


def render_optimal(result: dict) -> str:
    """The tables of :func:`optimal_backtest` as text, one per cost.

    >>> row = {"policy": "ours", "total cost": 10.0, "vs optimum": 1.0, "errors": 5,
    ...        "retrains": 1, "accuracy": 0.9}
    >>> print(render_optimal({"batches": 3, "report": "r.html", "scores": "s.npz",
    ...                       "costs": [{"cost": 5, "table": [row]}]}))
    retrain cost 5 errors (3 batches)
      ours                                     total 10.0 (x1.0)  5 errors  1 retrains  accuracy 0.9
    report: r.html  score matrix: s.npz
    """
    lines = [f"retrains go through the gate: {result['gate']}"] if result.get("gate") else []
    words = result.get("unit", "errors")
    if result.get("chosen costs"):
        lines.append(f"costs: {result['chosen costs']}")
    if result.get("unlabelled rows"):
        lines.append(f"rows without a label left out: {result['unlabelled rows']:,}")
    for part in result["costs"]:
        lines.append(f"retrain cost {part['cost']:,g} {words} ({result['batches']} batches)")
        for r in part["table"]:
            kept = f" ({r['rejected']} rejected by the gate)" if r.get("rejected") else ""
            shown = next(k for k in ("accuracy", "mae", "rmse") if k in r)
            lines.append(
                f"  {r['policy']:<40} total {r['total cost']:,} (x{r['vs optimum']})  "
                f"{r['errors']:,} {words}  {r['retrains']} retrains{kept}  {shown} {r[shown]:,}"
            )
    lines.append(f"report: {result['report']}  score matrix: {result['scores']}")
    return "\n".join(lines)
