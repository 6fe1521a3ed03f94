"""The dashboard: what its pages show, computed from the record, and the page shell.

Pages are one static HTML shell each (no data inside, so they need no token); the page's
script asks for a token once per browser session (each tab keeps it in ``sessionStorage``; a
new tab asks the open ones over a same-origin ``BroadcastChannel``; never in a URL or cookie)
and fetches everything from the JSON API with it. Charts are drawn with uPlot, served from the
package (it works offline). Long stories are folded: reasons and alarms grouped by cause, then
column; agreeing decisions in stretches; the drift map in spans of data time.

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
from collections import Counter
from importlib import resources
from string import Template
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from retrainer import views
from retrainer.errors import NotFoundError
from retrainer.store.tables import (
    BatchRow,
    CheckRow,
    CycleRow,
    DecisionRow,
    EventRow,
    ProfileRow,
)
from retrainer.views import _finite, iso, performance_series

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
    "decisions": "Decisions",
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
    if status.get("set_aside"):  # a few far-out rows kept out of training; the batches proceeded
        words = f"{words} {status['set_aside']['line']}."
    if status.get("hint"):  # advice the project has not taken, e.g. a seasonal reference
        words = f"{words} Hint: {status['hint']}."
    return {
        "project": status["project"],
        "champion": champion,
        "health": {"level": level, "words": words},
        "freshness": views.freshness(project),
        "last_decision": status["last_decision"],
        "last_decision_groups": group_reasons((status["last_decision"] or {}).get("reasons") or []),
        "last_cycle": cycle,
        "batches": status["batches"],
        "rows": status["rows"],
        "labelled_rows": status["labelled_rows"],
        "models": status["models"],
        "metric": metric,
        "recent_performance": realised,
        "events": status["events"],
        "held_back": status.get("held_back"),
        "set_aside": status.get("set_aside"),
    }


def group_reasons(reasons: list[str]) -> list[dict]:
    """Decision reasons grouped by cause, then by the column they name, with counts, largest
    group first (a wall of 60 "blocked by ..." lines becomes one line per cause and column).

    Example:
        >>> groups = group_reasons([
        ...     "blocked by data_quality: column 'a' is stuck at 1", "drift: 2 columns moved",
        ...     "blocked by data_quality: column 'a' is stuck at 2",
        ... ])
        >>> [(g["cause"], g["count"], [(c["column"], c["count"]) for c in g["columns"]])
        ...  for g in groups]
        [('data_quality', 2, [('a', 2)]), ('drift', 1, [(None, 1)])]
    """
    groups: dict[str, dict[str | None, list[str]]] = {}
    for r in reasons:
        groups.setdefault(views.reason_cause(r), {}).setdefault(views.reason_column(r), []).append(
            r
        )
    out = [
        {
            "cause": cause,
            "words": CAUSE_WORDS.get(cause, cause.replace("_", " ")),
            "blocking": any(r.startswith("blocked by ") for rs in cols.values() for r in rs),
            "count": sum(len(rs) for rs in cols.values()),
            "columns": sorted(
                ({"column": col, "count": len(rs), "reasons": rs} for col, rs in cols.items()),
                key=lambda c: (-c["count"], c["column"] or ""),
            ),
        }
        for cause, cols in groups.items()
    ]
    return sorted(out, key=lambda g: (-g["count"], g["cause"]))


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


def drift_heatmap(project: Project, *, limit: int = 2000, buckets: int = 40) -> dict:
    """Per column and time: the drift test's score in [0, 1] (KS distance; 1 - p for
    chi-square) and its alarms, over the latest ``limit`` batches by data time, newest first.

    With more batches than ``buckets``, consecutive batches are merged into ``buckets`` spans
    of data time (a cell holds the largest score and the number of alarms of its span), so the
    map always fits the screen. Columns come in order of their alarms, most first.
    """
    with project.store.session() as s:
        order = (BatchRow.data_time.desc(), BatchRow.id.desc())
        latest = s.execute(
            select(BatchRow.id, BatchRow.data_time)
            .where(BatchRow.id.in_(select(CheckRow.batch_id).where(CheckRow.kind == "drift")))
            .order_by(*order)
            .limit(limit)
        ).all()
        ids = [b for b, _ in latest]
        rows = s.execute(
            select(
                CheckRow.batch_id,
                CheckRow.column,
                CheckRow.name,
                CheckRow.statistic,
                CheckRow.p_value,
                CheckRow.alarm,
            ).where(
                CheckRow.kind == "drift",
                CheckRow.batch_id.in_(ids),
                CheckRow.name.in_(("ks", "chi2")),
            )
        ).all()
    size = max(1, math.ceil(len(latest) / buckets))
    spans = [latest[i : i + size] for i in range(0, len(latest), size)]
    span_of = {b: k for k, span in enumerate(spans) for b, _ in span}
    cells: dict[tuple[str, int], dict] = {}
    for batch, column, test, statistic, p_value, alarm in rows:
        if not column:
            continue
        score = (
            _finite(statistic)
            if test == "ks"
            else (1 - p_value if _finite(p_value) is not None else None)
        )
        cell = cells.setdefault(
            (column, span_of[batch]),
            {
                "column": column,
                "span": span_of[batch],
                "test": test,
                "score": None,
                "alarms": 0,
                "checked": 0,
            },
        )
        cell["checked"] += 1
        cell["alarms"] += bool(alarm)
        if score is not None and (cell["score"] is None or score > cell["score"]):
            cell["score"] = score
    alarms_per_column = Counter()
    for (column, _), cell in cells.items():
        alarms_per_column[column] += cell["alarms"]
    columns = sorted({c for c, _ in cells}, key=lambda c: (-alarms_per_column[c], c))
    return {
        "columns": columns,
        "per_span": size,
        "spans": [
            {
                "batches": len(span),
                "first": span[-1][0],
                "last": span[0][0],
                "from": iso(span[-1][1]),
                "to": iso(span[0][1]),
            }
            for span in spans
        ],
        "cells": list(cells.values()),
    }


def alarms(project: Project, *, limit: int = 200) -> list[dict]:
    """The latest alarms, newest data first, each with its batch and that batch's data time,
    its cause, action and the decision its cycle took.

    Alarms on a batch come from the batch's stored diagnosis; a changed relation (found over
    a cycle's newly labelled batches) is shown on the latest of those batches.
    """
    with project.store.session() as s:
        events = s.execute(
            select(EventRow.batch_id, EventRow.cycle_id, EventRow.data, BatchRow.data_time)
            .join(BatchRow, BatchRow.id == EventRow.batch_id)
            .where(EventRow.kind == "check")
            .order_by(EventRow.id.desc())
            .limit(limit)
        ).all()
        cycles = s.scalars(select(CycleRow).order_by(CycleRow.id.desc()).limit(limit)).all()
        decided = {c.id: (c.summary or {}).get("decision") or {} for c in cycles}
        relation = [
            (
                c.id,
                a,
                max(e["batch"] for e in (c.summary or {}).get("evaluations") or [{"batch": 0}]),
            )
            for c in cycles
            for a in (c.summary or {}).get("alarms", [])
            if a.get("cause") == "changed_relation"
        ]
        times = dict(
            s.execute(
                select(BatchRow.id, BatchRow.data_time).where(
                    BatchRow.id.in_([b for _, _, b in relation])
                )
            ).all()
        )
    found = [
        (batch, cycle, a, moment)
        for batch, cycle, data, moment in events
        for a in ((data or {}).get("diagnosis") or {}).get("alarms", [])
    ]
    found += [(b or None, cycle, a, times.get(b)) for cycle, a, b in relation]
    out = [
        {
            "batch": batch,
            "data_time": iso(moment),
            "cycle": cycle,
            **{k: a.get(k) for k in ("cause", "severity", "check", "column", "message")},
            "action": a.get("action"),
            "blocking": bool(a.get("blocking")),
            "cause_words": CAUSE_WORDS.get(a.get("cause"), a.get("cause")),
            "decision": decided.get(cycle, {}).get("action"),
        }
        for batch, cycle, a, moment in found
    ]
    out.sort(key=lambda a: (a["data_time"] or "", a["batch"] or 0), reverse=True)
    return out[:limit]


def alarm_summary(project: Project, *, limit: int = 5000, per_column: int = 20) -> dict:
    """The latest ``limit`` alarms grouped by cause, then column, with counts, the batches
    they span and the ``per_column`` newest of each group."""
    rows = alarms(project, limit=limit)
    groups: dict[str, dict[str | None, list[dict]]] = {}
    for a in rows:
        groups.setdefault(a["cause"], {}).setdefault(a["column"], []).append(a)

    def span(items: list[dict]) -> dict:
        times = [a["data_time"] for a in items if a["data_time"]]
        return {
            "count": len(items),
            "batches": len({a["batch"] for a in items}),
            "from": min(times, default=None),
            "to": max(times, default=None),
        }

    out = [
        {
            "cause": cause,
            "words": CAUSE_WORDS.get(cause, cause),
            **span([a for items in cols.values() for a in items]),
            "columns": sorted(
                (
                    {"column": col, **span(items), "latest": items[:per_column]}
                    for col, items in cols.items()
                ),
                key=lambda c: (-c["count"], c["column"] or ""),
            ),
        }
        for cause, cols in groups.items()
    ]
    return {
        "total": len(rows),
        "groups": sorted(out, key=lambda g: (-g["count"], g["cause"])),
        "latest": rows[:10],
    }


def decision_log(project: Project, *, limit: int = 2000) -> dict:
    """Every decision (the latest ``limit``), newest first, each with its reasons grouped by
    cause and column; consecutive decisions that agree (same action, same causes and columns)
    form one stretch, so a long quiet or blocked spell reads as one line."""
    with project.store.session() as s:
        rows = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc()).limit(limit)).all()
        total = s.scalar(select(func.count()).select_from(DecisionRow)) or 0
        items = [
            {
                "id": d.id,
                "cycle": d.cycle_id,
                "at": iso(d.at),
                "action": d.action,
                "groups": group_reasons(list(d.reasons)),
                "suppressed": list(d.suppressed),
            }
            for d in rows
        ]
    stretches: list[dict] = []
    for d in items:
        shape = (
            d["action"],
            [(g["cause"], [c["column"] for c in g["columns"]]) for g in d["groups"]],
        )
        if stretches and stretches[-1]["shape"] == shape:
            stretches[-1]["decisions"].append(d)
        else:
            stretches.append({"shape": shape, "decisions": [d]})
    return {
        "total": total,
        "shown": len(items),
        "actions": dict(Counter(d["action"] for d in items)),
        "stretches": [
            {
                "action": st["decisions"][0]["action"],
                "count": len(st["decisions"]),
                "from": st["decisions"][-1]["at"],
                "to": st["decisions"][0]["at"],
                "groups": st["decisions"][0]["groups"],
                "decisions": st["decisions"],
            }
            for st in stretches
        ],
    }


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
