"""Time to a full per-column drift verdict: retrainer (profiles) against SciPy, peers and floors.

Generates seeded reference and current data (20 numeric + 5 categorical columns; numeric
columns n0-n4 shifted by 0.2-0.5 sd, categorical c0 re-weighted, the rest unchanged), writes
them to Parquet, and prints one row per tool and size: import time, compute time (median of
``--repeat`` runs for the in-process tools, one run for peers), the ratio to the histogram floor,
whether the columns found drifted are the shifted ones, and on how many of the 25 columns the
tool's verdict agrees with retrainer's.

- retrainer: ``BatchProfile.from_frame`` of the current frame on the cached reference's edges,
  then ``check_drift`` with Benjamini-Hochberg over columns (the reference profile is built
  once, outside the timing, as in the loop, where the champion carries it; its time is printed
  apart), with its default threads over columns and with one thread; the same with the
  categorical columns as pandas ``object`` (one string object per row, and shared objects as
  ``read_csv``/``read_parquet`` give them), ``category`` and Arrow strings (the frames are
  built with pandas' default ``str`` dtype); and **cold**: both profiles built inside the
  timing, which is what the peers and SciPy do, so that row is the like-for-like one;
- scipy: ``ks_2samp`` per numeric column and ``chi2_contingency`` per categorical column on the
  raw rows, at 5 %;
- floors: one ``np.sum`` pass over both frames' numeric columns, one 100-bin ``np.histogram``
  per numeric column of both frames;
- peers (``--peers``), each in its own virtual environment under ``--peers-dir`` (built with
  ``python3 -m venv`` and pip on first use, reused after; a peer whose environment cannot be
  built is skipped with the reason), in a subprocess on the same Parquet files: Evidently's
  ``DataDriftPreset``, NannyML's ``UnivariateDriftCalculator`` (KS and chi-square, one chunk;
  KS alarms above the asymptotic 5 % critical D, since its default threshold, taken from the
  spread over reference chunks, is undefined with one chunk),
  alibi-detect's ``TabularDrift`` (KS and chi-square per feature; categories ordinal-encoded
  inside the timed part; Business Source License: compared with, never a dependency) and
  frouros' ``KSTest`` and ``ChiSquareTest`` per column. Their compute time excludes reading the
  Parquet files and importing the package (printed apart).
- memory (``--memory-rows``, 10M by default, 0 skips): a Parquet file of that many current rows
  (row groups of 1M rows) is profiled in a fresh process, streamed 250,000 rows at a time
  (``data.io.iter_parquet`` into ``BatchProfile.from_chunks``) on the cached reference's edges
  and checked;
  the table gets its time and the process's peak resident memory (``VmHWM`` of Linux: a child
  started by ``subprocess`` inherits its parent's ``ru_maxrss``, so that cannot serve).

Run: ``nice -n 19 .venv/bin/python bench/drift_speed.py --rows 10000 100000 1000000 --peers``
(``--peers nannyml frouros`` for some; ``--peer-max-rows 100000`` keeps slow peers off the
larger sizes).
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 20, 5
COLUMNS = [f"n{i}" for i in range(NUMERIC)] + [f"c{j}" for j in range(CATEGORICAL)]
SHIFTED = [f"n{i}" for i in range(5)] + ["c0"]


def frames(rows: int, seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames: n0-n4 shifted by 0.2 + 0.075 * i sd, c0 re-weighted."""
    rng = np.random.default_rng(rows if seed is None else seed)

    def make(shifted: bool) -> pd.DataFrame:
        data = {
            f"n{i}": rng.normal((0.2 + 0.075 * i) if shifted and i < 5 else 0.0, 1.0, rows)
            for i in range(NUMERIC)
        }
        for j in range(CATEGORICAL):
            labels = [f"v{k}" for k in range(5 * (j + 1))]
            p = np.ones(len(labels)) / len(labels)
            if shifted and j == 0:
                p = np.linspace(2, 0.5, len(labels))
                p /= p.sum()
            data[f"c{j}"] = rng.choice(labels, rows, p=p)
        return pd.DataFrame(data)

    return make(False), make(True)


