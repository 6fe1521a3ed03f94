"""How long a cold ``retrainer backtest --optimal`` of one data set at one cost takes: the score
matrix built before (the straightforward loop of the base commit, one process) and now (worker
processes, one per core), then warm (the matrix read from the cache), wall and CPU seconds.

Run: ``.venv/bin/python bench/score_matrix_speed.py [--data elec2,hapt,acs] [--cost 500]
[--jobs 2] [--before COMMIT]``. Data and trainer are those of ``bench/backtest_cost.py`` (the
shipped ELEC2 trainer, HistGradientBoosting with 100 iterations, one thread a process, a window
of 4 batches, labels one batch late). "cold" = the matrix built into an empty cache + every
policy priced at the cost through the gate; "warm" = the same with the matrix cached. CPU
seconds count this process and its finished worker processes (user + system); the critical
path is this process's CPU seconds plus the busiest worker's (polled from /proc): the wall time
when each process has a core of its own. The machine's load average is printed per row since
the wall time follows it (and a session's processes share one CPU slice under the kernel's
autogroup scheduling, so workers do not get more of a loaded machine than one process). Each
row checks that the matrix built now equals the one built before, value by value.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from backtest_cost import load, priced

from retrainer.schedule.compare import default_policies
from retrainer.schedule.gated import Gate
from retrainer.schedule.scores import ScoreMatrix, cached_scores
from retrainer.training import Trainer

BASE = "77e6ff8"  # the last commit before the build in worker processes
ROOT = Path(__file__).resolve().parent.parent


def cpu() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def before_module(commit: str):
    """The score matrix module as it was at ``commit`` (read with git)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/retrainer/schedule/scores.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "scores_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scores_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def progress(name: str, what: str):
    def show(done: int, total: int) -> None:
        print(f"\r  {name} {what}: {done}/{total} boundaries", end="", file=sys.stderr, flush=True)

    return show


def price(m: ScoreMatrix, cost: float) -> None:
    priced(m, cost, default_policies(), gate=Gate(m))


def own_cpu() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    return mine.ru_utime + mine.ru_stime


def children_cpu() -> dict[int, float]:
    """CPU seconds so far of each live child process of this one (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


TICK = os.sysconf("SC_CLK_TCK")


def timed(step, *args, **kwargs):
    """Result, wall s, CPU s (this process and its children) and the critical path: this
    process's CPU s + the busiest child's (polled every 0.2 s): the wall time if each process
    had a core of its own."""
    seen: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            seen.update(children_cpu())

    watcher = threading.Thread(target=poll, daemon=True)
    wall, used, mine = time.perf_counter(), cpu(), own_cpu()
    watcher.start()
    try:
        result = step(*args, **kwargs)
    finally:
        stop.set()
        watcher.join()
    path = own_cpu() - mine + max(seen.values(), default=0.0)
    return result, time.perf_counter() - wall, cpu() - used, path


def build_before(old, batches: list, trainer: Trainer, name: str, cost: float) -> ScoreMatrix:
    m = old.build_scores(batches, trainer, history=4, window=4, on_model=progress(name, "before"))
    price(m, cost)
    return m


def build_now(batches: list, trainer: Trainer, name: str, cost: float, folder: str, jobs):
    m, _, cached = cached_scores(
        batches,
        trainer,
        folder=folder,
        history=4,
        window=4,
        jobs=jobs,
        on_model=progress(name, "now"),
    )
    price(m, cost)
    return m, cached


def same(a: ScoreMatrix, b: ScoreMatrix) -> bool:
    fields = ("errors", "rows", "packed", "offsets", "gate_packed", "gate_offsets", "gate_start")
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="elec2,sea,agrawal,stagger,hyperplane,hapt,acs")
    parser.add_argument("--cost", type=float, default=500)
    parser.add_argument("--jobs", type=int, default=None, help="default: one per core")
    parser.add_argument("--before", default=BASE, help="commit of the 'before' build")
    args = parser.parse_args()
    t = yaml.safe_load(resources.files("retrainer").joinpath("examples/elec2.yaml").read_text())
    trainer = Trainer(t["trainer"]["estimator"], t["trainer"]["params"])
    old = before_module(args.before)
    cores = len(os.sched_getaffinity(0))
    jobs = args.jobs or f"one per core ({cores}) when the work pays for them"
    print(f"{os.cpu_count()} cores, {cores} usable; worker processes: {jobs}; cost {args.cost:g}")
    print(f"before: {args.before}'s build, one process; uptime at start: {os.getloadavg()}\n")
    print(
        "| data | batches x rows | load s | cold before: wall / CPU s | cold now: wall / CPU s "
        "| cold now: critical path CPU s | warm now: wall / CPU s | same matrix | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.data.split(","):
        batches, load_s, _, _ = timed(load, name)
        loads = [os.getloadavg()[0]]
        m_before, wall_before, cpu_before, _ = timed(
            build_before, old, batches, trainer, name, args.cost
        )
        loads.append(os.getloadavg()[0])
        with tempfile.TemporaryDirectory() as folder:
            now = (build_now, batches, trainer, name, args.cost, folder, args.jobs)
            (m_now, cached), wall_now, cpu_now, path_now = timed(*now)
            loads.append(os.getloadavg()[0])
            (_, warm), wall_warm, cpu_warm, _ = timed(*now)
        assert not cached and warm
        print("\r", end="", file=sys.stderr)
        shape = f"{m_now.batches} x {int(m_now.rows[0]):,}"
        print(
            f"| {name} | {shape} | {load_s:.1f} | {wall_before:.0f} / {cpu_before:.0f} "
            f"| {wall_now:.0f} / {cpu_now:.0f} | {path_now:.0f} "
            f"| {wall_warm:.1f} / {cpu_warm:.1f} "
            f"| {'yes' if same(m_before, m_now) else 'NO'} "
            f"| {min(loads):.1f}-{max(loads):.1f} |",
            flush=True,
        )
    print(f"\nuptime at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
