"""R4: concurrent batch ingests lose no rows and never surface "database is locked".

Writer processes, released together by a barrier, each ingest their own batches through
``Project.ingest`` into one store with the shipped defaults (SQLite: WAL, 30 s busy timeout;
or PostgreSQL when configured). Every batch carries an id (its key) and a checksum of its
rows. Afterwards the store holds every batch exactly once, the stored rows add up, each stored
file hashes back to its batch's checksum, and no client saw an error. The p99 ingest latency
is printed (``-s``); it is reported, not asserted.

The CI size is 16 processes x 20 batches of 100 rows; ``-m slow`` runs the full
16 x 625 (10,000 batches, 1,000,000 rows).
"""

import hashlib
import multiprocessing
import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from retrainer.project import Project
from retrainer.store.tables import BatchRow, EventRow
from tests.conftest import integrity_ok, project_settings, store_url

PROCESSES = 16
ROWS = 100
TIMEOUT_S = 3600


def batch(process: int, index: int) -> pd.DataFrame:
    """Batch ``index`` of writer ``process``: 100 rows with globally unique ids."""
    rng = np.random.default_rng([process, index])
    first = (process * 1_000_000 + index) * ROWS
    minutes = (index * PROCESSES + process) * ROWS  # batches interleave in time
    start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=minutes)
    return pd.DataFrame(
        {
            "id": np.arange(first, first + ROWS, dtype="int64"),
            "timestamp": pd.date_range(start, periods=ROWS, freq="min"),
            "x": rng.normal(size=ROWS),
            "z": rng.integers(0, 1000, size=ROWS),
            "c": rng.choice(["a", "b", "c"], size=ROWS),
            "target": rng.integers(0, 2, size=ROWS),
        }
    )


def checksum(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows' values, column by column, independent of the Parquet bytes and of
    the dtype the schema gives a column (the integer column ``z`` is stored as a number)."""
    digest = hashlib.sha256()
    for name in ("id", "timestamp", "x", "z", "c", "target"):
        values = frame[name]
        if name == "timestamp":
            values = values.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")
        elif pd.api.types.is_numeric_dtype(values):
            values = values.astype("float64")
        digest.update(name.encode())
        digest.update(np.asarray(values.astype(str), dtype="U").tobytes())
    return digest.hexdigest()


def _settings(root: str, url: str) -> dict:
    settings = project_settings()
    settings["store"] = {"url": url, "artifacts": "artifacts"}
    return settings


def _writer(root: str, url: str, process: int, batches: int, barrier, results) -> None:
    sent, latencies, errors = {}, [], []
    try:
        project = Project.from_dict(_settings(root, url), root=root)
        frames = [batch(process, i) for i in range(batches)]
        barrier.wait(timeout=TIMEOUT_S)
        for i, frame in enumerate(frames):
            key = f"p{process:02d}-b{i:04d}"
            start = time.perf_counter()
            try:
                project.ingest(frame, key=key, source=f"writer {process}")
                sent[key] = checksum(frame)
            except Exception as exc:  # noqa: BLE001  (every error a client sees is counted)
                errors.append(f"{key}: {type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - start)
        project.store.dispose()
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        errors.append(f"writer {process}: {type(exc).__name__}: {exc}")
    results.put((sent, latencies, errors))


def ingest_concurrently(root, url: str, batches: int) -> dict:
    """Run the writers; return what they sent, their latencies and errors, and the wall time."""
    Project.from_dict(_settings(str(root), url), root=root).store.dispose()  # migrate first
    context = multiprocessing.get_context("fork")  # the parent has imported everything
    barrier = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(str(root), url, p, batches, barrier, results))
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=TIMEOUT_S)
    start = time.perf_counter()
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in processes]
    wall = time.perf_counter() - start
    for process in processes:
        process.join(timeout=TIMEOUT_S)
    sent = {key: sha for s, _, _ in outcomes for key, sha in s.items()}
    latencies = np.array([x for _, lat, _ in outcomes for x in lat])
    errors = [e for _, _, err in outcomes for e in err]
    return {"sent": sent, "latencies": latencies, "errors": errors, "wall": wall}


def check_stored(root, url: str, run: dict, batches: int) -> None:
    n_batches = PROCESSES * batches
    assert run["errors"] == []  # no "database is locked" (or anything else) reached a client
    assert len(run["sent"]) == n_batches
    project = Project.from_dict(_settings(str(root), url), root=root)
    with project.store.session() as s:
        assert integrity_ok(s)
        rows = s.execute(select(BatchRow.key, BatchRow.n_rows, BatchRow.artifact)).all()
        ingests = s.scalar(select(func.count()).where(EventRow.kind == "ingest"))
    assert len(rows) == n_batches and ingests == n_batches
    assert {key for key, _, _ in rows} == set(run["sent"])
    assert sum(n for _, n, _ in rows) == n_batches * ROWS
    stored_rows = 0
    for key, _, artifact in rows:
        frame = project.artifacts.get_frame(artifact)
        stored_rows += len(frame)
        assert checksum(frame) == run["sent"][key], key
    assert stored_rows == n_batches * ROWS
    project.store.dispose()
    lat = run["latencies"] * 1000
    print(
        f"\nR4 {project.store.engine.dialect.name}: {PROCESSES} processes x {batches} batches "
        f"x {ROWS} rows = {stored_rows:,} rows in {run['wall']:.1f} s "
        f"({stored_rows / run['wall']:,.0f} rows/s); ingest latency ms: "
        f"p50 {np.percentile(lat, 50):.1f}, p99 {np.percentile(lat, 99):.1f}, "
        f"max {lat.max():.1f}"
    )


def test_the_checksum_sees_a_changed_value():
    frame = batch(0, 0)
    changed = frame.copy()
    changed.loc[57, "x"] = np.nextafter(changed.loc[57, "x"], 2.0)
    assert checksum(frame) == checksum(frame.copy())
    assert checksum(changed) != checksum(frame)
    assert checksum(batch(0, 1)) != checksum(frame)


def test_16_processes_ingest_concurrently_without_loss(tmp_path):
    url = store_url(tmp_path)
    run = ingest_concurrently(tmp_path, url, batches=20)
    check_stored(tmp_path, url, run, batches=20)


@pytest.mark.slow
def test_10k_batches_1m_rows_ingest_concurrently_without_loss(tmp_path):
    url = store_url(tmp_path)
    run = ingest_concurrently(tmp_path, url, batches=625)
    check_stored(tmp_path, url, run, batches=625)
