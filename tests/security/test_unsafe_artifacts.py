"""S1/S3/S9: model files that could run code are refused by format, never unpickled.

Every payload below would create a marker file when unpickled (the control test proves it).
The checks pass only if loading is refused with an error naming the format, the marker does not
exist, and an audit hook saw no ``pickle.find_class`` (nor a process spawn) while loading.
"""

import bz2
import gzip
import io
import json
import lzma
import pickle
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from retrainer.artifacts import ArtifactStore, detect_format
from retrainer.errors import StoreError, UnsafeArtifactError

_WATCHED = ("pickle.find_class", "os.system", "os.exec", "os.posix_spawn", "subprocess.Popen")
_seen: list[str] | None = None


def _audit(event: str, _args: tuple) -> None:
    if _seen is not None and event.startswith(_WATCHED):
        _seen.append(event)


sys.addaudithook(_audit)  # cannot be removed; it records only while a test watches


def _watched(call):
    """Run ``call`` and return the watched audit events it raised."""
    global _seen
    _seen = []
    try:
        call()
    finally:
        events, _seen = _seen, None
    return events


class Payload:
    """Unpickling this creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Custom:
    """A plain user class: skops can store it, but loading it would import user code."""

    def __init__(self):
        self.weights = [1.0, 2.0]


class CustomScaler(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _joblib(obj, compress) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


def _corpus(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a phrase the refusal must contain)."""
    raw = pickle.dumps(Payload(marker), protocol=4)
    corpus = {
        f"pickle-protocol-{p}": (pickle.dumps(Payload(marker), protocol=p), "pickle")
        for p in range(6)
    }
    corpus |= {
        "pkl.gz": (gzip.compress(raw), "gzip-compressed pickle"),
        "pkl.bz2": (bz2.compress(raw), "bzip2-compressed pickle"),
        "pkl.xz": (lzma.compress(raw), "xz-compressed pickle"),
        "joblib": (_joblib(Payload(marker), 0), "pickle"),
        "joblib-zlib": (_joblib(Payload(marker), ("zlib", 3)), "zlib-compressed pickle"),
        "joblib-gzip": (_joblib(Payload(marker), ("gzip", 3)), "gzip-compressed pickle"),
        "torch-zip": (
            _zip({"archive/data.pkl": raw, "archive/version": b"3\n"}),
            "PyTorch zip archive",
        ),
        "keras": (
            _zip({"config.json": b'{"class_name": "Lambda"}', "model.weights.h5": b"\x89HDF"}),
            "Keras archive",
        ),
        "zip-with-pickle": (_zip({"schema.json": b"{}", "model.pkl": raw}), "pickle member"),
        "mlmodel": (_zip({"MLmodel": b"loader_module: evil\n", "model.pkl": raw}), "MLflow"),
        "npy": (b"\x93NUMPY\x01\x00" + raw, "NumPy .npy"),
    }
    return corpus


def test_control_the_payloads_are_live(tmp_path):
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".skops", ".natural"])
def test_code_carrying_formats_are_refused_by_magic_bytes(tmp_path, suffix):
    marker = tmp_path / "marker"
    artifacts = ArtifactStore(tmp_path / "artifacts")
    for name, (data, phrase) in _corpus(marker).items():
        path = tmp_path / f"{name}{suffix if suffix == '.skops' else '.' + name}"
        path.write_bytes(data)
        with pytest.raises(UnsafeArtifactError) as caught:
            events = _watched(lambda p=path: artifacts.load_model_file(p))
            pytest.fail(f"{name} was loaded; audit events {events}")
        assert phrase in str(caught.value), (name, str(caught.value))
        assert str(path) in str(caught.value)
        assert not marker.exists(), name
    assert not marker.exists()


def test_no_pickle_machinery_runs_during_refusal_or_legit_load(tmp_path):
    marker = tmp_path / "marker"
    artifacts = ArtifactStore(tmp_path / "artifacts")
    evil = tmp_path / "evil.skops"
    evil.write_bytes(pickle.dumps(Payload(marker)))

    def refuse():
        with pytest.raises(UnsafeArtifactError):
            artifacts.load_model_file(evil)

    assert _watched(refuse) == []
    model = DecisionTreeClassifier(random_state=0).fit([[0], [1], [2]], [0, 1, 1])
    sha = artifacts.put_model(model)
    assert _watched(lambda: artifacts.get_model(sha)) == []
    assert not marker.exists()


