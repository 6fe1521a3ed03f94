"""Speed and change points of the concept-drift detectors against River's, side by side.

Run: ``.venv/bin/python bench/concept_detectors.py [--rows N] [--repeat K]``. The stream is a
Bernoulli error stream whose error rate goes from 0.1 to 0.3 at its middle (1M values by
default). For each detector it prints the median of K runs of: River one value at a time, ours
one value at a time (``update``), ours on the whole batch (``update_many``), the speed-up of
ours over River one value at a time (like for like: what a streaming caller pays per
prediction) and of ``update_many`` over River one value at a time, the detection
delay (first detection at or after the change, minus the change) and the false alarms
(detections before the change), ours / River. DDM, EDDM, Page-Hinkley and ADWIN step in C
when the optional extension was built (``native.COMPILED``, printed); the column "update, no
C" times what runs without it (their Python ``update``, ADWIN's Numba window), in a fresh
process that cannot import the extension, with River timed again in that process for the ratio
in brackets. KSWIN runs a KS
test per value, so it is measured on the ``--kswin-rows`` values around the change only; CUSUM
has no River counterpart. The first ADWIN call in a fresh process (importing the detectors and,
without the extension, Numba: compiling, or loading from Numba's on-disk cache) is printed
apart and is not in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from retrainer.checks.concept import ADWIN, CUSUM, DDM, EDDM, HDDMA, HDDMW, KSWIN, PageHinkley
from retrainer.checks.concept.native import COMPILED

try:
    from river import drift as river_drift
except ImportError:  # River is a test dependency only
    river_drift = None

FIRST_CALL = (
    "import time; t = time.perf_counter(); from retrainer.checks.concept.adwin import {cls}; "
    "{cls}().update_many([0.0, 1.0]); print(time.perf_counter() - t)"
)
NO_C = "no C"  # the argument that makes this script time what runs without the C extension
NO_C_DETECTORS = ("DDM", "EDDM", "ADWIN", "PageHinkley")


def without_c(stream: np.ndarray, repeat: int) -> dict[str, tuple[float, list[int], float]]:
    """Per-value times and change points of the detectors with a C step, measured in a fresh
    process in which the extension cannot be imported (what a machine without a C compiler
    runs: the Python ``update``, ADWIN's Numba window), and River's time in that process."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stream.npy")
        np.save(path, stream)
        blocked = (
            "import runpy, sys; sys.modules['retrainer.checks.concept._native'] = None; "
            f"sys.argv = [{__file__!r}, {NO_C!r}, {path!r}, '{repeat}']; "
            f"runpy.run_path({__file__!r}, run_name='__main__')"
        )  # importing the extension fails, as if it was not built
        out = subprocess.run(
            [sys.executable, "-c", blocked],
            capture_output=True,
            text=True,
            check=True,
        )
    return {k: tuple(v) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}


def no_c_main(path: str, repeat: int) -> None:
    from retrainer.checks import concept

    assert not COMPILED, "the C extension was imported"
    values = np.load(path).tolist()
    concept.ADWIN().update_many([0.0, 1.0])  # Numba: compile (or load) before timing
    found = {}
    for name in NO_C_DETECTORS:
        make, theirs = concept.DETECTORS[name], river_factory(name)
        seconds, hits = timed(lambda m=make: one_at_a_time(m(), values), repeat)
        river = timed(lambda t=theirs: one_at_a_time(t(), values), repeat)[0] if theirs else None
        found[name] = (seconds, hits, river)  # River timed in the same process, right after
    print(json.dumps(found))


def river_factory(name: str) -> Callable | None:
    if river_drift is None:
        return None
    return {
        "DDM": river_drift.binary.DDM,
        "EDDM": river_drift.binary.EDDM,
        "HDDMA": river_drift.binary.HDDMA,
        "HDDMW": river_drift.binary.HDDMW,
        "ADWIN": river_drift.ADWIN,
        "PageHinkley": river_drift.PageHinkley,
        "KSWIN": lambda: river_drift.KSWIN(seed=42),
    }.get(name)


def river_version() -> str:
    if river_drift is None:
        return "(not installed)"
    from importlib.metadata import version

    return version("river")


def one_at_a_time(detector, xs: list[float]) -> list[int]:
    hits = []
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


def timed(run: Callable[[], list[int]], repeat: int) -> tuple[float, list[int]]:
    times, hits = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        hits = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), list(hits)


