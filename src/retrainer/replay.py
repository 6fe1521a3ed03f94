"""Replay a time-ordered data set through the live loop, as a stream of batches with late labels.

Each period (a week, say) arrives as a batch of features; its labels arrive one period later.
The first ``history`` periods arrive labelled and train the first model. The loop is the real one
(ingest, cycle, store): only the clock is the data's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from retrainer import views
from retrainer.data.periods import split_periods
from retrainer.errors import DataError

if TYPE_CHECKING:
    from retrainer.project import Project


@dataclass(frozen=True)
class ReplaySummary:
    """The outcome of a replay: what happened and how the two models fared."""

    batches: int
    rows_scored: int
    metric: str
    continuously_trained: float | None
    never_retrained: float | None
    previous_label: float | None
    retrains: int
    promotions: int
    rejected: int
    decisions: dict[str, int]
    alarms: dict[str, int]
    reasons: dict[str, int]
    seconds: float
    report: str | None = None
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def replay(
    project: Project,
    frame: pd.DataFrame,
    *,
    period: str = "7D",
    history: int = 4,
    label_delay: int = 1,
    on_step: Callable[[int, int], None] | None = None,
    report: Path | None = None,
) -> ReplaySummary:
    """Replay ``frame`` through ``project``'s loop and summarise the outcome."""
    d = project.config.data
    if not d.time_column or not d.id_column:
        raise DataError("replay needs data.time_column and data.id_column in the project file")
    started = time.perf_counter()
    periods = split_periods(frame, d.time_column, period)
    if len(periods) <= history:
        raise DataError(f"replay: {len(periods)} periods of {period}; need more than {history}")
    stream = periods[history:]
    total = len(stream) + 1
    project.ingest(pd.concat(periods[:history]), key="history", source="replay history")
    project.cycle()
    features_only = [c for c in frame.columns if c != d.target]
    for step, chunk in enumerate(stream):
        if on_step:
            on_step(step, total)
        late = step - label_delay
        if late >= 0:
            project.ingest_labels(stream[late][[d.id_column, d.target]], key=f"labels-{late:05d}")
        project.ingest(chunk[features_only], key=f"batch-{step:05d}", source="replay")
        project.cycle()
    for late in range(max(0, len(stream) - label_delay), len(stream)):
        project.ingest_labels(stream[late][[d.id_column, d.target]], key=f"labels-{late:05d}")
    project.cycle()
    if on_step:
        on_step(total, total)
    scored = pd.concat(stream)
    y = scored[d.target].to_numpy()
    naive = (
        float(np.mean(y[1:] == y[:-1])) if project.config.trainer.task == "classification" else None
    )
    path = project.report(report) if report else None
    return summarise(
        project, len(periods) - history + 1, len(scored), naive, time.perf_counter() - started, path
    )


def summarise(
    project: Project,
    batches: int,
    rows: int,
    naive: float | None,
    seconds: float,
    report: Path | None,
) -> ReplaySummary:
    """Collect the replay's numbers from the store."""
    perf = views.performance(project)
    both = views.scored_by_both(perf)  # the two models compared on the same batches
    promos = views.promotions(project)
    decisions = views.decisions(project)
    reasons: Counter[str] = Counter()
    for triggers in decisions.loc[decisions["action"] == "retrain", "triggers"]:
        reasons.update(triggers)
    examples = [
        views.shorten(f"{a}: {r}")
        for a, r in decisions.loc[decisions["action"] != "hold", ["action", "reasons"]]
        .head(6)
        .values
    ]
    return ReplaySummary(
        batches=batches,
        rows_scored=rows,
        metric=project.config.gate.metric,
        continuously_trained=views.overall(perf, "champion", both),
        never_retrained=views.overall(perf, "baseline", both),
        previous_label=naive,
        retrains=len(promos),
        promotions=int(promos["promoted"].sum()),
        rejected=int((~promos["promoted"]).sum()),
        decisions=dict(Counter(decisions["action"])),
        alarms=views.alarm_causes(project),
        reasons=dict(reasons),
        seconds=round(seconds, 1),
        report=str(report) if report else None,
        examples=examples,
    )
