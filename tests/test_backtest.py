"""Backtest of policies through the live loop, and the loop's concept checks and estimates."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.metrics import accuracy_score, mean_squared_error
from sqlalchemy import select

from retrainer.backtest import backtest, first_periods, load_policy
from retrainer.errors import ConfigError
from retrainer.project import Project
from retrainer.store.tables import CheckRow, PredictionSetRow, StateRow

SETTINGS = {
    "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
    "trainer": {
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 6, "random_state": 0},
        "window": {"batches": 4},
        "min_rows": 200,
    },
    "checks": {"concept": {"detector": "PageHinkley", "params": {"threshold": 20}}},
    "gate": {"metric": "accuracy", "tolerance": 0.01},
}
WATCHED = {
    "policy": {
        "triggers": [
            {"type": "concept"},
            {"type": "performance", "source": "estimated", "max_drop": 0.05},
        ],
        "dedup": "21d",
        "budget": {"max_retrains": 1, "per": "14d"},
    },
    "checks": {"concept": {"detector": "DDM", "arl": 500}},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory, elec):
    folder = tmp_path_factory.mktemp("backtest")
    frame = first_periods(elec, "timestamp", "7D", 10)
    out = backtest(frame, SETTINGS, {"watched": WATCHED}, folder=folder, plot=folder / "bt.png")
    return out, folder, frame


def open_store(folder, name, checks=None):
    settings = dict(SETTINGS, checks=checks or SETTINGS["checks"])
    settings["store"] = {"url": f"sqlite:///{folder / name / 'store.db'}", "artifacts": "artifacts"}
    return Project.from_dict(settings, root=folder / name)


def test_every_policy_is_ranked_with_its_numbers(result):
    out, folder, _ = result
    names = [p.name for p in out.policies]
    assert names == ["every 14d", "never", "watched"]
    table = out.table()
    values = [row["accuracy"] for row in table]
    assert values == sorted(values, reverse=True) and [r["rank"] for r in table] == [1, 2, 3]
    by_name = {p.name: p for p in out.policies}
    assert by_name["never"].retrains == 0 and by_name["every 14d"].retrains >= 3
    for p in out.policies:
        assert p.promoted + p.led_nowhere == p.retrains
        assert len(p.series) == out.batches - 1  # every streamed week is scored
    assert (folder / "bt.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps(out.to_dict())


def test_never_is_the_first_model_scored_by_scikit_learn(result, elec):
    out, folder, frame = result
    project = open_store(folder, "every-14d")
    model = project.load_model(1)
    scored = frame[frame["timestamp"] >= frame["timestamp"].min() + np.timedelta64(28, "D")]
    features = project.features(scored)
    expected = accuracy_score(scored["target"], model.predict(scored[features]))
    never = next(p for p in out.policies if p.name == "never")
    assert never.mean == pytest.approx(expected)


def test_the_loop_records_concept_checks_and_estimates(result):
    out, folder, _ = result
    project = open_store(folder, "watched", WATCHED["checks"])
    with project.store.session() as s:
        concept = s.scalars(select(CheckRow).where(CheckRow.kind == "concept")).all()
        estimated = s.scalars(select(CheckRow).where(CheckRow.name == "accuracy_estimated")).all()
        state = s.get(StateRow, "detector").value
        champion_sets = s.scalars(
            select(PredictionSetRow).where(PredictionSetRow.role == "champion")
        ).all()
        details = [(c.batch_id, dict(c.detail), c.statistic, c.alarm) for c in concept]
        estimates = [dict(e.detail) for e in estimated]
    assert state["detector"] == "DDM"
    assert len(details) == len(champion_sets)  # one concept check per scored champion batch
    for _, detail, statistic, alarm in details:
        assert detail["stream"] == "error" and alarm == bool(detail["positions"])
        assert 0 <= statistic <= 1
    assert len(estimates) == out.batches - 1 and {e["role"] for e in estimates} == {"estimated"}
    assert all(e["lower"] <= e["value"] <= e["upper"] for e in estimates)
    for version in project.models:
        assert version.metrics["estimator"]["method"] == "cbpe"
        assert project.artifacts.exists(version.metrics["estimator"]["artifact"])
        assert version.metrics["concept"]["detector"] == "DDM"
        assert version.metrics["concept"]["arl"] >= 500


def test_the_concept_check_reads_the_stored_errors(result):
    _, folder, _ = result
    project = open_store(folder, "every-14d")
    with project.store.session() as s:
        rows = s.execute(
            select(CheckRow, PredictionSetRow)
            .join(PredictionSetRow, PredictionSetRow.batch_id == CheckRow.batch_id)
            .where(CheckRow.kind == "concept", PredictionSetRow.role == "champion")
        ).all()
        pairs = [(c.statistic, c.name, p.artifact, p.batch_id) for c, p in rows]
        from retrainer.store.tables import BatchRow

        frames = {b: project.batch_frame(s.get(BatchRow, b)) for *_, b in pairs}
    assert pairs
    for statistic, name, artifact, batch in pairs:
        predicted = project.artifacts.get_frame(artifact)["prediction"]
        error = 1 - accuracy_score(frames[batch]["target"], predicted)
        assert name == "PageHinkley" and statistic == pytest.approx(error)


def test_policy_files_are_validated_and_named(tmp_path):
    good = tmp_path / "calm.yaml"
    good.write_text(yaml.safe_dump({"policy": {"triggers": [{"type": "drift"}]}, "project": "x"}))
    assert load_policy(good) == ("calm", {"policy": {"triggers": [{"type": "drift"}]}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("triggers: [{type: sometimes}]\n")
    with pytest.raises(ConfigError, match="policy.triggers.0.type"):
        load_policy(bad)


@pytest.mark.slow
def test_regression_feeds_the_squared_error_to_adwin_and_estimates_rmse(make_project, elec):
    from retrainer.replay import replay

    project = make_project(
        data={"target": "nswdemand", "id_column": "id", "time_column": "timestamp"},
        trainer={
            "estimator": "sklearn.linear_model.Ridge",
            "task": "regression",
            "window": {"batches": 4},
            "min_rows": 200,
        },
        checks={"concept": {"detector": "ADWIN", "loss": "squared"}},
        gate={"metric": "rmse", "tolerance": 0.01},
    )
    frame = first_periods(elec.drop(columns=["target"]), "timestamp", "7D", 7)
    replay(project, frame)
    with project.store.session() as s:
        concept = s.scalars(select(CheckRow).where(CheckRow.kind == "concept")).all()
        estimated = s.scalars(select(CheckRow).where(CheckRow.name == "rmse_estimated")).all()
        checks = [(c.name, c.statistic, c.batch_id) for c in concept]
        sets = {
            p.batch_id: p.artifact
            for p in s.scalars(select(PredictionSetRow).where(PredictionSetRow.role == "champion"))
        }
        from retrainer.store.tables import BatchRow

        frames = {b: project.batch_frame(s.get(BatchRow, b)) for _, _, b in checks}
        assert estimated and all(e.detail["method"] == "dle" for e in estimated)
    for name, statistic, batch in checks:
        predicted = project.artifacts.get_frame(sets[batch])["prediction"]
        assert name == "ADWIN"
        assert statistic == pytest.approx(mean_squared_error(frames[batch]["nswdemand"], predicted))


@pytest.mark.slow
def test_cli_backtest_prints_the_table_as_json(tmp_path, elec, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --out relative to where the command runs
    config = tmp_path / "retrainer.yaml"
    config.write_text(yaml.safe_dump(SETTINGS | {"policy": {"triggers": [{"type": "concept"}]}}))
    data = tmp_path / "history.csv"
    first_periods(elec, "timestamp", "7D", 7).to_csv(data, index=False)
    policy = tmp_path / "drift.yaml"
    policy.write_text("triggers: [{type: drift}]\ncooldown: 7d\n")
    from retrainer.cli import main

    args = ["-c", str(config), "backtest", "--policies", str(policy), "--data", str(data)]
    args += ["--out", "out", "--json"]
    outcome = CliRunner().invoke(main, args)
    assert outcome.exit_code == 0, outcome.output
    table = json.loads(outcome.output)["table"]
    assert {r["policy"] for r in table} == {"every 14d", "never", "configured", "drift"}
    assert (tmp_path / "out" / "backtest.png").exists()
    assert (tmp_path / "out" / "drift" / "store.db").exists()  # not out/drift/out/drift/


def test_synthetic_streams_chain_river_generators_at_the_drift_points():
    from river.datasets import synth

    from retrainer.datasets.synthetic import drift_stream

    stream = drift_stream("sea", rows_per_concept=300, batch_rows=100, seed=4)
    assert stream.drift_rows == (300, 600, 900) and len(stream.frame) == 1200
    assert stream.frame["id"].tolist() == list(range(1200))
    assert stream.frame["timestamp"].is_monotonic_increasing
    assert [stream.frame["timestamp"].iloc[r] for r in stream.drift_rows] == list(
        stream.drift_times
    )
    third = list(synth.SEA(variant=2, noise=0.1, seed=6).take(300))  # concept 2 gets seed + 2
    expected = [[x[0], x[1], x[2], int(y)] for x, y in third]
    got = stream.frame.iloc[600:900][["x0", "x1", "x2", "target"]].to_numpy().tolist()
    assert got == expected
    again = drift_stream("sea", rows_per_concept=300, batch_rows=100, seed=4)
    assert again.frame.equals(stream.frame)
    assert not drift_stream("sea", rows_per_concept=300, batch_rows=100, seed=5).frame.equals(
        stream.frame
    )


def test_oracle_requests_follow_the_labels_of_the_drift_batch():
    from retrainer.backtest import oracle_requests
    from retrainer.datasets.synthetic import drift_stream

    stream = drift_stream("stagger", rows_per_concept=1100, batch_rows=200)
    # batches of 200 rows; the history is batches 0-3 (rows 0-799); drifts at rows 1100, 2200
    # fall in batches 5 and 11, that is replay steps 1 and 7; labels come label_delay later
    requests = oracle_requests(stream.frame, "timestamp", stream.drift_times)
    assert requests == {
        2: "oracle: true drift at 2024-02-08T12:00:00+00:00",
        8: "oracle: true drift at 2024-03-18T00:00:00+00:00",
    }
    late = oracle_requests(stream.frame, "timestamp", stream.drift_times, label_delay=3)
    assert sorted(late) == [4, 10]
    inside_history = [stream.frame["timestamp"].iloc[500]]
    assert oracle_requests(stream.frame, "timestamp", inside_history) == {}


def test_the_oracle_ignores_alarms_and_retrains_when_asked():
    from datetime import UTC, datetime

    from retrainer.backtest import OraclePolicy
    from retrainer.diagnosis import Alarm
    from retrainer.triggers import Evidence

    now = datetime(2024, 1, 1, tzinfo=UTC)
    changed = Alarm("changed_relation", "retrain", "warning", "error_rose", None, "error rose")
    quality = Alarm("data_quality", "quarantine", "error", "nulls", "price", "nulls in price")
    oracle = OraclePolicy()
    busy = Evidence(now=now, concept_drift=True, dataset_drift=True, alarms=(changed,))
    assert oracle.decide(busy).action == "hold"
    asked = Evidence(now=now, manual="oracle: true drift", alarms=(changed,))
    assert oracle.decide(asked).reasons == ("manual: oracle: true drift",)
    blocked = Evidence(now=now, manual="oracle: true drift", alarms=(quality,))
    assert oracle.decide(blocked).action == "alert"
    assert oracle.decide(Evidence(now=now, has_champion=False)).action == "retrain"


def test_the_oracle_retrains_right_after_each_true_drift(tmp_path):
    from retrainer.backtest import oracle_requests
    from retrainer.datasets.synthetic import drift_stream
    from retrainer.replay import split_periods

    stream = drift_stream("stagger", rows_per_concept=1100, batch_rows=200)
    out = backtest(stream.frame, SETTINGS, {}, folder=tmp_path, drift_points=stream.drift_times)
    by_name = {p.name: p for p in out.policies}
    assert list(by_name) == ["every 14d", "never", "oracle"]
    oracle = by_name["oracle"]
    # the window is 4 batches: after each drift the oracle retrains 5 cycles in a row (steps
    # 2-6 and 8-12), on the clock of the newest batch then (the replay's clock is the data's)
    steps = oracle_requests(stream.frame, "timestamp", stream.drift_times, refresh=4)
    assert sorted(steps) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    batches = split_periods(stream.frame, "timestamp", "7D")
    clocks = [batches[4 + step]["timestamp"].max() for step in sorted(steps)]
    assert [pd.Timestamp(t) for t in oracle.retrain_times] == clocks
    assert oracle.decisions == {"retrain": 11, "hold": out.batches - 10}
    # STAGGER's concepts disagree on many rows: the first model alone falls far behind
    assert oracle.mean > by_name["never"].mean + 0.1


@pytest.mark.slow
def test_cli_backtest_on_a_synthetic_stream_adds_the_oracle(tmp_path):
    from retrainer.cli import main

    config = tmp_path / "retrainer.yaml"
    config.write_text(yaml.safe_dump(SETTINGS | {"policy": {"triggers": [{"type": "concept"}]}}))
    args = ["-c", str(config), "backtest", "--stream", "stagger", "--weeks", "12"]
    outcome = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out"), "--json"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.output)
    assert {r["policy"] for r in result["table"]} == {"every 14d", "never", "oracle", "configured"}
    oracle = next(p for p in result["policies"] if p["name"] == "oracle")
    assert oracle["retrains"] >= 1  # the drift at row 5,250 (week 11) is in the replay
    both = CliRunner().invoke(main, [*args, "--data", str(config)])
    assert both.exit_code == 2 and "exclude each other" in both.output


def stored_scores(folder, name, role="champion"):
    """Batch id -> (value, rows) of the per-batch performance a replay stored for ``role``."""
    with open_store(folder, name).store.session() as s:
        rows = s.scalars(select(CheckRow).where(CheckRow.kind == "performance")).all()
        return {
            r.batch_id: (r.detail["value"], r.detail["n"]) for r in rows if r.detail["role"] == role
        }


def weighted(scores, batches):
    return sum(scores[b][0] * scores[b][1] for b in batches) / sum(scores[b][1] for b in batches)


@pytest.fixture(scope="module")
def one_quarantines(tmp_path_factory, elec):
    """Two replays of one history: week 6 has 40 % of nswdemand missing, which the default
    quality check quarantines and the tolerant policy's check lets through."""
    folder = tmp_path_factory.mktemp("common")
    frame = first_periods(elec, "timestamp", "7D", 8).reset_index(drop=True)
    week = first_periods(frame, "timestamp", "7D", 6).index[-336:]
    holes = np.random.default_rng(0).choice(week, size=int(0.4 * len(week)), replace=False)
    frame.loc[holes, "nswdemand"] = np.nan
    quality = {"max_null_increase": 1.0, "max_out_of_range": 1.0}
    tolerant = {
        "policy": {"triggers": [{"type": "schedule", "every": "14d"}]},
        "checks": dict(SETTINGS["checks"], quality=quality),
    }
    return backtest(frame, SETTINGS, {"tolerant": tolerant}, folder=folder), folder