PEER_HEAD = """
import json, sys, time
t0 = time.perf_counter()
{imports}
imported = time.perf_counter() - t0
import pandas as pd
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
cats = [c for c in ref.columns if c.startswith("c")]
t0 = time.perf_counter()
"""
PEER_TAIL = """
compute = time.perf_counter() - t0
print(json.dumps({"import": imported, "compute": compute, "drifted": sorted(drifted)}))
"""

EVIDENTLY = """
snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
out = snapshot.dict()
drifted = []
for m in out["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        value, threshold, method = m["value"], cfg.get("threshold"), cfg.get("method", "")
        pvalue = "p_value" in method or "test" in method.lower()
        if (value < threshold) if pvalue else (value >= threshold):
            drifted.append(cfg["column"])
"""

NANNYML = """
critical_d = 1.3581 * ((len(ref) + len(cur)) / (len(ref) * len(cur))) ** 0.5
calc = nml.UnivariateDriftCalculator(
    column_names=list(ref.columns), treat_as_categorical=cats, chunk_number=1,
    continuous_methods=["kolmogorov_smirnov"], categorical_methods=["chi2"],
    thresholds={"kolmogorov_smirnov": nml.thresholds.ConstantThreshold(upper=critical_d)},
)
calc.fit(ref)
res = calc.calculate(cur).filter(period="analysis").to_df()
drifted = {c[0] for c in res.columns if c[-1] == "alert" and bool(res[c].iloc[0])}
"""

ALIBI = """
import numpy as np
parts_ref, parts_cur, categories = [], [], {}
for i, c in enumerate(ref.columns):
    if c in cats:
        codes, _ = pd.factorize(pd.concat([ref[c], cur[c]], ignore_index=True), sort=True)
        parts_ref.append(codes[: len(ref)])
        parts_cur.append(codes[len(ref):])
        categories[i] = None
    else:
        parts_ref.append(ref[c].to_numpy())
        parts_cur.append(cur[c].to_numpy())
x_ref = np.column_stack(parts_ref).astype("float32")
x_cur = np.column_stack(parts_cur).astype("float32")
detector = TabularDrift(x_ref, p_val=0.05, categories_per_feature=categories)
flags = detector.predict(x_cur, drift_type="feature")["data"]["is_drift"]
drifted = {c for c, flag in zip(ref.columns, flags) if flag}
"""

FROUROS = """
drifted = set()
for c in ref.columns:
    detector = ChiSquareTest() if c in cats else KSTest()
    detector.fit(X=ref[c].to_numpy())
    result, _ = detector.compare(X=cur[c].to_numpy())
    if result.p_value < 0.05:
        drifted.add(c)
"""


@dataclass(frozen=True)
class Peer:
    """A peer tool: what its environment installs, what it imports and the timed code."""

    name: str
    requirements: tuple[str, ...]
    imports: str
    code: str


PEERS = {
    peer.name: peer
    for peer in (
        Peer(
            "evidently",
            ("evidently==0.7.*", "pyarrow"),
            "from evidently import Report\nfrom evidently.presets import DataDriftPreset",
            EVIDENTLY,
        ),
        Peer(
            "nannyml",
            ("nannyml==0.13.*", "statsmodels", "pyarrow"),
            "import nannyml as nml",
            NANNYML,
        ),
        Peer(
            "alibi-detect",
            ("alibi-detect==0.13.*", "numpy<2", "pandas<2.3", "pyarrow<21"),
            "from alibi_detect.cd import TabularDrift",
            ALIBI,
        ),
        Peer(
            "frouros",
            ("frouros==0.9.*", "scipy<1.15", "pandas", "pyarrow"),
            "from frouros.detectors.data_drift import ChiSquareTest, KSTest",
            FROUROS,
        ),
    )
}


