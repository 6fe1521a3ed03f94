"""The dashboard at a glance, in a real headless Chromium 1400 px wide, on a store of 600
batches (20 months of ELEC2 days: quarantined days, a missing day): every page stays under three
screens high and never scrolls sideways, says whether the model is kept fresh, groups decisions
and alarms (cause -> column -> count), dates alarms by their batch's data time, aggregates the
drift map by data time newest first, breaks the performance lines at gaps, and keeps the token
for the browser session across tabs. Screenshots go to ``$RETRAINER_SCREENSHOTS`` if set."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from retrainer import views
from retrainer.service.auth import create_token
from retrainer.service.dashboard import alarm_summary, drift_heatmap, performance_series
from retrainer.store.tables import BatchRow, DecisionRow, EventRow
from tests.service.service_helpers import serve_in_thread
from tests.service.test_dashboard import (  # noqa: F401 (the skip mark)
    CHROMIUM,
    DRIVER,
    FLAGS,
    console_errors,
    pytestmark,
    wait_ready,
)
from tests.service.test_dashboard_views import quarantined_since

WIDTH, HEIGHT = 1400, 900
BATCHES = 600


@pytest.fixture(scope="module")
def big(many_batches):
    """600 batches: real cycles on 60 ELEC2 days, their record repeated forward in time."""
    project = many_batches
    _, token = create_token(project.store, "browser", scope="read")
    with serve_in_thread(project) as base:
        yield {"project": project, "token": token, "base": base}


@pytest.fixture(scope="module")
def wide(big):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = [f for f in FLAGS if not f.startswith("--window-size")]
    for flag in [*flags, f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.get(big["base"] + "/")
    driver.find_element("id", "token").send_keys(big["token"])
    driver.find_element("css selector", "#login-form button").click()
    wait_ready(driver)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shoot(driver, name):
    folder = os.environ.get("RETRAINER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, max(HEIGHT, height + 150))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        driver.set_window_size(WIDTH, HEIGHT)


def open_page(driver, base, path):
    driver.get(base + path)
    return wait_ready(driver)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/ui/performance",
        "/ui/drift",
        "/ui/alarms",
        "/ui/decisions",
        "/ui/models",
        "/ui/batches",
        "/ui/batches/300",
        "/ui/fleet",
    ],
)
def test_each_page_fits_in_three_screens_and_never_scrolls_sideways(big, wide, path):
    open_page(wide, big["base"], path)
    assert console_errors(wide) == []
    width = wide.execute_script("return window.innerWidth")
    screen = wide.execute_script("return window.innerHeight")
    height = wide.execute_script("return document.documentElement.scrollHeight")
    scroll = wide.execute_script("return document.documentElement.scrollWidth")
    shoot(wide, path.strip("/").replace("/", "-") or "overview")
    assert width == WIDTH
    assert height < 3 * screen, f"{path}: {height} px high, {screen} px a screen"
    assert scroll <= width, f"{path}: {scroll} px wide"


def test_the_overview_says_in_one_sentence_whether_the_model_is_kept_fresh(big, wide):
    open_page(wide, big["base"], "/")
    said = wide.find_element("id", "freshness").text
    fresh = views.freshness(big["project"])
    assert said == fresh["sentence"]
    assert said.startswith("The model is being kept fresh")  # quarantine is per batch
    assert f"last retrained on data up to {fresh['last_retrain']['data_time'][:10]}" in said
    assert said.count(". ") == 0 and said.endswith(".")  # one sentence
    with big["project"].store.session() as s:
        last = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc())).first()
    quarantined = quarantined_since(big["project"], fresh["last_retrain"]["data_time"])
    assert f"({quarantined} batch(es) quarantined since)" in said
    groups = wide.find_elements("css selector", "#decision details.group")
    assert len(groups) == len({views.reason_cause(r) for r in last.reasons})


def test_alarms_are_grouped_with_their_batch_and_data_time(big, wide):
    project = big["project"]
    open_page(wide, big["base"], "/ui/alarms")
    summary = alarm_summary(project)
    with project.store.session() as s:  # independent count: the diagnoses stored per batch
        per_batch = sum(
            len((data or {}).get("diagnosis", {}).get("alarms", []))
            for data in s.scalars(select(EventRow.data).where(EventRow.kind == "check"))
        )
        times = dict(s.execute(select(BatchRow.id, BatchRow.data_time)).all())
    relation = sum(g["count"] for g in summary["groups"] if g["cause"] == "changed_relation")
    assert summary["total"] == per_batch + relation
    shown = wide.find_elements("css selector", "#alarm-groups > details.group")
    assert len(shown) == len(summary["groups"]) >= 2  # a changed relation, the broken day
    counts = [g["count"] for g in summary["groups"]]
    assert counts == sorted(counts, reverse=True)
    for element, group in zip(shown, summary["groups"], strict=True):
        said = element.find_element("tag name", "summary").text
        assert said.endswith(f"×{group['count']}")
        for column in group["columns"]:  # cause -> columns -> count, readable without opening
            name = "no single column" if column["column"] is None else column["column"]
            assert f"{name} ({column['count']})" in said
    named = [c["column"] for g in summary["groups"] for c in g["columns"]]
    assert "nswprice" in named  # the broken day's price column
    newest = wide.find_elements("css selector", "#alarm-latest tbody tr")
    assert len(newest) == 10
    batch, data_time = (c.text for c in newest[0].find_elements("tag name", "td")[:2])
    stamp = times[int(batch)]
    assert data_time == f"{stamp:%Y-%m-%d %H:%M:%S}"
    assert stamp == max(times[a["batch"]] for a in summary["latest"])  # newest data first


def test_the_decisions_page_lists_every_decision_with_its_reasons(big, wide):
    open_page(wide, big["base"], "/ui/decisions")
    with big["project"].store.session() as s:
        decisions = s.scalar(select(func.count()).select_from(DecisionRow))
    stretches = wide.find_elements("css selector", "#decision-log > details")
    assert stretches
    listed = wide.execute_script(
        "return [...document.querySelectorAll('#decision-log > details > table > tbody > tr')]"
        ".length"
    )
    assert listed == decisions
    first = stretches[0]
    wide.execute_script("arguments[0].open = true", first)
    reason = first.find_element("css selector", "tbody tr td:last-child details.group summary")
    with big["project"].store.session() as s:
        newest = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc())).first()
    causes = {views.reason_cause(r).replace("_", " ") for r in newest.reasons}
    assert any(cause in reason.text for cause in causes), (reason.text, causes)


def test_the_drift_map_is_by_data_time_newest_first_and_aggregated(big, wide):
    project = big["project"]
    open_page(wide, big["base"], "/ui/drift")
    heat = drift_heatmap(project)
    drawn = wide.execute_script("return window.retrainer.charts.drift")
    assert drawn == {"columns": 6, "spans": len(heat["spans"]), "cells": len(heat["cells"])}
    assert len(heat["spans"]) <= 40 and heat["per_span"] > 1
    assert sum(sp["batches"] for sp in heat["spans"]) == BATCHES - 20  # the first model's 20
    ends = [sp["to"] for sp in heat["spans"]]
    assert ends == sorted(ends, reverse=True)
    with project.store.session() as s:
        newest = s.scalar(select(func.max(BatchRow.data_time)))
    assert heat["spans"][0]["to"].startswith(f"{newest:%Y-%m-%d}")
    first = wide.find_element("css selector", "#heatmap thead th.time")
    assert heat["spans"][0]["to"][:10] in first.get_attribute("title")


def test_the_performance_lines_break_at_quarantined_and_missing_batches(big, wide):
    project = big["project"]
    open_page(wide, big["base"], "/ui/performance")
    data = wide.execute_script(
        "const d = window.retrainer.charts.performance.data;"
        "return d.slice(1).map((s) => s.map("
        "  (v) => v === null ? 'gap' : v === undefined ? 'join' : v))"
    )
    series = performance_series(project)
    gaps = [i for i, p in enumerate(series["points"]) if p.get("gap")]
    with project.store.session() as s:
        quarantined = s.scalar(select(func.count()).where(BatchRow.status == "quarantined"))
    missing = [p for p in series["points"] if p.get("gap") == "missing"]
    assert len(gaps) == quarantined + len(missing) and missing
    assert wide.execute_script("return window.retrainer.charts.gaps") == gaps
    for line in data[:2]:  # champion and never-retrained baseline
        assert [i for i, v in enumerate(line) if v == "gap"] == gaps


def test_the_token_is_kept_for_the_session_across_tabs_and_never_in_a_url(big, wide):
    first = wide.current_window_handle
    wide.switch_to.new_window("tab")
    try:
        open_page(wide, big["base"], "/ui/alarms")
        assert not wide.find_element("id", "login").is_displayed()
        assert big["token"] not in wide.current_url
        assert (
            wide.execute_script("return sessionStorage.getItem('retrainer.token')") == big["token"]
        )
        assert wide.execute_script("return document.cookie") == ""
    finally:
        wide.close()
        wide.switch_to.window(first)


def test_the_batches_page_sets_the_quarantined_apart_and_pages_the_rest(big, wide):
    open_page(wide, big["base"], "/ui/batches")
    with big["project"].store.session() as s:
        quarantined = s.scalar(select(func.count()).where(BatchRow.status == "quarantined"))
    summary = wide.find_element("css selector", "#quarantined summary").text
    assert summary.startswith(f"{quarantined} quarantined batches")
    rows = "return document.querySelectorAll('#batch-list tbody tr').length"
    assert wide.execute_script(rows) == 25
    first = wide.find_element("css selector", "#batch-list tbody tr td a").text
    assert first == str(BATCHES)  # newest first
    wide.find_element("id", "more-batches").click()
    deadline = time.monotonic() + 10
    while wide.execute_script(rows) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wide.execute_script(rows) == 50
    last = wide.find_elements("css selector", "#batch-list tbody tr td a")[-1].text
    assert last == str(BATCHES - 49)
