"""What the gate's sandbox costs: one ELEC2 gate (challenger vs champion) in this process and in
the sandboxed child (fork, limits, network namespace, audit hook, skops round trip).

    .venv/bin/python bench/sandbox_gate.py
"""

import tempfile
import time

from retrainer.datasets import load_elec2
from retrainer.gate import evaluate_gate
from retrainer.project import Project
from retrainer.sandbox import gate_challenger, isolation

WEEK = 48 * 7
REPEAT = 10


def main() -> None:
    elec = load_elec2()
    project = Project.from_dict(
        {
            "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
            "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier",
                        "params": {"max_depth": 6, "random_state": 0}},
        },
        root=tempfile.mkdtemp(),
    )  # fmt: skip
    project.ingest(elec.iloc[: 4 * WEEK], key="weeks-0-3")
    project.cycle()
    train, holdout = elec.iloc[4 * WEEK : 8 * WEEK], elec.iloc[8 * WEEK : 9 * WEEK]
    features = project.features(train)
    challenger = project.trainer.fit(train[features], train["target"])
    champion = project.champion
    X, y = holdout[features], holdout["target"]
    rows = []
    start = time.perf_counter()
    for _ in range(REPEAT):
        model = project.registry.load(champion.version)
        evaluate_gate(challenger, model, X, y)
    rows.append(("in process", (time.perf_counter() - start) / REPEAT))
    start = time.perf_counter()
    for _ in range(REPEAT):
        gate_challenger(project, challenger, champion, X, y)
    rows.append((f"sandboxed ({isolation().network})", (time.perf_counter() - start) / REPEAT))
    print(f"{'gate':<28} {'ms per gate':>12}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds * 1000:>12.1f}")


if __name__ == "__main__":
    main()
