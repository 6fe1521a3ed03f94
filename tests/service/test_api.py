"""The REST API: ingest in three formats with limits, late labels, reads that agree with the
record, promote and roll back, model download, and /metrics against the store's own counts."""

import hashlib
import io
import json
import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from retrainer import views
from retrainer.store.tables import BatchRow, CheckRow, RunRow
from tests.service.service_helpers import WEEK, records


def week(elec, i):
    return elec.iloc[i * WEEK : (i + 1) * WEEK]


def post_rows(api, frame, key):
    return api["client"].post(
        "/api/batches", json={"key": key, "rows": records(frame)}, headers=api["write"]
    )


@pytest.fixture
def loaded(api, elec):
    """Four labelled weeks through the API and a cycle: version 1 is the champion."""
    for i in range(4):
        assert post_rows(api, week(elec, i), f"w{i}").status_code == 201
    api["project"].cycle()
    return api


def test_json_csv_and_parquet_batches_store_the_same_rows(api, elec):
    client, write = api["client"], api["write"]
    frame = week(elec, 0)
    assert post_rows(api, frame, "json").json()["n_rows"] == WEEK
    csv = week(elec, 1).to_csv(index=False)
    r = client.post(
        "/api/batches?key=csv", content=csv, headers=write | {"Content-Type": "text/csv"}
    )
    assert r.status_code == 201 and r.json()["n_labelled"] == WEEK
    buffer = io.BytesIO()
    week(elec, 2).to_parquet(buffer)
    r = client.post(
        "/api/batches?key=pq",
        content=buffer.getvalue(),
        headers=write | {"Content-Type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 201
    project = api["project"]
    with project.store.session() as s:
        stored = {b.key: project.batch_frame(b) for b in s.scalars(select(BatchRow))}
    for key, i in (("json", 0), ("csv", 1), ("pq", 2)):
        expected = week(elec, i).reset_index(drop=True)
        got = stored[key]
        assert got["id"].tolist() == expected["id"].tolist()
        assert got["nswprice"].to_numpy() == pytest.approx(expected["nswprice"].to_numpy())
        assert got["timestamp"].tolist() == expected["timestamp"].tolist()


def test_a_redelivered_batch_is_stored_once(api, elec):
    first = post_rows(api, week(elec, 0), "same")
    again = post_rows(api, week(elec, 0), "same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["new"] is False and again.json()["id"] == first.json()["id"]
    with api["project"].store.session() as s:
        assert s.scalar(select(func.sum(BatchRow.n_rows))) == WEEK


def test_bad_bodies_get_clear_4xx(api, elec, service_project):
    client, write = api["client"], api["write"]
    bad = records(week(elec, 0))
    r = client.post("/api/batches", json={"rows": bad}, headers=write)
    assert r.status_code == 201
    for row in bad:
        row.pop("timestamp")
    r = client.post("/api/batches", json={"rows": bad}, headers=write)
    assert r.status_code == 422 and "timestamp" in r.json()["detail"]
    r = client.post("/api/batches", json={"rows": [1, 2]}, headers=write)
    assert r.status_code == 422 and "row 0" in r.json()["detail"]
    r = client.post("/api/batches", json={"data": []}, headers=write)
    assert r.status_code == 422 and "'rows'" in r.json()["detail"]
    r = client.post(
        "/api/batches", content=b"a,b", headers=write | {"Content-Type": "application/xml"}
    )
    assert r.status_code == 415
    r = client.post(
        "/api/batches", content=b"\x00garbage", headers=write | {"Content-Type": "text/csv"}
    )
    assert r.status_code == 422


def test_uploads_above_the_limit_are_refused(service_project, elec):
    from fastapi.testclient import TestClient

    from retrainer.service import create_app
    from retrainer.service.auth import create_token

    project = service_project(service={"max_upload_mb": 0.01})
    _, write = create_token(project.store, "w", scope="write")
    client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    headers = {"Authorization": f"Bearer {write}"}
    r = client.post("/api/batches", json={"rows": records(week(elec, 0))}, headers=headers)
    assert r.status_code == 413 and "max_upload_mb" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(20):
            yield b"x" * 1024

    r = client.post(
        "/api/batches", content=chunks(), headers=headers | {"Content-Type": "text/csv"}
    )
    assert r.status_code == 413
    with project.store.session() as s:
        assert s.scalar(select(func.count()).select_from(BatchRow)) == 0


def test_late_labels_join_by_id(api, elec):
    features = week(elec, 0).drop(columns="target")
    post_rows(api, features, "unlabelled")
    labels = week(elec, 0)[["id", "target"]]
    r = api["client"].post(
        "/api/labels", json={"key": "l0", "rows": records(labels)}, headers=api["write"]
    )
    assert r.status_code == 201 and r.json()["matched"] == WEEK
    again = api["client"].post(
        "/api/labels", json={"key": "l0", "rows": records(labels)}, headers=api["write"]
    )
    assert again.status_code == 200 and again.json()["new"] is False
    with api["project"].store.session() as s:
        assert s.scalar(select(BatchRow.n_labelled)) == WEEK


def test_served_predictions_join_by_id_and_are_scored(loaded, elec):
    rows = week(elec, 4)
    post_rows(loaded, rows.drop(columns="target"), "w4")
    served = rows[["id"]].assign(prediction=1)
    body = {"key": "serving-log-4", "rows": records(served)}
    r = loaded["client"].post("/api/predictions?version=1", json=body, headers=loaded["write"])
    assert r.status_code == 201, r.text
    assert (r.json()["matched"], r.json()["version"]) == (WEEK, 1)
    again = loaded["client"].post("/api/predictions", json=body, headers=loaded["write"])
    assert again.status_code == 200 and again.json()["new"] is False
    unknown = loaded["client"].post(
        "/api/predictions?version=7", json={"rows": records(served)}, headers=loaded["write"]
    )
    assert unknown.status_code == 404 and "model version 7" in unknown.text
    labels = {"key": "l4", "rows": records(rows[["id", "target"]])}
    assert loaded["client"].post("/api/labels", json=labels, headers=loaded["write"]).is_success
    loaded["project"].cycle()
    perf = views.performance(loaded["project"])
    (value,) = perf.loc[perf["role"] == "serving", "value"]
    assert value == pytest.approx((rows["target"] == 1).mean())


def test_reads_agree_with_the_record(loaded):
    client, read, project = loaded["client"], loaded["read"], loaded["project"]
    status = client.get("/api/status", headers=read).json()
    assert status["batches"] == project.status()["batches"]
    assert status["champion"]["version"] == project.champion.version == 1
    batches = client.get("/api/batches", headers=read).json()
    assert [b["id"] for b in batches] == [4, 3, 2, 1]
    detail = client.get("/api/batches/2", headers=read).json()
    assert detail["profile"]["n_rows"] == WEEK
    profile = client.get("/api/batches/2/profile", headers=read).json()
    assert profile == detail["profile"]
    assert client.get("/api/batches/99", headers=read).status_code == 404
    decisions = client.get("/api/decisions", headers=read).json()
    assert decisions[0]["action"] == views.decisions(project).iloc[-1]["action"]
    explained = client.get(f"/api/decisions/{decisions[0]['id']}", headers=read)
    assert explained.json() == json.loads(
        json.dumps(views.decision_explanation(project, decisions[0]["id"]), default=str)
    )
    assert client.get("/api/decisions/999", headers=read).status_code == 404
    runs = client.get("/api/runs", headers=read).json()
    with project.store.session() as s:
        assert [r["id"] for r in runs] == sorted(s.scalars(select(RunRow.id)), reverse=True)
    models = client.get("/api/models", headers=read).json()
    assert [m["version"] for m in models] == [m.version for m in project.models]
    assert client.get("/api/aliases", headers=read).json() == {"champion": 1}
    events = client.get("/api/events?limit=5", headers=read).json()
    assert [e["kind"] for e in events][:4] == ["ingest"] * 4


def test_a_batchs_diagnosis_is_served_with_its_detail(loaded, elec):
    client, read, project = loaded["client"], loaded["read"], loaded["project"]
    broken = week(elec, 4).assign(nswdemand=lambda f: f["nswdemand"] * 1000)  # a unit change
    post_rows(loaded, broken, "w4-in-kilowatts")
    unchecked = client.get("/api/batches/5/diagnosis", headers=read)
    assert unchecked.status_code == 404 and "no diagnosis yet" in unchecked.text
    project.cycle()
    found = client.get("/api/batches/5/diagnosis", headers=read)
    assert found.status_code == 200
    assert found.json() == project.diagnosis(5)
    assert found.json()["causes"][0]["columns"] == ["nswdemand"]
    assert client.get("/api/batches/5", headers=read).json()["diagnosis"] == found.json()


def test_release_brings_back_set_aside_rows_and_quarantined_batches(loaded, elec):
    client, write, project = loaded["client"], loaded["write"], loaded["project"]
    spikes = week(elec, 4).copy()
    spikes.loc[spikes.index[[10, 200]], "nswdemand"] = [5.0, 6.0]  # 2 impossible values
    post_rows(loaded, spikes, "w4-spikes")
    broken = week(elec, 5).assign(nswdemand=lambda f: f["nswdemand"] * 1000)  # a unit change
    post_rows(loaded, broken, "w5-in-kilowatts")
    assert project.cycle().quarantined == (6,)
    assert project.set_aside(5) == [10, 200]
    r = client.post("/api/release", json={"batch": 5, "reason": "real spikes"}, headers=write)
    assert r.status_code == 200 and r.json()["rows"] == [10, 200]
    assert "2 set-aside row(s) released by token:writer: real spikes" in r.json()["message"]
    assert project.set_aside(5) == []
    r = client.post("/api/release", json={"batch": 6, "reason": "kW"}, headers=write)
    assert r.status_code == 422 and "stays quarantined" in r.json()["detail"]
    body = {"batch": 6, "reason": "kW", "force": True}
    r = client.post("/api/release", json=body, headers=write)
    assert r.status_code == 200 and r.json()["status"] == "processed"
    r = client.post("/api/release", json={"batch": 9, "reason": "x"}, headers=write)
    assert r.status_code == 404
    assert client.post("/api/release", json={"batch": 5}, headers=write).status_code == 422


def test_artifact_download_is_the_registered_file(loaded):
    client, read, project = loaded["client"], loaded["read"], loaded["project"]
    r = client.get("/api/models/1/artifact", headers=read)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == project.registry.get(1).artifact
    assert r.headers["x-artifact-sha256"] == project.registry.get(1).artifact
    assert client.get("/api/models/7/artifact", headers=read).status_code == 404


def test_promote_rollback_and_manual_retrain(loaded, elec):
    client, write, project = loaded["client"], loaded["write"], loaded["project"]
    for i in range(4, 6):
        post_rows(loaded, week(elec, i), f"w{i}")
    r = client.post("/api/retrain", json={"reason": "new tariff"}, headers=write)
    assert r.status_code == 202
    assert project.get_state("manual")["actor"] == "token:writer"
    assert project.cycle().decision["reasons"][0] == "manual: new tariff"
    assert len(project.models) == 2
    target = 2 if project.champion.version == 1 else 1
    body = {"version": target, "reason": "by hand"}
    if project.registry.get(target).metrics["gate_passed"] is False:  # needs force
        assert client.post("/api/promote", json=body, headers=write).status_code == 409
        body["force"] = True
    r = client.post("/api/promote", json=body, headers=write)
    assert r.status_code == 200 and project.champion.version == target
    assert project.registry.history()[-1]["actor"] == "token:writer"
    r = client.post("/api/rollback", json={}, headers=write)
    assert r.status_code == 200 and project.champion.version != target
    r = client.post("/api/promote", json={"version": 9}, headers=write)
    assert r.status_code == 404 and "9" in r.json()["detail"]


def test_dashboard_views(loaded, elec):
    client, read, project = loaded["client"], loaded["read"], loaded["project"]
    for i in range(4, 6):
        post_rows(loaded, week(elec, i), f"w{i}")
    project.cycle()
    perf = client.get("/api/performance", headers=read).json()
    expected = views.performance(project)
    champion = expected[expected["role"] == "champion"]
    scored = [p for p in perf["points"] if not p.get("gap")]
    assert [p["champion"] for p in scored] == pytest.approx(champion["value"].tolist())
    drift = client.get("/api/drift", headers=read).json()
    with project.store.session() as s:
        n = s.scalar(
            select(func.count())
            .select_from(CheckRow)
            .where(CheckRow.kind == "drift", CheckRow.name.in_(("ks", "chi2")))
        )
    assert sum(c["checked"] for c in drift["cells"]) == n > 0
    assert set(drift["columns"]) == {
        "period",
        "nswprice",
        "nswdemand",
        "vicprice",
        "vicdemand",
        "transfer",
    }
    assert all(0 <= c["score"] <= 1 for c in drift["cells"] if c["score"] is not None)
    overview = client.get("/api/overview", headers=read).json()
    assert overview["health"]["level"] in {"ok", "watch", "problem"}
    assert f"Model version {project.champion.version}" in overview["health"]["words"]
    alarms = client.get("/api/alarms", headers=read).json()
    assert all(a["cause"] and a["action"] for a in alarms)


def test_metrics_count_what_the_store_holds(loaded):
    client, project = loaded["client"], loaded["project"]
    text = client.get("/metrics", headers=loaded["read"]).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    with project.store.session() as s:
        rows = s.scalar(select(func.sum(BatchRow.n_rows)))
    assert samples[("retrainer_rows_total", ())] == rows == 4 * WEEK
    assert samples[("retrainer_batches_total", (("status", "processed"),))] == 4
    assert samples[("retrainer_champion_version", ())] == 1
    assert samples[("retrainer_retrains_total", (("status", "succeeded"),))] == 1
    assert samples[("retrainer_cycles_total", (("status", "done"),))] == 1
    assert samples[("retrainer_gate_outcomes_total", (("outcome", "passed"),))] == 1
    assert ("retrainer_ingest_seconds_count", (("kind", "batch"),)) in samples


def test_health_and_readiness(api):
    assert api["client"].get("/healthz").json() == {"status": "ok"}
    ready = api["client"].get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    root = api["project"].artifacts.root
    root.rename(root.with_name("moved"))
    ready = api["client"].get("/readyz")
    assert ready.status_code == 503 and ready.json()["failing"] == ["artifacts"]


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc not installed (CI installs it)",
)
def test_the_microcontroller_bundle_downloads_as_a_verified_zip(service_project, tmp_path):
    import io
    import zipfile

    from fastapi.testclient import TestClient

    from retrainer.datasets import load_elec2
    from retrainer.service import create_app
    from retrainer.service.auth import create_token

    targets = {"cortex-m4f": {"flash_kb": 256, "ram_kb": 64}}
    project = service_project(deploy_targets=targets)
    project.ingest(load_elec2().iloc[:1344], key="history")
    assert project.cycle().champion == 1
    _, read = create_token(project.store, "reader", scope="read")
    client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    headers = {"Authorization": f"Bearer {read}"}
    response = client.get("/api/models/1/bundles/cortex-m4f", headers=headers)
    assert response.status_code == 200, response.text
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "cortex-m4f-1/model.c" in names and "cortex-m4f-1/manifest.json" in names
    assert client.get("/api/models/1/bundles/nope", headers=headers).status_code == 404
    assert client.get("/api/models/1/bundles/cortex-m4f").status_code == 401
