"""Run code that touches untrusted models in a child process that cannot reach anything.

The gate loads the champion from its artifact (which may have been uploaded) and the
challenger from its skops bytes, and scores both, in a forked child. The layers are
independent, so each holds when another is bypassed:

1. **Process**: a crash (a crafted tree can make scikit-learn read out of bounds), an exhausted
   limit or a hang kills only the child; the parent waits with a timeout, then SIGKILLs it.
2. **Resource limits**: ``RLIMIT_AS`` (the child's size at the fork plus ``memory_mb``),
   ``RLIMIT_CPU``, ``RLIMIT_FSIZE`` and no core dumps.
3. **Network namespace**: ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` where the kernel permits it
   (unprivileged user namespaces, or root with CAP_SYS_ADMIN): the child has no interface but
   a down loopback. ``SandboxReport.network`` says whether it was in place.
4. **Audit hook** (PEP 578): refuses socket connect/bind/send and name lookups, new processes
   (subprocess, exec, spawn, fork, system, kill), unpickling, and opening for writing,
   creating, removing, renaming or chmod-ing any path outside the child's temporary folder;
   artifacts are therefore read-only to it. Audit hooks stop Python code, not native code:
   the other layers are there for that.

A child that breaks a rule, runs out of memory or CPU, crashes or times out raises
:class:`SandboxError` in the parent (``sandbox: ...``); a retraining run then ends ``failed``
with that message.

Example:
    >>> run_isolated(sum, [1, 2, 3])
    6
    >>> import socket
    >>> try:
    ...     run_isolated(socket.create_connection, ("127.0.0.1", 9))
    ... except SandboxError as exc:
    ...     print(str(exc).split(" (")[0])
    sandbox: model code failed: blocked socket.getaddrinfo
"""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrainer.errors import RetrainerError

__all__ = ["SandboxError", "SandboxLimits", "gate_challenger", "isolation", "run_isolated"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_NETWORK = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
}
_PROCESSES = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "pty.spawn",
    "pickle.find_class",
}
_PATHS = {  # event -> positions of the path arguments it changes
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.move": (0, 1),
}


class SandboxError(RetrainerError):
    """Untrusted model code broke a sandbox rule, ran out of a limit, crashed or timed out."""


@dataclass(frozen=True)
class SandboxLimits:
    """What the child may use.

    Parameters:
        memory_mb: address space beyond the child's size at the fork.
        cpu_s: CPU seconds (``RLIMIT_CPU``).
        timeout_s: wall-clock seconds before the parent kills the child.
        file_mb: largest file the child may write (in its temporary folder).
    """

    memory_mb: int = 2048
    cpu_s: int = 300
    timeout_s: float = 600.0
    file_mb: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SandboxReport:
    """Which isolation layers a child had: ``network`` is ``namespace`` or ``audit hook``."""

    network: str
    limits: SandboxLimits

    def to_dict(self) -> dict:
        return {"network": self.network, "limits": self.limits.to_dict()}


def _unshare_network() -> bool:
    """Move this (single-threaded, forked) process into new user and network namespaces."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET):
        if libc.unshare(flags) == 0:
            return True
    return False


def _size() -> int:
    """This process's address space in bytes (``VmSize``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _inside(path: Any, root: str) -> bool:
    if isinstance(path, int):
        return True  # an already open descriptor: how it was opened was checked then
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.fspath(path))
    return real == root or real.startswith(root + os.sep)


def _hook(root: str, violations: list[str]) -> Callable[[str, tuple], None]:
    def audit(event: str, args: tuple) -> None:
        blocked = event in _NETWORK or event in _PROCESSES
        if event == "open":
            path, mode, flags = (*args, None, None)[:3]
            writes = isinstance(flags, int) and flags & _WRITE_FLAGS
            writes = writes or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            blocked = bool(writes) and path is not None and not _inside(path, root)
        elif event in _PATHS:
            positions = _PATHS[event]
            blocked = any(
                i < len(args) and args[i] is not None and not _inside(args[i], root)
                for i in positions
            )
        if blocked:
            message = f"blocked {event} {args!r}"[:300]
            violations.append(message)
            raise PermissionError(f"sandbox: {message}")

    return audit


