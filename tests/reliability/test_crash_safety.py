"""R1/R8: SIGKILL the loop at random points on real ELEC2 weeks, restart it, check the promises.

A worker process (``crash_worker.py``) ingests weeks and late labels and runs cycles, which
retrain, gate, register and promote every week. It is killed inside artifact writes (before the
fsync, after the rename), inside and after database commits, right after a registration, right
after an alias switch, and at random times. After each kill, from a fresh process's view:

- the store opens and ``PRAGMA integrity_check`` is ok;
- every model version row has an artifact whose hash verifies; every row's artifact verifies;
- aliases point only at versions that passed the gate;
- every batch and label set whose ingest returned is present exactly once, with its rows;
- a batch is never predicted twice by the same model and role;
- ``doctor`` finds nothing worse than orphans, temp files and stuck runs (what a kill leaves).

At the end the worker runs to completion (the next cycles complete), every stuck run was
recovered (failed, or finished with its registered version), each interrupted run was retried
at most once, no run registered more than one version, and ``doctor --repair`` leaves a clean
store. The fast variant kills 5 times (one per kind of point); the slow one 50 times (half
at random times).
"""

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from retrainer.doctor import doctor
from retrainer.project import Project
from retrainer.retrain import RETRY_MARK
from retrainer.store.tables import (
    AliasRow,
    BatchRow,
    CycleRow,
    DecisionRow,
    LabelSetRow,
    ModelVersionRow,
    PredictionSetRow,
    RunRow,
)
from tests.conftest import integrity_ok

WORKER = Path(__file__).with_name("crash_worker.py")
REPO = Path(__file__).resolve().parents[2]
AFTER_A_KILL = {"orphan_artifact", "temp_file", "stuck_run", "stuck_cycle"}
POINTS = {  # kill point -> range of the call count to kill at
    "fsync": (1, 40),
    "replace": (1, 40),
    "commit": (1, 120),
    "committed": (1, 120),
    "register": (1, 2),
    "promote": (1, 2),
}


def settings(root: Path) -> dict:
    return {
        "project": "crash",
        "store": {"url": "sqlite:///store.db", "artifacts": "artifacts"},
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 6, "random_state": 0},
            "window": {"batches": 3},
            "min_rows": 200,
            "threads": 1,
        },
        "policy": {
            "triggers": [{"type": "schedule", "every": "7d"}, {"type": "drift"}],
            "cooldown": "6d",
        },
        "gate": {"metric": "accuracy", "tolerance": 0.05},
    }


def run_worker(root: Path, weeks: int, kill: tuple | None = None, delay: float | None = None):
    """Run the worker; kill it at a point (``kill``) or after ``delay`` seconds."""
    args = [sys.executable, str(WORKER), str(root), str(weeks)]
    if kill:
        args += [kill[0], str(kill[1])]
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def accepted(out: str) -> dict[str, int]:
    return {
        line.split()[1]: int(line.split()[2])
        for line in out.splitlines()
        if line.startswith("accepted ")
    }


def check_invariants(root: Path, promised: dict[str, int]) -> list[str]:
    """The promises that hold after any kill; returns the doctor's finding kinds."""
    project = Project.from_yaml(root / "retrainer.yaml")
    try:
        with project.store.session() as s:
            assert integrity_ok(s)
            batches = Counter(s.scalars(select(BatchRow.key)))
            label_sets = Counter(s.scalars(select(LabelSetRow.key)))
            rows = {k: n for k, n in s.execute(select(BatchRow.key, BatchRow.n_rows))}
            rows |= {k: n for k, n in s.execute(select(LabelSetRow.key, LabelSetRow.n_rows))}
            versions = s.execute(select(ModelVersionRow.version, ModelVersionRow.metrics)).all()
            aliases = s.execute(select(AliasRow.name, AliasRow.version)).all()
            predictions = Counter(
                s.execute(
                    select(
                        PredictionSetRow.batch_id, PredictionSetRow.version, PredictionSetRow.role
                    )
                ).all()
            )
        for key, n_rows in promised.items():
            assert (batches + label_sets)[key] == 1, f"{key} is stored {batches[key]} times"
            assert rows[key] == n_rows, key
        assert max((batches + label_sets).values(), default=1) == 1
        assert max(predictions.values(), default=1) == 1, "a batch was predicted twice"
        for version, _ in versions:
            project.registry.load(version)  # verifies the hash; raises IntegrityError if not
        gated = {version for version, metrics in versions if metrics.get("gate_passed")}
        for name, version in aliases:
            assert version in gated, f"alias {name} points at ungated version {version}"
        report = doctor(project)
        kinds = [f.kind for f in report.problems]
        assert set(kinds) <= AFTER_A_KILL, report.to_dict()
        return kinds
    finally:
        project.store.dispose()


