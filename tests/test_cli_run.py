"""`retrainer run` on a backlog: bounded cycles, one line each, and idle polls that read
nothing."""

import json
import os
import signal
import threading

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

import retrainer.watch
from retrainer.cli import main
from retrainer.project import Project
from retrainer.store.tables import BatchRow
from retrainer.watch import FolderWatch
from tests.conftest import project_settings, store_url


@pytest.fixture
def backlog(tmp_path, elec, monkeypatch):
    """A project whose data.source holds 4 labelled history weeks and 9 weekly files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    elec.iloc[:1344].to_csv(tmp_path / "in" / "000-history.csv", index=False)
    for week in range(1, 10):
        part = elec.iloc[1344 + (week - 1) * 336 : 1344 + week * 336]
        part.to_csv(tmp_path / "in" / f"{week:03d}.csv", index=False)
    settings = project_settings(run={"max_batches_per_cycle": 4})
    settings["store"]["url"] = store_url(tmp_path)
    settings["data"]["source"] = "in"
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path


def test_a_backlog_runs_in_cycles_of_at_most_the_setting(backlog):
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "3", "--json"])
    assert result.exit_code == 0, result.output
    decoder, text, cycles = json.JSONDecoder(), result.stdout, []
    while text.strip():
        cycle, end = decoder.raw_decode(text.lstrip())
        cycles.append(cycle)
        text = text.lstrip()[end:]
    assert [len(c["batches"]) for c in cycles] == [4, 4, 2]
    assert sorted(b for c in cycles for b in c["batches"]) == list(range(1, 11))


def test_each_cycle_prints_one_line(backlog):
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "3"])
    assert result.exit_code == 0, result.output
    lines = [x for x in result.stdout.splitlines() if x.startswith("cycle ")]
    assert [x.split(",")[0] for x in lines] == [
        "cycle 1: batches 1-4",
        "cycle 2: batches 5-8",
        "cycle 3: batches 9-10",
    ]
    assert lines[0].endswith("6 files waiting") and lines[2].endswith("0 files waiting")


def test_until_idle_stops_once_the_backlog_is_worked_through(backlog):
    """Without the flag it would poll on: a Ctrl-C after 60 s would stop it (and say so)."""
    ctrl_c = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGINT))
    ctrl_c.start()
    try:
        result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--until-idle"])
    finally:
        ctrl_c.cancel()
    assert result.exit_code == 0 and "stopping" not in result.stderr, result.output
    lines = [x for x in result.stdout.splitlines() if x.startswith("cycle ")]
    assert len(lines) == 3 and lines[-1].endswith("0 files waiting"), result.output
    assert "stopped after 3 cycle(s)" in result.stderr
    again = CliRunner().invoke(main, ["run", "--interval", "0.01", "--until-idle"])
    assert again.exit_code == 0 and "stopped after 0 cycle(s)" in again.stderr, again.output


def test_an_idle_poll_reads_no_file(backlog, monkeypatch):
    project = Project.from_yaml(backlog / "retrainer.yaml")
    watch = FolderWatch(project)
    assert watch.scan() == 10
    watch.ingest_next(10)
    reads = []
    real_key = retrainer.watch._key
    monkeypatch.setattr(retrainer.watch, "_key", lambda p: reads.append(p) or real_key(p))
    assert watch.scan() == 0 and reads == []  # unchanged files: a listing, no read
    again = FolderWatch(project)  # a new process: hashes each file once, parses none
    monkeypatch.setattr(retrainer.watch, "read_table", lambda p: pytest.fail(f"parsed {p}"))
    assert again.scan() == 0 and len(reads) == 10
    (backlog / "in" / "010.csv").write_text((backlog / "in" / "009.csv").read_text())
    assert again.scan() == 1 and [p.name for p in again.batches] == ["010.csv"]


def test_a_bad_file_is_reported_once_and_the_rest_goes_on(backlog):
    (backlog / "in" / "005.csv").write_bytes(b"")
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.count("not ingested:") == 1 and "005.csv" in result.output


def test_a_missing_source_folder_is_an_error(backlog):
    settings = yaml.safe_load((backlog / "retrainer.yaml").read_text())
    settings["data"]["source"] = "nowhere"
    (backlog / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--max-cycles", "1"])
    assert result.exit_code == 2 and "nowhere: no such file or folder" in " ".join(
        result.output.split()
    )


def test_files_numbered_without_leading_zeros_are_taken_in_their_numbers_order(backlog, elec):
    """Weekly files named 1.csv ... 52.csv came in as 1, 10, 11, ..., 19, 2, 20, ...: windows
    of weeks out of order. Numbers in names now count by value, in `run` and in `ingest`."""
    for f in (backlog / "in").glob("00?.csv"):
        f.rename(f.with_name(f"week-{int(f.stem)}.csv"))
    elec.iloc[1344 + 9 * 336 : 1344 + 10 * 336].to_csv(backlog / "in" / "week-10.csv", index=False)
    watch = FolderWatch(Project.from_yaml(backlog / "retrainer.yaml"))
    watch.scan()
    names = [p.name for p in watch.batches]
    assert names == ["000-history.csv", *(f"week-{k}.csv" for k in range(1, 11))]
    result = CliRunner().invoke(main, ["ingest", "in"])
    assert result.exit_code == 0, result.output
    with Project.from_yaml(backlog / "retrainer.yaml").store.session() as s:
        sources = s.scalars(select(BatchRow.source).order_by(BatchRow.id)).all()
    assert [os.path.basename(x) for x in sources] == names


def test_by_default_a_backlog_is_retrained_as_its_triggers_ask_as_live(backlog):
    """A cycle retrains at most once: at 4 files a cycle, a weekly schedule on these weekly
    files retrained in 3 cycles of 10 files; a file a cycle (the default) retrains at each."""
    settings = yaml.safe_load((backlog / "retrainer.yaml").read_text())
    del settings["run"]
    settings["policy"] = {"triggers": [{"type": "schedule", "every": "7d"}], "cooldown": "1d"}
    (backlog / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--until-idle", "--json"])
    assert result.exit_code == 0, result.output
    project = Project.from_yaml(backlog / "retrainer.yaml")
    with project.store.session() as s:
        assert len(s.scalars(select(BatchRow.id)).all()) == 10
    assert [v.version for v in project.registry.versions()] == list(range(1, 11))


def test_a_replay_that_left_files_out_says_so_and_fails(backlog):
    """All 52 weekly files of a new user's first backlog were refused (naive times) and
    `run --until-idle` ended "stopped after 0 cycle(s)" with exit 0: a cron job saw success."""
    (backlog / "in" / "005.csv").write_bytes(b"")
    result = CliRunner().invoke(main, ["run", "--interval", "0.01", "--until-idle"])
    assert result.exit_code == 2, result.output
    assert "stopped after 3 cycle(s); 1 file(s) refused: 005.csv" in result.stderr