def delay(hits: list[int], change: int) -> str:
    later = [i for i in hits if i >= change]
    return f"+{later[0] - change:,}" if later else "none"


def false_alarms(hits: list[int], change: int) -> int:
    return sum(i < change for i in hits)


def first_call_seconds(cls: str, cache_dir: str | None = None) -> float:
    """Seconds to import and first call ``cls`` (``ADWIN`` or ``NumbaADWIN``, ADWIN on its Numba
    window) in a fresh process (``cache_dir``: a fresh Numba cache)."""
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": cache_dir} if cache_dir else {}))
    code = FIRST_CALL.format(cls=cls)
    if cls == "NumbaADWIN":
        code = code.replace("import NumbaADWIN;", "import NumbaWindow, adwin_class; ")
        code = code.replace("NumbaADWIN()", "adwin_class(NumbaWindow)()")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kswin-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    half = args.rows // 2
    stream = np.r_[rng.random(half) < 0.1, rng.random(args.rows - half) < 0.3].astype(float)
    detectors = {
        "DDM": DDM,
        "EDDM": EDDM,
        "HDDMA": HDDMA,
        "HDDMW": HDDMW,
        "ADWIN": ADWIN,
        "PageHinkley": PageHinkley,
        "KSWIN": lambda: KSWIN(seed=42),
        "CUSUM": CUSUM,
    }
    plain = without_c(stream, args.repeat)
    print(
        f"Bernoulli error stream, p 0.1 -> 0.3 at the middle; median of {args.repeat} runs; "
        f"River {river_version()} one value at a time against ours one value at a time "
        f"(update) and on the whole stream (update_many); C extension built: {COMPILED}\n"
    )
    keys = [
        "detector",
        "rows",
        "River s",
        "ours update s",
        "update, no C s (River / it)",
        "ours batch s",
        "per value: River / ours",
        "batch: River / ours",
        "delay ours / River",
        "false alarms ours / River",
    ]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for name, make in detectors.items():
        xs = stream
        if name == "KSWIN":
            xs = stream[half - args.kswin_rows // 2 : half + args.kswin_rows // 2]
        change = half if name != "KSWIN" else args.kswin_rows // 2
        values = xs.tolist()
        ours_single, single_hits = timed(
            lambda m=make, v=values: one_at_a_time(m(), v), args.repeat
        )
        ours_batch, batch_hits = timed(
            lambda m=make, x=xs: m().update_many(x).tolist(), args.repeat
        )
        assert batch_hits == single_hits, f"{name}: update_many and update disagree"
        no_c = "-"
        if name in plain:
            seconds, plain_hits, river_there = plain[name]
            assert plain_hits == single_hits, f"{name}: the update without C disagrees"
            no_c = f"{seconds:.3f} ({river_there / seconds:.2f}x)" if river_there else "-"
        theirs = river_factory(name)
        river_s = speed = per_value = "-"
        river_delay = river_false = "-"
        if theirs is not None:
            seconds, river_hits = timed(
                lambda t=theirs, v=values: one_at_a_time(t(), v), args.repeat
            )
            river_s, speed = f"{seconds:.3f}", f"{seconds / ours_batch:.1f}x"
            per_value = f"{seconds / ours_single:.2f}x"
            river_delay, river_false = delay(river_hits, change), false_alarms(river_hits, change)
            assert river_hits == batch_hits, f"{name}: change points differ from River's"
        row = [
            name,
            f"{xs.size:,}",
            river_s,
            f"{ours_single:.3f}",
            no_c,
            f"{ours_batch:.3f}",
            per_value,
            speed,
            f"{delay(batch_hits, change)} / {river_delay}",
            f"{false_alarms(batch_hits, change)} / {river_false}",
        ]
        print("| " + " | ".join(str(v) for v in row) + " |", flush=True)
    native = first_call_seconds("ADWIN")
    with tempfile.TemporaryDirectory() as empty:
        cold = first_call_seconds("NumbaADWIN", empty)
    warm = first_call_seconds("NumbaADWIN")
    print(
        f"\nImport and first ADWIN call in a fresh process, not in the table: {native:.2f} s "
        f"(C extension built: {COMPILED}); on the Numba window (no C extension) {cold:.2f} s "
        f"with an empty Numba cache (import Numba, compile), {warm:.2f} s with the compiled "
        "code cached on disk (import Numba, load)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == [NO_C]:
        no_c_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
