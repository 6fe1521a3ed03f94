"""Parallel writer processes on one PostgreSQL store keep the registry consistent.

Four processes, released together, each register three versions, promote each one and roll
back once, while a fifth process keeps reading the champion alias. Version numbers are 1..12
with no collision, every version loads its own writer's model, the alias history is one exact
chain (each move's ``previous`` is the move before it), and no reader snapshot ever shows the
alias pointing elsewhere than its latest history row (alias and history move in one transaction).
"""

import multiprocessing
from pathlib import Path

import sqlalchemy as sa
from sklearn.dummy import DummyClassifier
from sqlalchemy import func, select

from retrainer.artifacts import ArtifactStore
from retrainer.registry import Registry
from retrainer.store.db import Store
from retrainer.store.tables import AliasHistoryRow, EventRow
from tests.conftest import requires_postgres, store_url

pytestmark = requires_postgres

TIMEOUT_S = 180
WRITERS = 4
VERSIONS_EACH = 3
# One statement is one snapshot: the alias and its latest history row, read together.
SNAPSHOT = sa.text(
    "SELECT a.version, (SELECT h.version FROM alias_history h WHERE h.alias = a.name "
    "ORDER BY h.id DESC LIMIT 1) FROM aliases a WHERE a.name = 'champion'"
)


def _model(label: int) -> DummyClassifier:
    return DummyClassifier(strategy="constant", constant=label).fit([[0], [1]], [label, -1])


def _writer(url: str, root: str, label: int, barrier, results) -> None:
    store = Store(url)
    registry = Registry(store, ArtifactStore(Path(root) / "artifacts"))
    try:
        barrier.wait(timeout=TIMEOUT_S)
        versions = []
        for k in range(VERSIONS_EACH):
            mv = registry.register(_model(label), lineage={"writer": label, "k": k}, metrics={})
            versions.append(mv.version)
            registry.promote(mv.version, reason=f"writer {label} #{k}", actor=f"w{label}")
        registry.rollback(reason=f"writer {label} rolls back", actor=f"w{label}")
        results.put((label, versions, None))
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put((label, None, repr(exc)))
    finally:
        store.dispose()


def _reader(url: str, barrier, stop, results) -> None:
    engine = sa.create_engine(url)
    snapshots = mismatches = 0
    try:
        barrier.wait(timeout=TIMEOUT_S)
        with engine.connect() as connection:
            while not stop.is_set():
                row = connection.execute(SNAPSHOT).first()
                connection.rollback()
                if row is not None:
                    snapshots += 1
                    mismatches += row[0] != row[1]
        results.put(("reader", snapshots, mismatches))
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        results.put(("reader", None, repr(exc)))
    finally:
        engine.dispose()


def test_parallel_writers_get_unique_versions_and_move_the_alias_atomically(tmp_path):
    url = store_url(tmp_path)
    Store(url).dispose()  # migrate once before the race
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS + 1)
    stop = context.Event()
    results = context.Queue()
    reader_results = context.Queue()
    writers = [
        context.Process(target=_writer, args=(url, str(tmp_path), i, barrier, results))
        for i in range(WRITERS)
    ]
    reader = context.Process(target=_reader, args=(url, barrier, stop, reader_results))
    for process in [*writers, reader]:
        process.start()
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in range(WRITERS)]
    stop.set()
    _, snapshots, mismatches = reader_results.get(timeout=TIMEOUT_S)
    for process in [*writers, reader]:
        process.join(timeout=TIMEOUT_S)
    assert [error for _, _, error in outcomes] == [None] * WRITERS
    assert [process.exitcode for process in [*writers, reader]] == [0] * (WRITERS + 1)

    n = WRITERS * VERSIONS_EACH
    got = {version: label for label, versions, _ in outcomes for version in versions}
    assert sorted(got) == list(range(1, n + 1))  # no collision, no gap
    store = Store(url)
    registry = Registry(store, ArtifactStore(tmp_path / "artifacts"))
    assert [mv.version for mv in registry.versions()] == list(range(1, n + 1))
    for version, label in got.items():
        assert registry.get(version).lineage["writer"] == label
        assert registry.load(version).predict([[0]]).tolist() == [label]
    assert registry.verify() == []

    with store.session() as session:
        rows = list(session.scalars(select(AliasHistoryRow).order_by(AliasHistoryRow.id)))
        kinds = dict(
            session.execute(
                select(EventRow.kind, func.count())
                .where(EventRow.kind.in_(["register", "promote", "rollback"]))
                .group_by(EventRow.kind)
            ).all()
        )
    assert kinds == {"register": n, "promote": n, "rollback": WRITERS}
    assert len(rows) == n + WRITERS
    assert rows[0].previous is None
    assert [row.previous for row in rows[1:]] == [row.version for row in rows[:-1]]
    assert registry.alias().version == rows[-1].version
    assert [h["kind"] for h in registry.history()].count("rollback") == WRITERS

    assert isinstance(snapshots, int), mismatches  # the reader's error, if it failed
    assert snapshots > 0
    assert mismatches == 0
    store.dispose()