def test_legit_skops_upload_loads_and_predicts_the_same(tmp_path):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    y = np.array([0, 1, 0, 1])
    model = make_pipeline(FunctionTransformer(np.abs), LogisticRegression()).fit(X, y)
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    loaded = artifacts.load_model_file(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    renamed = tmp_path / "model.zip"
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(UnsafeArtifactError, match="not named"):
        artifacts.load_model_file(renamed)


@pytest.mark.parametrize("obj", [Custom(), make_pipeline(CustomScaler(), LogisticRegression())])
def test_skops_with_untrusted_types_is_refused_everywhere(tmp_path, obj):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    if hasattr(obj, "fit"):
        obj.fit([[0.0], [1.0]], [0, 1])
    expected = "test_unsafe_artifacts.Custom"
    with pytest.raises(UnsafeArtifactError, match=expected):
        artifacts.put_model(obj)
    assert list(artifacts.shas()) == []
    data = skops.io.dumps(obj)
    path = tmp_path / "custom.skops"
    path.write_bytes(data)
    with pytest.raises(UnsafeArtifactError, match=expected):
        artifacts.load_model_file(path)
    sha = artifacts.put_bytes(data)  # as if written by an older, laxer version
    with pytest.raises(UnsafeArtifactError, match=expected):
        artifacts.get_model(sha)


def _forged(module: str, function: str) -> bytes:
    """A skops FunctionTransformer whose function is rewritten to ``module.function``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(skops.io.dumps(FunctionTransformer(np.abs)))) as source:
        with zipfile.ZipFile(buffer, "w") as target:
            for info in source.infolist():
                data = source.read(info)
                if info.filename == "schema.json":
                    schema = json.loads(data)
                    func = schema["content"]["content"]["func"]
                    assert (func["__module__"], func["__class__"]) == ("numpy", "absolute")
                    func["__module__"], func["__class__"] = module, function
                    data = json.dumps(schema).encode()
                target.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize(("module", "function"), [("os", "system"), ("builtins", "eval")])
def test_forged_skops_function_is_refused(tmp_path, module, function):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    path = tmp_path / "forged.skops"
    path.write_bytes(_forged(module, function))
    with pytest.raises(UnsafeArtifactError, match=f"{module}.{function}"):
        artifacts.load_model_file(path)


def test_skops_zip_with_an_extra_member_is_refused(tmp_path):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    data = skops.io.dumps(DecisionTreeClassifier().fit([[0], [1]], [0, 1]))
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members["payload.bin"] = b"\x80\x04."
    path = tmp_path / "extra.skops"
    path.write_bytes(_zip(members))
    with pytest.raises(UnsafeArtifactError, match="payload.bin"):
        artifacts.load_model_file(path)


def test_detect_format_names_what_it_sees():
    assert detect_format(pickle.dumps(1, protocol=5)) == "pickle (protocol 5)"
    assert detect_format(b"(lp0\nI1\na.") == "pickle (protocol 0/1)"
    assert detect_format(skops.io.dumps([1, 2])) == "skops"
    assert detect_format(b"\x89HDF\r\n\x1a\nrest") == "HDF5 (Keras .h5)"
    assert detect_format(b"hello world") == "unknown format"


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("fuzz") / "artifacts")


@given(name=st.text(max_size=300) | st.sampled_from(["..", "../" * 30, "%2e%2e%2f", "\x00"]))
def test_path_never_leaves_the_root(shared_store, name):
    artifacts = shared_store
    try:
        path = artifacts.path(name)
    except StoreError:
        return
    assert path.parent.parent == artifacts.root and path.name == name


def test_oversized_upload_is_refused_before_reading(tmp_path):
    artifacts = ArtifactStore(tmp_path / "artifacts", max_bytes=1000)
    path = tmp_path / "big.skops"
    path.write_bytes(b"\0" * 1001)
    with pytest.raises(UnsafeArtifactError, match="1001 bytes"):
        artifacts.load_model_file(path)
