"""What the dashboard's pages read, checked against the record without a browser, on the
600-batch store: the freshness sentence, the drift map's spans, the gaps of the performance
series, alarms grouped by cause and column, and the decision log."""

from collections import Counter

import pandas as pd
from sqlalchemy import select

from retrainer import views
from retrainer.quarantine import held_back
from retrainer.service import dashboard
from retrainer.store.tables import BatchRow, CheckRow, CycleRow, DecisionRow, EventRow
from tests.service.many_batches import DAY
from tests.service.service_helpers import WEEK


def test_freshness_counts_the_batches_quarantined_since_the_last_retrain(many_batches):
    """Quarantine is per batch: the stuck-price batches are set aside and the rest is trained
    on, so the sentence says how many were quarantined since the last retrain, not "held"."""
    fresh = views.freshness(many_batches)
    last = fresh["last_retrain"]
    assert fresh["quarantined"] == quarantined_since(many_batches, last["data_time"]) > 0
    assert held_back(many_batches) is None  # the newest batch was trained on
    assert fresh["state"] == "fresh" and fresh["held_by"] == []
    champion = many_batches.champion.version  # promoted by hand after the last retrain
    assert f"v{champion} is serving since " in fresh["sentence"] and champion > 1
    assert (
        "(promoted by user); the model was last retrained on data up to "
        f"{last['data_time'][:10]} ({fresh['quarantined']} batch(es) quarantined since)"
    ) in fresh["sentence"]


def quarantined_since(project, data_time: str) -> int:
    """Quarantined batches with data after ``data_time``, counted from the batch rows."""
    with project.store.session() as s:
        times = [
            t for t in s.scalars(select(BatchRow.data_time).where(BatchRow.status == "quarantined"))
        ]
    stamps = [pd.Timestamp(t) for t in times]  # naive UTC from SQLite, aware from PostgreSQL
    utc = [t if t.tzinfo else t.tz_localize("UTC") for t in stamps]
    return sum(t > pd.Timestamp(data_time) for t in utc)


def test_freshness_of_a_model_nothing_holds_back(make_project, elec):
    project = make_project()
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    fresh = views.freshness(project)
    end = elec["timestamp"].iloc[1343]
    assert fresh["state"] == "fresh"
    assert fresh["sentence"].startswith(
        f"The model is being kept fresh: v1 was last retrained on data up to {end:%Y-%m-%d}; "
        "the last decision, on "
    )
    assert fresh["sentence"].endswith("was to retrain.")


def test_the_drift_map_keeps_the_largest_score_and_counts_alarms_per_span(many_batches):
    heat = dashboard.drift_heatmap(many_batches, buckets=40)
    with many_batches.store.session() as s:
        rows = s.execute(
            select(
                CheckRow.batch_id,
                CheckRow.column,
                CheckRow.statistic,
                CheckRow.alarm,
                BatchRow.data_time,
            )
            .join(BatchRow, BatchRow.id == CheckRow.batch_id)
            .where(CheckRow.kind == "drift", CheckRow.name == "ks")
        ).all()
    frame = pd.DataFrame(rows, columns=["batch", "column", "ks", "alarm", "time"])
    order = frame.drop_duplicates("batch").sort_values(["time", "batch"], ascending=False)
    span_of = {b: i // heat["per_span"] for i, b in enumerate(order["batch"])}
    frame["span"] = frame["batch"].map(span_of)
    expected = frame.groupby(["column", "span"]).agg(score=("ks", "max"), alarms=("alarm", "sum"))
    got = pd.DataFrame(heat["cells"]).set_index(["column", "span"]).sort_index()
    assert len(got) == len(expected)
    assert (got["score"] - expected.loc[got.index, "score"]).abs().max() < 1e-12
    assert (got["alarms"] == expected.loc[got.index, "alarms"]).all()
    assert len(heat["spans"]) <= 40 < len(order)
    totals = frame.groupby("column")["alarm"].sum()  # most alarms first, then by name
    assert heat["columns"] == sorted(totals.index, key=lambda c: (-int(totals[c]), c))


def test_the_performance_series_has_a_gap_for_each_quarantined_or_missing_day(many_batches):
    points = dashboard.performance_series(many_batches)["points"]
    with many_batches.store.session() as s:
        quarantined = set(s.scalars(select(BatchRow.id).where(BatchRow.status == "quarantined")))
    assert {p["batch"] for p in points if p.get("gap") == "quarantined"} == quarantined
    times = pd.to_datetime([p["time"] for p in points if not p.get("gap")])
    missing = [p for p in points if p.get("gap") == "missing"]
    long_steps = (pd.Series(times[1:] - times[:-1]) > pd.Timedelta(hours=1.5 * DAY / 2)).sum()
    quarantine_steps = sum(  # a quarantined day already breaks its step
        1
        for a, b in zip(points, points[1:], strict=False)
        if b.get("gap") == "quarantined" and not a.get("gap")
    )
    assert missing and len(missing) <= long_steps <= len(missing) + quarantine_steps
    assert all(not p.get("champion") for p in points if p.get("gap"))


def test_alarms_are_counted_by_cause_and_column(many_batches):
    summary = dashboard.alarm_summary(many_batches)
    expected = Counter()
    with many_batches.store.session() as s:
        for data in s.scalars(select(EventRow.data).where(EventRow.kind == "check")):
            for a in (data or {}).get("diagnosis", {}).get("alarms", []):
                expected[(a["cause"], a["column"])] += 1
        for summary_ in s.scalars(select(CycleRow.summary)):
            for a in (summary_ or {}).get("alarms", []):
                if a["cause"] == "changed_relation":
                    expected[(a["cause"], a["column"])] += 1
    got = Counter(
        {(g["cause"], c["column"]): c["count"] for g in summary["groups"] for c in g["columns"]}
    )
    assert got == expected
    assert all(a["batch"] and a["data_time"] for a in summary["latest"])


def test_the_decision_log_holds_every_decision_in_stretches(many_batches):
    log = dashboard.decision_log(many_batches)
    with many_batches.store.session() as s:
        ids = list(s.scalars(select(DecisionRow.id).order_by(DecisionRow.id.desc())))
    listed = [d["id"] for st in log["stretches"] for d in st["decisions"]]
    assert listed == ids and log["total"] == len(ids)
    assert sum(st["count"] for st in log["stretches"]) == len(ids)
    shapes = [
        (st["action"], [(g["cause"], [c["column"] for c in g["columns"]]) for g in st["groups"]])
        for st in log["stretches"]
    ]
    assert all(a != b for a, b in zip(shapes, shapes[1:], strict=False))


def test_freshness_says_when_a_challenger_failed_its_gate(service_project, elec):
    project = service_project()
    for i in range(8):
        project.ingest(elec.iloc[i * WEEK : (i + 1) * WEEK], key=f"w{i}")
        if i in (3, 6, 7):
            if i == 7:  # a stump: worse than the champion's depth-6 tree beyond doubt
                project.config.trainer.params["max_depth"] = 1
            project.request_retrain("by hand")
            run = project.cycle().run
    assert run["status"] == "rejected" and project.champion.version == 2
    fresh = views.freshness(project)
    assert fresh["state"] == "held"
    assert fresh["sentence"].startswith(
        "Retraining is held back by a failed gate (challenger v3 did not pass): v2 was last "
        "retrained on data up to 1996-06-24; "
    )
