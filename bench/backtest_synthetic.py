"""Backtest of retraining policies on River's synthetic drift streams, whose drift points are known.

Run: ``.venv/bin/python bench/backtest_synthetic.py [--streams sea,agrawal,stagger,hyperplane]
[--seed 0] [--out DIR]``. Each stream chains 3-4 concepts abruptly (5,250 rows each, drifts
mid-batch; ``retrainer.datasets.synthetic``), 500 rows a week, replayed week by week through
the live loop with the shipped ELEC2 project file's trainer, checks and gate (labels one week
late). The policies are the baselines (every 14 days, never retrained), the oracle (retrains
at the first cycle that sees labels after each true drift point, and never otherwise) and the
policies below. Prints one Markdown table per stream: accuracy (prequential, row-weighted, on
the batches every policy scored; ``own``: on every batch the policy scored), batches scored,
retrains, promoted, led nowhere (runs the gate rejected), train seconds, and drifts caught (a
retrain within 3 batches after a true drift point).
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from retrainer.backtest import BacktestResult, backtest
from retrainer.datasets.synthetic import STREAMS, drift_stream

POLICIES = {
    "volume 2,000 labelled rows": {"triggers": [{"type": "volume", "min_rows": 2000}]},
    "data drift only, cooldown 7d": {"triggers": [{"type": "drift"}], "cooldown": "7d"},
    "concept (DDM) only": {"triggers": [{"type": "concept"}, {"type": "manual"}]},
    "shipped example": None,  # the example file's own policy
    "schedule 21d + accuracy drop 0.05": {
        "triggers": [
            {"type": "schedule", "every": "21d"},
            {"type": "performance", "max_drop": 0.05},
            {"type": "manual"},
        ],
        "cooldown": "7d",
    },
    "schedule 28d + accuracy drop 0.03": {
        "triggers": [
            {"type": "schedule", "every": "28d"},
            {"type": "performance", "max_drop": 0.03},
            {"type": "manual"},
        ],
        "cooldown": "7d",
    },
}


def caught(result: BacktestResult, drift_times: tuple, within: pd.Timedelta) -> dict[str, int]:
    """Per policy: true drift points followed by a retrain within ``within``."""
    counts = {}
    for p in result.policies:
        times = pd.to_datetime(pd.Series(p.retrain_times, dtype=str), utc=True, errors="coerce")
        counts[p.name] = sum(
            bool(((times >= t) & (times <= t + within)).any()) for t in drift_times
        )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    example = yaml.safe_load(
        resources.files("retrainer").joinpath("examples/elec2.yaml").read_text()
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="backtest-synthetic-"))
    policies = {name: policy or example["policy"] for name, policy in POLICIES.items()}
    for name in args.streams.split(","):
        stream = drift_stream(name, seed=args.seed)
        settings = dict(
            example, data={"target": "target", "id_column": "id", "time_column": "timestamp"}
        )
        result = backtest(
            stream.frame,
            settings,
            policies,
            folder=out / name,
            plot=out / name / "backtest.png",
            drift_points=stream.drift_times,
            on_policy=lambda n, s=name: print(f"{s}: replaying {n} ...", flush=True),
        )
        hits = caught(result, stream.drift_times, pd.Timedelta("21D"))
        rows = result.table()
        print(
            f"\n{name}: {' -> '.join(stream.concepts)}; drifts at rows "
            f"{', '.join(f'{r:,}' for r in stream.drift_rows)}; {result.batches} weekly batches "
            f"of 500 rows, seed {args.seed}; {result.metric} {result.condition}\n"
        )
        keys = ["policy", result.metric, f"own {result.metric}", "scored", "retrains"]
        keys += ["promoted", "led nowhere", "train s"]
        print("| " + " | ".join([*keys, "drifts caught"]) + " |")
        print("|" + "---|" * (len(keys) + 1))
        for row in rows:
            found = f"{hits[row['policy']]} / {len(stream.drift_times)}"
            print("| " + " | ".join([*(str(row[k]) for k in keys), found]) + " |", flush=True)
    print(f"\nstores and plots under {out}")


if __name__ == "__main__":
    main()
