"""One cycle: what arrived since the last one goes through profile, checks, diagnosis, decision
and, when the policy says so, retrain, gate and register. Every step writes an event.

A batch is always predicted by a model that has not seen its labels: batches that arrive with
labels are predicted before any retrain of this cycle, unlabelled ones after it (the fresh
champion is what would serve them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from retrainer.checks.calendar import calendar_columns
from retrainer.checks.concept import DETECTORS, DriftDetector, detector_from_state
from retrainer.checks.concept.calibrate import error_stream
from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.estimate import load_estimator
from retrainer.checks.quality import check_quality
from retrainer.checks.reference_loop import annotate, drift_reference, seasonality_notes
from retrainer.checks.result import CheckResult
from retrainer.checks.sample import (
    ReferenceSample,
    multivariate_drift,
    prediction_drift,
    target_drift,
)
from retrainer.diagnosis import Alarm
from retrainer.diagnosis.alarms import Diagnosis, rank
from retrainer.diagnosis.joint import UNIT_CHECKS, reread
from retrainer.diagnosis.loop import diagnose_in_cycle, relation_alarms
from retrainer.gate import model_classes
from retrainer.ingest import FUTURE_SLACK
from retrainer.metrics import bootstrap_se, row_losses, score
from retrainer.profile import BatchProfile
from retrainer.quarantine import Quarantine, aside_alarm, far_rows, set_aside
from retrainer.retrain import RunOutcome, fit_shadow, owner, recover_interrupted, retrain
from retrainer.store.tables import (
    BatchRow,
    CheckRow,
    CycleRow,
    DecisionRow,
    EventRow,
    PredictionSetRow,
    ProfileRow,
    RunRow,
    utcnow,
)
from retrainer.training import predict
from retrainer.triggers import Evidence

if TYPE_CHECKING:
    from retrainer.record import Record


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did and why."""

    cycle_id: int
    batches: tuple[int, ...]
    quarantined: tuple[int, ...]
    alarms: tuple[dict, ...]
    evaluations: tuple[dict, ...]
    decision: dict
    run: dict | None = None
    champion: int | None = None
    clock: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "cycle": self.cycle_id,
            "batches": list(self.batches),
            "quarantined": list(self.quarantined),
            "alarms": list(self.alarms),
            "evaluations": list(self.evaluations),
            "decision": self.decision,
            "run": self.run,
            "champion": self.champion,
            "clock": self.clock,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Checked:
    """A batch's checks and their diagnosis (see ``_Cycle._checks``)."""

    results: list[CheckResult]
    profile: BatchProfile
    drifted: set[str]
    moved: bool
    diagnosis: Diagnosis
    calendar: dict[str, str] = field(default_factory=dict)  # date parts (``checks.calendar``)

    @property
    def alarms(self) -> list[Alarm]:
        return list(self.diagnosis.alarms)


def run_cycle(project: Record) -> CycleReport:
    """Run one cycle of ``project`` and return what it did (after recovering what a process
    that is gone left running)."""
    recover_interrupted(project)
    with project.store.session() as s:
        cycle = CycleRow(summary={"owner": owner()})
        s.add(cycle)
        s.flush()
        cycle_id = cycle.id
        project.event(s, "cycle", f"cycle {cycle_id} started", cycle_id=cycle_id)
    try:
        report = _Cycle(project, cycle_id).run()
    except BaseException as exc:
        with project.store.session() as s:
            row = s.get(CycleRow, cycle_id)
            row.status, row.finished_at = "failed", utcnow()
            row.summary = {"error": f"{type(exc).__name__}: {exc}"}
            project.event(s, "cycle", f"cycle {cycle_id} failed: {exc}", cycle_id=cycle_id)
        raise
    with project.store.session() as s:
        row = s.get(CycleRow, cycle_id)
        row.status, row.finished_at, row.summary = "done", utcnow(), report.to_dict()
        project.event(
            s, "cycle", f"cycle {cycle_id} done: {report.decision['action']}", cycle_id=cycle_id
        )
    project.registry.sync_mirror()  # registry.backend: mlflow (a failure leaves a pending sync)
    return report


