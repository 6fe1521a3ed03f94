"""Read batches from CSV or Parquet files and folders, or take pandas, polars and Arrow tables.

Example:
    >>> import pyarrow as pa
    >>> to_pandas(pa.table({"x": [1, 2]})).shape
    (2, 1)
"""

from __future__ import annotations

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


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one CSV or Parquet file; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path)
        else:
            raise DataError(f"{path}: unknown format (expected one of {', '.join(SUFFIXES)})")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from None
    if frame.empty:
        raise DataError(f"{path}: the file has no rows")
    return to_pandas(frame, source=str(path))


def list_files(path: str | Path) -> list[Path]:
    """The data files of a folder (sorted by name), or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    return sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))
