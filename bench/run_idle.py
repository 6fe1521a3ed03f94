"""What an idle poll of `retrainer run` costs on a folder of already-ingested batch files.

Run: ``.venv/bin/python bench/run_idle.py [--files 200] [--rows 48]``. Writes that many ELEC2
CSV files, ingests them, then times (median of 5, CPU seconds of this process) one poll as
`retrainer run` made it before (``Project.ingest_path``: read and parse every file, find its key
stored) and as it makes it now (``FolderWatch.scan``: list the folder, stat each file).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from retrainer.datasets import load_elec2
from retrainer.project import Project
from retrainer.watch import FolderWatch


def cpu(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=48)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="run-idle-"))
    (root / "in").mkdir()
    elec = load_elec2()
    for i in range(options.files):
        elec.iloc[i * options.rows : (i + 1) * options.rows].to_csv(
            root / "in" / f"{i:05d}.csv", index=False
        )
    settings = {"data": {"target": "target", "source": "in", "id_column": "id"}}
    project = Project.from_dict(settings, root=root)
    project.ingest_path(root / "in")
    watch = FolderWatch(project)
    first = cpu(lambda: FolderWatch(project).scan(), runs=1)
    watch.scan()
    old = cpu(lambda: project.ingest_path(root / "in"))
    new = cpu(watch.scan)
    print(f"{options.files} ingested CSV files of {options.rows} rows; CPU s per poll, median of 5")
    print("| poll | CPU s | per file ms |")
    print("|---|---:|---:|")
    for name, value in [
        ("before: ingest_path (read, parse, look up every file)", old),
        ("now, first scan of a process (hash each file once)", first),
        ("now, idle scan (list the folder, stat each file)", new),
    ]:
        print(f"| {name} | {value:.3f} | {1000 * value / options.files:.2f} |")


if __name__ == "__main__":
    main()