class _Cycle:
    def __init__(self, project: Record, cycle_id: int):
        self.p = project
        self.id = cycle_id
        self.cfg = project.config
        self.alarms: list[dict] = []  # every batch's with its batch (None: labels'), for the report
        self.evidence: list[Alarm] = []  # of the batches not quarantined, for the decision
        self.quarantine = Quarantine(project)
        self.drifted: set[str] = set()
        self.dataset_drift = False
        self.evaluations: list[dict] = []
        self.estimates: list[dict] = []
        self.concept_drift = False
        self._frames: dict[tuple[int, str | None], pd.DataFrame] = {}
        self._samples: dict[int, tuple[ReferenceSample, Any] | None] = {}

    def frame(self, row: BatchRow) -> pd.DataFrame:
        """A batch's rows with labels joined, read (and hash-verified) once per cycle."""
        key = (row.id, row.labels)
        if key not in self._frames:
            self._frames[key] = self.p.batch_frame(row)
        return self._frames[key].copy()

    def sample(self, champion: Any) -> tuple[ReferenceSample, Any] | None:
        """The champion's reference sample and model, loaded once per cycle (None without)."""
        if champion is None:
            return None
        if champion.version not in self._samples:
            entry = champion.metrics.get("reference_sample")
            self._samples[champion.version] = (
                (
                    ReferenceSample.load(self.p.artifacts, entry),
                    self.p.load_model(champion.version),
                )
                if entry and self.cfg.checks.sample.rows
                else None
            )
        return self._samples[champion.version]

    def _sample_checks(
        self,
        frame: pd.DataFrame,
        champion: Any,
        calendar: dict[str, str],
        dispersion: dict[str, float] | None = None,
    ) -> list[CheckResult]:
        """Prediction drift and the multivariate check of a batch against the champion's
        reference sample (none when it has no sample); MMD counts rows by the reference's
        ``dispersion`` (its batches' design effects), as the column tests do."""
        found = self.sample(champion)
        if found is None:
            return []
        sample, model = found
        cfg, d = self.cfg.checks.sample, self.cfg.checks.drift
        frame = frame[finite_rows(frame)]  # +-inf (non_finite names it) or beyond float32
        if frame.empty:
            return []
        out = []
        if cfg.prediction:
            out += prediction_drift(
                sample, model, frame, alpha=d.alpha, min_rows=d.min_rows, min_psi=d.min_psi
            )
        if cfg.multivariate != "none":
            # a date part (a monthly file's month and year) is one value per batch: read as
            # rows, it tells every batch from a reference of many (``checks.calendar``)
            out.append(
                multivariate_drift(
                    sample,
                    frame,
                    method=cfg.multivariate,
                    max_rows=cfg.multivariate_rows,
                    exclude=calendar,
                    dispersion=dispersion,
                )
            )
        return out

    # ----------------------------------------------------------------------------- run
    def run(self) -> CycleReport:
        champion = self.p.champion
        with self.p.store.session() as s:
            new = s.scalars(
                select(BatchRow).where(BatchRow.status == "new").order_by(BatchRow.id)
            ).all()
            new_ids = [b.id for b in new]
        quarantined = [b for b in new_ids if not self._check_batch(b, champion)]
        labelled_new = [b for b in new_ids if b not in quarantined and self._n_labelled(b) > 0]
        self._predict(labelled_new)
        self._evaluate()
        self._estimate([b for b in new_ids if b not in labelled_new and b not in quarantined])
        decision, decision_id = self._decide(champion is not None)
        outcome: RunOutcome | None = None
        if decision.action == "retrain":
            outcome = retrain(
                self.p,
                cycle_id=self.id,
                decision_id=decision_id,
                reasons=list(decision.reasons),
                clock=self.clock(),
            )
            if outcome.promoted:
                self.p.set_state("detector", {})
                self.quarantine.promoted()
        self._predict([b for b in new_ids if b not in labelled_new and b not in quarantined])
        with self.p.store.session() as s:
            for row in s.scalars(select(BatchRow).where(BatchRow.id.in_(new_ids))):
                if row.status == "new":
                    row.status = "processed"
        now = self.p.champion
        return CycleReport(
            cycle_id=self.id,
            batches=tuple(new_ids),
            quarantined=tuple(quarantined),
            alarms=tuple(self.alarms),
            evaluations=tuple(self.evaluations),
            decision=decision.to_dict(),
            run=outcome.to_dict() if outcome else None,
            champion=now.version if now else None,
            clock=self.clock().isoformat(),
            notes=seasonality_notes(self.p, self.id),
        )

    def clock(self) -> datetime:
        """Data time when the project has a time column, else wall time."""
        if not self.cfg.data.time_column:
            return utcnow()
        with self.p.store.session() as s:
            not_future = BatchRow.data_time <= utcnow() + FUTURE_SLACK  # a 2999 batch: no clock
            latest = s.scalar(select(func.max(BatchRow.data_time)).where(not_future))
        return _aware(latest) if latest else utcnow()

    def _n_labelled(self, batch_id: int) -> int:
        with self.p.store.session() as s:
            return s.get(BatchRow, batch_id).n_labelled

    # ------------------------------------------------------------------- profile, checks
    def _check_batch(self, batch_id: int, champion: Any) -> bool:
        """Profile a new batch and check it against the champion's reference; far-out values
        that correlated columns share are drift (``retrainer.diagnosis.joint``), a few other
        far-out rows are set aside and the rest checked again (``retrainer.quarantine.far_rows``).
        Returns False when the batch was quarantined."""
        with self.p.store.session() as s:
            row = s.get(BatchRow, batch_id)
            frame = self.frame(row)
        schema = self.p.schema()
        chosen, edges = None, {}  # the reference (fixed, same season, recent) and its bins
        if champion is not None and champion.reference:
            fixed = BatchProfile.from_dict(champion.reference)
            chosen, edges = drift_reference(self.p, batch_id, champion, fixed), fixed.edges()
        checked = self._checks(batch_id, frame, schema, chosen, edges)
        checked = self._joint(checked, frame, edges, champion)
        found = chosen is not None and far_rows(
            frame, schema, edges, self._blocking(checked.alarms)
        )
        if found:
            keep = np.ones(len(frame), dtype=bool)
            keep[sorted(set().union(*found.values()))] = False
            kept = frame[keep].reset_index(drop=True)
            rest = self._checks(batch_id, kept, schema, chosen, edges)
            rest = self._joint(rest, kept, edges, champion)
            if self._blocking(rest.alarms):
                found = None  # the rest fails too: the batch is quarantined as a whole
            else:
                burst = self._blocking(checked.alarms)
                aside = [aside_alarm(a, frame, found[a.column], batch_id) for a in burst]
                ranked = rank([*aside, *rest.alarms], rest.diagnosis.shift)
                checked = replace(
                    rest,
                    results=_with_far_checks(rest.results, checked.results, found),
                    diagnosis=replace(ranked, fix=rest.diagnosis.fix),
                )
                frame = frame[keep].reset_index(drop=True)
        results, profile = checked.results, checked.profile
        alarms, diagnosis = checked.alarms, checked.diagnosis
        with self.p.store.session() as s:  # per batch: the rest of the cycle proceeds
            blocking = self.quarantine.screen(s, batch_id, self._blocking(alarms), self.id)
        if not blocking:  # recorded, not read by the diagnosis; quarantined batches not predicted
            dispersion = chosen.dispersion if chosen is not None else None
            results += self._sample_checks(frame, champion, checked.calendar, dispersion)
            self.evidence += self.quarantine.tolerated(alarms)
            self.drifted |= checked.drifted
            self.dataset_drift |= checked.moved
        self.alarms += [{**a.to_dict(), "batch": batch_id} for a in alarms]
        with self.p.store.session() as s:
            row = s.get(BatchRow, batch_id)
            s.merge(
                ProfileRow(
                    batch_id=batch_id,
                    profile=profile.to_dict(),
                    reference_version=champion.version if champion else None,
                )
            )
            _forget_interrupted_checks(s, batch_id, self.id)
            for r in results:
                s.add(_check_row(self.id, batch_id, r))
            n_alarms = sum(r.alarm for r in results)
            self.p.event(
                s,
                "check",
                f"batch {batch_id}: {len(results)} checks, {n_alarms} alarms",
                cycle_id=self.id,
                batch_id=batch_id,
                causes=sorted({a.cause for a in alarms}),
                diagnosis=diagnosis.to_dict(),
            )
            if found:
                row.note = set_aside(self.p, s, batch_id, found)
                self.p.event(
                    s,
                    "set_aside",
                    f"batch {batch_id}: {row.note}",
                    cycle_id=self.id,
                    batch_id=batch_id,
                    rows=found,
                )
            if blocking:
                row.status = "quarantined"
                row.note = "; ".join(f"{a.cause}: {a.message}" for a in blocking)
                self.p.event(
                    s,
                    "quarantine",
                    f"batch {batch_id} quarantined: {row.note}",
                    cycle_id=self.id,
                    batch_id=batch_id,
                )
        return not blocking

    def _joint(
        self, checked: _Checked, frame: pd.DataFrame, edges: dict, champion: Any
    ) -> _Checked:
        """``checked`` with its blocking bursts of far-out values that a correlated column shares
        on the same rows, and its unit changes of a column whose correlated columns drifted too,
        read as covariate drift (``retrainer.diagnosis.joint``; they need the champion's
        reference sample)."""
        bursts = [a for a in self._blocking(checked.alarms) if a.check == "out_of_range_burst"]
        units = [a for a in checked.alarms if a.check in UNIT_CHECKS]
        found = self.sample(champion) if bursts or units else None
        if found is None:
            return checked
        alarms = reread(checked.alarms, frame, edges, found[0].features, bursts)
        if alarms == checked.alarms:
            return checked
        return replace(checked, diagnosis=rank(alarms, checked.diagnosis.shift))

    def _blocking(self, alarms: list[Alarm]) -> list[Alarm]:
        return [a for a in alarms if a.blocking and a.cause in self.p.policy.block_on]

    def _checks(
        self, batch_id: int, frame: pd.DataFrame, schema: Any, chosen: Any, edges: dict
    ) -> _Checked:
        """A batch's profile (on the champion's reference ``edges``), quality and drift checks
        against the ``chosen`` reference (None: no champion's reference) and their diagnosis."""
        results: list[CheckResult] = []
        drifted, moved, calendar = set(), False, {}
        if chosen is not None:
            reference = chosen.profile
            profile = BatchProfile.from_frame(frame, schema, edges=edges)
            q, d = self.cfg.checks.quality, self.cfg.checks.drift
            since = batch_id - chosen.newest if chosen.newest else None
            data = self.cfg.data
            calendar = calendar_columns(frame, data.time_column, data.timezone, reference)
            results += check_quality(
                reference,
                profile,
                schema,
                **q.model_dump(),
                batches_since=since,
                calendar=calendar,
            )
            drift = check_drift(
                reference,
                profile,
                **d.options(),
                dispersion=chosen.dispersion,
                dispersion_df=chosen.dispersion_df,
                calendar=calendar,
            )
            verdict = annotate(
                dataset_drift(drift, share=d.share, batch_alpha=d.batch_alpha), chosen
            )
            results += [*drift, verdict]
            drifted = {r.column for r in drift if r.alarm and r.column}
            moved = verdict.alarm
        else:
            reference, profile = None, BatchProfile.from_frame(frame, schema)
        diagnosis = diagnose_in_cycle(self.p, batch_id, frame, results, reference, profile)
        return _Checked(results, profile, drifted, moved, diagnosis, calendar)

    # --------------------------------------------------------------------- predictions
    def _predict(self, batch_ids: list[int]) -> None:
        champion = self.p.champion
        if champion is None or not batch_ids:
            return
        roles = [("champion", champion.version)]
        if self.cfg.report.baseline == "first":
            roles.append(("baseline", 1))
        models = {v: self.p.load_model(v) for _, v in roles}
        id_col = self.cfg.data.id_column
        for batch_id in batch_ids:
            with self.p.store.session() as s:
                frame = self.frame(s.get(BatchRow, batch_id))
                done = {
                    (role, version)
                    for role, version in s.execute(
                        select(PredictionSetRow.role, PredictionSetRow.version).where(
                            PredictionSetRow.batch_id == batch_id
                        )
                    )
                }
            finite = finite_rows(frame)  # a row with +-inf (non_finite) gets no prediction
            X = frame.loc[finite, self.p.features(frame)]
            for role, version in roles:
                if (role, version) in done or X.empty:
                    continue  # predicted by an interrupted cycle, or no row a model takes
                pred, proba = predict(models[version], X)
                table = pd.DataFrame({"row": np.flatnonzero(finite), "prediction": pred.to_numpy()})
                if id_col:
                    table["id"] = frame[id_col].to_numpy()[finite]
                if isinstance(proba, pd.DataFrame):  # a multi-class model: a column per class
                    table = table.assign(**{f"score:{c}": proba[c].to_numpy() for c in proba})
                elif proba is not None:
                    table["score"] = proba.to_numpy()
                sha = self.p.artifacts.put_frame(table)
                with self.p.store.session() as s:
                    s.add(
                        PredictionSetRow(
                            batch_id=batch_id, version=version, role=role, artifact=sha
                        )
                    )

    # ----------------------------------------------------------------------- evaluation
    def _evaluate(self) -> None:
        """Score the predictions of batches whose labels arrived; feed the error stream."""
        metric = self.cfg.gate.metric
        detector = self._detector()
        with self.p.store.session() as s:
            rows = s.scalars(
                select(BatchRow)
                .where(BatchRow.n_labelled > 0, BatchRow.evaluated.is_(False))
                .order_by(BatchRow.id)
            ).all()
            sets = s.scalars(
                select(PredictionSetRow).where(PredictionSetRow.batch_id.in_([r.id for r in rows]))
            ).all()
        for row in rows:
            mine = [p for p in sets if p.batch_id == row.id]
            if not mine:
                continue
            frame = self.frame(row)
            y = frame[self.p.target].to_numpy()
            aside = np.zeros(len(frame), dtype=bool)
            aside[self.p.set_aside(row.id)] = True  # rows set aside are not evaluated on
            known = frame[self.p.target].notna().to_numpy() & ~aside
            for pset in mine:
                preds = self.p.artifacts.get_frame(pset.artifact)
                at = preds["row"].to_numpy()  # every row, or the rows a serving system sent
                scored = known[at]
                if not scored.any():
                    continue
                y_true, y_pred = y[at][scored], preds["prediction"].to_numpy()[scored]
                classes = model_classes(self.p.load_model(pset.version))
                y_score = _scores(preds, classes)
                y_score = None if y_score is None else y_score[scored]
                entry = {
                    "batch": row.id,
                    "version": pset.version,
                    "role": pset.role,
                    "metric": metric,
                    "value": score(metric, y_true, y_pred, y_score, classes),
                    "n": int(scored.sum()),
                    "errors": _errors(self.cfg.trainer.task, y_true, y_pred),
                    "data_time": _aware(row.data_time).isoformat() if row.data_time else None,
                }
                se = bootstrap_se(metric, y_true, y_pred, classes, y_score=y_score)
                if se is not None:  # f1, balanced accuracy, auc, r2: the trigger's test
                    entry["se"] = se
                self.evaluations.append(entry | _losses(metric, y_true, y_pred))
                if pset.role == "champion":
                    self._feed(detector, row.id, pset.version, y_true, y_pred)
            drift = self._target_checks(frame[self.p.target][~aside])
            shadow = self._shadow(row, frame, known)
            with self.p.store.session() as s:
                s.get(BatchRow, row.id).evaluated = True
                for r in drift:
                    s.add(_check_row(self.id, row.id, r))
                for e in [e for e in self.evaluations if e["batch"] == row.id] + shadow:
                    s.add(
                        CheckRow(
                            cycle_id=self.id,
                            batch_id=row.id,
                            kind="performance",
                            name=metric,
                            statistic=_num(e["value"]),
                            alarm=False,
                            detail=e,
                        )
                    )
                self.p.event(
                    s,
                    "evaluate",
                    f"batch {row.id} scored on {int(known.sum())} labels",
                    cycle_id=self.id,
                    batch_id=row.id,
                )
        relation = relation_alarms(self.p, self.evaluations, self.concept_drift)
        self.alarms += [{**a.to_dict(), "batch": None} for a in relation]
        self.evidence += relation  # labels' alarms decide too (no batch to quarantine)
        self.p.set_state("detector", detector.state_dict())

    def _shadow(self, row: BatchRow, frame: pd.DataFrame, known: np.ndarray) -> list[dict]:
        """A shadow candidate's score on a newly labelled batch (``policy.shadow``): fitted on
        the window before it, as a retrain's model is (:func:`retrainer.retrain.fit_shadow`),
        scored on its labelled rows not set aside, stored as the ``shadow`` role (no version):
        the fresh model's errors the cost trigger compares the champion with (a classifier's
        wrong predictions, a regressor's absolute or squared errors). A failed fit is logged and
        leaves no entry."""
        if not (self.cfg.policy.shadows and known.any()):
            return []
        metric = self.cfg.gate.metric
        try:
            model, features, window = fit_shadow(self.p, row.id)
            y_true = frame[self.p.target].to_numpy()[known]
            y_pred, y_score = predict(model, frame[features][known])
            value = score(metric, y_true, y_pred, y_score, model_classes(model))
        except Exception as exc:  # a shadow is advice: the cycle goes on without it
            with self.p.store.session() as s:
                self.p.event(
                    s,
                    "shadow",
                    f"batch {row.id}: no shadow candidate ({type(exc).__name__}: {exc})",
                    cycle_id=self.id,
                    batch_id=row.id,
                )
            return []
        return [
            {
                "batch": row.id,
                "version": None,
                "role": "shadow",
                "metric": metric,
                "value": value,
                "n": int(known.sum()),
                "errors": _errors(self.cfg.trainer.task, y_true, y_pred),
                "data_time": _aware(row.data_time).isoformat() if row.data_time else None,
                "window": {"batches": _span(window["batches"]), "rows": window["rows"]},
            }
            | _losses(metric, y_true, y_pred)
        ]

    def _target_checks(self, labels: pd.Series) -> list[CheckResult]:
        """Target drift of a batch's labels against the champion's reference sample."""
        found = self.sample(self.p.champion)
        if found is None or not self.cfg.checks.sample.target:
            return []
        d = self.cfg.checks.drift
        return target_drift(found[0], labels, alpha=d.alpha, min_rows=d.min_rows, min_psi=d.min_psi)

    # ------------------------------------------------------------------- concept drift
    def _detector(self) -> DriftDetector:
        """The champion's error-stream detector: its saved state, or a fresh one with the
        configured parameters (with the threshold calibrated for the champion, if it was)."""
        concept = self.cfg.checks.concept
        state = self.p.get_state("detector") or {}
        if state.get("detector") == concept.detector:
            return detector_from_state(state)
        champion = self.p.champion
        calibrated = (champion.metrics.get("concept") or {}) if champion else {}
        if calibrated.get("detector") == concept.detector:
            detector = DETECTORS[concept.detector](**calibrated["params"])
        else:
            detector = DETECTORS[concept.detector](**concept.params)
        return self._primed(detector, champion)

    def _primed(self, detector: DriftDetector, champion: Any) -> DriftDetector:
        """A fresh detector that has read the champion's held-out error stream (its reference
        sample: the gate copy's predictions on rows neither model trained on), so that it
        starts from the champion's measured error rate rather than from its first live rows:
        a detector reset at every promotion otherwise spends its life in its warm-up, where a
        few lucky rows set a low minimum and false alarms gather. Drift signalled while priming
        is not reported (the detector resets itself and reads the rest)."""
        found = self.sample(champion)
        if found is None:
            return detector
        sample = found[0]
        concept = self.cfg.checks.concept
        stream = error_stream(
            self.cfg.trainer.task, concept.loss, sample.labels, sample.predictions
        )
        detector.update_many(stream)  # a drift inside it resets the detector, which reads on
        return detector

    def _feed(
        self, detector: DriftDetector, batch_id: int, version: int, y_true: Any, y_pred: Any
    ) -> None:
        """Feed a batch of the champion's error stream to the detector; record a concept check."""
        concept = self.cfg.checks.concept
        stream = error_stream(self.cfg.trainer.task, concept.loss, y_true, y_pred)
        start, skipped = detector.n_seen, detector.n_nonfinite
        hits = detector.update_many(stream)
        drift = bool(len(hits))
        self.concept_drift |= drift
        name = type(detector).__name__
        warning = bool(getattr(detector, "warning_detected", False))
        what = "error" if self.cfg.trainer.task == "classification" else f"{concept.loss} error"
        finite = stream[np.isfinite(stream)]
        mean = float(finite.mean()) if finite.size else None
        if drift:
            message = f"{name} signalled drift at value {start + int(hits[0])} of the {what} stream"
        else:
            zone = "warning zone" if warning else "no drift"
            message = f"{name}: {zone} after {detector.n_seen} values of the {what} stream"
        detail = {
            "message": message,
            "status": "ok",
            "version": version,
            "stream": what,
            "positions": (start + hits).tolist(),
            "batch_positions": hits.tolist(),
            "warning": warning,
            "n_seen": detector.n_seen,
            "n_nonfinite": detector.n_nonfinite - skipped,
        }
        with self.p.store.session() as s:
            s.add(
                CheckRow(
                    cycle_id=self.id,
                    batch_id=batch_id,
                    kind="concept",
                    name=name,
                    statistic=_num(mean),
                    alarm=drift,
                    severity="warning" if drift else "info",
                    detail=detail,
                )
            )

    # -------------------------------------------------------------------- estimation
    def _estimate(self, batch_ids: list[int]) -> None:
        """Estimate the champion's metric on new unlabelled batches (CBPE or DLE)."""
        champion = self.p.champion
        spec = champion.metrics.get("estimator") if champion else None
        if champion and not spec and champion.metrics.get("no_estimate"):
            self._no_estimate(batch_ids, champion)
        if not spec or not batch_ids:
            return
        estimator = load_estimator(spec, self.p.artifacts)
        model = self.p.load_model(champion.version)
        for batch_id in batch_ids:
            with self.p.store.session() as s:
                row = s.get(BatchRow, batch_id)
                frame, data_time = self.frame(row), row.data_time
            frame = self.p.without_set_aside(frame, batch_id)  # set-aside rows: not estimated on
            frame = frame[finite_rows(frame)]  # a row with +-inf gets no prediction (as scored)
            estimate = estimator.estimate_model(model, frame[self.p.features(frame)])
            entry = {
                "batch": batch_id,
                "version": champion.version,
                "role": "estimated",
                "data_time": _aware(data_time).isoformat() if data_time else None,
                **estimate.to_dict(),
            }
            self.estimates.append(entry)
            with self.p.store.session() as s:
                s.add(_estimated(self.id, batch_id, estimate.metric, _num(estimate.value), entry))

    def _no_estimate(self, batch_ids: list[int], champion: Any) -> None:
        """A check per batch saying why the champion gives no label-free estimate."""
        note = champion.metrics["no_estimate"]
        with self.p.store.session() as s:
            for batch_id in batch_ids:
                detail = {
                    "batch": batch_id,
                    "version": champion.version,
                    "role": "estimated",
                    "metric": self.cfg.gate.metric,
                    "value": None,
                    "n": int(s.get(BatchRow, batch_id).n_rows),
                    "note": note,
                }
                s.add(_estimated(self.id, batch_id, self.cfg.gate.metric, None, detail))

    def _history(self) -> dict:
        """Recent retraining runs, the reasons of recent retrain decisions and the last
        promotion, in clock time (for the policy's dedup, budget and quiet period)."""
        with self.p.store.session() as s:
            runs = s.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(500)).all()
            retrains = s.scalars(
                select(DecisionRow)
                .where(DecisionRow.action == "retrain")
                .order_by(DecisionRow.id.desc())
                .limit(500)
            ).all()
            clocks = [
                (datetime.fromisoformat(r.window["clock"]), bool((r.metrics or {}).get("promoted")))
                for r in runs
                if r.status != "skipped" and (r.window or {}).get("clock")
            ]
            reasons = tuple((_aware(d.at), reason) for d in retrains for reason in d.reasons)
        return {
            "recent_retrains": tuple(when for when, _ in clocks),
            "recent_reasons": reasons,
            "last_deploy": max((when for when, promoted in clocks if promoted), default=None),
        }

    # ------------------------------------------------------------------------- decision
    def _decide(self, has_champion: bool) -> tuple[Any, int]:
        champion = self.p.champion
        manual = self.p.get_state("manual") or {}
        mine = [e for e in self.evaluations if e["role"] == "champion"]
        performance, total = None, sum(e["n"] for e in mine)
        if mine:
            performance = sum(e["value"] * e["n"] for e in mine) / total
        reference = champion.metrics.get("holdout") if champion else None
        reference_rows = int(champion.metrics.get("n_holdout") or 0) if champion else 0
        last, since = self._last_retrain()
        evidence = Evidence(
            now=self.clock(),
            last_retrain=last,
            new_labelled_rows=self._labelled_since(since),
            alarms=tuple(self.evidence),
            drifted_columns=tuple(sorted(self.drifted)),
            dataset_drift=self.dataset_drift,
            concept_drift=self.concept_drift,
            metric=self.cfg.gate.metric,
            performance=performance,
            reference_performance=reference,
            performance_rows=total,
            reference_rows=reference_rows,
            performance_spread=_spread(mine),
            reference_spread=float(
                (champion.metrics if champion else {}).get("holdout_spread") or 0
            ),
            performance_se=_weighted_error(mine, "se"),
            reference_se=float((champion.metrics if champion else {}).get("holdout_se") or 0),
            manual=manual.get("reason"),
            has_champion=has_champion,
            estimated_performance=_weighted(self.estimates),
            estimated_spread=_weighted_error(self.estimates),
            serving=self._serving(champion),
            **self._history(),
        )
        decision = self.p.policy.decide(evidence)
        with self.p.store.session() as s:
            row = DecisionRow(
                cycle_id=self.id,
                at=evidence.now,
                action=decision.action,
                reasons=list(decision.reasons),
                suppressed=list(decision.suppressed),
            )
            s.add(row)
            s.flush()
            why = "; ".join(decision.reasons) or "no trigger fired"
            self.p.event(
                s, "decision", f"{decision.action}: {why}", cycle_id=self.id, **decision.to_dict()
            )
            if manual:
                self.p.set_state("manual", {}, s)
            return decision, row.id

    def _serving(self, champion: Any) -> Any:
        """The record as a score matrix, for a cost trigger (retrainer.schedule.live)."""
        if not self.cfg.policy.cost:
            return None
        from retrainer.schedule.live import store_view

        regressor = self.cfg.trainer.task == "regression"
        return store_view(
            self.p.store,
            champion=champion and champion.version,
            horizon=52,
            metric=self.cfg.gate.metric if regressor else "",
        )

    def _last_retrain(self) -> tuple[datetime | None, int]:
        """Clock time of the last run that produced a version, and the last batch it used."""
        with self.p.store.session() as s:
            run = s.scalars(
                select(RunRow)
                .where(RunRow.version.is_not(None))
                .order_by(RunRow.id.desc())
                .limit(1)
            ).first()
        if run is None:
            return None, 0
        return datetime.fromisoformat(run.window["clock"]), int(run.window.get("last_batch", 0))

    def _labelled_since(self, batch_id: int) -> int:
        with self.p.store.session() as s:
            total = s.scalar(
                select(func.sum(BatchRow.n_labelled)).where(
                    BatchRow.id > batch_id, BatchRow.status != "quarantined"
                )
            )
        return int(total or 0)