def _child(fn: Callable, args: tuple, limits: SandboxLimits, root: str, out: int) -> None:
    """The forked child: lock itself in, call ``fn``, report through ``out``, exit."""
    gc.freeze()  # objects inherited from the parent (pooled connections) are never finalised
    faulthandler.disable()  # a crash is reported by the parent, not dumped here
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    violations: list[str] = []
    network = "namespace" if _unshare_network() else "audit hook"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # OpenMP pools copied by fork must not be used
        memory = _size() + limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        file_size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        sys.addaudithook(_hook(root, violations))
        result = {"ok": fn(*args)}
    except MemoryError:
        result = {"error": f"out of memory (limit {limits.memory_mb} MB above the model code)"}
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    if violations:
        result = {"error": violations[0]}
    result["network"] = network
    try:
        data = json.dumps(result, default=str).encode()
    except (TypeError, ValueError) as exc:
        data = json.dumps({"error": f"result is not JSON: {exc}", "network": network}).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]
    os._exit(0)


def _read(fd: int, deadline: float) -> bytes | None:
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _fork_and_wait(fn: Callable, args: tuple, limits: SandboxLimits, what: str) -> dict:
    from retrainer.artifacts import _SKOPS_LOCK

    root = os.path.realpath(tempfile.mkdtemp(prefix="retrainer-sandbox-"))
    read_end, write_end = os.pipe()
    try:
        with _SKOPS_LOCK:  # no thread is inside skops (or ast) while the memory is copied
            pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child; it never returns)
            os.close(read_end)
            os.environ["TMPDIR"] = root
            tempfile.tempdir = root
            _child(fn, args, limits, root, write_end)
        os.close(write_end)
        write_end = -1
        data = _read(read_end, time.monotonic() + limits.timeout_s)
        if data is None:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)
        shutil.rmtree(root, ignore_errors=True)
    if data is None:
        raise SandboxError(f"sandbox: {what} ran over {limits.timeout_s:g} s and was killed")
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        why = {"SIGXCPU": f"over {limits.cpu_s} CPU s", "SIGXFSZ": "a file over the limit"}
        raise SandboxError(f"sandbox: {what} was killed by {name} {why.get(name, '')}".rstrip())
    try:
        result = json.loads(data)
    except ValueError:
        raise SandboxError(f"sandbox: {what} exited without a result") from None
    if "error" in result:
        raise SandboxError(f"sandbox: {what} failed: {result['error']}")
    return result


def run_isolated(
    fn: Callable, *args: Any, limits: SandboxLimits | None = None, what: str = "model code"
) -> Any:
    """Call ``fn(*args)`` in a sandboxed child process and return its JSON-able result.

    The child is forked, so ``fn`` and ``args`` need not be picklable. Raises
    :class:`SandboxError` when the child breaks a rule, runs out of memory, CPU or time, or
    dies. Linux only (fork, ``/proc``, ``unshare``).

    Parameters:
        fn: the function; its result must be JSON-serialisable.
        args: its arguments.
        limits: memory, CPU, time and file limits (defaults: :class:`SandboxLimits`).
        what: how errors name the work (``"the gate"``).
    """
    return _fork_and_wait(fn, args, limits or SandboxLimits(), what)["ok"]


def isolation(limits: SandboxLimits | None = None) -> SandboxReport:
    """Which layers a child gets on this machine (the network namespace needs kernel support).

    Example:
        >>> isolation().network in ("namespace", "audit hook")
        True
    """
    limits = limits or SandboxLimits()
    return SandboxReport(_fork_and_wait(int, (), limits, "probe")["network"], limits)


def _gate_in_child(challenger: bytes, champion: str | None, artifacts, X, y, gate) -> dict:
    from retrainer.artifacts import _loads_skops
    from retrainer.gate import evaluate_gate

    model = _loads_skops(challenger, "the challenger", artifacts.max_bytes)
    reigning = artifacts.get_model(champion) if champion else None
    return evaluate_gate(model, reigning, X, y, **gate.options()).to_dict()


def gate_challenger(project, challenger: Any, champion, X, y, limits: SandboxLimits | None = None):
    """The gate of a run: challenger vs champion on rows neither was trained on, sandboxed if
    configured.

    With ``gate.sandbox`` (the default) the champion is loaded from its verified artifact and
    the challenger from its skops bytes inside :func:`run_isolated`; otherwise both are scored
    in this process.

    Parameters:
        project: the project (its artifacts and ``gate`` settings).
        challenger: the fitted challenger.
        champion: the champion's ``ModelVersion``, or None.
        X: held-out features.
        y: held-out labels.
        limits: sandbox limits (defaults: :class:`SandboxLimits`).
    """
    import skops.io

    from retrainer.gate import GateResult, evaluate_gate

    gate = project.config.gate
    if not gate.sandbox:
        reigning = project.load_model(champion.version) if champion else None
        return evaluate_gate(challenger, reigning, X, y, **gate.options())
    data = skops.io.dumps(challenger)
    sha = champion.artifact if champion else None
    result = run_isolated(
        _gate_in_child, data, sha, project.artifacts, X, y, gate, limits=limits, what="the gate"
    )
    return GateResult(**result)
