"""Read-only views of the record, shared by the CLI, the report and the replay summary."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from retrainer.quarantine import held_back, set_aside_summary
from retrainer.store.tables import (
    BatchRow,
    CheckRow,
    CycleRow,
    DecisionRow,
    EventRow,
    RunRow,
)

if TYPE_CHECKING:  # pandas is imported by the views that build frames: `status` starts without it
    import pandas as pd
    from sqlalchemy.orm import Session

    from retrainer.record import Record


ROLES = ("champion", "baseline")  # the continuously trained model, the never-retrained one


def performance(project: Record) -> pd.DataFrame:
    """Performance per batch and role, in batch order: realised (champion, baseline) and the
    champion's label-free estimate (estimated); not the shadow candidates' (no version, read by
    the cost trigger only)."""
    import pandas as pd

    with project.store.session() as s:
        rows = s.scalars(
            select(CheckRow).where(CheckRow.kind == "performance").order_by(CheckRow.batch_id)
        ).all()
        details = [dict(r.detail) for r in rows if r.detail.get("role") != "shadow"]
    columns = ["batch", "version", "role", "metric", "value", "n", "data_time"]
    frame = pd.DataFrame(details, columns=columns)
    frame["data_time"] = pd.to_datetime(frame["data_time"], utc=True)
    return frame


def overall(perf: pd.DataFrame, role: str, batches: set[int] | None = None) -> float | None:
    """Row-weighted mean of a role's per-batch metric (exact for accuracy), on ``batches``
    (None: every batch the role was scored on)."""
    part = perf[perf["role"] == role]
    if batches is not None:
        part = part[part["batch"].isin(batches)]
    if part.empty:
        return None
    return float((part["value"] * part["n"]).sum() / part["n"].sum())


def scored_by_both(perf: pd.DataFrame) -> set[int]:
    """The batches both the champion and the never-retrained baseline were scored on (the
    champion's alone when no baseline is kept), so that the two lines compare like with like.

    Example:
        >>> import pandas as pd
        >>> perf = pd.DataFrame({"batch": [2, 2, 3, 4, 4], "role": ["champion", "baseline",
        ...     "champion", "champion", "baseline"]})
        >>> sorted(scored_by_both(perf))
        [2, 4]
    """
    champion, baseline = (set(perf.loc[perf["role"] == r, "batch"]) for r in ROLES)
    return {int(b) for b in (champion & baseline if baseline else champion)}


def promotions(project: Record) -> pd.DataFrame:
    """Runs that promoted a version, with the clock time at which they ran."""
    import pandas as pd

    with project.store.session() as s:
        runs = s.scalars(
            select(RunRow).where(RunRow.version.is_not(None)).order_by(RunRow.id)
        ).all()
        rows = [
            {
                "run": r.id,
                "version": r.version,
                "status": r.status,
                "promoted": bool(r.metrics.get("promoted")),
                "clock": r.window.get("clock"),
            }
            for r in runs
        ]
    frame = pd.DataFrame(rows, columns=["run", "version", "status", "promoted", "clock"])
    frame["clock"] = pd.to_datetime(frame["clock"], utc=True)
    return frame


def decisions(project: Record) -> pd.DataFrame:
    """Every decision with its reasons (joined), the trigger of each reason, oldest first."""
    import pandas as pd

    with project.store.session() as s:
        rows = [
            {
                "id": d.id,
                "cycle": d.cycle_id,
                "at": d.at,
                "action": d.action,
                "reasons": "; ".join(d.reasons),
                "suppressed": "; ".join(d.suppressed),
                "triggers": [_kind(r) for r in d.reasons],  # a reason's text may hold "; "
            }
            for d in s.scalars(select(DecisionRow).order_by(DecisionRow.id))
        ]
    columns = ["id", "cycle", "at", "action", "reasons", "suppressed", "triggers"]
    return pd.DataFrame(rows, columns=columns)


def alarm_causes(project: Record) -> dict[str, int]:
    """How many cycles raised each alarm cause."""
    counts: Counter[str] = Counter()
    with project.store.session() as s:
        for summary in s.scalars(select(CycleRow.summary)):
            for cause in {a["cause"] for a in (summary or {}).get("alarms", [])}:
                counts[cause] += 1
    return dict(counts)


def recent_alarms(project: Record, limit: int = 20) -> list[dict]:
    """The alarms of the latest cycles that raised any, newest first, in plain words: the
    batch that raised it and its data time (none for an alarm on labels, or one recorded before
    alarms named their batch), cause, severity, what was seen and the action it implies."""
    rows: list[dict] = []
    with project.store.session() as s:
        cycles = s.scalars(select(CycleRow).order_by(CycleRow.id.desc()).limit(200)).all()
        for cycle in cycles:
            summary = cycle.summary or {}
            seen = set()
            for alarm in summary.get("alarms", []):
                key = (alarm.get("batch"), alarm["cause"], alarm["message"])
                if key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "cycle": cycle.id,
                        "clock": summary.get("clock", "")[:16],
                        "batch": alarm.get("batch"),
                        "batch_time": "",
                        "cause": alarm["cause"],
                        "severity": alarm["severity"],
                        "message": alarm["message"],
                        "action": alarm["action"],
                    }
                )
            if len(rows) >= limit:
                break
        rows = rows[:limit]
        ids = {r["batch"] for r in rows} - {None}
        found = s.execute(select(BatchRow.id, BatchRow.data_time).where(BatchRow.id.in_(ids)))
        times = {batch: when for batch, when in found}
    for r in rows:
        when = times.get(r["batch"])
        if when is not None:
            r["batch_time"] = (when.astimezone(UTC) if when.tzinfo else when).isoformat()[:16]
    return rows


def status(project: Record) -> dict:
    """Counts, the champion, the last decision, the latest events, ``held_back``: how long
    retraining has been held back by quarantined batches (``retrainer.quarantine.held_back``,
    None when it is not), ``set_aside``: rows set aside from batches that proceeded
    (``retrainer.quarantine.set_aside_summary``), ``mlflow_pending``: since when the MLflow
    mirror is behind, and ``hint``: the last seasonality hint while the project has not taken it
    (``retrainer.checks.reference_loop``)."""
    with project.store.session() as s:
        by_status = dict(
            s.execute(select(BatchRow.status, func.count()).group_by(BatchRow.status)).all()
        )
        labelled = s.scalar(select(func.sum(BatchRow.n_labelled))) or 0
        rows = s.scalar(select(func.sum(BatchRow.n_rows))) or 0
        last = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc()).limit(1)).first()
        events = s.scalars(select(EventRow).order_by(EventRow.id.desc()).limit(10)).all()
        cycles = s.scalar(select(func.count()).select_from(CycleRow)) or 0
        last_decision = (
            {"action": last.action, "reasons": list(last.reasons), "at": last.at.isoformat()}
            if last
            else None
        )
        recent = [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in reversed(events)
        ]
    champion = project.champion
    return {
        "project": project.config.project,
        "store": project.config.store_url,
        "batches": {"total": sum(by_status.values()), **by_status},
        "rows": int(rows),
        "labelled_rows": int(labelled),
        "cycles": int(cycles),
        "models": len(project.models),
        "champion": champion.to_dict() | {"reference": None} if champion else None,
        "last_decision": last_decision,
        "alarms": recent_alarms(project, limit=5),
        "events": recent,
        "held_back": held_back(project),
        "set_aside": set_aside_summary(project),
        "mlflow_pending": _mlflow_pending(project),
        "hint": pending_hint(project),
    }


def pending_hint(project: Record) -> str | None:
    """The last seasonality hint logged, None once the drift reference is seasonal."""
    text = (project.get_state("hint") or {}).get("text")
    seasonal = project.config.checks.drift.reference.kind == "seasonal"
    return text if text and not seasonal else None


def _mlflow_pending(project: Record) -> dict | None:
    """Since when the MLflow mirror is behind and why (its state row), None when in step."""
    state = project.get_state("mlflow") or {}  # integrations.mlflow_registry.STATE_KEY
    if not state.get("pending"):
        return None
    since = state["pending"].get("since", "?")
    return {
        "since": since,
        "error": state.get("error"),
        "line": f"MLflow sync pending since {since[:19]}: {state.get('error')}",
    }


HOLD_NOTES = ("cooldown", "budget", "min_new_rows", "quiet_after_deploy", "dedup")


def _kind(reason: str) -> str:
    """The trigger type a decision reason comes from (``"drift: ..."`` -> ``"drift"``)."""
    return reason.split(":", 1)[0].strip()


def _suppressed(text: str, held_by: list[str]) -> dict:
    reason, _, note = text.partition(" [")
    why = note.rstrip("]") if note else "; ".join(held_by)
    return {"trigger": _kind(reason), "reason": reason, "why": why}


def decision_explanation(project: Record, decision_id: int | None = None) -> dict:
    """Why a decision went the way it did: the triggers that fired, those suppressed and what
    held them back, the evidence of its cycle (concept detector, realised and estimated
    performance, drifted columns with statistics and thresholds, alarms), the run it started and
    the reason in words. ``decision_id`` None: the latest decision.

    Raises :class:`~retrainer.errors.NotFoundError` when there is no such decision.
    """
    from retrainer.errors import NotFoundError

    with project.store.session() as s:
        query = select(DecisionRow).order_by(DecisionRow.id.desc()).limit(1)
        if decision_id is not None:
            query = select(DecisionRow).where(DecisionRow.id == decision_id)
        row = s.scalars(query).first()
        if row is None:
            what = "no decision yet" if decision_id is None else f"no decision {decision_id}"
            raise NotFoundError(f"{what}: run `retrainer cycle` (decisions are listed in status)")
        checks = s.scalars(
            select(CheckRow).where(CheckRow.cycle_id == row.cycle_id).order_by(CheckRow.id)
        ).all()
        cycle = s.get(CycleRow, row.cycle_id)
        run = s.scalars(select(RunRow).where(RunRow.decision_id == row.id)).first()
        reasons, suppressed = list(row.reasons), list(row.suppressed)
        found, action, cycle_id = row.id, row.action, row.cycle_id
        at = (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)).isoformat()
        alarms = [
            {k: a.get(k) for k in ("cause", "severity", "column", "message", "blocking")}
            for a in ((cycle.summary or {}).get("alarms", []) if cycle else [])
        ]
        evidence = _cycle_evidence(checks)
        ran = (
            {
                "run": run.id,
                "status": run.status,
                "version": run.version,
                "promoted": bool((run.metrics or {}).get("promoted")),
                "message": run.error or _run_message(s, run.id, cycle_id),
            }
            if run
            else None
        )
    held_by = [r for r in reasons if _kind(r) in HOLD_NOTES]
    blocked_by = [r for r in reasons if r.startswith("blocked by ")]
    fired = [] if action != "retrain" else reasons
    quiet = action != "retrain" and not held_by and not blocked_by
    alarms_only = reasons if quiet else []  # no trigger fired: the reasons list the alarms
    explanation = {
        "decision": found,
        "cycle": cycle_id,
        "at": at,
        "action": action,
        "fired": [{"trigger": _kind(r), "reason": r} for r in fired],
        "suppressed": [_suppressed(t, held_by or blocked_by) for t in suppressed],
        "held_by": held_by,
        "blocked_by": blocked_by,
        "alarms_without_trigger": alarms_only,
        "evidence": evidence | {"alarms": alarms},
        "run": ran,
        "policy": project.config.policy.model_dump(mode="json"),  # as configured now
    }
    explanation["words"] = _in_words(explanation)
    return explanation


def _run_message(s: Session, run_id: int, cycle_id: int) -> str:
    """The message a run finished with (its train or gate event; ``error`` holds only a
    failure's)."""
    events = s.scalars(
        select(EventRow)
        .where(EventRow.cycle_id == cycle_id, EventRow.kind.in_(("train", "gate")))
        .order_by(EventRow.id.desc())
    )
    return next((e.message for e in events if (e.data or {}).get("run") == run_id), "")


def _cycle_evidence(checks: list[CheckRow]) -> dict:
    """The values a cycle's decision rested on, from its check rows."""
    concept, performance, drifted = [], [], []
    dataset_drift = None
    for c in checks:
        detail = dict(c.detail or {})
        if c.kind == "concept":
            concept.append(
                {
                    "batch": c.batch_id,
                    "detector": c.name,
                    "stream": detail.get("stream"),
                    "mean": c.statistic,
                    "signalled": c.alarm,
                    "positions": detail.get("batch_positions", detail.get("positions", [])),
                    "warning": detail.get("warning"),
                    "message": detail.get("message", ""),
                }
            )
        elif c.kind == "performance":
            keep = ("batch", "version", "role", "metric", "value", "n", "lower", "upper", "note")
            performance.append({k: detail[k] for k in keep if k in detail})
        elif c.kind == "drift" and c.name == "dataset_drift":
            dataset_drift = bool(c.alarm) if dataset_drift is None else dataset_drift or c.alarm
        elif c.kind == "drift" and c.alarm:
            drifted.append(
                {
                    "batch": c.batch_id,
                    "column": c.column,
                    "test": c.name,
                    "statistic": c.statistic,
                    "p_value": c.p_value,
                    "threshold": c.threshold,
                }
            )
    return {
        "concept": concept,
        "performance": performance,
        "dataset_drift": dataset_drift,
        "drifted_columns": drifted,
    }


def _in_words(e: dict) -> str:
    """One paragraph: what was decided and why."""
    kinds = ", ".join(dict.fromkeys(f["trigger"] for f in e["fired"]))
    if e["action"] == "retrain":
        text = f"Retrain: {len(e['fired'])} reason(s) ({kinds})."
    elif e["blocked_by"]:
        text = f"Alert, no retrain: {'; '.join(e['blocked_by'])}."
    elif e["held_by"]:
        waiting = ", ".join(dict.fromkeys(s["trigger"] for s in e["suppressed"])) or "triggers"
        text = f"Hold: {waiting} fired but {'; '.join(e['held_by'])}."
    elif e["action"] == "alert":
        text = f"Alert: alarms ({'; '.join(e['alarms_without_trigger'])}) but no trigger fired."
    elif e["alarms_without_trigger"]:
        seen = "; ".join(e["alarms_without_trigger"])
        text = f"Hold: no trigger fired; the alarms seen ({seen}) only call for watching."
    else:
        text = "Hold: no trigger fired."
    signalled = [c for c in e["evidence"]["concept"] if c["signalled"]]
    if signalled:
        c = signalled[0]
        text += (
            f" The {c['detector']} detector signalled drift in the {c['stream']} stream of batch "
            f"{c['batch']} (mean {c['mean']:.4f})."
        )
    columns = sorted({d["column"] for d in e["evidence"]["drifted_columns"] if d["column"]})
    if columns:
        verdict = {True: "yes", False: "no", None: "not tested"}[e["evidence"]["dataset_drift"]]
        text += f" Drifted columns: {', '.join(columns)} (dataset drift: {verdict})."
    unestimated = [p["note"] for p in e["evidence"]["performance"] if p.get("note")]
    if unestimated:
        text += f" No label-free estimate: {unestimated[0]}."
    dedup = [s for s in e["suppressed"] if s["why"].startswith("dedup")]
    if dedup:
        text += f" {len(dedup)} repeated trigger(s) were deduplicated."
    if e["run"]:
        r = e["run"]
        promoted = f", v{r['version']} promoted" if r["promoted"] else ""
        text += f" Run {r['run']}: {run_outcome(r['status'], r['message'])}{promoted}."
    return text


def shorten(text: str, limit: int = 160) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut.

    Example:
        >>> shorten("only 40 labelled rows in the window", 20)
        'only 40 labelled...'
    """
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def run_outcome(status: str, message: str = "", limit: int = 160) -> str:
    """A retraining run's status and, unless it succeeded, why (its message, shortened).

    Example:
        >>> run_outcome("skipped", "only 40 labelled rows in the window (trainer.min_rows is 50)")
        'skipped: only 40 labelled rows in the window (trainer.min_rows is 50)'
        >>> run_outcome("failed", "run failed: ValueError: Input contains NaN")
        'failed: ValueError: Input contains NaN'
        >>> run_outcome("succeeded", "version 2 promoted: mae 1.9 against 2.3")
        'succeeded'
    """
    if status in ("succeeded", "running") or not message:
        return status
    return f"{status}: {shorten(message.removeprefix(f'run {status}: '), limit)}"


MOVED = {"promote": "promoted", "rollback": "rolled back", "alias": "moved"}
COLUMN_IN_TEXT = re.compile(r"column '([^']+)'")


def reason_cause(reason: str) -> str:
    """The cause or trigger a decision reason names.

    Example:
        >>> reason_cause("blocked by data_quality: column 'x' is stuck at 0.1")
        'data_quality'
        >>> reason_cause("drift: 3 of 7 columns drifted")
        'drift'
    """
    return _kind(reason.removeprefix("blocked by "))


def reason_column(reason: str) -> str | None:
    """The column a reason or alarm message names, if it names one.

    Example:
        >>> reason_column("blocked by data_quality: column 'nswprice' is stuck"), reason_column("x")
        ('nswprice', None)
    """
    found = COLUMN_IN_TEXT.search(reason)
    return found.group(1) if found else None


def freshness(project: Record) -> dict:
    """Whether the model is being kept fresh, in one sentence: when it was last retrained and
    what, if anything, holds retraining back (the last decision's blocking causes and columns,
    a run of quarantined newest batches (:func:`retrainer.quarantine.held_back`), a challenger
    that failed its gate, a hold note).

    ``state`` is ``none`` (no model yet), ``fresh`` or ``held``.

    Example:
        >>> import tempfile
        >>> from retrainer.project import Project
        >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
        >>> freshness(project)["sentence"]
        'No model yet: the first cycle with labelled data trains one and makes it the champion.'
    """
    import pandas as pd

    champion = project.champion
    if champion is None:
        return {
            "state": "none",
            "sentence": "No model yet: the first cycle with labelled data trains one and makes "
            "it the champion.",
            "last_retrain": None,
            "held_by": [],
        }
    promos = promotions(project)
    promoted = promos[promos["promoted"]]
    last = promoted.iloc[-1] if len(promoted) else None
    retrained = (
        f"was last retrained on data up to {last['clock']:%Y-%m-%d}"
        if last is not None and pd.notna(last["clock"])
        else None
    )
    if retrained and int(last["version"]) == champion.version:
        when = f"v{champion.version} {retrained}"
    else:  # promoted or rolled back by hand since the last retrain
        moved = project.registry.history()[-1]
        when = (
            f"v{champion.version} is serving since {moved['at'][:10]} "
            f"({MOVED.get(moved['kind'], moved['kind'])} by {moved['actor']}); the model "
            + (retrained or "was never retrained here")
        )
    with project.store.session() as s:
        decision = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc()).limit(1)).first()
        reasons = list(decision.reasons) if decision else []
        action = decision.action if decision else None
        quarantine = select(func.count()).where(BatchRow.status == "quarantined")
        if last is not None and pd.notna(last["clock"]):
            quarantine = quarantine.where(BatchRow.data_time > last["clock"].to_pydatetime())
        since = s.scalar(quarantine)
    held: list[str] = []
    blocked = [r for r in reasons if r.startswith("blocked by ")]
    if blocked:
        by_cause: dict[str, set[str]] = {}
        for r in blocked:
            by_cause.setdefault(reason_cause(r), set()).update(filter(None, [reason_column(r)]))
        held += [
            f"{cause.replace('_', ' ')} problems"
            + (f" in {', '.join(sorted(cols))}" if cols else "")
            for cause, cols in sorted(by_cause.items())
        ]
    held += [r for r in reasons if _kind(r) in HOLD_NOTES]
    streak = held_back(project)
    if streak is not None:
        held.append(
            f"{streak['batches']} quarantined batch(es) in a row since "
            f"{streak['since'][:10]} ({'; '.join(streak['by'])})"
        )
    rejected = promos.iloc[-1] if len(promos) and not promos.iloc[-1]["promoted"] else None
    if rejected is not None:
        held.append(f"a failed gate (challenger v{int(rejected['version'])} did not pass)")
    quarantined = f" ({since} batch(es) quarantined since)" if since else ""
    decided = (
        f"the last decision, on {decision.at:%Y-%m-%d}, was to {action}"
        if decision
        else "no decision yet"
    )
    if held:
        state = "held"
        sentence = f"Retraining is held back by {'; '.join(held)}{quarantined}: {when}; {decided}."
    else:
        state = "fresh"
        sentence = f"The model is being kept fresh: {when}{quarantined}; {decided}."
    return {
        "state": state,
        "sentence": sentence,
        "last_retrain": None
        if last is None
        else {
            "version": int(last["version"]),
            "run": int(last["run"]),
            "data_time": None if pd.isna(last["clock"]) else last["clock"].isoformat(),
        },
        "held_by": held,
        "quarantined": int(since or 0),
    }


def iso(moment) -> str | None:
    import pandas as pd

    if moment is None or (isinstance(moment, float) and math.isnan(moment)):
        return None
    stamp = pd.Timestamp(moment)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def performance_series(project: Record) -> dict:
    """Realised performance per batch (champion and never-retrained baseline) and the markers
    of retrains and promotions, with times as Unix seconds (or batch numbers without times)."""
    perf = performance(project)
    promos = promotions(project)
    by_batch: dict[int, dict] = {}
    for row in perf.itertuples(index=False):
        point = by_batch.setdefault(
            int(row.batch), {"batch": int(row.batch), "time": iso(row.data_time)}
        )
        point[row.role] = _finite(row.value)
        point.setdefault("versions", {})[row.role] = int(row.version)
    points = _with_gaps([by_batch[k] for k in sorted(by_batch)], project)
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


def _with_gaps(points: list[dict], project: Record) -> list[dict]:
    """The points with a gap row (``"gap": "quarantined"`` or ``"missing"``, no values) for
    each quarantined batch among them and for each stretch of data time longer than 1.5 times the
    usual spacing, so a plot never joins its lines across data that is not there."""
    import pandas as pd

    with project.store.session() as s:
        quarantined = s.execute(
            select(BatchRow.id, BatchRow.data_time).where(BatchRow.status == "quarantined")
        ).all()
    known = {p["batch"] for p in points}
    rows = points + [
        {"batch": b, "time": iso(t), "gap": "quarantined"} for b, t in quarantined if b not in known
    ]
    timed = all(r["time"] for r in rows)
    rows.sort(key=lambda r: (pd.Timestamp(r["time"]), r["batch"]) if timed else r["batch"])
    if not timed or len(points) < 3:
        return rows
    stamps = pd.to_datetime([r["time"] for r in rows])
    steps = pd.Series(stamps[1:] - stamps[:-1])
    usual = steps[steps > pd.Timedelta(0)].median()
    out = rows[:1]
    for row, step, before in zip(rows[1:], steps, stamps[:-1], strict=True):
        if pd.notna(usual) and step > 1.5 * usual and not (row.get("gap") or out[-1].get("gap")):
            middle = before + step / 2
            out.append({"batch": None, "time": iso(middle), "gap": "missing"})
        out.append(row)
    return out
