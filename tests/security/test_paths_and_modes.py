"""S3 and S6 for what exists: no name a user gives becomes a path outside the store, and every
file the store writes is private.

Batch and label keys, sources and alias names from a traversal corpus (``../``, ``..\\``,
URL-encoded dots, absolute paths, ``file://``, NUL, Unicode dots, 4 kB names) go through ingest,
late labels and the registry; a database row whose artifact hash was replaced by a path is
loaded and checked by ``doctor --repair``. Canary files beside the project keep their bytes and
nothing appears outside the project folder. Every folder under the artifact root is 0700 and
every file 0600 whatever the umask; the SQLite file should be 0600 too (it is not yet).
"""

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy

from retrainer.doctor import doctor
from retrainer.errors import DataError, RetrainerError, StoreError
from retrainer.store.tables import BatchRow

CORPUS = [
    "../escape",
    "..\\escape",
    "%2e%2e%2fescape",
    "%252e%252e%252fescape",
    "/etc/passwd",
    "C:/Windows/win.ini",
    "file:///etc/passwd",
    "#/../escape",
    "?x=../escape",
    "nul\x00byte",
    "\u2025/\uff0e\uff0e/escape",
    "a" * 4096,
    "../" * 40 + "tmp/escape",
]


def snapshot(folder, skip):
    """Path -> (size, mtime, bytes) of the files beside ``skip`` (the canaries), of every file
    under ``folder`` named like a corpus target, and of ``/tmp/escape``. Other tests' folders
    beside ``skip`` are otherwise left out: a process an earlier test started may still write
    there."""
    named = [p for name in ("escape", "passwd", "win.ini") for p in folder.rglob(name)]
    paths = {p for p in [*folder.iterdir(), *named, Path("/tmp/escape")] if p.is_file()}
    paths = {p for p in paths if skip not in p.parents}
    return {p: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


@pytest.fixture
def project(make_project, elec, tmp_path):
    project = make_project()
    project.ingest(elec.iloc[:672], key="history")
    project.cycle()
    for name in ("canary", "escape"):
        (tmp_path.parent / f"{tmp_path.name}-{name}").write_bytes(b"canary")
    return project


def test_names_from_a_traversal_corpus_never_become_paths(project, elec, tmp_path):
    outside = tmp_path.parent
    before = snapshot(outside, tmp_path)
    features = [c for c in elec.columns if c != "target"]
    for i, name in enumerate(CORPUS):
        rows = elec.iloc[672 + 10 * i : 682 + 10 * i]
        if any(ord(c) < 32 for c in name[:200]):
            with pytest.raises(DataError, match="control characters"):
                project.ingest(rows[features], key=name[:200], source=name)
            continue
        batch = project.ingest(rows[features], key=name[:200], source=name)
        assert batch.key == name[:200]
        project.ingest_labels(rows[["id", "target"]], key=f"labels {name}"[:200], source=name)
        with pytest.raises(StoreError, match="invalid alias name"):
            project.registry.set_alias(name, 1, reason=name)
    project.cycle()
    assert snapshot(outside, tmp_path) == before


def test_a_path_smuggled_into_an_artifact_column_is_refused(project, tmp_path):
    canary = tmp_path.parent / f"{tmp_path.name}-canary"
    if project.store.engine.dialect.name != "sqlite":  # the column's width refuses it already
        with pytest.raises(sqlalchemy.exc.DataError), project.store.session() as s:
            s.get(BatchRow, 1).artifact = f"../../../{canary}"
        return
    with project.store.session() as s:
        s.get(BatchRow, 1).artifact = f"../../../{canary}"
    with project.store.session() as s:
        row = s.get(BatchRow, 1)
    with pytest.raises(RetrainerError, match="invalid artifact hash"):
        project.batch_frame(row)
    report = doctor(project, repair=True, grace=0)
    assert "batch 1" in [f.subject for f in report.problems]
    assert canary.read_bytes() == b"canary"


def test_every_artifact_file_is_private(project, tmp_path):
    old = os.umask(0)
    try:
        project.ingest_labels(_labels(project), key="relabel", replace=True)  # a correction
    finally:
        os.umask(old)
    root = project.artifacts.root
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
    assert modes and all(m == (0o700 if p.is_dir() else 0o600) for p, m in modes.items()), {
        str(p): oct(m) for p, m in modes.items() if m not in (0o700, 0o600)
    }


def _labels(project):
    frame = project.artifacts.get_frame(_first_artifact(project))
    return frame[["id", "target"]].assign(target=1 - frame["target"]).head(5)


def _first_artifact(project):
    with project.store.session() as s:
        return s.get(BatchRow, 1).artifact


def test_the_sqlite_file_is_private(project, tmp_path):
    if not project.store.url.startswith("sqlite:///"):
        pytest.skip("PostgreSQL: no file")
    path = tmp_path / "store.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