def _with_far_checks(
    rest: list[CheckResult], whole: list[CheckResult], found: dict[str, list[int]]
) -> list[CheckResult]:
    """The checks of a batch's rest, with the whole batch's out-of-range check of each column
    whose far-out rows were set aside (their positions in its detail)."""
    far = {
        r.column: replace(r, detail={**r.detail, "set_aside": found[r.column]})
        for r in whole
        if r.name == "out_of_range" and r.column in found
    }
    return [far.get(r.column, r) if r.name == "out_of_range" else r for r in rest]


def _estimated(
    cycle_id: int, batch_id: int, metric: str, value: float | None, detail: dict
) -> CheckRow:
    """A batch's label-free estimate as a check (``value`` None: none, ``detail`` says why)."""
    return CheckRow(
        cycle_id=cycle_id,
        batch_id=batch_id,
        kind="performance",
        name=f"{metric}_estimated",
        statistic=value,
        alarm=False,
        detail=detail,
    )


def _span(batches: list[int]) -> list[int]:
    """First, last and how many batch ids (as a gate records the champion's window)."""
    return [min(batches), max(batches), len(batches)]


def _losses(metric: str, y_true: Any, y_pred: Any) -> dict:
    """A regressor's row losses (absolute for mae, squared for rmse) as their mean and mean
    square: the batch's error sum for the cost trigger, their spread over batches for the
    performance trigger; empty for other metrics.

    >>> _losses("mae", [1.0, 2.0], [2.0, 5.0]), _losses("accuracy", [1], [1])
    ({'loss': 2.0, 'loss_squares': 5.0}, {})
    """
    losses = row_losses(metric, y_true, y_pred)
    if losses is None:
        return {}
    return {"loss": float(losses.mean()), "loss_squares": float((losses**2).mean())}


