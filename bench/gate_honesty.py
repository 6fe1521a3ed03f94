"""The gate on ELEC2: does it reject honest retrains, and does it catch worse challengers?

Run: ``.venv/bin/python bench/gate_honesty.py [--window 12] [--every 2]``. Weekly batches of
ELEC2 (336 rows), a window of ``--window`` labelled weeks and a retrain every week, the shipped
trainer (HistGradientBoosting, 100 rounds) and gate settings (accuracy, tolerance 0.01,
holdout 0.2, one-sided confidence 0.95). At every ``--every``-th week the champion is the model
refit on the previous window; the challenger is trained on the window one week later:

- **same window**: the same trainer on the champion's own window (an identical retrain);
- **honest**: the same trainer on the newer window (nothing is worse about it);
- **worse**: the same trainer with 35 % of the window's labels flipped at random (a real
  regression: its accuracy on the next weeks is far lower).

Two gates judge each pair. The **old** gate held out the newest 20 % of the window, fitted the
challenger on the rest and compared the two scores on the holdout, which the refit champion was
trained on whenever the holdout is longer than the week the window moved. The **honest** gate
holds out the rows after the champion's window (at most 20 %), fits its gate copy on the rest
with as many whole weeks before the window as the holdout took (as much history as the
champion; ``--window-rows-only``: the rest alone, as before) and compares it with the
champion, paired, on those rows only. Prints how often each gate
rejected each kind of challenger, and how the honest challengers the old gate rejected then did
on the week after (out of time for both models).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

from retrainer.datasets import ELEC2_FEATURES, load_elec2  # noqa: E402
from retrainer.gate import evaluate_gate, holdout_size, model_score  # noqa: E402
from retrainer.metrics import is_worse  # noqa: E402

WEEK = 48 * 7
TOLERANCE = 0.01


def fit(frame, flip: float = 0.0, seed: int = 0):
    y = frame["target"].to_numpy().copy()
    if flip:
        rng = np.random.default_rng(seed)
        noisy = rng.random(y.size) < flip
        y[noisy] = 1 - y[noisy]
    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=0)
    return model.fit(frame[ELEC2_FEATURES], y)


def as_much_history(elec, rows, n: int, reach_back: bool):
    """The gate copy's rows: ``rows`` without its newest ``n``, after as many whole weeks
    before it as the holdout took (``retrain.as_much_history``; not ``reach_back``: the rule
    before it, the window's rows before the holdout alone)."""
    first = elec.index.get_loc(rows.index[0])
    back = -(-n // WEEK) * WEEK if reach_back else 0
    return elec.iloc[max(0, first - back) : first + len(rows) - n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=12, help="labelled weeks in the window")
    parser.add_argument("--every", type=int, default=2, help="judge every N-th week")
    parser.add_argument(
        "--window-rows-only",
        dest="same_rows",
        action="store_false",
        help="the gate copy on the window's rows before the holdout alone (the rule before)",
    )
    args = parser.parse_args()
    elec = load_elec2()
    weeks = len(elec) // WEEK
    kinds = ("same window", "honest", "worse")
    counts = {(g, k): [0, 0] for g in ("old", "honest") for k in kinds}
    inconclusive = dict.fromkeys(kinds, 0)
    promoted = dict.fromkeys(kinds, 0)
    after = []  # (old gate rejected an honest challenger) challenger - champion on the next week
    for start in range(0, weeks - args.window - 2, args.every):
        old_window = elec.iloc[start * WEEK : (start + args.window) * WEEK]
        window = elec.iloc[(start + 1) * WEEK : (start + 1 + args.window) * WEEK]
        following = elec.iloc[(start + 1 + args.window) * WEEK : (start + 2 + args.window) * WEEK]
        champion = fit(old_window)
        for kind, rows, flip in (
            ("same window", old_window, 0.0),
            ("honest", window, 0.0),
            ("worse", window, 0.35),
        ):
            n_holdout = round(len(rows) * 0.2)
            train, holdout = rows.iloc[:-n_holdout], rows.iloc[-n_holdout:]
            challenger = fit(train, flip=flip, seed=start)
            X, y = holdout[ELEC2_FEATURES], holdout["target"]
            old = is_worse(
                "accuracy",
                model_score(challenger, X, y, "accuracy"),
                model_score(champion, X, y, "accuracy"),
                TOLERANCE,
            )
            # the honest run holds out the rows after the champion's window (retrain.holdout_size)
            n = holdout_size(len(rows), 0.2, np.asarray(rows.index > old_window.index[-1]))
            unseen = rows.iloc[-n:][rows.index[-n:] > old_window.index[-1]]
            copy = fit(as_much_history(elec, rows, n, args.same_rows), flip=flip, seed=start)
            new = evaluate_gate(
                copy, champion, unseen[ELEC2_FEATURES], unseen["target"], tolerance=TOLERANCE
            )
            counts[("old", kind)][0] += old
            counts[("honest", kind)][0] += new.verdict == "worse"
            counts[("old", kind)][1] += 1
            counts[("honest", kind)][1] += 1
            inconclusive[kind] += new.verdict == "inconclusive"
            promoted[kind] += new.passed
            if kind == "honest" and old:
                Xf, yf = following[ELEC2_FEATURES], following["target"]
                after.append(
                    model_score(challenger, Xf, yf, "accuracy")
                    - model_score(champion, Xf, yf, "accuracy")
                )
    n = counts[("old", "honest")][1]
    print(
        f"\nELEC2, window {args.window} weeks moved by 1 week, holdout 20 % "
        f"({round(args.window * 0.2 * WEEK)} rows, of which {WEEK} after the champion's window), "
        f"{n} judged weeks\n"
    )
    print("| gate | rejected: same trainer, same window | same trainer, newer window | worse |")
    print("|---|---|---|---|")
    for gate in ("old", "honest"):
        cells = [f"{counts[(gate, k)][0]} of {counts[(gate, k)][1]}" for k in kinds]
        print(f"| {gate} | " + " | ".join(cells) + " |")
    said = ", ".join(f"{k} {v}" for k, v in inconclusive.items())
    print(f"\nhonest gate inconclusive (cannot tell, or not enough rows): {said}")
    said = ", ".join(f"{k} {v} of {counts[('honest', k)][1]}" for k, v in promoted.items())
    print(f"honest gate promoted (gate.on_inconclusive: promote): {said}")
    if after:
        print(
            f"honest challengers the old gate rejected, on the week after: challenger minus "
            f"champion accuracy mean {np.mean(after):+.4f} (n={len(after)}, "
            f"better in {sum(a > 0 for a in after)})"
        )


if __name__ == "__main__":
    main()
