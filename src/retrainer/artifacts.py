"""A content-addressed artifact folder: files named by their SHA-256, written atomically, verified.

Models are stored only in the data-only skops format and loaded only when every type in the
file is on a short allowlist of scikit-learn, NumPy and SciPy types; pickle and its relatives
(joblib, ``.pkl.gz``, PyTorch zips) are recognised by their magic bytes and refused, never
unpickled. A matching hash proves the file is the one that was written, not that it is safe:
both checks always run.

Example:
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> artifacts = ArtifactStore(tmp.name)
    >>> sha = artifacts.put_bytes(b"hello")
    >>> sha[:12], artifacts.get_bytes(sha)
    ('2cf24dba5fb0', b'hello')
    >>> tmp.cleanup()
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import lzma
import os
import pickletools
import re
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.errors import IntegrityError, StoreError, UnsafeArtifactError

if TYPE_CHECKING:  # pandas is imported where a frame is read: commands that only read the
    import pandas as pd  # store start without it

# skops (which enumerates scikit-learn's estimators when imported: seconds of start-up) is
# imported where a model is read or written, so that opening a store stays cheap.

__all__ = ["ArtifactStore", "TRUSTED_TYPES", "detect_format"]

# Types that skops does not trust by default but that fitted scikit-learn models need. Each one
# was seen in a real dump (trees, gradient boosting, neighbours, calibration, imputers).
# TreePredictor and Tree hold node arrays that scikit-learn indexes without bounds checks:
# a crafted upload can crash the loading process, so uploads belong in an isolated loader (S2).
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.BrayCurtisDistance64",
    "sklearn.metrics._dist_metrics.CanberraDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.HammingDistance64",
    "sklearn.metrics._dist_metrics.HaversineDistance64",
    "sklearn.metrics._dist_metrics.JaccardDistance64",
    "sklearn.metrics._dist_metrics.MahalanobisDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.metrics._dist_metrics.SEuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
)

# Second, independent layer: every type named anywhere in schema.json must come from one of these
# packages or be one of these exact names, whatever skops itself trusts by default.
_TRUSTED_PACKAGES = ("numpy", "scipy", "sklearn")
_TRUSTED_NAMES = frozenset(
    {f"builtins.{name}" for name in ("bool", "bytes", "complex", "dict", "float", "frozenset")}
    | {f"builtins.{name}" for name in ("int", "list", "set", "slice", "str", "tuple")}
    | {"builtins.NoneType", "functools.partial"}
)

_SHA_RE = re.compile(r"[0-9a-f]{64}")
_SKOPS_MEMBER_RE = re.compile(r"schema\.json|[0-9A-Za-z_]+\.(npy|npz)")
_PICKLE_WINDOW = 1 << 16
_MAX_BYTES = 2 << 30
_MAX_MEMBERS = 100_000


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    """Create ``path`` (not its parents' modes) as 0700 if it does not exist yet."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise StoreError(f"artifact folder {path} exists and is not a directory") from None
        return
    os.chmod(path, 0o700)
    _fsync_dir(path.parent)


def _looks_like_pickle(data: bytes) -> str | None:
    """Name a pickle by its opcodes (pickletools only parses, it never builds objects)."""
    if len(data) >= 2 and data[0] == 0x80 and data[1] <= 5:
        return f"pickle (protocol {data[1]})"
    window = data[:_PICKLE_WINDOW]
    n_ops = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(window)):
            n_ops += 1
            if opcode.name == "STOP":
                return "pickle (protocol 0/1)"
    except Exception:  # noqa: BLE001  (a parse failure just means: not a pickle, or cut short)
        cut_short = len(data) > len(window) and n_ops >= 16
        return "pickle (protocol 0/1)" if cut_short else None
    return None


