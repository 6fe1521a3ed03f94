"""Repeated rows in tables without an id or time column: held readings against re-deliveries.

Without a key, a row that repeats an earlier row is all the diagnosis can see of a re-delivered
or double-written batch, and of readings that did not change. Real streams cut into consecutive
batches (rows in arrival order) and checked against a reference of earlier rows, through the
same path as a cycle (``check_quality`` + ``check_drift`` + ``batch_signals`` without keys +
``diagnose_batch``). Per batch it counts the ``duplicates`` alarms on the batch as it is (false
alarms) and on three faults: the batch's last tenth replaced by a copy of its first tenth (rows
re-sent), its first half written twice, row by row (a retrying writer), its first half sent
twice (the batch twice).

Streams: River's TrumpApproval polls without their date (daily, each pollster's figure held
until its next poll; reference: the days before March 2019), ELEC2's four numeric columns
(half-hourly), HAPT users 16, 21 and 26 (three sensor axes at 50 Hz) and ACS 2015 -> 2016
(AGEP, SCHL, MAR, SEX, the people of one state, mostly discrete).
Run: ``python bench/keyless_duplicates.py`` (under a minute).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import check_quality
from retrainer.data.schema import Schema
from retrainer.datasets import load_elec2
from retrainer.diagnosis import batch_signals, diagnose_batch
from retrainer.profile import BatchProfile

DATA = "/work/shared/data"
FAULTS = ("as it is", "a tenth re-sent", "half written twice, row by row", "half sent twice")


def streams() -> list[tuple[str, pd.DataFrame, int]]:
    """(name, frame in arrival order, reference rows)."""
    from river.datasets import TrumpApproval

    polls = pd.read_csv(TrumpApproval().path).drop(columns=["five_thirty_eight"])
    days = polls.pop("ordinal_date")
    out = [("TrumpApproval polls", polls, int((days < 737119).sum()))]
    elec = load_elec2().iloc[17424:][["nswprice", "nswdemand", "vicdemand", "transfer"]]
    out.append(("ELEC2", elec.reset_index(drop=True).iloc[:14000], 4000))
    hapt = pd.read_csv(f"{DATA}/hapt_accgyro_50hz.csv.gz")
    for user in (16, 21, 26):
        rows = hapt[hapt["user"] == user][["acc-x", "acc-y", "gyro-z"]].reset_index(drop=True)
        out.append((f"HAPT user {user}", rows.iloc[:30000], 10000))
    ref = pd.read_parquet(f"{DATA}/employment_MA_reference.pq")
    ana = pd.read_parquet(f"{DATA}/employment_MA_analysis.pq")
    cols = ["AGEP", "SCHL", "MAR", "SEX"]
    acs = pd.concat([ref[cols].iloc[-20000:], ana[cols].iloc[:40000]], ignore_index=True)
    out.append(("ACS 2015 -> 2016", acs.apply(pd.to_numeric, errors="coerce"), 20000))
    return out


def faulty(batch: pd.DataFrame, fault: str) -> pd.DataFrame:
    n, half, tenth = len(batch), len(batch) // 2, max(len(batch) // 10, 1)
    if fault == "a tenth re-sent":
        return pd.concat([batch.iloc[: n - tenth], batch.iloc[:tenth]], ignore_index=True)
    if fault == "half written twice, row by row":
        return batch.iloc[np.repeat(np.arange(half), 2)].reset_index(drop=True)
    if fault == "half sent twice":
        return pd.concat([batch.iloc[:half], batch.iloc[:half]], ignore_index=True)
    return batch.reset_index(drop=True)


def duplicates_alarm(reference: BatchProfile, schema: Schema, batch: pd.DataFrame) -> bool:
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    results = [*check_quality(reference, current, schema), *check_drift(reference, current)]
    signals = batch_signals(batch, [s.name for s in schema.columns if s.kind == "numeric"])
    found = diagnose_batch(results, reference, current, signals)
    return any(a.check == "duplicates" for a in found.alarms)


def main(argv: list[str]) -> None:
    started, rows = time.perf_counter(), []
    for name, frame, n_ref in streams():
        schema = Schema.infer(frame.iloc[:n_ref])
        reference = BatchProfile.from_frame(frame.iloc[:n_ref], schema, rows=True)
        for n in (30, 90):
            starts = range(n_ref, len(frame) - n + 1, max(n, (len(frame) - n_ref) // 60))
            for fault in FAULTS:
                hits = [
                    duplicates_alarm(reference, schema, faulty(frame.iloc[s : s + n], fault))
                    for s in starts
                ]
                rows.append({"stream": name, "rows": n, "batch": fault, "alarm %": np.mean(hits)})
            rows[-1]["batches"] = len(starts)
    table = pd.DataFrame(rows)
    table["alarm %"] = (100 * table["alarm %"]).round(1)
    wide = table.pivot_table("alarm %", ["stream", "rows"], "batch", sort=False)[list(FAULTS)]
    print(f"# duplicates alarms without a key (pandas {pd.__version__})")
    print(wide.to_string())
    counts = table.dropna(subset=["batches"]).set_index(["stream", "rows"])["batches"]
    print("\nbatches per cell:", counts.astype(int).to_dict())
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
