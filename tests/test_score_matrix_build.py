"""The score matrix built in worker processes equals the straightforward build (one candidate
and one gate copy per boundary, scored batch by batch), and its cache is reused until the data
or the trainer changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrainer.errors import DataError, TrainingError
from retrainer.gate import holdout_size
from retrainer.schedule import scores
from retrainer.schedule.gated import Gate
from retrainer.schedule.scores import ScoreMatrix, build_scores, cached_scores
from retrainer.training import Trainer

HGB = Trainer(
    "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 10, "random_state": 0}
)
TREE = Trainer("sklearn.tree.DecisionTreeClassifier", {"max_depth": 4, "random_state": 0})


def stream(seed: int = 0, n: int = 12, size: int = 80) -> list:
    """Two features, a category, a drift in the middle and batches of uneven size."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n):
        rows = size + 7 * (i % 3)
        X = pd.DataFrame(
            {
                "a": rng.normal(size=rows),
                "b": rng.normal(size=rows),
                "c": rng.choice(["x", "y", "z"], size=rows),
            }
        )
        flip = i >= n // 2
        y = ((X["a"] + 0.5 * X["b"] > 0) ^ flip ^ (X["c"] == "z")).astype(int).to_numpy()
        noise = rng.random(rows) < 0.1
        batches.append((X, np.where(noise, 1 - y, y)))
    return batches


def wrong(model, X, y) -> np.ndarray:
    return (model.predict(X) != y).astype(np.uint8)


def straightforward(batches, trainer, history, label_delay, window, holdout, error=wrong) -> dict:
    """The matrix as the issue states it: for every boundary k, the window of labelled batches
    (labels of stream batch i arrive before batch i + label_delay is predicted; history batches
    are labelled), one fit, a prediction per later batch; the gate copy fitted without the
    newest rows (at most the newest batch; the first model's, the newest share of the history)
    and with older batches before them, to as many rows as the window."""
    stream_ = batches[history:]
    T = len(stream_)
    errors = np.full((T, T), np.nan)
    bits, gate_bits, gate_start = [], [], []
    for k in range(T):
        labelled = list(range(history)) + [history + i for i in range(k - label_delay + 1)]
        span = labelled if window == 0 else labelled[-window:]
        X = pd.concat([batches[i][0] for i in span], ignore_index=True)
        y = np.concatenate([batches[i][1] for i in span])
        model = trainer.fit(X, y)
        mine = []
        for j in range(k, T):
            Xj, yj = stream_[j]
            row = error(model, Xj, yj)
            errors[k, j] = row.astype(float).sum()
            mine.append(row)
        bits.append(np.concatenate(mine))
        newest = span[-1] - history
        if newest < 0:  # the first model: no champion, every row unseen
            n = holdout_size(len(X), holdout, np.ones(len(X), bool))
        else:
            newest_rows = len(stream_[newest][0])
            unseen = np.r_[np.zeros(len(X) - newest_rows, bool), np.ones(newest_rows, bool)]
            n = holdout_size(len(X), holdout, unseen)
        Xc, yc, before = X.iloc[:-n], y[:-n], labelled[: len(labelled) - len(span)]
        while len(Xc) < len(X) and before:  # as much history as the window, reaching back
            older = before.pop()
            Xc = pd.concat([batches[older][0], Xc], ignore_index=True)
            yc = np.r_[np.asarray(batches[older][1]), yc]
        copy = trainer.fit(Xc, yc)
        gate_bits.append(error(copy, X.iloc[-n:], y[-n:]))
        gate_start.append(sum(len(b[0]) for b in stream_[: newest + 1]) - n if newest >= 0 else -1)
    return {"errors": errors, "bits": bits, "gate_bits": gate_bits, "gate_start": gate_start}


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_a_regressor_s_matrix_sums_its_absolute_or_squared_errors(metric, tmp_path):
    """A regressor's errors are its gate metric's row errors, summed per batch (float32 rows
    in the matrix); the gate copies' too; and the matrix round-trips its metric."""
    rng = np.random.default_rng(1)
    batches = []
    for i in range(9):
        X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
        slope = 2.0 if i < 5 else -1.0  # the relation changes in the middle
        batches.append((X, (slope * X["a"] + X["b"] + rng.normal(0, 0.3, 60)).to_numpy()))
    ridge = Trainer("sklearn.linear_model.Ridge", {})

    def loss(model, X, y):
        e = model.predict(X) - y
        return np.abs(e) if metric == "mae" else e**2

    m = build_scores(batches, ridge, history=2, window=3, metric=metric, jobs=1)
    ref = straightforward(batches, ridge, 2, 1, 3, 0.2, error=loss)
    np.testing.assert_allclose(m.errors, ref["errors"], rtol=1e-5)
    for k in range(m.batches):
        np.testing.assert_allclose(m.row_errors(k), ref["bits"][k], rtol=1e-5)
        np.testing.assert_allclose(m.gate_errors(k), ref["gate_bits"][k], rtol=1e-5)
    assert m.errors[0, 6] > 3 * m.errors[6, 6]  # the old relation's model on the new one
    # the simulated gate of the candidate of boundary 5 against the first model, on the gate
    # copy's held-out rows (the newest of batch 3): the metric of both on those rows
    result = Gate(m)(5, 0)
    held = ref["gate_bits"][5]
    start = ref["gate_start"][5]
    own = ref["bits"][0][start : start + len(held)]
    value = (lambda e: e.mean()) if metric == "mae" else (lambda e: np.sqrt(e.mean()))
    assert result.metric == metric and result.n_holdout == len(held)
    assert result.challenger == pytest.approx(value(held), rel=1e-5)
    assert result.champion == pytest.approx(value(own), rel=1e-5)
    assert result.passed  # the new relation's model against the old one on the new relation
    again = ScoreMatrix.load(m.save(tmp_path / "m.npz"))
    assert again.metric == metric
    np.testing.assert_array_equal(again.row_errors(3), m.row_errors(3))
    with pytest.raises(DataError, match="not r2"):
        build_scores(batches, ridge, history=2, metric="r2")


