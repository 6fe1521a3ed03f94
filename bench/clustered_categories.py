"""False alarms of a categorical drift test when a reference's days differ more than sampling
explains, and what counting rows by the reference's dispersion does about it.

Days of 90 rows with 4 categories (shops, shares 0.4, 0.3, 0.2, 0.1); on clustered days each
day draws its own shares (Dirichlet, concentration ``spread`` times those shares: 40 moves a
share by about 0.07, 200 by about 0.03), on independent days every day has the same shares.
A champion's fixed reference of ``days`` such days (one profile with each day's counts) is
tested against a new unchanged day and against the same day with shop ``a`` closed (its rows
going to ``b``), at alpha 0.05, four ways: every row counted (plain); rows counted as 1 / the
reference's dispersion with chi-square's tail; and with the F tail of an estimated dispersion
(what ``retrainer`` does). Printed: the share of unchanged days that alarm, and of closed-shop
days found.

Run: ``.venv/bin/python bench/clustered_categories.py [--runs 200]`` (about a minute).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from retrainer.checks.drift import check_drift
from retrainer.checks.reference import fixed_reference
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile

SHARES = np.array([0.4, 0.3, 0.2, 0.1])
ROWS = 90


def days_of_shops(rng: np.random.Generator, days: int, spread: float | None) -> list[pd.DataFrame]:
    out = []
    for _ in range(days):
        shares = SHARES if spread is None else rng.dirichlet(SHARES * spread)
        out.append(pd.DataFrame({"shop": rng.choice(list("abcd"), size=ROWS, p=shares)}))
    return out


def rates(days: int, spread: float | None, runs: int, seed: int = 7) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    schema = Schema.infer(days_of_shops(rng, 1, None)[0])
    counts = dict.fromkeys(("plain", "rows / d, chi-square tail", "rows / d, F tail"), 0)
    found = 0
    for _ in range(runs):
        frame = pd.concat(days_of_shops(rng, days, spread), ignore_index=True)
        fixed = BatchProfile.from_frame(frame, schema, batches=np.repeat(range(days), ROWS))
        chosen = fixed_reference(fixed)
        day = days_of_shops(rng, 1, spread)[0]
        current = BatchProfile.from_frame(day, schema, edges=fixed.edges())
        closed = BatchProfile.from_frame(day.replace("a", "b"), schema, edges=fixed.edges())
        ways = {
            "plain": {},
            "rows / d, chi-square tail": {"dispersion": chosen.dispersion},
            "rows / d, F tail": {
                "dispersion": chosen.dispersion,
                "dispersion_df": chosen.dispersion_df,
            },
        }
        for way, options in ways.items():
            counts[way] += check_drift(fixed, current, min_psi=0, **options)[0].alarm
        found += check_drift(fixed, closed, min_psi=0, **ways["rows / d, F tail"])[0].alarm
    return {**{k: v / runs for k, v in counts.items()}, "closed shop found (F tail)": found / runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="unchanged days per cell")
    args = parser.parse_args()
    rows = []
    for spread in (40.0, 200.0, None):
        for days in (4, 8):
            label = "independent" if spread is None else f"Dirichlet {spread:g}"
            rows.append({"days": label, "reference days": days, **rates(days, spread, args.runs)})
    table = pd.DataFrame(rows)
    print(f"\nalarms at alpha 0.05 on {args.runs} unchanged days of {ROWS} rows per cell\n")
    print("| " + " | ".join(table.columns) + " |")
    print("|---" * len(table.columns) + "|")
    for row in table.itertuples(index=False):
        cells = [f"{v:.1%}" if isinstance(v, float) else str(v) for v in row]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
