"""The HTML report: performance over time (model left to decay vs continuously trained, with
retrains marked), decisions with reasons, alarms by cause and model versions with lineage.

The page is one self-contained file (plots embedded as PNG), so it opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sqlalchemy import select  # noqa: E402

from retrainer import views  # noqa: E402
from retrainer.store.tables import BatchRow, CheckRow  # noqa: E402

if TYPE_CHECKING:
    from retrainer.record import Record

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} td,th{padding:.3rem .6rem;
border-bottom:1px solid #ddd;text-align:left;vertical-align:top} th{background:#f4f4f4}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:8px;
padding:.8rem 1.2rem;min-width:10rem} .card b{display:block;font-size:1.5rem}
img{max-width:100%}
"""


def performance_figure(
    perf: pd.DataFrame, promos: pd.DataFrame, metric: str, gaps: list[str] = ()
) -> plt.Figure:
    """Per-batch metric of the continuously trained champion vs the never-retrained baseline;
    the lines break at ``gaps`` (data times of quarantined or missing batches), and the legend
    sits below the axes, so it never covers a line."""
    fig, ax = plt.subplots(figsize=(11, 4.6), dpi=100, layout="constrained")
    labels = {
        "champion": "continuously trained (champion)",
        "baseline": "never retrained (first model)",
    }
    colors = {"champion": "#1f77b4", "baseline": "#d62728"}
    for role in ("baseline", "champion"):
        part = perf[perf["role"] == role]
        if len(part) and part["data_time"].notna().all() and len(gaps):
            holes = pd.DataFrame({"data_time": pd.to_datetime(list(gaps), utc=True)})
            part = pd.concat([part, holes.assign(value=float("nan"))]).sort_values("data_time")
        if len(part):
            x = part["data_time"] if part["data_time"].notna().all() else part["batch"]
            mean = views.overall(perf, role)
            ax.plot(
                x,
                part["value"],
                color=colors[role],
                lw=1.4,
                label=f"{labels[role]}: {metric} {mean:.3f}",
            )
    promoted = promos[promos["promoted"]]
    for i, when in enumerate(promoted["clock"]):
        ax.axvline(
            when, color="#2ca02c", alpha=0.35, lw=1, label="retrain promoted" if i == 0 else None
        )
    rejected = promos[~promos["promoted"]]
    for i, when in enumerate(rejected["clock"]):
        ax.axvline(
            when,
            color="#999",
            alpha=0.5,
            lw=1,
            ls=":",
            label="retrain rejected by the gate" if i == 0 else None,
        )
    ax.set_ylabel(f"{metric} per batch")
    ax.set_title(f"{metric} over time: model left to decay vs continuously trained")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return fig


def drift_figure(frame: pd.DataFrame) -> plt.Figure:
    """Share of drifted columns per batch."""
    fig, ax = plt.subplots(figsize=(11, 2.4), dpi=100)
    ax.bar(frame["data_time"], frame["share"], width=4, color="#ff7f0e")
    ax.set_ylabel("drifted columns")
    ax.set_ylim(0, 1)
    ax.set_title("data drift: share of feature columns that drifted, per batch")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="")


def _drift_share(project: Record) -> pd.DataFrame:
    with project.store.session() as s:
        rows = s.execute(
            select(CheckRow.batch_id, CheckRow.statistic, BatchRow.data_time)
            .join(BatchRow, BatchRow.id == CheckRow.batch_id)
            .where(CheckRow.name == "dataset_drift")
        ).all()
    frame = pd.DataFrame(rows, columns=["batch", "share", "data_time"])
    frame["data_time"] = pd.to_datetime(frame["data_time"], utc=True)
    return frame


