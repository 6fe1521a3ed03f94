"""The content-addressed artifact folder: round trips, integrity, atomic private writes."""

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from retrainer.artifacts import ArtifactStore
from retrainer.errors import IntegrityError, StoreError


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=400, n_features=6, random_state=0)
    X[::17, 2] = np.nan  # HistGradientBoosting routes missing values; the copy must too
    return X, y


def _fitted(name: str, X: np.ndarray, y: np.ndarray):
    finite = np.nan_to_num(X)
    if name == "hgb":
        return HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y), X
    if name == "tree":
        return DecisionTreeClassifier(max_depth=6, random_state=0).fit(finite, y), finite
    if name == "pipeline":
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(finite, y), finite
    if name == "knn":
        model = KNeighborsClassifier(algorithm="ball_tree", metric="manhattan")
        return model.fit(finite, y), finite
    if name == "forest":
        return RandomForestRegressor(n_estimators=5, random_state=0).fit(finite, y), finite
    model = CalibratedClassifierCV(GaussianNB(), cv=3)
    return model.fit(finite, y), finite


@pytest.mark.parametrize("name", ["hgb", "tree", "pipeline", "knn", "forest", "calibrated"])
def test_model_round_trip_predicts_identically(artifacts, data, name):
    model, X = _fitted(name, *data)
    sha = artifacts.put_model(model)
    loaded = artifacts.get_model(sha)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_put_bytes_is_content_addressed_and_idempotent(artifacts):
    data = b"batch 7\x00\xff"
    sha = artifacts.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    path = artifacts.path(sha)
    assert path == artifacts.root / sha[:2] / sha
    before = path.stat()
    assert artifacts.put_bytes(data) == sha
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert artifacts.get_bytes(sha) == data
    assert artifacts.exists(sha)
    assert not artifacts.exists("0" * 64)


def test_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        artifacts = ArtifactStore(tmp_path / "root")
        sha = artifacts.put_bytes(b"secret model")
    finally:
        os.umask(old)
    path = artifacts.path(sha)
    assert stat.S_IMODE(artifacts.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [sha]  # no temp file left


def test_shas_lists_stored_files_and_skips_temp_files(artifacts):
    shas = {artifacts.put_bytes(bytes([i]) * 10) for i in range(5)}
    (artifacts.path(next(iter(shas))).parent / ".tmp-interrupted").write_bytes(b"half")
    assert set(artifacts.shas()) == shas


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "delete"])
def test_damaged_artifact_raises_integrity_error_naming_sha_and_path(artifacts, damage):
    sha = artifacts.put_bytes(b"model bytes " * 100)
    other = artifacts.put_bytes(b"another model " * 100)
    path = artifacts.path(sha)
    if damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-1])
    elif damage == "swap":
        path.write_bytes(artifacts.path(other).read_bytes())
    else:
        path.unlink()
    with pytest.raises(IntegrityError) as caught:
        artifacts.get_bytes(sha)
    assert sha in str(caught.value) and str(path) in str(caught.value)


def test_corrupt_model_is_refused_before_loading(artifacts, data):
    model, _ = _fitted("tree", *data)
    sha = artifacts.put_model(model)
    path = artifacts.path(sha)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match=sha):
        artifacts.get_model(sha)


def test_put_bytes_repairs_a_corrupt_copy(artifacts):
    sha = artifacts.put_bytes(b"good")
    artifacts.path(sha).write_bytes(b"bad!")
    assert artifacts.put_bytes(b"good") == sha
    assert artifacts.get_bytes(sha) == b"good"


@pytest.mark.parametrize(
    "sha",
    [
        "../../etc/passwd",
        "ab/../../../etc/passwd",
        "/etc/passwd",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        "..%2f" + "a" * 59,
        "",
        None,
        64,
    ],
)
def test_path_refuses_anything_but_a_sha256(artifacts, sha):
    with pytest.raises(StoreError, match="invalid artifact hash"):
        artifacts.path(sha)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "nswprice": [0.056, np.nan, 0.061],
            "day": pd.Series(["mon", None, "wed"], dtype="str"),
            "label": pd.Categorical(["UP", "DOWN", "UP"]),
            "at": pd.date_range("1996-05-07", periods=3, freq="30min", tz="UTC"),
            "n": np.array([1, 2, 3], dtype="int32"),
        },
        index=pd.Index([10, 11, 12], name="row"),
    )


def test_frame_round_trip_keeps_values_dtypes_and_index(artifacts):
    frame = _frame()
    loaded = artifacts.get_frame(artifacts.put_frame(frame))
    pd.testing.assert_frame_equal(loaded, frame)


def test_same_frame_gives_same_hash(artifacts):
    assert artifacts.put_frame(_frame()) == artifacts.put_frame(_frame())
    changed = _frame()
    changed.loc[11, "n"] = 5
    assert artifacts.put_frame(changed) != artifacts.put_frame(_frame())
    assert len(list(artifacts.shas())) == 2