def check_recovered(root: Path) -> None:
    """After the final, unkilled run: nothing running, retries bounded, a clean store."""
    project = Project.from_yaml(root / "retrainer.yaml")
    try:
        with project.store.session() as s:
            assert s.scalar(select(func.count()).where(RunRow.status == "running")) == 0
            assert s.scalar(select(func.count()).where(CycleRow.status == "running")) == 0
            runs = s.scalars(select(RunRow)).all()
            per_run = Counter(s.scalars(select(ModelVersionRow.run_id)))
            reasons = [r for d in s.scalars(select(DecisionRow)) for r in d.reasons]
            version_of = {r.id: r.version for r in runs}
            for run_id, n in per_run.items():
                assert n == 1, f"run {run_id} registered {n} versions"
                assert version_of[run_id] is not None, f"run {run_id} lost its version"
        interrupted = [r for r in runs if r.error.startswith("interrupted")]
        for run in interrupted:
            retries = [r for r in reasons if f"{RETRY_MARK} {run.id}," in r]
            assert len(retries) <= 1, f"run {run.id} was retried {len(retries)} times"
        repaired = doctor(project, repair=True, grace=0)
        assert doctor(project).ok, repaired.to_dict()
        assert project.champion is not None
        assert project.champion.metrics["gate_passed"] is True
    finally:
        project.store.dispose()
    return len(interrupted)


def crash_and_restart(tmp_path: Path, kills: list[tuple | float]) -> dict:
    root = tmp_path / "project"
    root.mkdir()
    (root / "retrainer.yaml").write_text(yaml.safe_dump(settings(root)))
    promised: dict[str, int] = {}
    fired, kinds = 0, Counter()
    for round_, kill in enumerate(kills):
        weeks = 3 + round_
        if isinstance(kill, tuple):
            code, out, err = run_worker(root, weeks, kill=kill)
        else:
            code, out, err = run_worker(root, weeks, delay=kill)
        assert code in (0, -9), err
        fired += code == -9
        promised |= accepted(out)
        kinds.update(check_invariants(root, promised))
    code, out, err = run_worker(root, len(kills) + 4)
    assert code == 0 and out.rstrip().endswith("done"), err
    promised |= accepted(out)
    check_invariants(root, promised)
    interrupted = check_recovered(root)
    return {"fired": fired, "kinds": kinds, "interrupted": interrupted}


def test_kill_at_each_kind_of_point_then_restart(tmp_path):
    kills = [("fsync", 9), ("replace", 5), ("commit", 31), ("register", 1), ("promote", 1)]
    outcome = crash_and_restart(tmp_path, kills)
    assert outcome["fired"] == len(kills)
    assert outcome["kinds"]["stuck_run"] >= 1  # the register and promote kills left one
    assert outcome["interrupted"] >= 1


@pytest.mark.slow
def test_fifty_random_kills_then_restart(tmp_path):
    rng = random.Random(20240501)
    kills: list[tuple | float] = []
    for i in range(50):
        if i % 2:
            point = rng.choice(sorted(POINTS))
            kills.append((point, rng.randint(*POINTS[point])))
        else:
            kills.append(rng.uniform(0.5, 6.0))
    started = time.monotonic()
    outcome = crash_and_restart(tmp_path, kills)
    assert outcome["fired"] >= 40, outcome
    print(f"50 kills: {outcome} in {time.monotonic() - started:.0f} s")
