"""Wall time of the commands a user types most, on the demo's store.

Run: ``.venv/bin/python bench/cli_latency.py [--store out/elec2] [--runs 5]``. Without a store
(no ``retrainer.yaml`` in ``--store``) it first makes one with ``retrainer demo --weeks 20``.
Each command runs ``--runs`` times as a fresh process (imports are paid every time, as in a
shell); the table shows the median wall and CPU seconds, and the machine's load while it ran.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RETRAINER = str(Path(sys.executable).parent / "retrainer")
COMMANDS = (["--help"], ["status"], ["models"], ["explain"], ["explain", "decision"])


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``retrainer ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([RETRAINER, *args], cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("out/bench-cli"))
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    store = options.store
    if not (store / "retrainer.yaml").exists():
        print(f"making the demo store in {store} (retrainer demo --weeks 20)...", file=sys.stderr)
        make = [RETRAINER, "demo", "--weeks", "20", "--out", str(store), "--json"]
        subprocess.run(make, check=True, capture_output=True)
    batches = (
        sum(1 for _ in (store / "artifacts").rglob("*")) if (store / "artifacts").exists() else 0
    )
    print(f"store: {store} ({batches} artifact files); {options.runs} runs per command, median")
    print("| command | wall s | cpu s | load (1 min) |")
    print("|---|---:|---:|---:|")
    for args in COMMANDS:
        timed(args, store)  # warm the file cache
        runs = [timed(args, store) for _ in range(options.runs)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| retrainer {' '.join(args)} | {wall:.2f} | {cpu:.2f} | {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