def peer_python(peer: Peer, folder: Path) -> tuple[str | None, str]:
    """The python of ``peer``'s virtual environment (built on first use), or None and why."""
    env = folder / peer.name
    python = env / "bin" / "python"
    check = [str(python), "-c", f"import pyarrow\n{peer.imports}"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return str(python), "reused"
    print(f"building the {peer.name} environment in {env} ({' '.join(peer.requirements)}) ...")
    steps = [
        ["python3", "-m", "venv", "--clear", str(env)],
        [str(python), "-m", "pip", "install", "-q", *peer.requirements],
        check,
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout or "failed").strip().splitlines()
            return None, f"cannot build its environment ({' '.join(step[:3])}): {lines[-1]}"
    return str(python), "built"


def run_peer(python: str, peer: Peer, ref: Path, cur: Path) -> dict:
    script = ref.parent / f"peer_{peer.name}.py"
    script.write_text(PEER_HEAD.format(imports=peer.imports) + peer.code + PEER_TAIL)
    done = subprocess.run(
        [python, str(script), str(ref), str(cur)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_seconds(step, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


MEMORY = """
import json, sys, time
from retrainer.checks.drift import check_drift
from retrainer.data.io import iter_parquet
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile
reference = BatchProfile.from_dict(json.loads(open(sys.argv[1]).read()))
schema = Schema.from_dict(json.loads(open(sys.argv[2]).read()))
start = time.perf_counter()
chunks = []
def parts():
    for part in iter_parquet(sys.argv[3]):
        chunks.append(len(part))
        yield part
profile = BatchProfile.from_chunks(parts(), schema, edges=reference.edges())
results = check_drift(reference, profile, correction="bh")
seconds = time.perf_counter() - start
drifted = sorted({r.column for r in results if r.alarm})
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": profile.n_rows,
                  "chunks": len(chunks), "drifted": drifted}))
"""


def memory_run(rows: int, folder: Path) -> dict:
    """Stream ``rows`` current rows from Parquet through profile + check in a fresh process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from retrainer.data.schema import Schema
    from retrainer.profile import BatchProfile

    ref, _ = frames(1_000_000)
    schema = Schema.infer(ref)
    (folder / "reference.json").write_text(
        json.dumps(BatchProfile.from_frame(ref, schema).to_dict())
    )
    (folder / "schema.json").write_text(json.dumps(schema.to_dict()))
    path = folder / f"current_{rows}.parquet"
    step = 1_000_000
    with pq.ParquetWriter(path, pa.Schema.from_pandas(ref, preserve_index=False)) as writer:
        for i, start in enumerate(range(0, rows, step)):
            _, cur = frames(min(step, rows - start), seed=10_000 + i)
            writer.write_table(pa.Table.from_pandas(cur, preserve_index=False))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY,
            *(str(folder / n) for n in ("reference.json", "schema.json")),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    path.unlink()
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def string_frames(cur: pd.DataFrame, cats: list[str]) -> dict[str, pd.DataFrame]:
    """``cur`` with its categorical columns as ``object`` (one string object per row, as
    ``astype(object)`` from Arrow strings gives; and shared objects, one per distinct value, as
    ``read_csv`` and ``read_parquet`` give), ``category`` and Arrow strings."""
    as_category = cur.astype({c: "category" for c in cats})
    return {
        "object": cur.astype({c: "object" for c in cats}),
        "object shared": as_category.astype({c: "object" for c in cats}),
        "category": as_category,
        "pyarrow": cur.astype({c: "string[pyarrow]" for c in cats}),
    }


def verdicts(found: list[str], ours: list[str]) -> tuple[str, str]:
    """Whether ``found`` are the shifted columns, and on how many columns it agrees with ours."""
    wrong = sorted(set(found) ^ set(SHIFTED))
    truth = "all and only the shifted" if not wrong else f"differs on {wrong}"
    agree = sum((c in found) == (c in ours) for c in COLUMNS)
    return truth, f"{agree}/{len(COLUMNS)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--peers", nargs="*", choices=sorted(PEERS), help="run these peers (all when bare)"
    )
    parser.add_argument("--peers-dir", type=Path, default=Path(tempfile.gettempdir()) / "peers")
    parser.add_argument("--peer-max-rows", type=int, default=None, help="peers up to this size")
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    from scipy import stats

    from retrainer.checks.drift import check_drift
    from retrainer.data.schema import Schema
    from retrainer.profile import BatchProfile

    imported = time.perf_counter() - t0
    peers: dict[str, str] = {}
    for name in sorted(PEERS) if args.peers == [] else (args.peers or []):
        python, how = peer_python(PEERS[name], args.peers_dir)
        if python is None:
            print(f"skipping {name}: {how}")
        else:
            peers[name] = python
    print(f"shifted columns: {SHIFTED}; retrainer and scipy import {imported:.2f} s together")
    print(
        f"{'rows':>9} {'tool':<26}{'import s':>9}{'compute s':>11}{'x floor':>9}"
        f"{'agree':>7}  drifted"
    )
    for rows in args.rows:
        ref, cur = frames(rows)
        tmp = Path(tempfile.mkdtemp(prefix="drift_bench_"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        ref_path, cur_path = tmp / "reference.parquet", tmp / "current.parquet"
        ref.to_parquet(ref_path)
        cur.to_parquet(cur_path)
        num = [c for c in ref.columns if c.startswith("n")]
        cats = [c for c in ref.columns if c.startswith("c")]
        schema = Schema.infer(ref)
        ref_seconds, reference = median_seconds(
            lambda ref=ref, schema=schema: BatchProfile.from_frame(ref, schema), 1
        )
        edges = reference.edges()

        def ours(reference=reference, schema=schema, cur=cur, edges=edges, workers=None):
            batch = BatchProfile.from_frame(cur, schema, edges=edges, workers=workers)
            results = check_drift(reference, batch, correction="bh")
            return sorted({r.column for r in results if r.alarm})

        def cold(ref=ref, schema=schema, cur=cur):
            reference = BatchProfile.from_frame(ref, schema)
            return ours(reference=reference, cur=cur, edges=reference.edges())

        def exact(ref=ref, cur=cur, num=num, cats=cats):
            found = [c for c in num if stats.ks_2samp(ref[c], cur[c]).pvalue < 0.05]
            for c in cats:
                table = pd.crosstab(
                    np.r_[np.zeros(len(ref)), np.ones(len(cur))], np.r_[ref[c], cur[c]]
                )
                if stats.chi2_contingency(table).pvalue < 0.05:
                    found.append(c)
            return found

        arrays = [ref[c].to_numpy() for c in num] + [cur[c].to_numpy() for c in num]
        floor_sum, _ = median_seconds(lambda arrays=arrays: [a.sum() for a in arrays], 5)
        floor_hist, _ = median_seconds(
            lambda arrays=arrays: [np.histogram(a, bins=100) for a in arrays], 5
        )
        seconds, mine = median_seconds(ours, args.repeat)
        rows_out = [
            ("numpy floor: sum", 0.0, floor_sum, None),
            ("numpy floor: hist", 0.0, floor_hist, None),
            ("retrainer ref profile", 0.0, ref_seconds, None),
            ("retrainer", 0.0, seconds, mine),
        ]
        seconds, found = median_seconds(lambda ours=ours: ours(workers=1), args.repeat)
        rows_out.append(("retrainer, 1 thread", 0.0, seconds, found))
        for label, typed in string_frames(cur, cats).items():
            seconds, found = median_seconds(lambda t=typed: ours(cur=t), args.repeat)
            rows_out.append((f"retrainer, {label}", 0.0, seconds, found))
        seconds, found = median_seconds(cold, args.repeat)
        rows_out.append(("retrainer cold", 0.0, seconds, found))
        seconds, found = median_seconds(exact, max(1, args.repeat // 3))
        rows_out.append(("scipy exact", 0.0, seconds, found))
        for name, python in peers.items():
            if args.peer_max_rows is not None and rows > args.peer_max_rows:
                continue
            out = run_peer(python, PEERS[name], ref_path, cur_path)
            if "error" in out:
                print(f"{rows:>9} {name:<26} failed: {out['error']}")
                continue
            rows_out.append((name, out["import"], out["compute"], out["drifted"]))
        for name, imp, seconds, found in rows_out:
            truth, agree = verdicts(found, mine) if found is not None else ("", "")
            print(
                f"{rows:>9} {name:<26}{imp:>9.2f}{seconds:>11.3f}"
                f"{seconds / floor_hist:>9.1f}{agree:>7}  {truth}"
            )
    if args.memory_rows:
        folder = Path(tempfile.mkdtemp(prefix="drift_memory_"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        out = memory_run(args.memory_rows, folder)
        if "error" in out:
            print(f"memory run failed: {out['error']}")
        else:
            truth, _ = verdicts(out["drifted"], out["drifted"])
            print(
                f"{out['rows']:>9} {'retrainer streamed':<22}{'':>9}{out['seconds']:>11.3f}"
                f"{'':>9}{'':>7}  {truth}; peak memory {out['peak_mb']:.0f} MB in "
                f"{out['chunks']} Parquet batches"
            )


if __name__ == "__main__":
    main()
