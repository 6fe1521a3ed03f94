"""Getting files in from the command line: paths and globs, what the defaults mean when the
project file names no id or time column, and which label ids matched nothing.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("b.csv", "a.csv", "notes.txt"):
    ...     _ = (folder / name).write_text("x\\n1\\n")
    >>> [p.name for p in expand_paths([str(folder / "*.csv")])]
    ['a.csv', 'b.csv']
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from retrainer.data.io import read_table
from retrainer.errors import DataError
from retrainer.store.tables import BatchRow

if TYPE_CHECKING:
    from retrainer.config import DataSettings
    from retrainer.record import Record


def expand_paths(args: Sequence[str]) -> list[Path]:
    """Files and folders as given, and the matches of glob patterns (sorted; ``**`` recurses),
    for shells that pass a pattern on unexpanded. A path that does not exist, or a pattern that
    matches nothing, is an error naming it."""
    found: list[Path] = []
    for arg in args:
        if Path(arg).exists():
            found.append(Path(arg))
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise DataError(f"{arg}: no file matches this pattern")
            found += [Path(m) for m in matches]
        else:
            raise DataError(f"{arg}: no such file or folder")
    return list(dict.fromkeys(found))


def default_warnings(data: DataSettings) -> list[str]:
    """What retrainer assumes when the project file names no id or no time column.

    >>> from retrainer.config import DataSettings
    >>> [w.split(":")[0] for w in default_warnings(DataSettings(target="y"))]
    ['data.id_column is not set', 'data.time_column is not set']
    """
    warnings = []
    if not data.id_column:
        warnings.append(
            "data.id_column is not set: rows are known by their order in their file, and late "
            "labels cannot be joined to them (put the target column in the batch files instead)"
        )
    if not data.time_column:
        warnings.append(
            "data.time_column is not set: batches are ordered as they are ingested (files of a "
            "folder in name order), and windows, schedules and cooldowns follow ingest time"
        )
    return warnings


def unmatched_ids(project: Record, path: Path, limit: int = 5) -> list:
    """The first ``limit`` ids of the label file ``path`` that no stored batch holds."""
    id_col = project.config.data.id_column
    labels = read_table(path, encoding=project.config.data.encoding)
    if not id_col or id_col not in labels:
        return []
    wanted = labels[id_col].dropna().drop_duplicates()
    stored: set = set()
    with project.store.session() as s:
        artifacts = s.scalars(select(BatchRow.artifact).order_by(BatchRow.id)).all()
    for sha in artifacts:
        frame = project.artifacts.get_frame(sha)
        if id_col in frame:
            stored.update(frame[id_col].tolist())
    return [i for i in wanted.tolist() if i not in stored][:limit]
