"""The dashboard: what its pages show, computed from the record, and the page shell.

Pages are one static HTML shell each (no data inside, so they need no token); the page's
script asks for a token once, keeps it for the browser tab, and fetches everything from the
JSON API with it. Charts are drawn with uPlot, served from the package (it works offline).

Example:
    >>> import tempfile
    >>> from retrainer.project import Project
    >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
    >>> overview(project)["health"]["level"]
    'none'
    >>> "Drift" in render_page("drift")
    True
"""

from __future__ import annotations

import html
import math
from importlib import resources
from string import Template
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import select

from retrainer import views
from retrainer.errors import NotFoundError
from retrainer.store.tables import BatchRow, CheckRow, CycleRow, ProfileRow

if TYPE_CHECKING:
    from retrainer.project import Project

__all__ = [
    "PAGES",
    "alarms",
    "batch_detail",
    "drift_heatmap",
    "overview",
    "performance_series",
    "render_page",
]

PAGES = {
    "overview": "Overview",
    "performance": "Performance over time",
    "drift": "Drift",
    "alarms": "Alarms",
    "models": "Model versions",
    "batches": "Batches",
    "batch": "Batch",
    "fleet": "Fleet",
}
CAUSE_WORDS = {
    "upstream_change": "an upstream change (a column appeared, vanished or changed type)",
    "data_quality": "a data-quality problem",
    "changed_relation": "a changed relation between inputs and the label",
    "covariate_drift": "inputs that drifted away from the training data",
}


def render_page(name: str) -> str:
    """The HTML shell of a dashboard page."""
    if name not in PAGES:
        raise NotFoundError(f"no dashboard page {name!r}; pages: {', '.join(PAGES)}")
    shell = resources.files("retrainer.service").joinpath("templates/page.html").read_text()
    return Template(shell).substitute(page=name, title=html.escape(PAGES[name]))


def iso(moment) -> str | None:
    if moment is None or (isinstance(moment, float) and math.isnan(moment)):
        return None
    stamp = pd.Timestamp(moment)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def overview(project: Project) -> dict:
    """The champion, the current health in words, and the last decision with its reasons."""
    status = project.status()
    champion = status["champion"]
    with project.store.session() as s:
        last = s.scalars(
            select(CycleRow)
            .where(CycleRow.status != "running")
            .order_by(CycleRow.id.desc())
            .limit(1)
        ).first()
        summary = dict(last.summary or {}) if last else {}
        cycle = (
            {"id": last.id, "status": last.status, "finished_at": iso(last.finished_at)}
            if last
            else None
        )
    perf = views.performance(project)
    recent = perf[perf["role"] == "champion"].tail(3)
    realised = (
        float((recent["value"] * recent["n"]).sum() / recent["n"].sum()) if len(recent) else None
    )
    metric = project.config.gate.metric
    level, words = _health(champion, summary, cycle, realised, metric)
    if status.get("held_back"):  # retraining has not seen the newest batches
        level, words = "problem", f"{words} {status['held_back']['line']}."
    return {
        "project": status["project"],
        "champion": champion,
        "health": {"level": level, "words": words},
        "last_decision": status["last_decision"],
        "last_cycle": cycle,
        "batches": status["batches"],
        "rows": status["rows"],
        "labelled_rows": status["labelled_rows"],
        "models": status["models"],
        "metric": metric,
        "recent_performance": realised,
        "events": status["events"],
        "held_back": status.get("held_back"),
    }


def _health(
    champion: dict | None, summary: dict, cycle: dict | None, realised: float | None, metric: str
) -> tuple[str, str]:
    if champion is None:
        return "none", (
            "No model yet. Send labelled batches; the first cycle trains the first "
            "model and makes it the champion."
        )
    head = f"Model version {champion['version']} is serving."
    if cycle and cycle["status"] == "failed":
        return "problem", (
            f"{head} The last cycle failed: {summary.get('error', 'see events')}. "
            "Nothing was changed; the next cycle tries again."
        )
    if summary.get("quarantined"):
        n = len(summary["quarantined"])
        return "problem", (
            f"{head} {n} batch(es) in the last cycle were set aside because of "
            "broken data; they are not used for training until fixed."
        )
    alarms = summary.get("alarms") or []
    perf = (
        f" Over the latest labelled batches it scored {metric} {realised:.3f}."
        if realised is not None
        else ""
    )
    if alarms:
        causes = sorted({a["cause"] for a in alarms})
        said = "; ".join(CAUSE_WORDS.get(c, c) for c in causes)
        action = (summary.get("decision") or {}).get("action", "hold")
        return "watch", (f"{head}{perf} The last cycle saw {said}. The policy decided to {action}.")
    return "ok", f"{head}{perf} The last cycle found nothing wrong."


