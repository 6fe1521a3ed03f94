"""S2: candidate models are loaded and scored in an isolated child.

What is tested, honestly: the skops allow-list (S1) keeps arbitrary code out of artifacts, so no
real artifact can carry an attack. These tests give the child code execution on purpose, the
way a loader bug would: functions run through ``run_isolated`` directly, and, for the gate,
``DecisionTreeClassifier.__setstate__`` (which skops calls on every tree it loads) patched in
the test so that loading a model tries to reach the network, write to ``$HOME``, allocate 10 GB
or start a process. Each attempt must fail inside the child, leave no marker and no connection,
keep the parent up, and end the run ``failed`` with a ``sandbox:`` message; the champion stays.
"""

import os
import pickle
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from retrainer.gate import evaluate_gate
from retrainer.retrain import retrain
from retrainer.sandbox import (
    SandboxError,
    SandboxLimits,
    gate_challenger,
    isolation,
    run_isolated,
)
from retrainer.store.tables import RunRow, utcnow

WEEK = 48 * 7


@pytest.fixture
def listener():
    """A TCP server in the parent's network; the child must never connect to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def connected(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return False
    return True


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def _connect(port: int) -> None:
    with socket.socket() as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))


def _write_home() -> None:
    Path(os.path.expanduser("~/owned")).write_text("x")


def _allocate_10_gb() -> int:
    return len(np.ones(10 * 2**30, dtype=np.uint8))


def _spawn(marker: str) -> None:
    subprocess.run(["touch", marker], check=False)


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_network_connections_are_refused(listener):
    port = listener.getsockname()[1]
    with pytest.raises(SandboxError, match=r"^sandbox: .*blocked socket.connect"):
        run_isolated(_connect, port)
    with pytest.raises(SandboxError, match="blocked socket.getaddrinfo"):
        run_isolated(socket.getaddrinfo, "example.com", 443)
    time.sleep(0.1)
    assert not connected(listener)
    _connect(port)  # the parent itself still can
    time.sleep(0.1)
    assert connected(listener)


def test_the_child_has_its_own_network_namespace_where_the_kernel_allows():
    if isolation().network != "namespace":
        pytest.skip("no network namespace here (unshare refused): the audit hook alone blocks")
    inside = run_isolated(lambda: sorted(name for _, name in socket.if_nameindex()))
    assert inside == ["lo"]


def test_writes_outside_its_temp_folder_are_refused(home, tmp_path):
    with pytest.raises(SandboxError, match="blocked open"):
        run_isolated(_write_home)
    assert not (home / "owned").exists()
    with pytest.raises(SandboxError, match="blocked os.remove"):
        run_isolated(os.remove, str(tmp_path / "x"))

    def scratch() -> str:  # its own temporary folder is writable
        import tempfile

        with tempfile.NamedTemporaryFile("w+") as handle:
            handle.write("ok")
            handle.seek(0)
            return handle.read()

    assert run_isolated(scratch) == "ok"


def test_a_10_gb_allocation_fails_in_the_child_only():
    with pytest.raises(SandboxError, match="out of memory"):
        run_isolated(_allocate_10_gb)
    assert run_isolated(sum, [1, 2]) == 3  # the parent carries on


def test_processes_and_unpickling_are_refused(tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(SandboxError, match="blocked subprocess.Popen"):
        run_isolated(_spawn, str(marker))
    with pytest.raises(SandboxError, match="blocked pickle.find_class"):
        run_isolated(pickle.loads, pickle.dumps(_Payload(str(marker))))
    with pytest.raises(SandboxError, match="blocked os.kill"):
        run_isolated(os.kill, os.getppid(), 9)
    assert not marker.exists()


def test_cpu_time_crashes_and_hangs_end_in_the_child():
    def spin() -> None:
        while True:
            pass

    with pytest.raises(SandboxError, match="SIGXCPU"):
        run_isolated(spin, limits=SandboxLimits(cpu_s=1))
    with pytest.raises(SandboxError, match="SIGSEGV"):
        run_isolated(lambda: __import__("ctypes").string_at(0))
    with pytest.raises(SandboxError, match="ran over 0.5 s"):
        run_isolated(time.sleep, 30, limits=SandboxLimits(timeout_s=0.5))


def _with_champion(make_project, elec, **gate):
    project = make_project(gate={"metric": "accuracy", "tolerance": 0.01, **gate})
    project.ingest(elec.iloc[: 4 * WEEK], key="weeks-0-3")
    project.cycle()
    assert project.champion is not None
    return project


def test_the_sandboxed_gate_scores_like_the_in_process_gate(make_project, elec):
    project = _with_champion(make_project, elec)
    train, holdout = elec.iloc[WEEK : 4 * WEEK], elec.iloc[4 * WEEK : 5 * WEEK]
    features = project.features(train)
    challenger = project.trainer.fit(train[features], train["target"])
    champion = project.champion
    sandboxed = gate_challenger(project, challenger, champion, holdout[features], holdout["target"])
    plain = evaluate_gate(
        challenger,
        project.load_model(champion.version),
        holdout[features],
        holdout["target"],
        metric="accuracy",
        tolerance=0.01,
    )
    assert sandboxed == plain
    assert plain.champion is not None and plain.n_holdout == WEEK


@pytest.mark.parametrize("attack", ["network", "home", "memory", "process"])
def test_a_model_whose_loading_attacks_fails_the_run_with_sandbox(
    make_project, elec, monkeypatch, listener, home, tmp_path, attack
):
    project = _with_champion(make_project, elec)
    champion = project.champion.version
    marker = tmp_path / "marker"
    port = listener.getsockname()[1]
    original = DecisionTreeClassifier.__setstate__

    def setstate(self, state):
        if attack == "network":
            _connect(port)
        elif attack == "home":
            _write_home()
        elif attack == "memory":
            _allocate_10_gb()
        else:
            _spawn(str(marker))
        return original(self, state)

    monkeypatch.setattr(DecisionTreeClassifier, "__setstate__", setstate)
    project.ingest(elec.iloc[4 * WEEK : 6 * WEEK], key="weeks-4-5")
    outcome = retrain(project, cycle_id=None, decision_id=None, reasons=["x"], clock=utcnow())

    assert outcome.status == "failed"
    assert outcome.message.startswith("run failed: sandbox: the gate failed"), outcome.message
    with project.store.session() as s:
        assert s.get(RunRow, outcome.run_id).error.startswith("run failed: sandbox:")
    assert project.champion.version == champion
    time.sleep(0.1)
    assert not connected(listener)
    assert not (home / "owned").exists()
    assert not marker.exists()
