"""Read batches from CSV or Parquet files and folders, or take pandas, polars and Arrow tables.

Example:
    >>> import pyarrow as pa
    >>> to_pandas(pa.table({"x": [1, 2]})).shape
    (2, 1)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from retrainer.errors import DataError

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def to_pandas(data: Any, *, source: str = "data") -> pd.DataFrame:
    """Return a pandas DataFrame for a pandas, polars or Arrow table."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif hasattr(data, "to_pandas"):  # polars.DataFrame, pyarrow.Table
        frame = data.to_pandas()
    else:
        raise DataError(
            f"{source}: expected a pandas, polars or Arrow table, got {type(data).__name__}"
        )
    bad = [c for c in frame.columns if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(c))]
    if bad:
        raise DataError(f"{source}: column names with control characters: {bad[:5]!r}")
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise DataError(f"{source}: duplicated column names {dupes}")
    return frame


def read_table(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read one CSV or Parquet file; errors name the file and what is wrong with it. A CSV file
    that is not valid ``encoding`` names its first bad line (the header is line 1).

    Example:
        >>> import tempfile
        >>> name = tempfile.mkdtemp() + "/prices.csv"
        >>> _ = open(name, "wb").write("city,price\\nZurich,1\\nZürich,2\\n".encode("latin-1"))
        >>> read_table(name)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        retrainer.errors.DataError: .../prices.csv: line 3 is not valid utf-8 (byte 0xfc); ...
        >>> read_table(name, encoding="latin-1")["city"].tolist()
        ['Zurich', 'Zürich']
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path, encoding=encoding)
        else:
            raise DataError(f"{path}: unknown format (expected one of {', '.join(SUFFIXES)})")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {_bad_encoding(path, encoding, exc)}") from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from None
    if frame.empty:
        raise DataError(f"{path}: the file has no rows")
    return to_pandas(frame, source=str(path))


def _bad_encoding(path: Path, encoding: str, exc: UnicodeDecodeError) -> str:
    """Where a file stops being ``encoding``: its line and byte, and the setting to change."""
    where = ""
    if not path.name.lower().endswith(".gz"):
        data = path.read_bytes()
        try:
            data.decode(encoding)
        except UnicodeDecodeError as found:
            line = data[: found.start].count(b"\n") + 1
            where = f"line {line} is not valid {encoding} (byte 0x{data[found.start]:02x}); "
    if not where:
        where = f"not valid {encoding} ({exc.reason}); "
    return where + "if the file is in another encoding, set data.encoding (e.g. latin-1, cp1252)"


_ROW = re.compile(r"\brow (\d+)\b")


@contextmanager
def file_lines(path: str | Path) -> Iterator[None]:
    """Within the block, a ``DataError`` about a CSV file's ``row N`` (0-based, as the checks
    count) says ``line N+2`` instead: the line a text editor shows, header counted.

    Example:
        >>> with file_lines("batch.csv"):
        ...     raise DataError("batch.csv: column 'x': row 7 has 'abc', expected a number")
        Traceback (most recent call last):
        retrainer.errors.DataError: batch.csv: column 'x': line 9 has 'abc', expected a number
    """
    try:
        yield
    except DataError as exc:
        if not str(path).lower().endswith((".csv", ".csv.gz")):
            raise
        text = _ROW.sub(lambda m: f"line {int(m.group(1)) + 2}", str(exc))
        raise type(exc)(text) from exc


PARQUET_BATCH_ROWS = 250_000
READ_BUFFER = 1 << 20  # bytes read from the file at a time


def iter_parquet(
    path: str | Path, *, columns: list[str] | None = None, batch_rows: int = PARQUET_BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet file as DataFrames of at most ``batch_rows`` rows, read lazily.

    Memory holds about one row group and one batch: the file is read through a 1 MB buffer
    without pre-buffering whole row groups (pyarrow's default pre-buffers them, and at 10M rows
    x 25 columns a streamed profile then peaked above 2 GB; read like this it stays under 1 GB).

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
        >>> name = tempfile.mkdtemp() + "/x.parquet"
        >>> pq.write_table(pa.table({"x": list(range(10))}), name)
        >>> [len(part) for part in iter_parquet(name, batch_rows=4)]
        [4, 4, 2]
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it as Parquet: {exc}") from None
    with file:
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
            yield batch.to_pandas()


def name_order(name: str) -> tuple:
    """Sort key of a file name: numbers in it by value, so ``week-2`` comes before ``week-10``
    (as ``ls -v`` lists them); names alike but for leading zeros by their text.

    Example:
        >>> sorted(["10.csv", "2.csv", "1.csv", "b.csv", "a10.csv", "a9.csv"], key=name_order)
        ['1.csv', '2.csv', '10.csv', 'a9.csv', 'a10.csv', 'b.csv']
    """
    parts = re.split(r"(\d+)", name)  # text, number, text, ...: like parts line up
    return (tuple(int(p) if k % 2 else p for k, p in enumerate(parts)), name)


def list_files(path: str | Path) -> list[Path]:
    """The data files of a folder (in ``name_order``), or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    found = [p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES)]
    return sorted(found, key=lambda p: name_order(p.name))
