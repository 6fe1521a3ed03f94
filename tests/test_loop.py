"""The loop end to end on real ELEC2 weeks: ingest, cycle, late labels, retrain, gate, register."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from retrainer.datasets import ELEC2_FEATURES
from retrainer.errors import DataError, NotFoundError
from retrainer.replay import replay, split_periods
from retrainer.store.tables import BatchRow, CheckRow, EventRow, PredictionSetRow
from tests.conftest import project_settings


def count(project, table):
    with project.store.session() as s:
        return s.scalar(select(func.count()).select_from(table))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, elec):
    from retrainer.project import Project
    from tests.conftest import project_settings

    root = tmp_path_factory.mktemp("replay")
    project = Project.from_dict(project_settings(), root=root)
    summary = replay(project, elec.iloc[: 48 * 7 * 30], report=root / "report.html")
    return project, summary


def test_replay_runs_every_week_through_the_loop(replayed):
    project, summary = replayed
    assert summary.batches == 27  # 30 weeks: 4 of history in one batch, then 26 weekly batches
    assert count(project, BatchRow) == 27
    assert summary.rows_scored == 26 * 336
    with project.store.session() as s:
        kinds = set(s.scalars(select(EventRow.kind)))
        n_perf = s.scalar(select(func.count()).where(CheckRow.name == "accuracy"))
    assert {"ingest", "labels", "check", "evaluate", "decision", "train", "promote"} <= kinds
    assert n_perf == 2 * 26  # champion and never-retrained baseline, every streamed week
    kinds = {"bootstrap", "schedule", "volume", "drift", "concept", "performance", "manual"}
    assert set(summary.reasons) <= kinds | {"changed relation", "cost", "group"}
    assert sum(summary.reasons.values()) >= summary.retrains


def test_replay_accuracy_matches_scikit_learn_on_the_stored_predictions(replayed, elec):
    project, summary = replayed
    correct = total = 0
    with project.store.session() as s:
        sets = s.scalars(select(PredictionSetRow).where(PredictionSetRow.role == "champion")).all()
    by_id = elec.set_index("id")["target"]
    for pset in sets:
        preds = project.artifacts.get_frame(pset.artifact)
        truth = by_id.loc[preds["id"]].to_numpy()
        correct += int((preds["prediction"].to_numpy() == truth).sum())
        total += len(preds)
    assert total == summary.rows_scored
    assert summary.continuously_trained == pytest.approx(correct / total)


def test_the_continuously_trained_model_beats_the_decaying_one(replayed):
    _, summary = replayed
    assert summary.retrains >= 3 and summary.promotions >= 2
    assert summary.continuously_trained > summary.never_retrained + 0.02


def test_lineage_and_aliases(replayed):
    project, _ = replayed
    versions = project.models
    champion = project.champion
    assert champion.version in [v.version for v in versions if v.metrics["gate_passed"]]
    lineage = versions[-1].lineage
    assert lineage["window"]["batches"] and lineage["window"]["rows"] > 0
    assert lineage["trainer"]["estimator"] == "sklearn.tree.DecisionTreeClassifier"
    assert lineage["reasons"] and lineage["gate"]["metric"] == "accuracy"
    assert {"python", "sklearn"} <= set(
        lineage.get("packages", lineage).keys()
    ) or "packages" in str(lineage)
    history = project.registry.history("champion")
    assert [h["version"] for h in history][0] == 1
    assert all(h["reason"] for h in history)


def test_report_has_the_decay_plot_and_decisions(replayed):
    project, summary = replayed
    html = open(summary.report, encoding="utf-8").read()
    assert "model left to decay vs continuously trained" not in html  # the title is in the PNG
    assert html.count("data:image/png;base64,") >= 2
    assert "Model versions" in html and "Decisions" in html


def test_rollback_and_promote(replayed):
    project, _ = replayed
    before = project.champion.version
    back = project.rollback(reason="test")
    assert back.version != before
    project.promote(before, reason="test again")
    assert project.champion.version == before


def test_ingest_is_idempotent_by_key(make_project, elec):
    project = make_project()
    week = elec.iloc[:336]
    first = project.ingest(week, key="w1")
    again = project.ingest(week, key="w1")
    assert first.new and not again.new and first.id == again.id
    assert project.ingest(week).id == project.ingest(week).id  # content key
    assert count(project, BatchRow) == 2


def test_late_labels_join_by_id(make_project, elec):
    project = make_project()
    week = elec.iloc[:336]
    project.ingest(week.drop(columns="target"), key="w1")
    report = project.ingest_labels(
        pd.concat([week[["id", "target"]].iloc[:200], pd.DataFrame({"id": [10**7], "target": [1]})])
    )
    assert (report.matched, report.unmatched) == (200, 1)
    with project.store.session() as s:
        row = s.scalar(select(BatchRow))
        frame = project.batch_frame(row, labelled_only=True)
    assert row.n_labelled == 200
    pd.testing.assert_series_equal(
        frame["target"].astype(int).reset_index(drop=True),
        week["target"].iloc[:200].reset_index(drop=True),
        check_names=False,
    )


def test_bad_batches_get_clear_errors_and_leave_the_store_as_it_was(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:336], key="w1")
    before = count(project, BatchRow), count(project, EventRow)
    week = elec.iloc[336:672]
    with pytest.raises(DataError, match="nswprice"):
        project.ingest(week.drop(columns="nswprice"), key="missing")
    bad = week.astype({"vicprice": object})
    bad.iloc[17, bad.columns.get_loc("vicprice")] = "abc"
    with pytest.raises(DataError, match="vicprice.*17|17.*vicprice"):
        project.ingest(bad, key="string")
    with pytest.raises(DataError, match="no rows"):
        project.ingest(week.iloc[:0], key="empty")
    with pytest.raises(DataError, match="time zone"):
        project.ingest(week.assign(timestamp=week["timestamp"].dt.tz_localize(None)), key="naive")
    assert (count(project, BatchRow), count(project, EventRow)) == before


def test_an_empty_file_is_named(make_project, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.csv.*empty"):
        make_project().ingest_path(empty)


def test_a_broken_batch_is_quarantined_and_the_rest_of_the_cycle_is_trained_on(make_project, elec):
    project = make_project(trainer=project_settings()["trainer"] | {"window": {"batches": 10}})
    project.ingest(elec.iloc[:1344], key="history")
    assert project.cycle().champion == 1
    week = elec.iloc[1344:1680].copy()
    week.loc[week.index[:150], "nswdemand"] = float("nan")
    broken = project.ingest(week, key="broken").id
    clean = project.ingest(elec.iloc[1680:2016], key="clean").id
    project.request_retrain("a quarantined batch does not block the rest of the cycle")
    report = project.cycle()
    assert report.quarantined == (broken,)  # per batch, not per cycle
    assert report.decision["action"] == "retrain"
    assert any(a["cause"] == "data_quality" for a in report.alarms)  # still reported
    window = report.run["window"]["batches"]
    assert clean in window and broken not in window
    with project.store.session() as s:
        assert s.get(BatchRow, broken).status == "quarantined"


def test_no_champion_means_a_clear_error(make_project):
    with pytest.raises(NotFoundError, match="no champion"):
        make_project().load_model()


def test_split_periods_covers_every_row(elec):
    parts = split_periods(elec.iloc[:5000], "timestamp", "7D")
    assert sum(map(len, parts)) == 5000
    assert all(p["timestamp"].max() - p["timestamp"].min() < pd.Timedelta("7D") for p in parts)
    assert list(pd.concat(parts)[ELEC2_FEATURES[0]]) == list(elec.iloc[:5000][ELEC2_FEATURES[0]])


def test_polars_and_arrow_tables_are_ingested_like_pandas(make_project, elec):
    import polars as pl
    import pyarrow as pa

    project = make_project()
    week = elec.iloc[:336]
    from_pandas = project.ingest(week, key="pandas")
    from_polars = project.ingest(pl.from_pandas(week), key="polars")
    from_arrow = project.ingest(pa.Table.from_pandas(week, preserve_index=False), key="arrow")
    with project.store.session() as s:
        rows = {r.key: r for r in s.scalars(select(BatchRow))}
    frames = [
        project.batch_frame(rows[k]).reset_index(drop=True) for k in ("pandas", "polars", "arrow")
    ]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0], check_dtype=False)
    assert from_pandas.n_rows == from_polars.n_rows == from_arrow.n_rows == 336


def test_column_names_with_control_characters_are_refused(make_project, elec):
    project = make_project()
    with pytest.raises(DataError, match="control characters"):
        project.ingest(elec.iloc[:10].rename(columns={"period": "per\x00iod"}), key="nul")


def test_status_and_report_say_the_cause_and_action_in_words(make_project, elec, tmp_path):
    project = make_project()
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    week = elec.iloc[1344:1680].copy()
    week.loc[week.index[:150], "nswdemand"] = float("nan")
    project.ingest(week, key="broken")
    project.cycle()
    alarms = project.status()["alarms"]
    assert alarms and alarms[0]["cause"] == "data_quality"
    assert "nswdemand" in alarms[0]["message"] and "do not retrain" in alarms[0]["action"]
    html = project.report(tmp_path / "r.html").read_text()
    assert "Latest alarms: batch, cause and action" in html and "nswdemand" in html


def test_a_batch_with_infinities_that_blocks_nothing_completes_its_cycle(make_project, elec):
    """With ``policy.block_on: [upstream_change]`` a batch with -inf is not quarantined: its
    rows with -inf get no prediction (no model takes them) and the others do. The cycle used to
    end in scikit-learn's "Input X contains infinity"; so did a value beyond float32's range
    (1e300: a tree reads float32), found by the fuzz test."""
    policy = {**project_settings()["policy"], "block_on": ["upstream_change"]}
    project = make_project(policy=policy)
    project.ingest(elec.iloc[:672], key="history")
    project.cycle()
    batch = elec.iloc[672:702].copy()
    batch.loc[batch.index[:9], "vicprice"] = -np.inf
    batch.loc[batch.index[9], "transfer"] = 1e300
    batch_id = project.ingest(batch, key="some-inf").id
    assert project.cycle().quarantined == ()
    with project.store.session() as s:
        sets = s.scalars(select(PredictionSetRow).where(PredictionSetRow.batch_id == batch_id))
        table = project.artifacts.get_frame(next(iter(sets)).artifact)
    assert table["row"].tolist() == list(range(10, 30))
