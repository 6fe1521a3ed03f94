"""Watch a project's data folders cheaply, and hand a backlog to the loop a few files at a time.

A scan is one directory listing and one ``stat`` per file: only files whose size or
modification time changed since the last scan are read (their content hash is the ingest key,
so a file ingested before, by this or another process, is skipped without being parsed).

``data.source`` and ``data.labels`` may also be URL prefixes (``s3://bucket/in/``, through
``retrainer.integrations.storage``): a scan is then one listing call, and an object whose size
and ETag changed is downloaded, hashed and keyed like a local file (the same bytes sent again,
under any name, are recognised). The ETags of the objects taken are kept in the store, so a
restarted watch downloads only objects that are new or changed.

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
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from retrainer.data.io import SUFFIXES, file_lines, name_order, read_table
from retrainer.errors import DataError, StoreError
from retrainer.integrations.storage import ObjectRef, is_url
from retrainer.store.tables import BatchRow, LabelSetRow

if TYPE_CHECKING:
    from retrainer.project import BatchInfo, LabelReport, Project

OBJECTS_STATE = "watch_objects"  # state key: object URL -> [size, ETag] of the objects taken


class FolderWatch:
    """The files of ``data.source`` (batches) and ``data.labels`` not ingested yet, in name
    order, found by cheap scans; :meth:`ingest_next` ingests a bounded number of them.

    Attributes:
        batches, labels: files (or objects) waiting to be ingested (first in ``name_order``).
        failed: file -> the error that kept it out (tried again once the file changes, or at
            the next scan when the store or the object storage failed); a prefix that cannot be
            listed -> why (tried again at every scan).
    """

    def __init__(self, project: Project):
        self.project = project
        d = project.config.data
        self._roots = {"batches": _root(project, d.source), "labels": _root(project, d.labels)}
        self._options = dict(d.storage_options)
        self.batches: list[Path | ObjectRef] = []
        self.labels: list[Path | ObjectRef] = []
        self.failed: dict[Path | ObjectRef | str, str] = {}
        self._seen: dict[Path | ObjectRef, tuple] = {}
        self._taken: dict[str, list] = {}
        if any(isinstance(root, str) for root in self._roots.values()):
            self._taken = project.get_state(OBJECTS_STATE) or {}
            self._seen |= {
                ObjectRef(url, _name(url)): tuple(sig) for url, sig in self._taken.items()
            }
        with project.store.session() as s:
            self._stored = set(s.scalars(select(BatchRow.key).where(BatchRow.key.like("file:%"))))
            self._stored |= set(
                s.scalars(select(LabelSetRow.key).where(LabelSetRow.key.like("file:%")))
            )

    def scan(self) -> int:
        """Queue the files that are new or changed since the last scan and not stored yet;
        returns how many were queued."""
        queued = 0
        listings = {kind: self._listing(root) for kind, root in self._roots.items()}
        self._forget_gone(listings)
        for kind, found in listings.items():
            queue = getattr(self, kind)
            for item, signature in found:
                if self._seen.get(item) == signature:
                    continue
                self._seen[item] = signature
                self.failed.pop(item, None)
                # an object's content hash needs a download: it is checked when it is taken
                fresh = isinstance(item, ObjectRef) or _key(item) not in self._stored
                if item not in queue and fresh:
                    queue.append(item)
                    queued += 1
            queue.sort(key=lambda p: name_order(p.name))
        return queued

    def _forget_gone(self, listings: dict[str, list]) -> None:
        """Objects taken before that no listing holds any more leave the state (one write, when
        any did), so that it stays as large as the buckets, not as their history; not after a
        listing failed. One that comes back is downloaded once and known by its content hash."""
        if not self._taken or any(root in self.failed for root in self._roots.values()):
            return
        listed = {str(item) for found in listings.values() for item, _ in found}
        gone = [url for url in self._taken if url not in listed]
        for url in gone:
            del self._taken[url]
            self._seen.pop(ObjectRef(url, _name(url)), None)
        if gone:
            self.project.set_state(OBJECTS_STATE, self._taken)

    def _listing(self, root: Path | str | None) -> list[tuple[Path | ObjectRef, tuple]]:
        if not isinstance(root, str):
            return _listing(root)
        from retrainer.integrations.storage import listing

        try:
            found = listing(root, self._options)
        except StoreError as exc:  # the storage is down or refuses: say so, try again next scan
            self.failed[root] = str(exc)
            return []
        self.failed.pop(root, None)
        return found

    def ingest_next(self, limit: int) -> tuple[list[BatchInfo], list[LabelReport]]:
        """Ingest up to ``limit`` queued batch files, then up to ``limit`` label files. A file
        that cannot be read or stored is left out and recorded in ``failed``."""
        taken = dict(self._taken)
        batches = [b for f in self._take(self.batches, limit) if (b := self._one(f, False))]
        labels = [x for f in self._take(self.labels, limit) if (x := self._one(f, True))]
        if self._taken != taken:  # one write per call, none on an idle poll
            self.project.set_state(OBJECTS_STATE, self._taken)
        return batches, labels

    @staticmethod
    def _take(queue: list, limit: int) -> list:
        taken = queue[:limit]
        del queue[:limit]
        return taken

    def _one(self, item: Path | ObjectRef, labels: bool):
        try:
            with self._local(item) as path:
                sha = _sha(path)  # read once: the key below and the stored key both use it
                key = f"file:{path.name}:{sha}"
                if isinstance(item, ObjectRef) and key in self._stored:  # bytes taken before
                    done = None
                else:
                    done, key = self._ingest(path, str(item), labels, sha)
        except (DataError, StoreError, OSError) as exc:
            self.failed[item] = str(exc)
            if not isinstance(exc, DataError):  # the storage failed, not the file: next scan
                self._seen.pop(item, None)
            return None
        self._stored.add(key)
        if isinstance(item, ObjectRef):
            self._taken[item.url] = list(self._seen.get(item, ()))
        return done

    def _ingest(self, path: Path, source: str, labels: bool, sha: str) -> tuple:
        return ingest_file(self.project, path, source, labels, sha)

    def _local(self, item: Path | ObjectRef) -> AbstractContextManager[Path]:
        """The file itself, or an object downloaded to a temporary file of the same name."""
        if isinstance(item, Path):
            return nullcontext(item)
        from retrainer.integrations.storage import local_copy

        return local_copy(item, self._options)


def ingest_file(project: Project, path: Path, source: str, labels: bool, sha: str) -> tuple:
    """Read and ingest one local file (an object's downloaded copy: errors name ``source``)
    as a batch or as labels; returns what was stored and its key."""
    try:
        with file_lines(path):
            frame = read_table(path, encoding=project.config.data.encoding)
    except DataError as exc:
        raise type(exc)(str(exc).replace(str(path), source)) from exc
    if labels:
        key = project.file_key(path, LabelSetRow, sha)
        return project.ingest_labels(frame, key=key, source=source), key
    key = project.file_key(path, BatchRow, sha)
    return project.ingest(frame, key=key, source=source), key


def ingest_objects(project: Project, url: str, *, labels: bool = False) -> list[tuple]:
    """``retrainer ingest s3://...``: every data file under ``url`` (a prefix or one object),
    in name order, downloaded and keyed like a local file; (object URL, what was stored) each.
    A URL with no data files is a :class:`DataError` naming it."""
    from retrainer.integrations.storage import listing, local_copy

    options = dict(project.config.data.storage_options)
    found = listing(url, options)
    if not found:
        raise DataError(f"{url}: no data files ({', '.join(SUFFIXES)}) under this URL")
    done = []
    for ref, _ in found:
        with local_copy(ref, options) as path:
            done.append((ref.url, ingest_file(project, path, ref.url, labels, _sha(path))[0]))
    return done


def _root(project: Project, location: object) -> Path | str | None:
    """A watched location: a URL as it is, a path resolved against the project folder."""
    if not isinstance(location, str) or not location:
        return None
    return location if is_url(location) else project.config.resolve(location)


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _sha(path: Path) -> str:
    """The content hash of a file, as ingest keys it."""
    from retrainer.ingest import _file_sha

    return _file_sha(path)


def _key(path: Path) -> str:
    """The ingest key of a file, as ``Project.ingest_path`` makes it."""
    return f"file:{path.name}:{_sha(path)}"


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
