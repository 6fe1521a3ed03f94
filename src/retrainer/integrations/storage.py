"""Object storage through fsspec: batch and label files under a URL prefix, read like local
files (``storage_artifacts`` keeps the artifact folder on a bucket). Install
``retrainer[s3]`` (fsspec and s3fs); ``gs://`` needs gcsfs and ``az://`` adlfs besides.

Credentials are the ones fsspec's backends already read (``AWS_*`` variables and profiles,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``); ``storage_options`` in the project
file (``data.storage_options``, ``store.storage_options``) are passed to the backend, e.g.
``{endpoint_url: http://minio:9000}``.

Example (a ``file://`` URL needs only fsspec):
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "b.csv").write_text("x\\n1\\n")
    >>> _ = (folder / "a.csv").write_text("x\\n2\\n")
    >>> [ref.name for ref, _ in listing(folder.as_uri())]
    ['a.csv', 'b.csv']
    >>> with local_copy(folder.as_uri() + "/a.csv") as path:
    ...     path.name, path.read_text()
    ('a.csv', 'x\\n2\\n')
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrainer.errors import ConfigError, DataError, StoreError

# Only the standard library at import: the project file's checks call is_url and check_url,
# and commands that only read the store start without pandas or fsspec.
EXTRA = "pip install 'retrainer[s3]'"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: Any) -> bool:
    """Whether a setting names a URL (``s3://``, ``gs://``, ``az://``, ``file://``) rather than
    a local path.

    >>> is_url("s3://bucket/in/"), is_url("in/2024.csv"), is_url("C:\\\\data")
    (True, False, False)
    """
    return isinstance(location, str) and bool(_URL.match(location))


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it; a missing package or an
    unknown scheme is a :class:`ConfigError` that says what to install."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError([f"{url}: reading URLs needs fsspec: {EXTRA}"]) from None
    options = dict(options or {})
    if url.startswith(("file://", "local://")):
        options.setdefault("auto_mkdir", True)  # object stores have no folders to make
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:  # fsspec names the package of the scheme (s3fs, gcsfs, adlfs)
        raise ConfigError([f"{url}: {exc} ({EXTRA} installs s3fs)"]) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"{url}: {exc}"]) from None


# the package behind each common scheme, checked without importing it (s3fs alone takes
# seconds to import, which a command that never opens the bucket should not pay)
PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "file": "fsspec",
    "local": "fsspec",
}


def check_url(url: str) -> str:
    """``url`` if its scheme's package is installed (found, not imported), else ValueError.

    >>> check_url("nosuch://bucket/in")
    Traceback (most recent call last):
    ValueError: nosuch://bucket/in: unknown URL scheme 'nosuch'
    """
    from importlib.util import find_spec

    if find_spec("fsspec") is None:
        raise ValueError(f"{url}: reading URLs needs fsspec: {EXTRA}")
    scheme = url.split("://", 1)[0].lower()
    package = PACKAGES.get(scheme)
    if package is None:  # a rarer scheme: ask fsspec's registry
        from fsspec.registry import known_implementations, registry

        if scheme in registry:
            return url
        if scheme not in known_implementations:
            raise ValueError(f"{url}: unknown URL scheme {scheme!r}")
        package = known_implementations[scheme]["class"].split(".", 1)[0]
    if find_spec(package) is None:
        install = EXTRA if package == "s3fs" else f"pip install {package}"
        raise ValueError(f"{url}: the {scheme}:// scheme needs {package}: {install}")
    return url


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object of a watched prefix: its full URL and its name (the last path part)."""

    url: str
    name: str

    def __str__(self) -> str:
        return self.url


def listing(url: str, options: dict[str, Any] | None = None) -> list[tuple[ObjectRef, tuple]]:
    """(object, (size, ETag or modification time)) of the data files under ``url`` (a prefix or
    one object), in ``name_order``: one listing call, read fresh (not from fsspec's listing
    cache). A missing prefix lists nothing; any other failure is a :class:`StoreError` naming
    ``url``."""
    from retrainer.data.io import SUFFIXES, name_order

    fs, path = filesystem(url, options)
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    except Exception as exc:  # noqa: BLE001  (backends raise their own kinds: name the URL)
        raise StoreError(f"{url}: cannot list it: {_reason(exc)}") from None
    found = []
    for entry in entries:
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "file" or name.startswith("."):
            continue
        if name.lower().endswith(SUFFIXES):
            ref = ObjectRef(fs.unstrip_protocol(entry["name"]), name)
            found.append((ref, (int(entry.get("size") or 0), _version_tag(entry))))
    return sorted(found, key=lambda item: name_order(item[0].name))


def _version_tag(entry: dict) -> str:
    """What changes when an object is overwritten: its ETag, or else its modification time."""
    for key in ("ETag", "etag", "md5Hash", "LastModified", "last_modified", "updated", "mtime"):
        if entry.get(key) is not None:
            return str(entry[key])
    return ""


@contextmanager
def local_copy(ref: ObjectRef | str, options: dict[str, Any] | None = None) -> Iterator[Path]:
    """Within the block, the object downloaded to a temporary file of the same name (deleted
    after), so that it is read, hashed and keyed exactly like a local file. A failed download
    is a :class:`StoreError` (the storage, not the data)."""
    url = str(ref)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    fs, path = filesystem(url, options)
    with tempfile.TemporaryDirectory(prefix="retrainer-object-") as folder:
        local = Path(folder) / name
        try:
            fs.get_file(path, str(local))
        except FileNotFoundError:
            raise DataError(f"{url}: no such object") from None
        except Exception as exc:  # noqa: BLE001  (backends raise their own kinds: name the URL)
            raise StoreError(f"{url}: cannot download it: {_reason(exc)}") from None
        yield local


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