def test_policies_are_compared_on_the_batches_every_policy_scored(one_quarantines):
    out, folder = one_quarantines
    by_name = {p.name: p for p in out.policies}
    strict, tolerant = stored_scores(folder, "every-14d"), stored_scores(folder, "tolerant")
    with open_store(folder, "every-14d").store.session() as s:
        from retrainer.store.tables import BatchRow

        quarantined = s.scalars(select(BatchRow.id).where(BatchRow.status == "quarantined")).all()
    assert len(quarantined) == 1 and quarantined[0] not in strict and quarantined[0] in tolerant
    common = sorted(set(strict) & set(tolerant))
    assert set(tolerant) - set(common) == set(quarantined)
    assert out.common == len(common) == by_name["tolerant"].scored - 1
    assert f"on the {len(common)} of {out.batches - 1} streamed batches" in out.condition
    never = stored_scores(folder, "every-14d", role="baseline")
    for name, scores in [("every 14d", strict), ("never", never), ("tolerant", tolerant)]:
        assert by_name[name].mean == pytest.approx(weighted(scores, common))
        assert by_name[name].own_mean == pytest.approx(weighted(scores, sorted(scores)))
    assert by_name["tolerant"].mean != pytest.approx(by_name["tolerant"].own_mean)
    table = {row["policy"]: row for row in out.table()}
    assert table["tolerant"]["accuracy"] == round(by_name["tolerant"].mean, 4)
    assert table["tolerant"]["own accuracy"] == round(by_name["tolerant"].own_mean, 4)
    assert json.loads(json.dumps(out.to_dict()))["common"] == len(common)


