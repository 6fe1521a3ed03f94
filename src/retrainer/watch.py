"""Watch a project's data folders cheaply, and hand a backlog to the loop a few files at a time.

A scan is one directory listing and one ``stat`` per file: only files whose size or
modification time changed since the last scan are read (their content hash is the ingest key,
so a file ingested before, by this or another process, is skipped without being parsed).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from retrainer.datasets import load_elec2
    >>> from retrainer.project import Project
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "in").mkdir()
    >>> for week in range(3):
    ...     load_elec2().iloc[week * 336 : (week + 1) * 336].to_csv(
    ...         root / "in" / f"{week}.csv", index=False)
    >>> project = Project.from_dict({"data": {"target": "target", "source": "in",
    ...     "id_column": "id", "time_column": "timestamp"}}, root=root)
    >>> watch = FolderWatch(project)
    >>> watch.scan(), len(watch.batches)
    (3, 3)
    >>> [b.key.split(":")[1] for b in watch.ingest_next(2)[0]]
    ['0.csv', '1.csv']
    >>> watch.scan(), len(watch.batches)  # nothing changed: nothing read
    (0, 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from retrainer.data.io import SUFFIXES, file_lines, read_table
from retrainer.errors import DataError, StoreError
from retrainer.store.tables import BatchRow, LabelSetRow

if TYPE_CHECKING:
    from retrainer.project import BatchInfo, LabelReport, Project


class FolderWatch:
    """The files of ``data.source`` (batches) and ``data.labels`` not ingested yet, in name
    order, found by cheap scans; :meth:`ingest_next` ingests a bounded number of them.

    Attributes:
        batches, labels: files waiting to be ingested (oldest name first).
        failed: file -> the error that kept it out (tried again once the file changes).
    """

    def __init__(self, project: Project):
        self.project = project
        d = project.config.data
        self._roots = {
            "batches": project.config.resolve(d.source) if d.source else None,
            "labels": project.config.resolve(d.labels) if d.labels else None,
        }
        self.batches: list[Path] = []
        self.labels: list[Path] = []
        self.failed: dict[Path, str] = {}
        self._seen: dict[Path, tuple[int, int]] = {}
        with project.store.session() as s:
            self._stored = set(s.scalars(select(BatchRow.key).where(BatchRow.key.like("file:%"))))
            self._stored |= set(
                s.scalars(select(LabelSetRow.key).where(LabelSetRow.key.like("file:%")))
            )

    def scan(self) -> int:
        """Queue the files that are new or changed since the last scan and not stored yet;
        returns how many were queued."""
        queued = 0
        for kind, root in self._roots.items():
            queue = getattr(self, kind)
            for path, signature in _listing(root):
                if self._seen.get(path) == signature:
                    continue
                self._seen[path] = signature
                self.failed.pop(path, None)
                if path not in queue and _key(path) not in self._stored:
                    queue.append(path)
                    queued += 1
            queue.sort(key=lambda p: p.name)
        return queued

    def ingest_next(self, limit: int) -> tuple[list[BatchInfo], list[LabelReport]]:
        """Ingest up to ``limit`` queued batch files, then up to ``limit`` label files. A file
        that cannot be read or stored is left out and recorded in ``failed``."""
        batches = [b for f in self._take(self.batches, limit) if (b := self._one(f, False))]
        labels = [x for f in self._take(self.labels, limit) if (x := self._one(f, True))]
        return batches, labels

    @staticmethod
    def _take(queue: list[Path], limit: int) -> list[Path]:
        taken = queue[:limit]
        del queue[:limit]
        return taken

    def _one(self, path: Path, labels: bool):
        try:
            key = _key(path)
            with file_lines(path):
                frame = read_table(path, encoding=self.project.config.data.encoding)
            if labels:
                key = self.project.file_key(path, LabelSetRow)
                done = self.project.ingest_labels(frame, key=key, source=str(path))
            else:
                key = self.project.file_key(path, BatchRow)
                done = self.project.ingest(frame, key=key, source=str(path))
        except (DataError, StoreError, OSError) as exc:
            self.failed[path] = str(exc)
            return None
        self._stored.add(key)
        return done


def _key(path: Path) -> str:
    """The ingest key of a file, as ``Project.ingest_path`` makes it."""
    from retrainer.ingest import _file_sha

    return f"file:{path.name}:{_file_sha(path)}"


def _listing(root: Path | None) -> list[tuple[Path, tuple[int, int]]]:
    """(file, (size, mtime in ns)) of the data files of ``root`` (a folder or one file)."""
    if root is None:
        return []
    if root.is_file():
        stat = root.stat()
        return [(root, (stat.st_size, stat.st_mtime_ns))]
    if not root.is_dir():
        return []
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_file() and entry.name.lower().endswith(SUFFIXES):
                stat = entry.stat()
                found.append((Path(entry.path), (stat.st_size, stat.st_mtime_ns)))
    return found
