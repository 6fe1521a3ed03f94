"""The artifact folder on object storage (``store.artifacts: s3://bucket/artifacts``).

Example (a ``file://`` URL needs only fsspec):
    >>> import tempfile
    >>> from pathlib import Path
    >>> artifacts = ObjectArtifactStore(Path(tempfile.mkdtemp()).as_uri() + "/artifacts")
    >>> sha = artifacts.put_bytes(b"hello")
    >>> artifacts.get_bytes(sha), list(artifacts.shas()) == [sha]
    (b'hello', True)
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from retrainer.artifacts import _MAX_BYTES, _SHA_RE, ArtifactStore
from retrainer.errors import IntegrityError, StoreError
from retrainer.integrations.storage import _reason, filesystem, is_url

_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')  # a single-part upload's ETag is its MD5


class ObjectArtifactStore(ArtifactStore):
    """The content-addressed artifact folder (``<sha[:2]>/<sha>``) on object storage.

    Never half-written: bytes go to a temporary key (``.tmp/<sha>-<random>``), are checked
    there (size, and MD5 where the server's ETag is one), then moved to their final key, which
    is checked again; only then does :meth:`put_bytes` return the hash that callers register.
    A server failing on the way raises :class:`StoreError` and leaves no final key. Reads
    verify the SHA-256 as the local folder does.

    Parameters:
        url: the prefix, e.g. ``s3://bucket/retrainer/artifacts``.
        storage_options: passed to the fsspec backend (``endpoint_url``, ``key``, ...).
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        max_bytes: int = _MAX_BYTES,
    ):
        self.url = url.rstrip("/")
        self._options = dict(storage_options or {})
        self.max_bytes = max_bytes
        self.root = ObjectRoot(self)

    # opened on first use: importing s3fs takes seconds, which commands that only read the
    # store (status, models) do not pay
    @cached_property
    def _opened(self) -> tuple[Any, str]:
        fs, base = filesystem(self.url, self._options)
        return fs, base.rstrip("/")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem."""
        return self._opened[0]

    @property
    def _base(self) -> str:
        return self._opened[1]

    def __repr__(self) -> str:
        return f"ObjectArtifactStore({self.url!r})"

    def path(self, sha: str) -> str:  # type: ignore[override]
        """The URL of an artifact (hashes checked as for a folder: no traversal)."""
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise StoreError(f"invalid artifact hash {sha!r}: expected 64 lowercase hex digits")
        return f"{self.url}/{sha[:2]}/{sha}"

    def exists(self, sha: str) -> bool:
        return bool(self.fs.exists(self.path(sha)))

    def _read(self, sha: str) -> bytes:
        key = self.path(sha)
        try:
            return self.fs.cat_file(key)
        except FileNotFoundError:
            missing = f"artifact {sha} is missing: no object at {key}"
            raise IntegrityError(missing) from None
        except Exception as exc:  # noqa: BLE001  (backends raise their own kinds: name the URL)
            raise IntegrityError(f"artifact {sha} at {key} cannot be read: {_reason(exc)}") from exc

    def put_bytes(self, data: bytes) -> str:
        """Upload ``data`` under its SHA-256 unless a whole copy is there already; see the class
        for how a half-written object is never left under the final key."""
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if self._whole(final, data):
            return sha
        temp = f"{self.url}/.tmp/{sha}-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(temp, data)
            self._check(temp, data)
            self._commit(temp, final)
            self._check(final, data)
        except Exception as exc:  # noqa: BLE001  (backends raise their own kinds: name the URL)
            self._forget(temp)
            raise StoreError(
                f"cannot write artifact {sha} to {final}: {_reason(exc)}; nothing was registered"
            ) from exc
        return sha

    def _commit(self, temp: str, final: str) -> None:
        """Put a checked temporary object under its final key in one step that leaves it whole
        or absent: a rename on a local disk, a server-side copy on an object store."""
        from fsspec.implementations.local import LocalFileSystem

        if isinstance(self.fs, LocalFileSystem):
            self.fs.mv(temp, final)
        else:
            self.fs.cp_file(temp, final)
            self._forget(temp)

    def _whole(self, key: str, data: bytes) -> bool:
        """Whether ``key`` holds a complete copy of ``data`` (checked without downloading)."""
        try:
            self._check(key, data)
        except (FileNotFoundError, StoreError):
            return False
        return True

    def _check(self, key: str, data: bytes) -> None:
        """Refuse an object whose size (or MD5 ETag) is not that of ``data``."""
        self.fs.invalidate_cache(key)
        info = self.fs.info(key)
        size = int(info.get("size") or 0)
        if size != len(data):
            raise StoreError(f"{key} holds {size} bytes, not {len(data)}")
        md5 = _MD5.match(str(info.get("ETag") or info.get("etag") or ""))
        if md5 and md5.group(1) != hashlib.md5(data, usedforsecurity=False).hexdigest():
            raise StoreError(f"{key}: its ETag is not the MD5 of the bytes sent")

    def _forget(self, key: str) -> None:
        try:
            self.fs.rm_file(key)
        except Exception:  # noqa: BLE001, S110  (best effort: a leftover temp key is never read)
            pass

    def shas(self) -> Iterator[str]:
        """Every stored hash, sorted (temporary keys are skipped)."""
        self.fs.invalidate_cache(self._base)
        try:
            keys = self.fs.find(self._base)
        except FileNotFoundError:
            return
        for key in sorted(keys):
            shard, _, name = key[len(self._base) + 1 :].partition("/")
            if _SHA_RE.fullmatch(name) and name.startswith(shard) and len(shard) == 2:
                yield name


class ObjectRoot:
    """What the health checks ask of an artifact folder, answered for a prefix: ``is_dir`` is
    whether the storage answers (a prefix need not exist before its first object)."""

    def __init__(self, store: ObjectArtifactStore):
        self._store = store

    def __str__(self) -> str:
        return self._store.url

    def is_dir(self) -> bool:
        self._store.fs.invalidate_cache(self._store._base)
        try:
            self._store.fs.ls(self._store._base)
        except FileNotFoundError:
            return True
        except Exception:  # noqa: BLE001  (any other failure: not reachable)
            return False
        return True


def open_artifacts(
    location: str, root: Path, storage_options: dict[str, Any] | None = None
) -> ArtifactStore:
    """The artifact store at ``location`` (``store.artifacts``): a folder relative to ``root``,
    or an fsspec URL such as ``s3://bucket/artifacts`` (:class:`ObjectArtifactStore`).

    Example:
        >>> import tempfile
        >>> open_artifacts("artifacts", Path(tempfile.mkdtemp())).root.name
        'artifacts'
    """
    if is_url(location):
        return ObjectArtifactStore(location, storage_options)
    return ArtifactStore((root / location).resolve())
