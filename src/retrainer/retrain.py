"""A retraining run: choose the window, train a challenger, gate it, register it, promote it.

The run is idempotent by its decision: a second call for the same decision returns the first
run's outcome. A crash leaves at most an orphaned artifact (content-addressed, never a half
file) and a run row marked ``running``; the champion alias only moves after registration.
Each run and cycle records its owner process; :func:`recover_interrupted` (called at the start
of every cycle) finishes or fails what a process that is gone left ``running``, and retries an
interrupted run at most once.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from retrainer.checks.monitors import version_monitors
from retrainer.checks.sample import store_sample
from retrainer.compute.challengers import train_challenger
from retrainer.deploy.gate import TargetsOutcome, check_targets, write_bundles
from retrainer.errors import RetrainerError, TrainingError
from retrainer.gate import GateResult, holdout_size, model_classes, unmeasured
from retrainer.metrics import bootstrap_se, row_losses, score
from retrainer.profile import BatchProfile
from retrainer.promotion import promote
from retrainer.sandbox import gate_challenger
from retrainer.store.tables import BatchRow, CycleRow, DecisionRow, ModelVersionRow, RunRow, utcnow
from retrainer.training import predict

if TYPE_CHECKING:
    from retrainer.config import Config
    from retrainer.record import Record


@dataclass(frozen=True)
class RunOutcome:
    """What a run did: its status, window, gate and the version it registered."""

    run_id: int
    status: str  # succeeded | rejected | skipped | failed
    version: int | None
    promoted: bool
    gate: dict | None
    window: dict
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def select_window(project: Record, before: int | None = None) -> list[BatchRow]:
    """The labelled, unquarantined batches the trainer's window covers, oldest first (reaching
    back over older batches until they hold ``window.min_rows`` labelled rows, when set); with
    ``before``, of the batches older than that batch id (a shadow candidate's window)."""
    window = project.config.trainer.window
    rows = _trainable(project, before)
    if window.all or not rows:
        return list(rows)
    chosen = list(rows[-window.batches :]) if window.batches else []
    timed = window.batches is None or project.config.data.time_column
    if window.days is not None and timed:
        end = max(r.data_time for r in rows if r.data_time)
        recent = [r for r in rows if r.data_time and (end - r.data_time).days < window.days]
        chosen = max(chosen, recent, key=len)
    return reach_back(list(rows), chosen, window.min_rows)


def _trainable(project: Record, before: int | None = None) -> list[BatchRow]:
    """The labelled, unquarantined batches, oldest first (with ``before``: older than it)."""
    query = select(BatchRow).where(BatchRow.n_labelled > 0, BatchRow.status != "quarantined")
    if before is not None:
        query = query.where(BatchRow.id < before)
    with project.store.session() as s:
        return list(s.scalars(query.order_by(BatchRow.id)).all())


def fit_shadow(project: Record, batch_id: int) -> tuple[Any, list[str], dict]:
    """A shadow candidate for batch ``batch_id``: the project's trainer fitted, as a retrain's
    model is, on the window of labelled batches before that batch (never registered, gated or
    deployed). Returns the model, its features and its window (``batches``, ``rows``).

    Raises:
        TrainingError: the window holds fewer than ``trainer.min_rows`` labelled rows.
    """
    cfg = project.config
    batches = select_window(project, before=batch_id)
    frame, _ = _window_rows(project, batches)
    window = {"batches": [b.id for b in batches], "rows": len(frame)}
    if len(frame) < cfg.trainer.min_rows:
        raise TrainingError(
            f"only {len(frame)} labelled rows before batch {batch_id} "
            f"(trainer.min_rows is {cfg.trainer.min_rows})"
        )
    features = project.features(frame)
    model = train_challenger(cfg, frame[features], frame[project.target]).model
    return model, features, window


def reach_back(rows: list, chosen: list, min_rows: int | None) -> list:
    """``chosen`` (the newest of ``rows``, oldest first) with older ``rows`` added, newest
    first, until they hold ``min_rows`` labelled rows (or no older row is left).

    Example:
        >>> from types import SimpleNamespace as B
        >>> rows = [B(id=i, n_labelled=30) for i in range(1, 8)]
        >>> [b.id for b in reach_back(rows, rows[-2:], 100)]
        [4, 5, 6, 7]
        >>> [b.id for b in reach_back(rows, rows[-2:], None)]
        [6, 7]
    """
    if not min_rows or not chosen:
        return chosen
    first = start = rows.index(chosen[0])
    held = sum(r.n_labelled for r in chosen)
    while held < min_rows and start > 0:
        start -= 1
        held += rows[start].n_labelled
    return rows[start:first] + chosen


def _window_rows(
    project: Record, batches: list[BatchRow], *, labelled_only: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """The window's labelled rows (``labelled_only`` False: all its rows not set aside, as
    they arrived), in time order when the project has a time column, and the batch id of each
    row."""
    frames = [project.batch_frame(b, labelled_only=labelled_only, kept_only=True) for b in batches]
    if not frames:
        return pd.DataFrame(), np.array([], dtype=int)
    frame = pd.concat(frames, ignore_index=True)
    batch_of = np.repeat([b.id for b in batches], [len(f) for f in frames])
    time = project.config.data.time_column
    if time and len(frame):
        order = frame.sort_values(time, kind="stable").index.to_numpy()
        frame, batch_of = frame.iloc[order].reset_index(drop=True), batch_of[order]
    return frame, batch_of


def as_much_history(
    project: Record, batches: list[BatchRow], train: pd.DataFrame, rows: int
) -> pd.DataFrame:
    """The gate copy's rows: ``train`` (the window's rows before the holdout) after the labelled
    rows of the batches before the window, newest batch first, until it holds ``rows`` (the
    refit's), or no eligible batch is left.

    The holdout takes the window's newest rows, so the window's rows before it are the refit's
    less the holdout: on a window that slides a batch a run, the champion's rows less its oldest
    batch. A copy fitted on them learns from less history than the champion did and the gate
    leans to the champion (a solar nowcast retrained weekly on 6 weeks: copies on 5 weeks, 28 of
    52 challengers kept out). Reaching back, the copy learns from as much as the champion; on the
    champion's own rows it is the champion again, and the gate says it measured nothing.
    """
    missing = rows - len(train)
    if missing <= 0 or not batches:
        return train
    older = _trainable(project, before=batches[0].id)
    if not older:
        return train
    before, _ = _window_rows(project, reach_back(older, older[-1:], missing))
    extended = pd.concat([before, train], ignore_index=True)
    time = project.config.data.time_column
    if time and time in extended:
        extended = extended.sort_values(time, kind="stable").reset_index(drop=True)
    return extended


def _labelled(frame: pd.DataFrame, target: str) -> np.ndarray:
    """Which rows of ``frame`` carry a label (none without a target column)."""
    if target not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame[target].notna().to_numpy()


def _period(frame: pd.DataFrame, time: str | None) -> dict:
    """``from`` and ``to`` of rows in time order (nothing without a time column or rows)."""
    if not time or not len(frame) or time not in frame:
        return {}
    return {"from": frame[time].min().isoformat(), "to": frame[time].max().isoformat()}


def out_of_time(champion, batch_of: np.ndarray) -> tuple[np.ndarray, dict]:
    """Which held-out rows the champion was not trained on: rows of batches that arrived after
    the last batch of its training window (out of time). Returns the row mask and what the
    gate compares on: the batches and the champion's window.

    A champion not trained by this project (no recorded window) may have seen any row: every
    held-out row is compared on, and the record says so.

    Example:
        >>> from types import SimpleNamespace
        >>> champion = SimpleNamespace(version=1, lineage={"window": {"batches": [1, 2, 3]}})
        >>> mask, compared = out_of_time(champion, np.array([2, 3, 4, 4]))
        >>> mask.tolist(), compared["batches"], compared["champion_window"]["batches"]
        ([False, False, True, True], [4], [1, 3, 3])
    """
    if champion is None:
        return np.ones(len(batch_of), dtype=bool), {"champion_window": None}
    recorded = (champion.lineage or {}).get("window") or {}
    seen = recorded.get("batches")
    if not seen:
        mask = np.ones(len(batch_of), dtype=bool)
        window = {"version": champion.version, "known": False}
    else:
        mask = batch_of > max(seen)
        window = {
            "version": champion.version,
            "batches": [min(seen), max(seen), len(seen)],  # first, last, how many
            **{k: recorded[k] for k in ("from", "to", "rows") if k in recorded},
        }
    used = sorted({int(b) for b in batch_of[mask]})
    return mask, {"batches": used, "champion_window": window}


def _fingerprint(frame: pd.DataFrame) -> str:
    """A hash of the window's rows, values and column names: equal for the same labelled rows.

    Example:
        >>> a = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
        >>> _fingerprint(a) == _fingerprint(a.copy()), _fingerprint(a) == _fingerprint(a[::-1])
        (True, False)
        >>> _fingerprint(pd.DataFrame({"t": pd.Series([b"\\xff bytes", 1], dtype=object)}))
        ''
    """
    digest = hashlib.sha256(repr(list(frame.columns)).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except (TypeError, ValueError):  # a cell pandas cannot hash (bytes beside numbers: pandas
        return ""  # decodes them as ASCII): no fingerprint, every run trains
    return digest.hexdigest()[:16]


def _nothing_new(cfg: Config, champion: Any, window: dict, features: list[str], target: str) -> str:
    """Why a run would refit the champion as it is ("" when it would not): its window holds the
    same labelled rows (the same values: a corrected label or a released row is new), and the
    trainer, features and target are those the champion was fitted with. Such a run registers a
    copy of the champion and gates a copy against it, which tells nothing.

    Example:
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(trainer=SimpleNamespace(
        ...     estimator="sklearn.linear_model.Ridge", params={}, search={}, candidates=[]))
        >>> trained = {"estimator": "sklearn.linear_model.Ridge", "params": {}}
        >>> window = {"batches": [1, 2], "rows": 60, "fingerprint": "9f1c"}
        >>> champion = SimpleNamespace(version=3, lineage={
        ...     "window": window, "trainer": trained, "features": ["x"], "target": "y"})
        >>> print(_nothing_new(cfg, champion, window, ["x"], "y"))
        no labelled row since version 3 was trained (the window is its 60 rows of batches 1-2)
        >>> _nothing_new(cfg, champion, {**window, "fingerprint": "07ab"}, ["x"], "y")
        ''
    """
    if not _same_fit(cfg, champion, window["fingerprint"], features, target):
        return ""
    batches = window["batches"]
    return (
        f"no labelled row since version {champion.version} was trained (the window is its "
        f"{window['rows']} rows of batches {batches[0]}-{batches[-1]})"
    )


def _same_fit(cfg: Config, champion: Any, fingerprint: str, features: list, target: str) -> bool:
    """Whether fitting the configured trainer on rows of ``fingerprint`` makes the champion
    again: the same rows as its window, trainer, features and target (no search, no
    candidates)."""
    lineage = (champion.lineage or {}) if champion is not None else {}
    seen = (lineage.get("window") or {}).get("fingerprint")
    trainer = cfg.trainer
    return bool(
        seen
        and seen == fingerprint
        and not trainer.search
        and not trainer.candidates
        and lineage.get("trainer") == {"estimator": trainer.estimator, "params": trainer.params}
        and lineage.get("features") == features
        and lineage.get("target") == target
    )


def retrain(
    project: Record,
    *,
    cycle_id: int | None,
    decision_id: int | None,
    reasons: list[str],
    clock: datetime,
) -> RunOutcome:
    """Run one retraining for a decision and return its outcome."""
    key = f"decision:{decision_id}" if decision_id is not None else f"manual:{utcnow().isoformat()}"
    with project.store.session() as s:
        done = s.scalar(select(RunRow).where(RunRow.key == key))
        if done is not None:
            return _outcome(done, "already ran for this decision")
        run = RunRow(
            key=key,
            cycle_id=cycle_id,
            decision_id=decision_id,
            window={"clock": clock.isoformat(), "owner": owner()},
        )
        s.add(run)
        s.flush()
        run_id = run.id
        project.event(s, "train", f"run {run_id} started: {'; '.join(reasons)}", cycle_id=cycle_id)
    try:
        outcome = _train_gate_register(project, run_id, cycle_id, reasons, clock)
    except RetrainerError as exc:
        outcome = _finish(
            project=project,
            run_id=run_id,
            cycle_id=cycle_id,
            status="failed",
            window={"clock": clock.isoformat()},
            message=f"run failed: {exc}",
        )
    except BaseException as exc:
        _finish(
            project=project,
            run_id=run_id,
            cycle_id=cycle_id,
            status="failed",
            window={"clock": clock.isoformat()},
            message=f"run failed: {type(exc).__name__}: {exc}",
        )
        raise
    return outcome


def _train_gate_register(
    project: Record, run_id: int, cycle_id: int | None, reasons: list[str], clock: datetime
) -> RunOutcome:
    cfg = project.config
    batches = select_window(project)
    served, served_batch = _window_rows(project, batches, labelled_only=False)
    labelled = _labelled(served, project.target)
    frame, batch_of = served[labelled].reset_index(drop=True), served_batch[labelled]
    window = {
        "clock": clock.isoformat(),
        "batches": [b.id for b in batches],
        "keys": [b.key for b in batches],
        "rows": len(frame),
        "last_batch": max((b.id for b in batches), default=0),
        **_period(frame, cfg.data.time_column),
        "fingerprint": _fingerprint(frame),
    }
    message = ""
    if len(frame) < cfg.trainer.min_rows:
        message = (
            f"only {len(frame)} labelled rows in the window "
            f"(trainer.min_rows is {cfg.trainer.min_rows})"
        )
    features = [] if message else project.features(frame)
    champion = project.champion
    message = message or _nothing_new(cfg, champion, window, features, project.target)
    if message:
        return _finish(
            project=project,
            run_id=run_id,
            cycle_id=cycle_id,
            status="skipped",
            window=window,
            message=message,
        )
    n_holdout = holdout_size(len(frame), cfg.gate.holdout, out_of_time(champion, batch_of)[0])
    holdout = frame.iloc[-n_holdout:]
    train = as_much_history(project, batches, frame.iloc[:-n_holdout], len(frame))
    window["holdout_rows"] = n_holdout
    target = project.target
    selection = train_challenger(cfg, train[features], train[target])  # where compute: says
    challenger = selection.model  # the gate copy: fitted without the holdout
    unseen, compared = out_of_time(champion, batch_of[-n_holdout:])
    rows = holdout[unseen]
    gate = gate_challenger(project, challenger, champion, rows[features], rows[target])
    compared |= {
        "rows": len(rows),
        **_period(rows, cfg.data.time_column),
        "challenger_window": {"rows": len(train), **_period(train, cfg.data.time_column)},
        "refit_window": {"rows": len(frame), **_period(frame, cfg.data.time_column)},
    }
    gate = replace(gate, compared=compared)
    if _same_fit(cfg, champion, _fingerprint(train), features, target):
        gate = unmeasured(gate, len(rows))
    model = challenger
    if gate.passed and cfg.gate.refit:
        model = selection.trainer.fit(frame[features], frame[target])
    targets = cfg.targets()
    deploy = TargetsOutcome()
    if gate.passed and targets:
        deploy = check_targets(
            targets, model, holdout[features], holdout[target], feature_names=features
        )
    passed = gate.passed and deploy.passed
    reason = "; ".join([gate.reason, *deploy.reasons])
    # The reference describes the inputs as they arrive, labelled or not: the batches it is
    # checked against hold rows whose labels never come (a city without sales, a sale not
    # reviewed), and those rows can differ in their nulls and categories from the labelled.
    reference = BatchProfile.from_frame(
        served[features], project.schema(), rows=True, batches=served_batch
    ).to_dict()
    lineage = {
        "run": run_id,
        "cycle": cycle_id,
        "reasons": reasons,
        "window": window,
        "trainer": {"estimator": selection.trainer.estimator, "params": selection.trainer.params},
        "challengers": selection.to_dict(),
        "features": features,
        "target": target,
        "refit_on_window": gate.passed and cfg.gate.refit,
        "gate": gate.to_dict(),
        "deploy": deploy.to_dict(),
        "parent": champion.version if champion else None,
    }
    metric = cfg.gate.metric
    on_holdout = predict(challenger, holdout[features])  # the gate copy, out of sample
    losses = row_losses(metric, holdout[target], on_holdout[0])  # a loss's (mae, rmse) rows
    spread = float(np.std(losses, ddof=1)) if losses is not None and losses.size > 1 else None
    classes = model_classes(challenger)
    metrics = {
        "holdout": score(metric, holdout[target], *on_holdout, classes),
        "holdout_spread": spread,  # for the performance trigger's test on a loss
        # f1, balanced accuracy, auc, r2: the standard error of ``holdout``, for the same test
        "holdout_se": bootstrap_se(
            metric, holdout[target], on_holdout[0], classes, y_score=on_holdout[1]
        ),
        "metric": gate.metric,
        "champion": gate.champion,
        "n_holdout": n_holdout,
        "n_compared": gate.n_holdout,
        "gate_passed": passed,
        **_monitors(cfg, project.artifacts, challenger, model, holdout[features], holdout[target]),
    }
    if cfg.checks.sample.rows:
        metrics["reference_sample"] = store_sample(
            project.artifacts,
            challenger,
            holdout,
            features,
            target,
            task=cfg.trainer.task,
            max_rows=cfg.checks.sample.rows,
        )
    version = project.registry.register(
        model, lineage=lineage, metrics=metrics, reference=reference, run_id=run_id
    )
    done = {
        "project": project,
        "run_id": run_id,
        "cycle_id": cycle_id,
        "gate": gate,
        "window": window,
        "version": version.version,
    }
    if not passed:
        message = f"version {version.version} registered, not promoted: {reason}"
        return _finish(**done, status="rejected", promoted=False, message=message)
    bundles = write_bundles(
        deploy,
        project.bundle_folder(),
        version.version,
        reference=reference,
        schema=project.schema(),
    )
    project.registry.promote(version.version, reason=f"{'; '.join(reasons)} | gate: {reason}")
    note = f" (deploy bundles: {', '.join(bundles.values())})" if bundles else ""
    message = f"version {version.version} promoted: {reason}{note}"
    return _finish(**done, status="succeeded", promoted=True, message=message)


def _monitors(cfg, artifacts, challenger: Any, model: Any, X: Any, y: Any) -> dict:
    """The label-free estimator and concept calibration of the registered ``model``, fitted on
    its gate copy ``challenger``'s out-of-sample rows; no estimator when the refit knows other
    classes than the copy (a class only in the newest rows), whose calibration cannot read it."""
    found = version_monitors(cfg, artifacts, challenger, X, y)
    seen, known = (list(getattr(m, "classes_", [])) for m in (challenger, model))
    if seen != known:
        new = ", ".join(repr(c) for c in known if c not in seen)
        found["estimator"] = None
        found["no_estimate"] = (
            f"class {new} not in the reference (the refit model knows classes {known}, its "
            f"gate copy {seen}): no estimate until a retrain whose copy sees every class"
        )
        found["notes"].append(f"estimator: {found['no_estimate']}")
    return found


def _finish(
    *,
    project: Record,
    run_id: int,
    cycle_id: int | None,
    status: str,
    window: dict,
    message: str,
    version: int | None = None,
    promoted: bool = False,
    gate: GateResult | None = None,
) -> RunOutcome:
    with project.store.session() as s:
        run = s.get(RunRow, run_id)
        run.status, run.finished_at, run.version, run.window = status, utcnow(), version, window
        run.metrics = {"gate": gate.to_dict() if gate else None, "promoted": promoted}
        run.error = message if status == "failed" else ""
        project.event(
            s,
            "gate" if gate else "train",
            message,
            cycle_id=cycle_id,
            run=run_id,
            status=status,
            version=version,
        )
    return RunOutcome(
        run_id, status, version, promoted, gate.to_dict() if gate else None, window, message
    )


def _outcome(run: RunRow, message: str) -> RunOutcome:
    return RunOutcome(
        run.id,
        run.status,
        run.version,
        bool(run.metrics.get("promoted")),
        run.metrics.get("gate"),
        dict(run.window),
        message,
    )


INTERRUPTED = "interrupted"
RETRY_MARK = "retry of run"  # the service's scheduler marks its one retry the same way


def owner() -> dict:
    """The process that runs this code: host, pid and the pid's start time (guards pid reuse)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_alive(recorded: dict | None) -> bool:
    """Whether the process recorded by :func:`owner` may still run.

    A row without an owner (written before owners were recorded) counts as gone; a process on
    another host counts as alive, since it cannot be checked from here.

    Parameters:
        recorded: the ``owner`` dict of a run or cycle.

    Example:
        >>> owner_alive(owner()), owner_alive(None)
        (True, False)
        >>> owner_alive({"host": socket.gethostname(), "pid": 2**22 + 12345, "start": None})
        False
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("pid"), int):
        return False
    if recorded.get("host") != socket.gethostname():
        return True
    pid = recorded["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = recorded.get("start")
    return start is None or _start_time(pid) in (None, start)


def recover_interrupted(project: Record) -> list[str]:
    """Finish or fail the cycles and runs left ``running`` by a process that is gone.

    A cycle is marked failed. A run that registered its version is finished with it (and the
    version promoted if its gate passed, the champion is still the run's parent and no deploy
    target needs a bundle); a run that did not is marked ``failed`` (``interrupted``) and
    retried once, through the manual trigger of the next decision; a retry that is itself
    interrupted is not retried again. Returns one line per row recovered (also logged as a
    ``recover`` event).

    Parameters:
        project: the project whose store is recovered.

    Example:
        >>> import tempfile
        >>> from retrainer.project import Project
        >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
        >>> with project.store.session() as s:
        ...     s.add(RunRow(key="decision:1", window={"owner": {"host": "?", "pid": "?"}}))
        >>> recover_interrupted(project)
        ['run 1 marked failed (interrupted: process gone); retrain requested once']
        >>> recover_interrupted(project)
        []
    """
    done: list[str] = []
    now = utcnow()
    with project.store.session() as s:
        for cycle in s.scalars(select(CycleRow).where(CycleRow.status == "running")):
            if not owner_alive((cycle.summary or {}).get("owner")):
                cycle.status, cycle.finished_at = "failed", now
                cycle.summary = {"error": f"{INTERRUPTED}: its process is gone"}
                done.append(f"cycle {cycle.id} marked failed ({INTERRUPTED})")
        runs = s.scalars(select(RunRow).where(RunRow.status == "running").order_by(RunRow.id))
        stuck = [r.id for r in runs if not owner_alive((r.window or {}).get("owner"))]
    done += [_recover_run(project, run_id, now) for run_id in stuck]
    if done:
        with project.store.session() as s:
            project.event(s, "recover", "; ".join(done), recovered=done)
    return done


def _recover_run(project: Record, run_id: int, now: datetime) -> str:
    with project.store.session() as s:
        run = s.get(RunRow, run_id)
        row = s.scalar(select(ModelVersionRow).where(ModelVersionRow.run_id == run_id))
        decision = s.get(DecisionRow, run.decision_id) if run.decision_id else None
        reasons = list(decision.reasons) if decision else []
        run.finished_at = now
        if row is None:
            run.status, run.error = "failed", f"{INTERRUPTED}: its process is gone"
            run.metrics = {"gate": None, "promoted": False}
        else:
            passed = bool((row.metrics or {}).get("gate_passed"))
            run.version, run.window = row.version, dict(row.lineage.get("window") or run.window)
            run.status = "succeeded" if passed else "rejected"
            run.metrics = {"gate": row.lineage.get("gate"), "promoted": False}
            parent, version = row.lineage.get("parent"), row.version
    if row is not None:
        champion = project.champion
        if champion is not None and champion.version == version:
            _mark_promoted(project, run_id)
            return f"run {run_id} finished: version {version} was promoted before the stop"
        if passed and (champion.version if champion else None) == parent:
            if not project.config.deploy_targets:
                why = f"run {run_id} finished after a stop: gate passed"
                promote(project, version, reason=why, actor="recover")
                _mark_promoted(project, run_id)
                return f"run {run_id} finished: version {version} promoted"
        return f"run {run_id} finished with its registered version {version}, not promoted"
    if any(RETRY_MARK in r for r in reasons):
        return f"run {run_id} marked failed ({INTERRUPTED}); it was a retry: not retried again"
    project.request_retrain(f"{RETRY_MARK} {run_id}, {INTERRUPTED}", actor="recover")
    return f"run {run_id} marked failed ({INTERRUPTED}: process gone); retrain requested once"


def _mark_promoted(project: Record, run_id: int) -> None:
    with project.store.session() as s:
        run = s.get(RunRow, run_id)
        run.metrics = {**run.metrics, "promoted": True}
