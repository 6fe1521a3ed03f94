"""The performance trigger on multi-class F1 and balanced accuracy: retrains on unchanged batches,
compared raw (as before) and with the bootstrap test.

Run: ``.venv/bin/python bench/multiclass_trigger.py``. HAPT (activities 1-6, users 1-4, rows
shuffled so that nothing changes by construction, ``hapt_stream``): a decision tree (depth 8)
trained on the first 1,280 rows, its holdout score and bootstrap standard error on the next 320
(a window of 4 batches of 400 rows with ``gate.holdout: 0.2``, as the loop stores them), then
each later batch of 30, 100 or 400 rows is one cycle's evidence for
``{type: performance, max_drop: 0.05}`` (alpha 0.01). "changed": the same batches with the
labels of walking and walking upstairs swapped, the relation changed. Prints a Markdown table.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sklearn.tree import DecisionTreeClassifier

from retrainer.diagnosis.scenarios import hapt_stream
from retrainer.metrics import bootstrap_se, score
from retrainer.triggers import Evidence, PerformanceTrigger

SEEDS = (0, 1, 2)
SIZES = (30, 100, 400)
BATCHES = 60
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def fires(metric: str, seed: int, rows: int, swap: bool = False) -> tuple[int, int]:
    """Cycles (of ``BATCHES``) the raw comparison and the test fire in."""
    stream = hapt_stream(seed=seed)
    features, reference = list(stream.features), stream.reference_frame
    train, holdout = reference.iloc[:1280], reference.iloc[1280:]
    model = DecisionTreeClassifier(max_depth=8, random_state=0).fit(train[features], train["label"])
    classes = model.classes_.tolist()
    pred = model.predict(holdout[features])
    base = Evidence(
        now=NOW,
        metric=metric,
        reference_performance=score(metric, holdout["label"], pred, classes=classes),
        reference_rows=len(holdout),
        reference_se=bootstrap_se(metric, holdout["label"], pred, classes),
    )
    trigger = PerformanceTrigger(max_drop=0.05)
    rest = stream.frame.iloc[len(reference) :]
    raw = tested = 0
    for b in range(BATCHES):
        batch = rest.iloc[b * rows : (b + 1) * rows]
        y = batch["label"].replace({1: 2, 2: 1}) if swap else batch["label"]
        pred = model.predict(batch[features])
        value = score(metric, y, pred, classes=classes)
        ev = replace(base, performance=value, performance_rows=len(batch))
        raw += trigger.fire(ev) is not None
        se = bootstrap_se(metric, y, pred, classes)
        tested += trigger.fire(replace(ev, performance_se=se)) is not None
    return raw, tested


def main() -> None:
    print(
        f"Performance-trigger retrains per {BATCHES} batches of HAPT, seeds {SEEDS} "
        "(raw comparison / bootstrap test):\n"
    )
    columns = ["unchanged, raw", "unchanged, test", "changed, raw", "changed, test"]
    print("| metric | rows per batch | " + " | ".join(columns) + " |")
    print("|---" * 6 + "|")
    for metric in ("f1", "balanced_accuracy"):
        for rows in SIZES:
            same = [fires(metric, seed, rows) for seed in SEEDS]
            moved = [fires(metric, seed, rows, swap=True) for seed in SEEDS]
            cells = [" + ".join(str(r[i]) for r in runs) for runs in (same, moved) for i in (0, 1)]
            print(f"| {metric} | {rows} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