_COMPRESSORS = (
    (b"\x1f\x8b", "gzip", lambda d: zlib.decompressobj(31).decompress(d, 64)),
    (b"BZh", "bzip2", lambda d: bz2.BZ2Decompressor().decompress(d, max_length=64)),
    (b"\xfd7zXZ\x00", "xz", lambda d: lzma.LZMADecompressor().decompress(d, max_length=64)),
    (b"\x78\x01", "zlib", lambda d: zlib.decompressobj().decompress(d, 64)),
    (b"\x78\x5e", "zlib", lambda d: zlib.decompressobj().decompress(d, 64)),
    (b"\x78\x9c", "zlib", lambda d: zlib.decompressobj().decompress(d, 64)),
    (b"\x78\xda", "zlib", lambda d: zlib.decompressobj().decompress(d, 64)),
)


def _zip_format(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "corrupt zip archive"
    torch = [n for n in names if n.endswith("data.pkl")]
    if torch:
        return f"PyTorch zip archive (pickle member {torch[0]})"
    pickles = [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    if "config.json" in names and any(n.endswith(".h5") for n in names):
        return "Keras archive (.keras)"
    if "MLmodel" in names or any(n.endswith("/MLmodel") for n in names):
        return "MLflow model directory archive"
    if pickles:
        return f"zip archive with a pickle member ({pickles[0]})"
    if "schema.json" in names:
        return "skops"
    return "zip archive without schema.json"


def detect_format(data: bytes) -> str:
    """Name the format of serialized model bytes from their magic bytes, never by loading them.

    Parameters:
        data: the file contents.

    Returns ``"skops"`` for a skops zip; anything else is a description such as
    ``"pickle (protocol 5)"`` or ``"gzip-compressed pickle (protocol 4)"``.

    Example:
        >>> import pickle
        >>> detect_format(pickle.dumps([1, 2], protocol=4))
        'pickle (protocol 4)'
        >>> detect_format(b"PK\\x03\\x04 not really a zip")
        'corrupt zip archive'
    """
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_format(data)
    for magic, name, peek in _COMPRESSORS:
        if data.startswith(magic):
            try:
                inner = _looks_like_pickle(peek(data))
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
                inner = None
            return f"{name}-compressed {inner}" if inner else f"{name}-compressed data"
    if data.startswith(b"ZF0x"):
        return "joblib (legacy compressed pickle)"
    if data.startswith(b"\x04\x22\x4d\x18"):
        return "lz4-compressed data (joblib)"
    if data.startswith(b"\x89HDF\r\n\x1a\n"):
        return "HDF5 (Keras .h5)"
    if data.startswith(b"\x93NUMPY"):
        return "NumPy .npy array"
    return _looks_like_pickle(data) or "unknown format"


def _schema_types(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            found.add(f"{node['__module__']}.{node['__class__']}")
        for value in node.values():
            _schema_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, found)
    return found


def _is_trusted_name(name: str) -> bool:
    return name in _TRUSTED_NAMES or name.split(".", 1)[0] in _TRUSTED_PACKAGES


# skops parses with ``ast``, whose recursion bookkeeping is not thread-safe on Python 3.11
# ("AST constructor recursion depth mismatch" under concurrent loads): one load at a time.
_SKOPS_LOCK = threading.Lock()


def _check_skops(data: bytes, source: str, max_bytes: int) -> None:
    """Refuse anything but a well-formed skops zip whose types are all on the allowlist."""
    kind = detect_format(data)
    if kind != "skops":
        raise UnsafeArtifactError(
            f"{source} is a {kind}, not a skops file: refused without loading it "
            "(only the data-only .skops format is accepted; re-export with skops.io.dump)"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if len(members) > _MAX_MEMBERS:
            raise UnsafeArtifactError(f"{source} has {len(members)} zip members (limit 100000)")
        unpacked = sum(m.file_size for m in members)
        if unpacked > max_bytes:
            raise UnsafeArtifactError(
                f"{source} unpacks to {unpacked} bytes, over the limit of {max_bytes}"
            )
        odd = [m.filename for m in members if not _SKOPS_MEMBER_RE.fullmatch(m.filename)]
        if odd:
            raise UnsafeArtifactError(f"{source} has zip members skops never writes: {odd[:5]}")
        try:
            schema = json.loads(archive.read("schema.json"))
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise StoreError(f"{source} has an unreadable schema.json: {exc}") from exc
    outside = sorted(n for n in _schema_types(schema, set()) if not _is_trusted_name(n))
    import skops.io

    try:
        with _SKOPS_LOCK:
            untrusted = set(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001  (skops raises many kinds on malformed input)
        raise StoreError(f"{source} is not a readable skops file: {exc}") from exc
    refused = sorted(set(outside) | (untrusted - set(TRUSTED_TYPES)))
    if refused:
        raise UnsafeArtifactError(
            f"{source} contains untrusted types {refused}; only scikit-learn, NumPy and SciPy "
            "types on retrainer's allowlist are loaded"
        )


def _loads_skops(data: bytes, source: str, max_bytes: int) -> Any:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    _check_skops(data, source, max_bytes)
    try:
        with _SKOPS_LOCK:
            return skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise UnsafeArtifactError(f"{source} contains untrusted types: {exc}") from exc
    except Exception as exc:  # noqa: BLE001  (skops raises many kinds on malformed input)
        raise StoreError(f"{source} is not a readable skops file: {exc}") from exc


class ArtifactStore:
    """A folder of immutable files named by their SHA-256: ``root/<sha[:2]>/<sha>``.

    Writes are atomic (temp file in the same folder, fsync, rename, fsync the folder), files are
    0600 and folders 0700. Every read re-hashes the file, so a flipped byte, a truncation or a
    file swapped for another one raises :class:`IntegrityError` naming the hash and the path.

    Parameters:
        root: the folder; created (mode 0700) if missing.
        max_bytes: largest model file or unpacked skops archive accepted (default 2 GiB).

    Example:
        >>> import tempfile
        >>> import pandas as pd
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> tmp = tempfile.TemporaryDirectory()
        >>> artifacts = ArtifactStore(tmp.name)
        >>> model = DecisionTreeClassifier(random_state=0).fit([[0], [1], [2]], [0, 1, 1])
        >>> artifacts.get_model(artifacts.put_model(model)).predict([[0], [2]]).tolist()
        [0, 1]
        >>> frame = pd.DataFrame({"x": [1.5, 2.5]})
        >>> artifacts.get_frame(artifacts.put_frame(frame)).equals(frame)
        True
        >>> try:
        ...     artifacts.path("../../etc/passwd")
        ... except StoreError as exc:
        ...     print(exc)
        invalid artifact hash '../../etc/passwd': expected 64 lowercase hex digits
        >>> tmp.cleanup()
    """

    def __init__(self, root: str | Path, *, max_bytes: int = _MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.parent.mkdir(parents=True, exist_ok=True)
        _private_dir(self.root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, sha: str) -> Path:
        """The file of an artifact; refuses anything but 64 lowercase hex digits (no traversal).

        Parameters:
            sha: the SHA-256 hex digest.
        """
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise StoreError(f"invalid artifact hash {sha!r}: expected 64 lowercase hex digits")
        return self.root / sha[:2] / sha

    def exists(self, sha: str) -> bool:
        """Whether a file for ``sha`` is present (not whether it verifies: see ``get_bytes``)."""
        return self.path(sha).is_file()

    def _read(self, sha: str) -> bytes:
        path = self.path(sha)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise IntegrityError(f"artifact {sha} is missing: no file at {path}") from None
        except OSError as exc:
            raise IntegrityError(f"artifact {sha} at {path} cannot be read: {exc}") from exc
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def get_bytes(self, sha: str) -> bytes:
        """The contents of an artifact, after checking they still hash to ``sha``.

        Parameters:
            sha: the SHA-256 hex digest returned by a ``put_*`` method.
        """
        data = self._read(sha)
        actual = _sha256(data)
        if actual != sha:
            raise IntegrityError(
                f"artifact {sha} at {self.path(sha)} is corrupt: its {len(data)} bytes hash to "
                f"{actual} (altered, truncated or swapped); restore it from a backup"
            )
        return data

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` atomically and return its SHA-256; the same bytes again are a no-op.

        A present file that no longer verifies is replaced by the good copy.

        Parameters:
            data: the bytes to store.
        """
        data = bytes(data)
        sha = _sha256(data)
        target = self.path(sha)
        try:
            self.get_bytes(sha)
            return sha
        except IntegrityError:
            pass
        try:
            _private_dir(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        except OSError as exc:
            raise StoreError(f"cannot write artifact {sha} in {target.parent}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot write artifact {sha} to {target}: {exc}") from exc
            raise
        return sha

    def shas(self) -> Iterator[str]:
        """Every stored hash, sorted (temp files of interrupted writes are skipped)."""
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name):
                for file in sorted(shard.iterdir()):
                    if _SHA_RE.fullmatch(file.name) and file.name.startswith(shard.name):
                        yield file.name

    def put_frame(self, df: pd.DataFrame) -> str:
        """Store a DataFrame as Parquet (pyarrow, zstd); the same frame gives the same hash.

        Parameters:
            df: the frame; its index and dtypes are kept.
        """
        buffer = io.BytesIO()
        try:
            df.to_parquet(buffer, engine="pyarrow", compression="zstd")
        except (ValueError, TypeError, OverflowError, NotImplementedError, ImportError) as exc:
            raise StoreError(f"cannot write the frame as Parquet: {exc}") from exc
        return self.put_bytes(buffer.getvalue())

    def get_frame(self, sha: str) -> pd.DataFrame:
        """Read back a verified Parquet artifact.

        Parameters:
            sha: the hash returned by :meth:`put_frame`.
        """
        import pandas as pd

        data = self.get_bytes(sha)
        try:
            return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        except Exception as exc:  # noqa: BLE001  (pyarrow raises many kinds on bad input)
            raise StoreError(f"artifact {sha} is not a Parquet file: {exc}") from exc

    def put_model(self, model: Any) -> str:
        """Store a model in the skops format; refuses a model that holds untrusted types.

        Parameters:
            model: a fitted scikit-learn estimator or pipeline.
        """
        import skops.io

        try:
            data = skops.io.dumps(model)
        except Exception as exc:  # noqa: BLE001  (skops raises many kinds on odd objects)
            raise UnsafeArtifactError(
                f"cannot store a {type(model).__qualname__} in the skops format: {exc}"
            ) from exc
        _check_skops(data, f"model {type(model).__qualname__}", self.max_bytes)
        return self.put_bytes(data)

    def get_model(self, sha: str) -> Any:
        """Load a stored model: verify its hash, then load it trusting only the allowlist.

        Parameters:
            sha: the hash returned by :meth:`put_model`.
        """
        return _loads_skops(self.get_bytes(sha), f"artifact {sha}", self.max_bytes)

    def check_model(self, sha: str) -> None:
        """Verify that a stored model would load: its hash, then the skops checks of
        :meth:`get_model` (format, zip members, allowlisted types), without loading it.

        Parameters:
            sha: the hash of the model file.
        """
        _check_skops(self.get_bytes(sha), f"artifact {sha}", self.max_bytes)

    def load_model_file(self, path: str | Path) -> Any:
        """Load a user's model file; only ``.skops`` is accepted and nothing is ever unpickled.

        The format is read from the magic bytes, so a pickle renamed to ``.skops`` is refused as
        a pickle. Pickle, joblib, ``.pkl.gz``, PyTorch and Keras files raise
        :class:`UnsafeArtifactError` naming the format.

        Parameters:
            path: the file to import.
        """
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise UnsafeArtifactError(
                    f"model file {path} has {size} bytes, over the limit of {self.max_bytes}"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read model file {path}: {exc}") from exc
        kind = detect_format(data)
        if kind == "skops" and path.suffix != ".skops":
            raise UnsafeArtifactError(
                f"model file {path} is a skops archive but is not named *.skops; "
                "only .skops files are accepted"
            )
        return _loads_skops(data, f"model file {path}", self.max_bytes)
