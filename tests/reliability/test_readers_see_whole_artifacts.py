"""R11: readers never see a partial artifact while writers register and promote.

One writer registers and promotes models while reader threads resolve the champion and load it
(the registry verifies every artifact's hash on load). Every read verifies, no read fails, each
reader sees the champion's version only increase, and the model a reader loads predicts like the
one registered under that version. The fast variant does 30 promotions; the slow one 1,000.
"""

import threading

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from retrainer.artifacts import ArtifactStore
from retrainer.registry import Registry
from retrainer.store.db import Store

X = np.arange(64, dtype=float).reshape(-1, 1)


def model(version: int) -> DecisionTreeClassifier:
    """A tree whose predictions encode its version (bits of ``version`` over X)."""
    y = (np.arange(64) * version // 7) % 2
    y[0], y[1] = 0, 1
    return DecisionTreeClassifier(random_state=0).fit(X, y)


def promote_while_reading(tmp_path, promotions: int, readers: int = 4) -> list[list[int]]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    registry = Registry(store, ArtifactStore(tmp_path / "artifacts"))
    expected = {1: model(1).predict(X)}
    registry.register(model(1), lineage={}, metrics={"gate_passed": True})
    registry.promote(1, reason="first")
    done = threading.Event()
    seen: list[list[int]] = [[] for _ in range(readers)]
    errors: list[BaseException] = []

    def read(mine: list[int]) -> None:
        reader = Registry(store, ArtifactStore(tmp_path / "artifacts"))
        try:
            while not (done.is_set() and mine and mine[-1] == promotions + 1):
                champion = reader.alias()
                loaded = reader.load(champion.version)
                mine.append(champion.version)
                assert (loaded.predict(X) == expected[champion.version]).all()
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    try:
        for version in range(2, promotions + 2):
            m = model(version)
            expected[version] = m.predict(X)
            registered = registry.register(m, lineage={}, metrics={"gate_passed": True})
            registry.promote(registered.version, reason="newer")
    finally:
        done.set()
        for t in threads:
            t.join(timeout=120)
        store.dispose()
    assert not errors, errors[0]
    return seen


def check(seen: list[list[int]], promotions: int) -> None:
    for versions in seen:
        assert versions, "a reader read nothing"
        assert versions == sorted(versions), "a reader saw the champion go back"
        assert set(versions) <= set(range(1, promotions + 2))
    assert max(max(v) for v in seen) == promotions + 1


def test_readers_see_whole_artifacts_in_increasing_order(tmp_path):
    check(promote_while_reading(tmp_path, 30), 30)


@pytest.mark.slow
def test_readers_see_whole_artifacts_over_1000_promotions(tmp_path):
    check(promote_while_reading(tmp_path, 1000, readers=8), 1000)
