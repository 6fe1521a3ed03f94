"""Time to a full per-column drift verdict: retrainer (profiles) against SciPy, peers and floors.

Generates seeded reference and current data (20 numeric + 5 categorical columns; numeric
columns n0-n4 shifted by 0.2-0.5 sd, categorical c0 re-weighted, the rest unchanged), writes
them to Parquet, and prints one row per tool and size: import time, compute time (median of
``--repeat`` runs for the in-process tools, one run for peers) and the columns found drifted.

- retrainer: ``BatchProfile.from_frame`` of the current frame on the cached reference's edges,
  then ``check_drift`` (the reference profile is built once, outside the timing, as in the
  loop, where the champion carries it; its time is printed apart);
- scipy: ``ks_2samp`` per numeric column and ``chi2_contingency`` per categorical column on the
  raw rows;
- floors: one ``np.sum`` pass over both frames' numeric columns, one 100-bin ``np.histogram``
  per numeric column of both frames;
- peers, each in its own virtual environment (``--evidently PY``, ``--nannyml PY``: the path of
  that environment's python), in a subprocess on the same Parquet files: Evidently's
  ``DataDriftPreset``, NannyML's ``UnivariateDriftCalculator`` (one chunk).

Run: ``.venv/bin/python bench/drift_speed.py --rows 10000 100000 1000000
--evidently /tmp/peers/evidently/bin/python --nannyml /tmp/peers/nannyml/bin/python``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 20, 5
SHIFTED = [f"n{i}" for i in range(5)] + ["c0"]


def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames: n0-n4 shifted by 0.2 + 0.075 * i sd, c0 re-weighted."""
    rng = np.random.default_rng(rows)

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


PEER_EVIDENTLY = """
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
imported = time.perf_counter() - t0
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
t0 = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
out = snapshot.dict()
compute = time.perf_counter() - t0
drifted = []
for m in out["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        value, threshold, method = m["value"], cfg.get("threshold"), cfg.get("method", "")
        pvalue = "p_value" in method or "test" in method.lower()
        if (value < threshold) if pvalue else (value >= threshold):
            drifted.append(cfg["column"])
print(json.dumps({"import": imported, "compute": compute, "drifted": sorted(drifted)}))
"""

PEER_NANNYML = """
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
import nannyml as nml
imported = time.perf_counter() - t0
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
cats = [c for c in ref.columns if c.startswith("c")]
t0 = time.perf_counter()
calc = nml.UnivariateDriftCalculator(
    column_names=list(ref.columns), treat_as_categorical=cats, chunk_number=1,
    continuous_methods=["kolmogorov_smirnov"], categorical_methods=["chi2"],
)
calc.fit(ref)
res = calc.calculate(cur).filter(period="analysis").to_df()
compute = time.perf_counter() - t0
drifted = sorted({c[0] for c in res.columns if c[-1] == "alert" and bool(res[c].iloc[0])})
print(json.dumps({"import": imported, "compute": compute, "drifted": drifted}))
"""


def median_seconds(step, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_peer(python: str, code: str, ref: Path, cur: Path) -> dict:
    script = ref.parent / "peer.py"
    script.write_text(code)
    done = subprocess.run(
        [python, str(script), str(ref), str(cur)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently", help="python of a virtual environment with evidently")
    parser.add_argument("--nannyml", help="python of a virtual environment with nannyml")
    args = parser.parse_args()
    t0 = time.perf_counter()
    from scipy import stats

    from retrainer.checks.drift import check_drift
    from retrainer.data.schema import Schema
    from retrainer.profile import BatchProfile

    imported = time.perf_counter() - t0
    print(f"shifted columns: {SHIFTED}; retrainer and scipy import {imported:.2f} s together")
    print(f"{'rows':>9} {'tool':<22}{'import s':>9}{'compute s':>11}{'x floor':>9}  drifted")
    for rows in args.rows:
        ref, cur = frames(rows)
        tmp = Path(tempfile.mkdtemp(prefix="drift_bench_"))
        ref_path, cur_path = tmp / "reference.parquet", tmp / "current.parquet"
        ref.to_parquet(ref_path)
        cur.to_parquet(cur_path)
        num = [c for c in ref.columns if c.startswith("n")]
        cats = [c for c in ref.columns if c.startswith("c")]
        schema = Schema.infer(ref)
        ref_seconds, reference = median_seconds(
            lambda ref=ref, schema=schema: BatchProfile.from_frame(ref, schema), 1
        )

        def ours(reference=reference, schema=schema, cur=cur):
            batch = BatchProfile.from_frame(cur, schema, edges=reference.edges())
            results = check_drift(reference, batch, correction="bh")
            return sorted({r.column for r in results if r.alarm})

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
            lambda arrays=arrays: [np.histogram(a, bins=100) for a in arrays], 3
        )
        rows_out = [
            ("numpy floor: sum", 0.0, floor_sum, []),
            ("numpy floor: hist", 0.0, floor_hist, []),
            ("retrainer ref profile", 0.0, ref_seconds, []),
        ]
        seconds, found = median_seconds(ours, args.repeat)
        rows_out.append(("retrainer", 0.0, seconds, found))
        seconds, found = median_seconds(exact, max(1, args.repeat - 2))
        rows_out.append(("scipy exact", 0.0, seconds, found))
        for name, python, code in (
            ("evidently", args.evidently, PEER_EVIDENTLY),
            ("nannyml", args.nannyml, PEER_NANNYML),
        ):
            if not python:
                continue
            out = run_peer(python, code, ref_path, cur_path)
            if "error" in out:
                print(f"{rows:>9} {name:<22} failed: {out['error']}")
                continue
            rows_out.append((name, out["import"], out["compute"], out["drifted"]))
        for name, imp, seconds, found in rows_out:
            shown = "" if name.startswith(("numpy", "retrainer ref")) else _short(found)
            print(
                f"{rows:>9} {name:<22}{imp:>9.2f}{seconds:>11.3f}"
                f"{seconds / floor_hist:>9.1f}  {shown}"
            )


def _short(found: list[str]) -> str:
    wrong = sorted(set(found) ^ set(SHIFTED))
    return "all and only the shifted" if not wrong else f"differs on {wrong}"


if __name__ == "__main__":
    main()
