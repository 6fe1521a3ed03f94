"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver): every page
loads without console errors, the charts hold the API's data, and a promote click changes the
champion."""

import os
import shutil
import tempfile
import time

import pytest

from retrainer.datasets import load_elec2
from retrainer.project import Project
from retrainer.promotion import gate_failure
from retrainer.service.auth import create_token
from tests.service.service_helpers import WEEK, serve_in_thread, service_settings

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1300,900",
]

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/apt-packages.txt)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A project with two model versions, served by uvicorn on a loopback port."""
    root = tmp_path_factory.mktemp("dashboard")
    project = Project.from_dict(service_settings(), root=root)
    elec = load_elec2()
    for i in range(4):
        project.ingest(elec.iloc[i * WEEK : (i + 1) * WEEK], key=f"w{i}")
    project.cycle()
    for i in range(4, 7):
        project.ingest(elec.iloc[i * WEEK : (i + 1) * WEEK], key=f"w{i}")
    project.request_retrain("two versions for the dashboard test")
    project.cycle()
    unlabelled = [elec.iloc[i * WEEK : (i + 1) * WEEK] for i in (7, 8)]
    for i, rows in zip((7, 8), unlabelled, strict=True):
        project.ingest(rows.drop(columns="target"), key=f"w{i}")
    project.ingest_predictions(unlabelled[0][["id"]].assign(prediction=1), key="served-w7")
    project.cycle()  # estimates for weeks 7 and 8
    project.ingest_labels(unlabelled[0][["id", "target"]], key="labels-w7")
    project.cycle()  # week 7 scored: the champion and what was served
    _, token = create_token(project.store, "browser", scope="write")
    with serve_in_thread(project) as base:
        yield {"project": project, "token": token, "base": base}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("return window.retrainer || null")
        if state and (state["ready"] or state["error"]):
            assert state["error"] is None, state["error"]
            return state
        time.sleep(0.05)
    raise AssertionError(f"{driver.current_url} did not render within {timeout} s")


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def signed_in(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(site["base"] + "/")
    assert browser.find_element(By.ID, "login").is_displayed()
    browser.find_element(By.ID, "token").send_keys(site["token"])
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_ready(browser)
    return browser


PAGES = [
    "/",
    "/ui/performance",
    "/ui/drift",
    "/ui/alarms",
    "/ui/models",
    "/ui/batches",
    "/ui/batches/5",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_without_console_errors(site, signed_in, path):
    from selenium.webdriver.common.by import By

    signed_in.get(site["base"] + path)
    wait_ready(signed_in)
    assert console_errors(signed_in) == []
    assert signed_in.find_element(By.ID, "content").text.strip()


def test_overview_says_who_serves_and_why(site, signed_in):
    from selenium.webdriver.common.by import By

    signed_in.get(site["base"] + "/")
    wait_ready(signed_in)
    champion = site["project"].champion.version
    assert signed_in.find_element(By.CSS_SELECTOR, "#champion b").text == f"v{champion}"
    assert f"Model version {champion} is serving" in signed_in.find_element(By.ID, "health").text
    last = site["project"].status()["last_decision"]
    decision = signed_in.find_element(By.ID, "decision")
    assert last["reasons"][0] in decision.get_attribute("textContent")  # inside its group


def test_charts_hold_the_apis_data(site, signed_in):
    from retrainer.service.dashboard import drift_heatmap, performance_series

    signed_in.get(site["base"] + "/ui/performance")
    wait_ready(signed_in)
    data = signed_in.execute_script("return window.retrainer.charts.performance.data")
    series = performance_series(site["project"])
    champion = [p.get("champion") for p in series["points"]]
    assert len(data[0]) == len(series["points"]) > 0
    assert data[1] == pytest.approx(champion)
    assert any(v is not None for v in data[2])  # the never-retrained baseline
    for role, at in (("estimated", 3), ("serving", 4)):
        drawn = [p.get(role) for p in series["points"]]
        assert any(v is not None for v in drawn), role
        assert data[at] == pytest.approx(drawn)
    signed_in.get(site["base"] + "/ui/drift")
    wait_ready(signed_in)
    drawn = signed_in.execute_script("return window.retrainer.charts.drift")
    heat = drift_heatmap(site["project"])
    assert drawn == {
        "columns": len(heat["columns"]),
        "spans": len(heat["spans"]),
        "cells": len(heat["cells"]),
    }
    cells = signed_in.execute_script("return document.querySelectorAll('#heatmap tbody td').length")
    assert cells == len(heat["columns"]) * len(heat["spans"]) > 0


def test_a_promote_click_changes_the_champion(site, signed_in):
    from selenium.webdriver.common.by import By

    project = site["project"]
    before = project.champion.version
    target = next(m.version for m in project.models if m.version != before)
    signed_in.get(site["base"] + "/ui/models")
    wait_ready(signed_in)
    button = signed_in.find_element(By.CSS_SELECTOR, f"button.promote[data-version='{target}']")
    failed = gate_failure(project.registry.get(target))
    if failed:  # the page says why it failed and asks first; no means no
        button.click()
        alert = signed_in.switch_to.alert
        assert failed in alert.text
        alert.dismiss()
        time.sleep(0.3)
        assert project.champion.version == before
    button.click()
    if failed:
        signed_in.switch_to.alert.accept()
    deadline = time.monotonic() + 15
    while project.champion.version != target and time.monotonic() < deadline:
        time.sleep(0.05)
    assert project.champion.version == target
    assert project.registry.history()[-1]["actor"] == "token:browser"
    assert ("despite its failed gate" in project.registry.history()[-1]["reason"]) == bool(failed)
    wait_ready(signed_in)
    assert signed_in.find_elements(By.CSS_SELECTOR, f"button.promote[data-version='{before}']")
    assert console_errors(signed_in) == []


def test_a_read_token_cannot_promote_from_the_page(site, signed_in):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    project = site["project"]
    _, read = create_token(project.store, "viewer", scope="read")
    signed_in.execute_script("sessionStorage.setItem('retrainer.token', arguments[0])", read)
    signed_in.get(site["base"] + "/ui/models")
    wait_ready(signed_in)
    before = project.champion.version
    signed_in.find_element(By.CSS_SELECTOR, "button.promote").click()
    if EC.alert_is_present()(signed_in):  # a version that failed its gate: yes, try anyway
        signed_in.switch_to.alert.accept()
    deadline = time.monotonic() + 10
    while not signed_in.find_element(By.ID, "error").is_displayed():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "scope" in signed_in.find_element(By.ID, "error").text
    assert project.champion.version == before
    signed_in.get_log("browser")  # the refused call logs its 403; the next test starts clean
