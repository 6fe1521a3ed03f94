"""One cycle of a project at a time, whoever runs it: the service's scheduler, the command line
or the Python API all take the project's cycle lease."""

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import yaml
from click.testing import CliRunner

from retrainer.cli import main
from retrainer.errors import BusyError
from retrainer.lease import Lease
from retrainer.project import Project
from retrainer.store.tables import CycleRow, utcnow
from tests.conftest import project_settings, store_url


@pytest.fixture
def project(tmp_path, elec):
    settings = project_settings(store={"url": store_url(tmp_path), "artifacts": "artifacts"})
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    project.ingest(elec.iloc[:1344], key="history")
    return project


def service_lease(project, holder="service-on-another-host"):
    return Lease(project.store, f"cycle:{project.config.project}", holder, timedelta(minutes=5))


def cycles(project):
    with project.store.session() as s:
        return s.query(CycleRow).count()


def test_a_cycle_waits_for_nobody_and_gives_the_lease_back(project):
    project.cycle()
    assert cycles(project) == 1
    # released at the end: a service can take it at once
    assert service_lease(project).acquire(utcnow())


def test_the_python_api_refuses_while_another_process_holds_the_lease(project):
    held = service_lease(project)
    assert held.acquire(utcnow())
    with pytest.raises(BusyError, match="service-on-another-host.*'test'"):
        project.cycle()
    assert cycles(project) == 0
    held.release()
    project.cycle()
    assert cycles(project) == 1


def test_the_holder_itself_renews_and_keeps_the_lease(project):
    held = service_lease(project, holder="scheduler-1")
    assert held.acquire(utcnow())
    project.cycle(holder="scheduler-1")
    assert cycles(project) == 1
    assert not service_lease(project, holder="rival").acquire(utcnow())


def test_the_command_line_says_who_holds_the_lease(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert service_lease(project).acquire(utcnow())
    result = CliRunner().invoke(main, ["cycle"])
    assert result.exit_code != 0
    assert "service-on-another-host" in result.output
    assert cycles(project) == 0


def test_a_crashed_holder_on_this_host_is_taken_over_at_once(project):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    assert service_lease(project, holder=f"{host}:{gone.pid}:dead").acquire(utcnow())
    project.cycle()  # no wait for the five-minute lease to expire
    assert cycles(project) == 1
    alive = service_lease(project, holder=f"{host}:{os.getpid()}:alive")
    assert alive.acquire(utcnow())
    with pytest.raises(BusyError):
        project.cycle()