@pytest.mark.parametrize(
    ("trainer", "label_delay", "window", "jobs"),
    [(HGB, 2, 3, 2), (TREE, 1, 4, 3), (TREE, 1, 0, 1)],
    ids=["shipped-trainer-2-jobs", "tree-3-jobs", "tree-whole-history-1-job"],
)
def test_the_fast_build_equals_the_straightforward_one(trainer, label_delay, window, jobs):
    batches = stream()
    m = build_scores(
        batches, trainer, history=3, label_delay=label_delay, window=window, holdout=0.2, jobs=jobs
    )
    ref = straightforward(batches, trainer, 3, label_delay, window, 0.2)
    np.testing.assert_array_equal(m.errors, ref["errors"])
    for k in range(m.batches):
        np.testing.assert_array_equal(m.row_errors(k), ref["bits"][k])
        np.testing.assert_array_equal(m.gate_errors(k), ref["gate_bits"][k])
    np.testing.assert_array_equal(m.gate_start, ref["gate_start"])
    np.testing.assert_array_equal(m.rows, [len(X) for X, _ in batches[3:]])
    assert np.nanmin(m.errors) >= 0 and np.nansum(m.errors) > 0  # a matrix with content


def test_progress_counts_every_boundary_once():
    seen = []
    build_scores(
        stream(n=8),
        TREE,
        history=3,
        label_delay=2,
        jobs=2,
        on_model=lambda d, t: seen.append((d, t)),
    )
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) == len(done)


def test_a_trainer_that_fails_in_a_worker_fails_the_build_clearly():
    batches = stream(n=8)
    X, y = batches[5]
    batches[5] = (X, np.zeros_like(y))  # a window of one class: a logistic regression refuses it
    batches[4] = (batches[4][0], np.zeros_like(batches[4][1]))
    trainer = Trainer("sklearn.linear_model.LogisticRegression")
    with pytest.raises(TrainingError, match="failed to fit"):
        build_scores(batches, trainer, history=3, window=2, jobs=2)
    with pytest.raises(TrainingError, match="cannot import"):
        build_scores(batches, Trainer("sklearn.nowhere.Model"), history=3, jobs=2)


def test_the_cache_is_reused_and_invalidated_by_data_and_trainer(tmp_path, monkeypatch):
    batches = stream(n=7)
    calls = []

    def count(done, total):
        calls.append(done)

    first, path, cached = cached_scores(
        batches, TREE, folder=tmp_path, history=3, jobs=2, on_model=count
    )
    again, path_again, cached_again = cached_scores(
        batches, TREE, folder=tmp_path, history=3, jobs=2, on_model=count
    )
    assert (cached, cached_again, path_again == path) == (False, True, True)
    assert calls[-1] == 4 and len(calls) == 5  # the second call trained nothing
    np.testing.assert_array_equal(again.errors, first.errors)
    np.testing.assert_array_equal(ScoreMatrix.load(path).packed, first.packed)

    changed = [(X, y) for X, y in batches]
    changed[5] = (changed[5][0], 1 - changed[5][1])  # one batch's labels
    other_params = Trainer(TREE.estimator, {**TREE.params, "max_depth": 5})
    other_estimator = Trainer("sklearn.tree.ExtraTreeClassifier", {"random_state": 0})
    paths = {path}
    for data, trainer in ((changed, TREE), (batches, other_params), (batches, other_estimator)):
        _, p, c = cached_scores(data, trainer, folder=tmp_path, history=3)
        assert not c and p not in paths
        paths.add(p)
    monkeypatch.setattr(scores, "library_version", lambda estimator: "another release")
    _, p, c = cached_scores(batches, TREE, folder=tmp_path, history=3)
    assert not c and p not in paths  # a new scikit-learn trains other models


def test_by_default_workers_start_only_when_the_work_pays_for_them(monkeypatch):
    from retrainer.schedule import candidates

    batches = stream(n=8)
    alone = build_scores(batches, TREE, history=3, jobs=1)

    def refuse(*args, **kwargs):
        raise AssertionError("no worker process for a small matrix")

    monkeypatch.setattr(candidates, "ProcessPoolExecutor", refuse)
    small = build_scores(batches, TREE, history=3, jobs=None)
    monkeypatch.undo()
    monkeypatch.setattr(candidates, "PAYS_OFF", 0.0)  # any work pays: workers for the rest
    shared = build_scores(batches, TREE, history=3, jobs=None)
    for m in (small, shared):
        np.testing.assert_array_equal(m.errors, alone.errors)
        np.testing.assert_array_equal(m.packed, alone.packed)
        np.testing.assert_array_equal(m.gate_packed, alone.gate_packed)
