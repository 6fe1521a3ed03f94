"""R3: concurrent registration gets versions 1..N with no gaps and no errors (SQLite file, WAL).

Writers are held at a barrier; in the forced variant each one waits *after* reading
``max(version)``, so all of them read the same number and all but one must collide and retry
(the retry path is proven to run: total attempts >= 2N - 1).
"""

import multiprocessing
import threading
from collections import Counter
from pathlib import Path

from sklearn.dummy import DummyClassifier
from sqlalchemy import select

from retrainer.artifacts import ArtifactStore
from retrainer.registry import Registry
from retrainer.store.db import Store
from retrainer.store.tables import AliasHistoryRow, EventRow
from tests.conftest import store_url

BARRIER_TIMEOUT_S = 120


class _CollidingRegistry(Registry):
    """Waits at ``barrier`` once, right after its first read of ``max(version)``."""

    def __init__(self, store, artifacts, barrier):
        super().__init__(store, artifacts)
        self.barrier = barrier
        self.local = threading.local()

    def _next_version(self) -> int:
        version = super()._next_version()
        if not getattr(self.local, "waited", False):
            self.local.waited = True
            self.barrier.wait(timeout=BARRIER_TIMEOUT_S)
        return version


def _model(label: int) -> DummyClassifier:
    return DummyClassifier(strategy="constant", constant=label).fit([[0], [1]], [label, -1])


def _open(tmp_path: Path) -> tuple[Store, ArtifactStore]:
    return Store(store_url(tmp_path)), ArtifactStore(tmp_path / "artifacts")


def _run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001  (collected and asserted empty)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BARRIER_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def _check_versions(registry: Registry, n: int, got: dict[int, int]) -> int:
    """Versions are exactly 1..n, each writer's version loads its own model; returns attempts."""
    assert sorted(got.values()) == list(range(1, n + 1))
    assert [mv.version for mv in registry.versions()] == list(range(1, n + 1))
    for label, version in got.items():
        assert registry.get(version).lineage["writer"] == label
        assert registry.load(version).predict([[0]]).tolist() == [label]
    with registry.store.session() as session:
        events = list(session.scalars(select(EventRow).where(EventRow.kind == "register")))
    assert sorted(e.data["version"] for e in events) == list(range(1, n + 1))
    assert registry.verify() == []
    return sum(e.data["attempts"] for e in events)


def test_16_threads_at_a_barrier_get_versions_1_to_16(tmp_path):
    n = 16
    store, artifacts = _open(tmp_path)
    registry = Registry(store, artifacts)
    barrier = threading.Barrier(n)
    got: dict[int, int] = {}

    def register(i: int) -> None:
        model = _model(i)
        barrier.wait(timeout=BARRIER_TIMEOUT_S)
        got[i] = registry.register(model, lineage={"writer": i}, metrics={}).version

    assert _run_threads(n, register) == []
    _check_versions(registry, n, got)
    store.dispose()


def test_forced_collisions_are_retried_threads(tmp_path):
    n = 16
    store, artifacts = _open(tmp_path)
    registry = _CollidingRegistry(store, artifacts, threading.Barrier(n))
    got: dict[int, int] = {}

    def register(i: int) -> None:
        got[i] = registry.register(_model(i), lineage={"writer": i}, metrics={}).version

    assert _run_threads(n, register) == []
    assert _check_versions(registry, n, got) >= 2 * n - 1
    store.dispose()


def _process_writer(root: str, label: int, barrier, results) -> None:
    store, artifacts = _open(Path(root))
    registry = _CollidingRegistry(store, artifacts, barrier)
    try:
        mv = registry.register(_model(label), lineage={"writer": label}, metrics={})
        results.put((label, mv.version, None))
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put((label, None, repr(exc)))
    finally:
        store.dispose()


def test_4_processes_with_forced_collisions_get_versions_1_to_4(tmp_path):
    n = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(n)
    results = context.Queue()
    _open(tmp_path)[0].dispose()  # create the tables once, before the race
    processes = [
        context.Process(target=_process_writer, args=(str(tmp_path), i, barrier, results))
        for i in range(n)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=BARRIER_TIMEOUT_S) for _ in range(n)]
    for process in processes:
        process.join(timeout=BARRIER_TIMEOUT_S)
    assert [process.exitcode for process in processes] == [0] * n
    assert [error for _, _, error in outcomes] == [None] * n
    store, artifacts = _open(tmp_path)
    got = {label: version for label, version, _ in outcomes}
    assert _check_versions(Registry(store, artifacts), n, got) >= 2 * n - 1
    store.dispose()


def test_concurrent_promotions_keep_an_exact_history_chain(tmp_path):
    n = 8
    store, artifacts = _open(tmp_path)
    registry = Registry(store, artifacts)
    for i in range(n):
        registry.register(_model(i), lineage={"writer": i}, metrics={})
    barrier = threading.Barrier(n)

    def promote(i: int) -> None:
        barrier.wait(timeout=BARRIER_TIMEOUT_S)
        registry.promote(i + 1, reason=f"writer {i}")

    assert _run_threads(n, promote) == []
    with store.session() as session:
        rows = list(session.scalars(select(AliasHistoryRow).order_by(AliasHistoryRow.id)))
    assert Counter(row.version for row in rows) == Counter(range(1, n + 1))
    assert rows[0].previous is None
    assert [row.previous for row in rows[1:]] == [row.version for row in rows[:-1]]
    assert registry.alias().version == rows[-1].version
    store.dispose()