def _errors(task: str, y_true: Any, y_pred: Any) -> int | None:
    """Wrong predictions of a classifier (the sequential relation test's input), else None."""
    if task != "classification":
        return None
    return int(np.sum(np.asarray(y_true) != np.asarray(y_pred)))


def _scores(preds: pd.DataFrame, classes: list | None) -> np.ndarray | None:
    """A prediction set's scores: the positive class's, or one column per class of a
    multi-class model (in the order of ``classes``); None when not stored.

    >>> preds = pd.DataFrame({"prediction": ["b"], "score:a": [0.2], "score:b": [0.7],
    ...                       "score:c": [0.1]})
    >>> _scores(preds, ["a", "b", "c"]).tolist(), _scores(preds[["prediction"]], None)
    ([[0.2, 0.7, 0.1]], None)
    """
    columns = [f"score:{c}" for c in classes or []]
    if len(columns) > 2 and all(c in preds for c in columns):
        return preds[columns].to_numpy(dtype=float)
    return preds["score"].to_numpy() if "score" in preds else None


def _spread(entries: list[dict]) -> float:
    """The standard deviation of the rows' losses over all ``entries`` (0 when an entry has
    none: not a loss, or scored before losses were kept).

    >>> rows = [1.0, 1.0, 3.0, 3.0]  # two batches of two rows
    >>> entries = [{"n": 2, "loss": 1.0, "loss_squares": 1.0},
    ...            {"n": 2, "loss": 3.0, "loss_squares": 9.0}]
    >>> round(_spread(entries), 6) == round(float(np.std(rows, ddof=1)), 6)
    True
    """
    total = sum(e["n"] for e in entries)
    if total < 2 or any("loss" not in e for e in entries):
        return 0.0
    mean = sum(e["n"] * e["loss"] for e in entries) / total
    squares = sum(e["n"] * e["loss_squares"] for e in entries) / total
    return math.sqrt(max(squares - mean**2, 0.0) * total / (total - 1))