def test_a_batch_scored_on_other_rows_by_another_policy_is_left_out():
    from retrainer.backtest import PolicyResult, common_batches

    def policy(name, series, aside):
        return PolicyResult(name, "accuracy", None, 0, 0, 0, 0.0, {}, 0.0, series, [], None, aside)

    same = [("w1", 0.9, 10), ("w2", 0.8, 8), ("w3", 0.7, 10)]
    a = policy("a", same, {"w2": [1, 5]})
    assert common_batches([a, policy("b", same, {"w2": [1, 5]})]) == {"w1", "w2", "w3"}
    assert common_batches([a, policy("b", same, {"w2": [1, 6]})]) == {"w1", "w3"}
    assert common_batches([a, policy("b", same, {})]) == {"w1", "w3"}
    assert common_batches([a, policy("b", same[1:], {"w2": [1, 5]})]) == {"w2", "w3"}


def test_each_replayed_batch_is_reported_for_a_progress_bar(tmp_path, elec):
    """`retrainer backtest` showed a spinner and nothing else for minutes: each policy's
    replay now reports every batch (name, batch, of how many) to the CLI's progress bar."""
    seen = []
    frame = first_periods(elec, "timestamp", "7D", 6)
    backtest(frame, SETTINGS, {}, folder=tmp_path, on_batch=lambda *step: seen.append(step))
    steps = [step for name, step, total in seen if name == "every 14d"]
    totals = {total for name, _, total in seen}
    (total,) = totals
    assert len(steps) > 1 and steps == sorted(set(steps)) and steps[-1] == total