def write_report(project: Record, path: Path) -> Path:
    """Write the report to ``path`` atomically and return it."""
    metric = project.config.gate.metric
    perf = views.performance(project)
    promos = views.promotions(project)
    status = views.status(project)
    decisions = views.decisions(project)
    both = views.scored_by_both(perf)  # the two lines on the same batches
    champion_score = views.overall(perf, "champion", both)
    baseline_score = views.overall(perf, "baseline", both)
    cards = [
        ("batches", status["batches"]["total"]),
        ("rows", status["rows"]),
        ("model versions", status["models"]),
        ("champion", f"v{status['champion']['version']}" if status["champion"] else "none"),
        (f"{metric}, continuously trained", _fmt(champion_score)),
        (f"{metric}, never retrained", _fmt(baseline_score)),
        ("retrains promoted", int(promos["promoted"].sum())),
    ]
    parts = [
        f"<h1>retrainer report: {html.escape(project.config.project)}</h1>",
        f"<p class=sub>store {html.escape(status['store'])}</p>",
        '<div class="cards">'
        + "".join(f'<div class="card">{html.escape(k)}<b>{v}</b></div>' for k, v in cards)
        + "</div>",
    ]
    if len(perf):
        line = _headline(metric, len(both), champion_score, baseline_score, status)
        parts.append(f"<p class=headline>{html.escape(line)}</p>")
    if status.get("held_back"):
        parts.append(f"<p class=held-back><b>{html.escape(status['held_back']['line'])}</b></p>")
    if status.get("set_aside"):
        parts.append(f"<p class=set-aside>{html.escape(status['set_aside']['line'])}</p>")
    if status.get("hint"):
        parts.append(f"<p class=hint>Hint: {html.escape(status['hint'])}</p>")
    if len(perf):
        gaps = [p["time"] for p in views.performance_series(project)["points"] if p.get("gap")]
        figure = performance_figure(perf[perf["batch"].isin(both)], promos, metric, gaps)
        parts += ["<h2>Performance over time</h2>", _png(figure)]
    drift = _drift_share(project)
    if len(drift):
        parts += ["<h2>Data drift</h2>", _png(drift_figure(drift))]
    causes = views.alarm_causes(project)
    if causes:
        parts += [
            "<h2>Alarms by cause (cycles)</h2>",
            _table(pd.DataFrame(sorted(causes.items()), columns=["cause", "cycles"])),
        ]
    alarms = views.recent_alarms(project, limit=30)
    if alarms:
        table = pd.DataFrame(alarms).astype({"batch": "Int64"})  # labels' alarms have none
        table = table.rename(columns={"clock": "cycle clock", "batch_time": "batch time"})
        parts += ["<h2>Latest alarms: batch, cause and action</h2>", _table(table)]
    acted = decisions[decisions["action"] != "hold"]
    parts += [f"<h2>Decisions ({len(decisions)}; {len(acted)} not 'hold')</h2>", _table(acted)]
    versions = pd.DataFrame(
        [
            {
                "version": m.version,
                "created": m.created_at.isoformat(timespec="seconds"),
                "aliases": ", ".join(m.aliases),
                "holdout": _fmt(m.metrics.get("holdout")),
                "champion then": _fmt(m.metrics.get("champion")),
                "gate": "passed" if m.metrics.get("gate_passed") else "failed",
                "window": f"{m.lineage.get('window', {}).get('from', '')[:10]} .. "
                f"{m.lineage.get('window', {}).get('to', '')[:10]}",
                "reasons": "; ".join(m.lineage.get("reasons", [])),
                "artifact": m.artifact[:12],
            }
            for m in project.models
        ]
    )
    parts += ["<h2>Model versions</h2>", _table(versions)]
    from retrainer.deploy.fleet import microcontroller_summary

    micro = pd.DataFrame(microcontroller_summary(project))
    if len(micro):
        parts += [
            "<h2>Microcontroller</h2>",
            "<p>The champion's C export on each deploy target: agreement with Python on the "
            "held-out rows, flash and RAM from the cross-compiler, estimated latency.</p>",
            _table(micro),
        ]
    history = pd.DataFrame(project.registry.history("champion"))
    if len(history):
        parts += ["<h2>Champion history</h2>", _table(history)]
    body = "\n".join(parts)
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>retrainer report</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(tmp, path)
    return path


def _headline(
    metric: str, scored: int, champion: float | None, baseline: float | None, status: dict
) -> str:
    """The two lines' figures and how many batches both are computed on.

    Example:
        >>> status = {"batches": {"total": 5, "processed": 4, "quarantined": 1}}
        >>> for part in _headline("mae", 2, 2.5, 2.5, status).split(" ("):
        ...     print(part)
        mae on 2 of 5 batches, the same for both lines
        not scored: 1 quarantined, and those without labels or before the first model): \
continuously trained 2.500 / never retrained 2.500
    """
    same = ", the same for both lines" if baseline is not None else ""
    return (
        f"{metric} on {scored} of {status['batches']['total']} batches{same} (not scored: "
        f"{status['batches'].get('quarantined', 0)} quarantined, and those without labels or "
        f"before the first model): continuously trained {_fmt(champion)}"
        + ("" if baseline is None else f" / never retrained {_fmt(baseline)}")
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