def _weighted_error(entries: list[dict], key: str = "sd") -> float:
    """The standard error of the row-weighted mean of the entries' values (independent
    batches, each with its standard error under ``key``); 0 when one has none.

    >>> round(_weighted_error([{"n": 30, "sd": 0.1}, {"n": 30, "sd": 0.1}]), 4)  # two batches
    0.0707
    """
    total = sum(e["n"] for e in entries)
    if not total or any(not e.get(key) for e in entries):
        return 0.0
    return math.sqrt(sum((e["n"] * e[key]) ** 2 for e in entries)) / total


def _weighted(entries: list[dict]) -> float | None:
    """Row-weighted mean of the entries' values (None without any)."""
    total = sum(e["n"] for e in entries)
    return sum(e["value"] * e["n"] for e in entries) / total if total else None


def _forget_interrupted_checks(s: Session, batch_id: int, cycle_id: int) -> None:
    """Drop the checks and the check event an interrupted cycle recorded for a batch that is
    still new (a cycle that ends moves its batches on): checked again now, they would count
    its alarms twice."""
    s.execute(delete(CheckRow).where(CheckRow.batch_id == batch_id, CheckRow.cycle_id != cycle_id))
    s.execute(
        delete(EventRow).where(
            EventRow.batch_id == batch_id, EventRow.kind == "check", EventRow.cycle_id != cycle_id
        )
    )


def _check_row(cycle_id: int, batch_id: int, r: CheckResult) -> CheckRow:
    return CheckRow(
        cycle_id=cycle_id,
        batch_id=batch_id,
        kind=r.kind,
        name=r.name,
        column=r.column,
        statistic=_num(r.statistic),
        p_value=_num(r.p_value),
        threshold=_num(r.threshold),
        alarm=r.alarm,
        severity=r.severity,
        detail={"message": r.message, "status": r.status, **r.detail},
    )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for aware columns: they were stored as UTC."""
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def finite_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` hold no value beyond float32's range (+-inf included) in a
    numeric column: scikit-learn's trees read features as float32 and refuse such rows.

    >>> frame = pd.DataFrame({"x": [1.0, -np.inf, np.nan, 1e300], "c": ["a", "b", "c", "d"]})
    >>> finite_rows(frame).tolist()
    [True, False, True, False]
    """
    numeric = frame.select_dtypes("number")
    if numeric.empty:
        return np.ones(len(frame), dtype=bool)
    with np.errstate(invalid="ignore"):
        values = numeric.to_numpy(dtype="float64", na_value=np.nan)
        beyond = np.abs(values) > np.finfo(np.float32).max
    return ~beyond.any(axis=1)