def performance_series(project: Project) -> dict:
    """Realised performance per batch (champion and never-retrained baseline) and the markers
    of retrains and promotions, with times as Unix seconds (or batch numbers without times)."""
    perf = views.performance(project)
    promos = views.promotions(project)
    by_batch: dict[int, dict] = {}
    for row in perf.itertuples(index=False):
        point = by_batch.setdefault(
            int(row.batch), {"batch": int(row.batch), "time": iso(row.data_time)}
        )
        point[row.role] = _finite(row.value)
        point.setdefault("versions", {})[row.role] = int(row.version)
    points = [by_batch[k] for k in sorted(by_batch)]
    markers = [
        {
            "run": int(r.run),
            "version": int(r.version),
            "promoted": bool(r.promoted),
            "time": iso(r.clock),
            "status": r.status,
        }
        for r in promos.itertuples(index=False)
    ]
    return {
        "metric": project.config.gate.metric,
        "points": points,
        "retrains": markers,
        "champion_history": project.registry.history(),
    }


def drift_heatmap(project: Project, *, limit: int = 60) -> dict:
    """Per column and batch (the latest ``limit`` batches): the drift test's score in [0, 1]
    (KS distance; 1 - p for chi-square) and whether it raised an alarm."""
    with project.store.session() as s:
        ids = sorted(
            s.scalars(
                select(CheckRow.batch_id)
                .where(CheckRow.kind == "drift")
                .distinct()
                .order_by(CheckRow.batch_id.desc())
                .limit(limit)
            )
        )
        rows = s.scalars(
            select(CheckRow).where(
                CheckRow.kind == "drift",
                CheckRow.batch_id.in_(ids),
                CheckRow.name.in_(("ks", "chi2")),
            )
        ).all()
        times = dict(
            s.execute(select(BatchRow.id, BatchRow.data_time).where(BatchRow.id.in_(ids))).all()
        )
        cells = [
            {
                "batch": r.batch_id,
                "column": r.column,
                "test": r.name,
                "statistic": _finite(r.statistic),
                "p_value": _finite(r.p_value),
                "alarm": bool(r.alarm),
            }
            for r in rows
        ]
    for c in cells:
        c["score"] = (
            c["statistic"]
            if c["test"] == "ks"
            else (1 - c["p_value"])
            if c["p_value"] is not None
            else None
        )
    columns = sorted({c["column"] for c in cells if c["column"]})
    return {
        "columns": columns,
        "batches": [{"id": b, "time": iso(times.get(b))} for b in ids],
        "cells": cells,
    }


def alarms(project: Project, *, limit: int = 200) -> list[dict]:
    """Alarms of the latest cycles, newest first, each with its cause, action and the
    decision the cycle took."""
    out: list[dict] = []
    with project.store.session() as s:
        cycles = s.scalars(select(CycleRow).order_by(CycleRow.id.desc()).limit(limit)).all()
        for c in cycles:
            summary = c.summary or {}
            decision = summary.get("decision") or {}
            for a in summary.get("alarms", []):
                out.append(
                    {
                        "cycle": c.id,
                        "at": iso(c.started_at),
                        **a,
                        "cause_words": CAUSE_WORDS.get(a.get("cause"), a.get("cause")),
                        "decision": decision.get("action"),
                        "reasons": decision.get("reasons", []),
                    }
                )
    return out[:limit]


def batch_detail(project: Project, batch_id: int) -> dict:
    """A batch with its profile and checks."""
    with project.store.session() as s:
        row = s.get(BatchRow, batch_id)
        if row is None:
            raise NotFoundError(f"batch {batch_id} does not exist")
        profile = s.get(ProfileRow, batch_id)
        checks = s.scalars(
            select(CheckRow).where(CheckRow.batch_id == batch_id).order_by(CheckRow.id)
        ).all()
        return {
            "id": row.id,
            "key": row.key,
            "source": row.source,
            "status": row.status,
            "note": row.note,
            "n_rows": row.n_rows,
            "n_labelled": row.n_labelled,
            "received_at": iso(row.received_at),
            "data_time": iso(row.data_time),
            "profile": dict(profile.profile) if profile else None,
            "reference_version": profile.reference_version if profile else None,
            "checks": [check_dict(c) for c in checks],
            "diagnosis": project.diagnosis(batch_id),
        }


def check_dict(c: CheckRow) -> dict:
    """One stored check as JSON."""
    return {
        "id": c.id,
        "cycle": c.cycle_id,
        "batch": c.batch_id,
        "kind": c.kind,
        "name": c.name,
        "column": c.column,
        "statistic": _finite(c.statistic),
        "p_value": _finite(c.p_value),
        "threshold": _finite(c.threshold),
        "alarm": bool(c.alarm),
        "severity": c.severity,
        "detail": dict(c.detail or {}),
    }
