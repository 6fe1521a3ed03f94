"""R2: a full or failing disk during a registry or artifact write leaves the old or the new state.

Every call on the write path (``write``, ``fsync`` of the file, ``rename``, ``fsync`` of the
folder, ``mkdir``, ``mkstemp``) fails in turn with ENOSPC or EIO: the caller gets a StoreError
naming the artifact, no temp file is left, nothing but the complete file ever sits under the
final name, the registry has the old versions or old + new, and the store passes
``PRAGMA integrity_check``. A subprocess under ``RLIMIT_FSIZE`` (a disk that fills up, for
SQLite's own writes too: the container cannot mount a 1 MB tmpfs) registers models until the
disk is full: every failure is a StoreError and everything registered before still verifies.
"""

import errno
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from sklearn.tree import DecisionTreeClassifier

from retrainer.artifacts import ArtifactStore
from retrainer.errors import StoreError
from retrainer.registry import Registry
from retrainer.store.db import Store
from tests.conftest import integrity_ok

CALLS = ("write", "fsync", "replace", "mkdir", "mkstemp")


class Faults:
    """Counts the write path's calls; the ``fail_at``-th raises ``OSError(code)``."""

    def __init__(self, monkeypatch, fail_at: int | None = None, code: int = errno.ENOSPC):
        self.calls: list[str] = []
        self.fail_at, self.code = fail_at, code
        fdopen, fsync, replace, mkstemp = os.fdopen, os.fsync, os.replace, tempfile.mkstemp
        mkdir = Path.mkdir
        faults = self

        class File:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.handle.__exit__(*exc)

            def write(self, data):
                faults.tick("write")
                return self.handle.write(data)

            def __getattr__(self, name):
                return getattr(self.handle, name)

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: File(fdopen(fd, *a, **k)))
        monkeypatch.setattr(os, "fsync", self.wrap("fsync", fsync))
        monkeypatch.setattr(os, "replace", self.wrap("replace", replace))
        monkeypatch.setattr(tempfile, "mkstemp", self.wrap("mkstemp", mkstemp))
        monkeypatch.setattr(Path, "mkdir", self.wrap("mkdir", mkdir))

    def tick(self, name: str) -> None:
        self.calls.append(name)
        if len(self.calls) == self.fail_at:
            raise OSError(self.code, os.strerror(self.code))

    def wrap(self, name, function):
        def wrapper(*args, **kwargs):
            self.tick(name)
            return function(*args, **kwargs)

        return wrapper


def tree(seed: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=3, random_state=seed).fit(
        [[i, (i * seed) % 7] for i in range(40)], [(i * seed) % 2 for i in range(40)]
    )


def final_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and "tmp" not in p.name}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_every_failing_call_of_an_artifact_write_leaves_old_or_new(tmp_path, monkeypatch, code):
    data = b"model bytes " * 1000
    probe = ArtifactStore(tmp_path / "probe")
    probe.put_bytes(b"already there")
    with monkeypatch.context() as m:
        clean = Faults(m)
        probe.put_bytes(data)
    assert set(CALLS) <= set(clean.calls)
    for k in range(1, len(clean.calls) + 1):
        root = tmp_path / f"k{k}"
        artifacts = ArtifactStore(root)
        old = artifacts.put_bytes(b"already there")
        with monkeypatch.context() as m:
            Faults(m, fail_at=k, code=code)
            with pytest.raises(StoreError, match="cannot write artifact") as caught:
                artifacts.put_bytes(data)
        assert os.strerror(code) in str(caught.value)
        files = final_files(root)
        assert not [p for p in root.rglob(".tmp-*")], f"temp file left at call {k}"
        assert artifacts.get_bytes(old) == b"already there"
        for name, content in files.items():  # whatever has a final name is complete
            assert name in (old, artifacts.put_bytes(data)) and len(content) in (13, len(data))
        assert artifacts.get_bytes(artifacts.put_bytes(data)) == data  # the retry succeeds


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_every_failing_call_of_a_registration_leaves_old_or_new(tmp_path, monkeypatch, code):
    probe = Registry(Store(f"sqlite:///{tmp_path / 'probe.db'}"), ArtifactStore(tmp_path / "p"))
    probe.register(tree(2), lineage={}, metrics={})
    with monkeypatch.context() as m:
        clean = Faults(m)
        probe.register(tree(3), lineage={}, metrics={})
    # skops dates its archive and names arrays by object id, so a model's hash (and whether
    # its shard folder already exists) varies between runs: the count of calls can differ by
    # one or two. Whenever the fault is reached, the registration must fail cleanly.
    reached = 0
    for k in range(1, len(clean.calls) + 3):
        store = Store(f"sqlite:///{tmp_path / f'k{k}.db'}")
        registry = Registry(store, ArtifactStore(tmp_path / f"a{k}"))
        registry.register(tree(2), lineage={}, metrics={"gate_passed": True})
        registry.promote(1, reason="first")
        with monkeypatch.context() as m:
            faults = Faults(m, fail_at=k, code=code)
            try:
                registry.register(tree(3), lineage={}, metrics={})
            except StoreError:
                reached += 1
            else:
                assert len(faults.calls) < k, f"call {k} failed and the registration went on"
                store.dispose()
                continue
        assert [v.version for v in registry.versions()] == [1]  # the old state
        assert registry.alias().version == 1 and registry.verify() == []
        with store.session() as s:
            assert integrity_ok(s)
        assert registry.register(tree(3), lineage={}, metrics={}).version == 2  # then the new
        store.dispose()
    assert reached >= len(clean.calls) - 2


FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from sklearn.tree import DecisionTreeClassifier
    from retrainer.artifacts import ArtifactStore
    from retrainer.errors import StoreError
    from retrainer.registry import Registry
    from retrainer.store.db import Store

    root = sys.argv[1]
    registry = Registry(Store(f"sqlite:///{root}/store.db"), ArtifactStore(f"{root}/artifacts"))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for seed in range(1, 10_000):
        X = [[i, (i * seed) % 97] for i in range(400)]
        y = [(i * seed) % 3 for i in range(400)]
        model = DecisionTreeClassifier(random_state=seed).fit(X, y)
        try:
            registry.register(model, lineage={"pad": "x" * 3000}, metrics={"gate_passed": True})
        except StoreError as exc:
            print("full:", exc)
            break
    """
)


def test_a_disk_that_fills_up_fails_cleanly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path), str(256 * 1024)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("full: "), result.stdout
    assert (
        "cannot register model version" in result.stdout or "cannot write artifact" in result.stdout
    )
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    registry = Registry(store, ArtifactStore(tmp_path / "artifacts"))
    with store.session() as s:
        assert integrity_ok(s)
    versions = [v.version for v in registry.versions()]
    assert versions and versions == list(range(1, len(versions) + 1))
    assert registry.verify() == []
    assert not list((tmp_path / "artifacts").rglob(".tmp-*"))
    store.dispose()
