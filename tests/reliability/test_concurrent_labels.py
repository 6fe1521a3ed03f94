"""Concurrent label ingests lose no label and never fail on a shared key (issue 18, items 1-2).

Processes released together by a barrier ingest late labels through ``Project.ingest_labels``
into one store (SQLite with the shipped defaults, or PostgreSQL when configured):

- four processes, each a disjoint quarter of one batch's labels: the batch ends fully labelled;
- a batch and its labels at the same moment: the labels are joined whichever commits first;
- four processes, the same labels file: one stores it, three find it stored, none fails.

Each race is run ``ROUNDS`` times on fresh batches of one store (the unguarded code lost labels
in most rounds of the first two and failed with an IntegrityError in the third).
"""

import multiprocessing

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from retrainer.project import Project
from retrainer.store.tables import BatchRow, EventRow, LabelSetRow
from tests.conftest import project_settings, store_url

ROUNDS = 6
WRITERS = 4
ROWS = 336  # one ELEC2 week of half-hours, as in the report
TIMEOUT_S = 300


def _settings(url: str) -> dict:
    settings = project_settings()
    settings["store"] = {"url": url, "artifacts": "artifacts"}
    return settings


def batch(round_: int) -> pd.DataFrame:
    """An unlabelled batch of round ``round_``, ids unique across rounds, and its labels."""
    rng = np.random.default_rng(round_)
    ids = np.arange(round_ * ROWS, (round_ + 1) * ROWS, dtype="int64")
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=round_)
    return pd.DataFrame(
        {
            "id": ids,
            "timestamp": pd.date_range(start, periods=ROWS, freq="30min"),
            "x": rng.normal(size=ROWS),
            "target": rng.integers(0, 2, size=ROWS),
        }
    )


def _worker(root: str, url: str, job, barrier, results) -> None:
    """Run ``job`` (kind, payload, key) once the barrier opens; report the outcome."""
    try:
        project = Project.from_dict(_settings(url), root=root)
        kind, frame, key = job
        barrier.wait(timeout=TIMEOUT_S)
        if kind == "batch":
            project.ingest(frame, key=key)
            results.put((key, "ok", None))
        else:
            report = project.ingest_labels(frame, key=key)
            results.put((key, "new" if report.new else "known", None))
        project.store.dispose()
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put((job[2], "error", f"{type(exc).__name__}: {exc}"))


def race(root, url: str, jobs: list) -> list:
    """Start one process per job, release them together, return their outcomes."""
    context = multiprocessing.get_context("fork")  # the parent has imported everything
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(str(root), url, job, barrier, results))
        for job in jobs
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in processes]
    for process in processes:
        process.join(timeout=TIMEOUT_S)
    assert [p.exitcode for p in processes] == [0] * len(jobs)
    return outcomes


def stored_labels(project, key: str) -> pd.Series:
    """The labels a stored batch holds now, by id."""
    with project.store.session() as s:
        row = s.scalar(select(BatchRow).where(BatchRow.key == key))
        frame = project.batch_frame(row)
    labels = frame.set_index("id").reindex(columns=["target"])["target"]  # none joined: no column
    assert row.n_labelled == int(labels.notna().sum())
    return labels


def open_project(tmp_path):
    url = store_url(tmp_path)
    project = Project.from_dict(_settings(url), root=tmp_path)
    project.ingest(batch(99), key="first")  # the schema and label kind exist before the races
    return project, url


def test_four_processes_join_disjoint_quarters_of_one_batch(tmp_path):
    project, url = open_project(tmp_path)
    for r in range(ROUNDS):
        frame = batch(r)
        project.ingest(frame.drop(columns="target"), key=f"batch-{r}")
        labels = frame[["id", "target"]]
        quarters = np.array_split(np.arange(ROWS), WRITERS)
        jobs = [("labels", labels.iloc[q], f"labels-{r}-{i}") for i, q in enumerate(quarters)]
        outcomes = race(tmp_path, url, jobs)
        assert [error for _, _, error in outcomes] == [None] * WRITERS
        got = stored_labels(project, f"batch-{r}")
        assert got.notna().sum() == ROWS, f"round {r}: {got.notna().sum()} of {ROWS} labels kept"
        assert (got.astype(int) == frame.set_index("id")["target"]).all()


def test_a_batch_and_its_labels_at_the_same_moment(tmp_path):
    project, url = open_project(tmp_path)
    for r in range(ROUNDS):
        frame = batch(r)
        jobs = [
            ("batch", frame.drop(columns="target"), f"batch-{r}"),
            ("labels", frame[["id", "target"]], f"labels-{r}"),
        ]
        outcomes = race(tmp_path, url, jobs)
        assert [error for _, _, error in outcomes] == [None, None]
        got = stored_labels(project, f"batch-{r}")
        assert got.notna().sum() == ROWS, f"round {r}: {got.notna().sum()} of {ROWS} labels kept"


def test_four_processes_ingest_the_same_labels(tmp_path):
    project, url = open_project(tmp_path)
    for r in range(ROUNDS):
        frame = batch(r)
        project.ingest(frame.drop(columns="target"), key=f"batch-{r}")
        jobs = [("labels", frame[["id", "target"]], f"labels-{r}")] * WRITERS
        outcomes = race(tmp_path, url, jobs)
        assert [error for _, _, error in outcomes] == [None] * WRITERS
        assert sorted(status for _, status, _ in outcomes) == ["known"] * 3 + ["new"]
        assert stored_labels(project, f"batch-{r}").notna().sum() == ROWS
    with project.store.session() as s:
        assert s.scalar(select(func.count()).select_from(LabelSetRow)) == ROUNDS
        assert s.scalar(select(func.count()).where(EventRow.kind == "labels")) == ROUNDS
