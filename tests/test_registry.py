"""The model registry: versions, lineage, aliases, promote/rollback history, verification."""

import json
import platform

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sqlalchemy import func, select

from retrainer.artifacts import ArtifactStore
from retrainer.errors import IntegrityError, NotFoundError, StoreError, UnsafeArtifactError
from retrainer.registry import ModelVersion, Registry
from retrainer.store.db import Store
from retrainer.store.tables import AliasHistoryRow, EventRow
from tests.conftest import store_url


@pytest.fixture
def registry(tmp_path) -> Registry:
    store = Store(store_url(tmp_path))
    yield Registry(store, ArtifactStore(tmp_path / "artifacts"))
    store.dispose()


def _model(label: int) -> DummyClassifier:
    """A model that always predicts ``label``: which version is loaded is visible."""
    return DummyClassifier(strategy="constant", constant=label).fit([[0], [1]], [label, -1])


def _register(registry: Registry, n: int) -> list[ModelVersion]:
    return [
        registry.register(_model(i), lineage={"trainer": "dummy", "i": i}, metrics={"f1": i / 10})
        for i in range(1, n + 1)
    ]


def _events(registry: Registry, kind: str) -> list[EventRow]:
    with registry.store.session() as session:
        return list(session.scalars(select(EventRow).where(EventRow.kind == kind)))


def test_versions_are_numbered_from_one_with_lineage_and_events(registry):
    registered = _register(registry, 3)
    assert [mv.version for mv in registered] == [1, 2, 3]
    assert [mv.version for mv in registry.versions()] == [1, 2, 3]
    second = registry.get(2)
    assert second.lineage["trainer"] == "dummy" and second.lineage["i"] == 2
    assert second.lineage["artifact"] == second.artifact
    assert second.lineage["packages"]["python"] == platform.python_version()
    assert second.lineage["packages"]["scikit-learn"] == sklearn.__version__
    assert second.lineage["packages"]["numpy"] == np.__version__
    assert set(second.lineage["packages"]) >= {"retrainer", "scipy", "skops"}
    assert second.metrics == {"f1": 0.2}
    assert second.artifact_format == "skops" and second.run_id is None
    assert second.created_at.tzinfo is not None
    assert registry.artifacts.exists(second.artifact)
    assert sorted(e.data["version"] for e in _events(registry, "register")) == [1, 2, 3]
    assert json.loads(json.dumps(second.to_dict()))["created_at"] == second.created_at.isoformat()


def test_load_returns_the_model_of_that_version(registry):
    X, y = make_classification(n_samples=300, n_features=5, random_state=1)
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y)
    _register(registry, 1)
    mv = registry.register(model, lineage={}, metrics={"auc": np.float64(0.91)}, run_id=7)
    assert mv.metrics == {"auc": 0.91} and type(mv.metrics["auc"]) is float
    assert registry.get(mv.version).run_id == 7
    np.testing.assert_array_equal(registry.load(2).predict_proba(X), model.predict_proba(X))
    assert registry.load(1).predict([[5]]).tolist() == [1]


def test_get_missing_version_names_it(registry):
    _register(registry, 2)
    with pytest.raises(NotFoundError, match=r"model version 9 does not exist \(registered: 1..2\)"):
        registry.get(9)


def test_unsafe_or_unstorable_models_leave_no_row(registry):
    class Homemade:
        pass

    with pytest.raises(UnsafeArtifactError, match="Homemade"):
        registry.register(Homemade(), lineage={}, metrics={})
    with pytest.raises(StoreError, match="metrics cannot be stored as JSON"):
        registry.register(_model(1), lineage={}, metrics={"f1": object()})
    assert registry.versions() == []
    assert list(registry.artifacts.shas()) == []


def test_promote_rollback_and_history(registry):
    _register(registry, 3)
    assert registry.alias() is None
    for version in (1, 2, 3):
        assert registry.promote(version, reason=f"gate passed {version}").aliases == ("champion",)
    assert registry.get(2).aliases == ()
    assert registry.rollback(reason="regression", actor="alice").version == 2
    assert registry.alias("champion").version == 2
    assert registry.rollback(reason="still bad").version == 1
    with pytest.raises(NotFoundError, match="no earlier version"):
        registry.rollback(reason="nothing left")
    assert registry.alias().version == 1
    history = registry.history()
    assert [(h["version"], h["previous"], h["kind"]) for h in history] == [
        (1, None, "promote"),
        (2, 1, "promote"),
        (3, 2, "promote"),
        (2, 3, "rollback"),
        (1, 2, "rollback"),
    ]
    assert history[3]["reason"] == "regression" and history[3]["actor"] == "alice"
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert len(_events(registry, "promote")) == 3 and len(_events(registry, "rollback")) == 2
    assert registry.load(registry.alias().version).predict([[0]]).tolist() == [1]


def test_rollback_after_a_promotion_that_followed_a_rollback(registry):
    _register(registry, 3)
    registry.promote(1, reason="a")
    registry.promote(2, reason="b")
    registry.rollback(reason="b was bad")
    registry.promote(3, reason="c")
    assert registry.rollback(reason="c was bad").version == 1


def test_rollback_without_a_previous_champion(registry):
    _register(registry, 2)
    with pytest.raises(NotFoundError, match="points at no version"):
        registry.rollback(reason="no champion yet")
    registry.promote(1, reason="first")
    registry.promote(1, reason="re-promoted, same version")
    with pytest.raises(NotFoundError, match="points at version 1 and no earlier version"):
        registry.rollback(reason="only one champion ever")
    assert registry.alias().version == 1


def test_set_alias_is_independent_per_name_and_checks_the_version(registry):
    _register(registry, 2)
    registry.promote(1, reason="first")
    assert registry.set_alias("staging", 2, reason="canary").aliases == ("staging",)
    assert registry.alias("champion").version == 1
    assert registry.history("staging")[0]["kind"] == "alias"
    with pytest.raises(NotFoundError, match="model version 5"):
        registry.promote(5, reason="typo")
    for bad in ("", "../champion", "a b", "x" * 101):
        with pytest.raises(StoreError, match="invalid alias name"):
            registry.set_alias(bad, 1, reason="bad name")
    assert registry.alias().version == 1
    with registry.store.session() as session:
        assert session.scalar(select(func.count()).select_from(AliasHistoryRow)) == 2


def test_load_and_verify_report_damaged_artifacts(registry):
    versions = _register(registry, 3)
    registry.promote(3, reason="best")
    assert registry.verify() == []
    registry.artifacts.path(versions[0].artifact).unlink()
    path = registry.artifacts.path(versions[1].artifact)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IntegrityError) as caught:
        registry.load(2)
    assert "model version 2" in str(caught.value) and versions[1].artifact in str(caught.value)
    problems = registry.verify()
    assert len(problems) == 2
    assert problems[0].startswith("model version 1:") and "missing" in problems[0]
    assert problems[1].startswith("model version 2:") and "corrupt" in problems[1]


def test_verify_reports_an_alias_to_a_missing_version(registry):
    _register(registry, 1)
    registry.promote(1, reason="first")
    with registry.store.session() as session:
        if session.connection().dialect.name == "sqlite":
            session.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")
        else:
            session.connection().exec_driver_sql(
                "ALTER TABLE aliases DROP CONSTRAINT aliases_version_fkey"
            )
        session.connection().exec_driver_sql("DELETE FROM model_versions")
    assert registry.verify() == ["alias 'champion' points at missing model version 1"]
