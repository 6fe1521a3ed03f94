"""How often a fault is read as a joint excursion (``retrainer.diagnosis.joint``).

A burst of far-out values that a correlated column shares on the same rows is kept as drift
(a real event); one that no other column shares stays a fault (set aside or quarantined). This
bench injects faults into real batches and counts how many the rule would keep:

- **one column**: 2 rows of one numeric column set 3 and 4 reference widths above its range,
  every column in turn (what an instrument fault does; the rule should keep none);
- **two columns**: the same rows of the reference's most correlated pair of columns, the second
  on the side the correlation predicts (a fault that writes wild values into two related
  columns at once; the rule keeps these, the price it states).

Data: ELEC2 weeks after row 17,424 in time order (each batch drawn from a week, the reference
the 4 weeks before it: real price spikes and seasons included) and HAPT sensor rows of users 1-4
shuffled (reference 1,600 rows). The reference's edges are the profile's, as in the cycle.

Run: ``.venv/bin/python bench/joint_excursions.py`` (about a minute).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.data.schema import Schema
from retrainer.datasets import load_elec2
from retrainer.diagnosis import ACTIONS, Alarm
from retrainer.diagnosis.joint import joint_excursion
from retrainer.diagnosis.scenarios import ELEC2_FEATURES, ELEC2_REAL_FROM, hapt_stream
from retrainer.profile import BatchProfile

WEEK = 336


def elec2_pairs() -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(reference, week) for every ELEC2 week after the Victorian data starts: the 4 weeks
    before as the reference."""
    real = load_elec2().iloc[ELEC2_REAL_FROM:][list(ELEC2_FEATURES)].reset_index(drop=True)
    weeks = [real.iloc[i : i + WEEK] for i in range(0, len(real) - WEEK + 1, WEEK)]
    return [(pd.concat(weeks[w - 4 : w]), weeks[w]) for w in range(4, len(weeks))]


def hapt_pairs(batches: int = 60) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    stream = hapt_stream()
    features = list(stream.features)
    reference = stream.reference_frame[features]
    return [(reference, stream.batch(i)[features]) for i in range(batches)]


def _burst(column: str) -> Alarm:
    return Alarm("data_quality", ACTIONS["data_quality"], "error", "out_of_range_burst", column, "")


def _wild(batch: pd.DataFrame, reference: pd.DataFrame, column: str, rows, high: bool):
    low, top = reference[column].min(), reference[column].max()
    span = (top - low) * np.array([3.0, 4.0])
    batch.loc[rows, column] = top + span if high else low - span


def count(pairs, rows: int, rng: np.random.Generator) -> dict:
    one = kept_one = two = kept_two = 0
    for reference, week in pairs:
        numeric = [c for c in reference if reference[c].max() > reference[c].min()]
        edges = BatchProfile.from_frame(reference, Schema.infer(reference)).edges()
        batch = week[numeric].sample(rows, random_state=int(rng.integers(1 << 30)))
        batch = batch.reset_index(drop=True)
        far = rng.choice(rows, 2, replace=False)
        for column in numeric:
            wild = batch.copy()
            _wild(wild, reference, column, far, high=True)
            one += 1
            kept_one += joint_excursion(_burst(column), wild, edges, reference) is not None
        rho = reference[numeric].corr(method="spearman").abs().to_numpy(copy=True)
        np.fill_diagonal(rho, 0.0)
        a, b = np.unravel_index(np.nanargmax(rho), rho.shape)
        sign = reference[numeric[a]].corr(reference[numeric[b]], method="spearman")
        wild = batch.copy()
        _wild(wild, reference, numeric[a], far, high=True)
        _wild(wild, reference, numeric[b], far, high=sign > 0)
        two += 1
        kept_two += joint_excursion(_burst(numeric[a]), wild, edges, reference) is not None
    return {"one": f"{kept_one} of {one}", "two": f"{kept_two} of {two}"}


def main() -> None:
    rng = np.random.default_rng(0)
    data = {"ELEC2 weeks (time order)": elec2_pairs(), "HAPT users 1-4 (shuffled)": hapt_pairs()}
    print("| data | rows per batch | one-column faults kept as joint | two-column faults kept |")
    print("|---|---|---|---|")
    for name, pairs in data.items():
        for rows in (30, 90):
            found = count(pairs, rows, rng)
            print(f"| {name} | {rows} | {found['one']} | {found['two']} |")


if __name__ == "__main__":
    main()
