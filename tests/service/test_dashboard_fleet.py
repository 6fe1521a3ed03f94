"""The dashboard's fleet page in a real headless Chromium: the champion's C build per target,
the rollout, every device with the version it runs and is offered, and fleet drift, as the API
says (two versions gated on a Cortex-M4 target, two devices reporting from the compiled sketch)."""

import shutil

import pytest

from retrainer.datasets import load_elec2
from retrainer.deploy import fleet
from retrainer.project import Project
from retrainer.service.auth import create_token
from tests.service.service_helpers import WEEK, serve_in_thread, service_settings
from tests.service.test_dashboard import (  # noqa: F401 (the browser fixture)
    browser,
    console_errors,
    pytestmark,
    wait_ready,
)
from tests.tinyml_helpers import FEATURES, TARGET, TARGETS, build_sketch, run_sketch

needs_tools = pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs a host C compiler and arm-none-eabi-gcc (CI installs both)",
)


@pytest.fixture(scope="module")
def fleet_site(tmp_path_factory):
    """Version 1 on two devices (one reports drifted rows), version 2 rolled out to half."""
    root = tmp_path_factory.mktemp("fleet")
    project = Project.from_dict(service_settings(deploy_targets=TARGETS), root=root)
    elec = load_elec2()
    for i in range(4):
        project.ingest(elec.iloc[i * WEEK : (i + 1) * WEEK], key=f"w{i}")
    project.cycle()
    bundle = project.bundle_folder() / f"{TARGET}-1"
    binary = build_sketch(root / "sketch", {p.name: p.read_text() for p in bundle.iterdir()})
    for device, start in (("node-a", 4), ("node-b", 100)):
        rows = elec.iloc[start * WEEK : (start + 1) * WEEK][FEATURES]
        fleet.ingest_telemetry(project, run_sketch(binary, rows, device, 1))
    for i in range(4, 8):
        project.ingest(elec.iloc[i * WEEK : (i + 1) * WEEK], key=f"w{i}")
    project.request_retrain("a second version to roll out")
    project.cycle()
    assert project.champion.version == 2, project.status()
    fleet.start_rollout(project, TARGET, 2, 50, reason="canary")
    _, token = create_token(project.store, "browser", scope="read")
    with serve_in_thread(project) as base:
        yield {"project": project, "token": token, "base": base}


def _rows(driver, box):
    from selenium.webdriver.common.by import By

    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, f"#{box} tbody tr")
    ]


@needs_tools
def test_fleet_page_shows_targets_rollout_devices_and_drift(fleet_site, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(fleet_site["base"] + "/ui/fleet")
    browser.find_element(By.ID, "token").send_keys(fleet_site["token"])
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_ready(browser)
    assert console_errors(browser) == []
    view = fleet.fleet(fleet_site["project"])

    (target,) = _rows(browser, "fleet-targets")
    champion = view["targets"][0]
    assert target[:2] == [TARGET, "v2"]
    assert target[3] == f"{champion['agreement']:.4f} of {champion['rows']}"
    assert target[5] == f"{champion['flash_bytes']:,} B of {champion['flash_budget']:,}"
    assert target[6] == f"{champion['ram_bytes']:,} B of {champion['ram_budget']:,}"

    (rollout,) = _rows(browser, "fleet-rollouts")
    assert rollout[:4] == [TARGET, "v2", "50 %", "v1"] and rollout[5] == "canary"

    devices = {d["device"]: d for d in view["devices"]}
    shown = _rows(browser, "fleet-devices")
    assert [row[0] for row in shown] == ["node-a", "node-b"]
    for row in shown:
        device = devices[row[0]]
        assert row[1:3] == [TARGET, f"v{device['version']}"]
        assert row[3].startswith(f"v{device['offered']}")
        assert ("update pending" in row[3]) == (device["offered"] != device["version"])
        assert row[5:] == [str(device["reports"]), str(device["rows"])]

    (drift,) = _rows(browser, "fleet-drift")
    checks = view["checks"]["1"]
    assert drift[:3] == ["v1", checks["dataset_drift"]["message"], str(checks["tested"])]
    assert checks["alarms"] and drift[3] != "none"  # node-b's rows are two years later
