"""Fleet routes: telemetry upload (write scope, octet-stream, size limit), the fleet view, the
device's bundle question, bundle manifests and rollouts."""

import shutil

import pytest

from tests.tinyml_helpers import (
    FEATURES,
    TARGET,
    TARGETS,
    build_sketch,
    bundled_version,
    run_sketch,
)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a host C compiler")


@pytest.fixture
def fleet_api(service_project, elec, tmp_path):
    from fastapi.testclient import TestClient

    from retrainer.service import create_app
    from retrainer.service.auth import create_token

    project = service_project(deploy_targets=TARGETS)
    project.ingest(elec.iloc[20_000:21_344], key="train")
    version, _, _, bundle = bundled_version(project, elec.iloc[20_000:21_344])
    binary = build_sketch(tmp_path / "build", {p.name: p.read_text() for p in bundle.iterdir()})
    _, read = create_token(project.store, "reader", scope="read")
    _, write = create_token(project.store, "writer", scope="write")
    client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    report = run_sketch(binary, elec.iloc[35_000:35_336][FEATURES], "node-7", 1)
    return {
        "client": client,
        "read": {"Authorization": f"Bearer {read}"},
        "write": {"Authorization": f"Bearer {write}"},
        "version": version,
        "report": report,
        "other_report": run_sketch(binary, elec.iloc[36_000:36_336][FEATURES], "node-7", 1),
    }


def test_telemetry_upload_fleet_view_and_device_bundle(fleet_api):
    c, w, r = fleet_api["client"], fleet_api["write"], fleet_api["read"]
    octet = {"Content-Type": "application/octet-stream"}
    assert (
        c.post("/api/telemetry", content=fleet_api["report"], headers=r | octet).status_code == 403
    )
    first = c.post("/api/telemetry", content=fleet_api["report"], headers=w | octet)
    assert first.status_code == 201, first.text
    assert first.json()["device"] == "node-7" and first.json()["alarms"]
    again = c.post("/api/telemetry", content=fleet_api["report"], headers=w | octet)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = fleet_api["other_report"]  # same device, version and sequence; other rows
    conflict = c.post("/api/telemetry", content=other, headers=w | octet)
    assert conflict.status_code == 409 and "kept nowhere" in conflict.json()["detail"]
    bad = c.post("/api/telemetry", content=fleet_api["report"][:-5], headers=w | octet)
    assert bad.status_code == 422 and "checksum" in bad.json()["detail"]
    assert c.post("/api/telemetry", content=b"x", headers=w).status_code == 415
    huge = c.post("/api/telemetry", content=b"\0" * (1 << 20 | 1), headers=w | octet)
    assert huge.status_code == 413
    view = c.get("/api/fleet", headers=r).json()
    assert view["devices"][0]["device"] == "node-7"
    answer = c.get("/api/fleet/devices/node-7/bundle", headers=r).json()
    assert answer["version"] == fleet_api["version"] and answer["target"] == TARGET
    manifest = c.get(answer["manifest_url"], headers=r).json()
    assert "model_telemetry.c" in manifest["files"] and manifest["telemetry"]["version"] == 1
    assert c.get("/api/fleet/devices/unknown/bundle", headers=r).status_code == 404


def test_rollouts_from_the_api(fleet_api):
    c, w = fleet_api["client"], fleet_api["write"]
    body = {"target": TARGET, "version": fleet_api["version"], "percent": 25, "reason": "canary"}
    made = c.post("/api/rollouts", json=body, headers=w)
    assert made.status_code == 201 and made.json()["percent"] == 25
    back = c.post("/api/rollouts", json={"target": TARGET, "rollback": True}, headers=w)
    assert back.status_code == 404  # no earlier bundled version to go back to
