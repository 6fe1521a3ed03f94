"""Run C compilers and the programs they build, with argument lists only (never a shell)."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from retrainer.errors import RetrainerError

# ISO C99 turns off floating-point contraction (a*b+c -> fma) that GNU C allows by default: the
# host build and the Cortex-M build must round the same way.
C_FLAGS = ("-std=c99", "-ffp-contract=off", "-Wall", "-Wextra")
# The host parity build: what the bundle's build file repeats.
HOST_FLAGS = ("-O2", *C_FLAGS)
TIMEOUT_S = 300.0


def find_tool(name: str) -> str | None:
    """Path of an executable on ``PATH``, or ``None``.

    Examples
    --------
    >>> find_tool("no-such-compiler-here") is None
    True
    """
    return shutil.which(name)


def run_tool(args: Sequence[str | os.PathLike[str]], *, cwd: Path, what: str) -> str:
    """Run ``args`` in ``cwd`` and return stdout; a non-zero exit raises with the tool's stderr.

    Parameters
    ----------
    args
        The program and its arguments (no shell is involved).
    cwd
        Working directory.
    what
        What the step does, for the error message ("host compile", "cross-compile", ...).

    Examples
    --------
    >>> import sys
    >>> from pathlib import Path
    >>> run_tool([sys.executable, "-c", "print(6 * 7)"], cwd=Path("."), what="example").strip()
    '42'
    """
    argv = [os.fspath(a) for a in args]
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=tool_environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RetrainerError(f"{what}: {argv[0]} did not finish in {TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise RetrainerError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.strip()[-2000:]
        raise RetrainerError(
            f"{what} failed (exit {proc.returncode}) running {' '.join(argv[:3])} ...:\n{tail}"
        )
    return proc.stdout


def tool_environment(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment of a tool: this process's (None), or it with ``ZIG_GLOBAL_CACHE_DIR`` set
    when zig (``retrainer[mcu]``) could not keep its cache where it does by default.

    zig caches what it builds (its runtime, the libc stubs: tens of MB, tens of seconds once) in
    ``ZIG_GLOBAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/zig``, else ``~/.cache/zig``, never in the
    project's folder. A process with neither variable, or whose cache folder cannot be created
    (a service account without a home), gets a per-user folder in the system's temporary
    directory instead of zig's error.

    Examples
    --------
    >>> tool_environment({"HOME": "/root", "ZIG_GLOBAL_CACHE_DIR": "/var/cache/zig"}) is None
    True
    >>> tool_environment({"PATH": "/bin"})["ZIG_GLOBAL_CACHE_DIR"].startswith(tempfile.gettempdir())
    True
    """
    env = os.environ if environ is None else environ
    if env.get("ZIG_GLOBAL_CACHE_DIR"):
        return None
    base = env.get("XDG_CACHE_HOME") or (env.get("HOME") and os.path.join(env["HOME"], ".cache"))
    if base and _can_create(Path(base) / "zig"):
        return None
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    folder = Path(tempfile.gettempdir()) / f"retrainer-zig-cache-{user}"
    return {**env, "ZIG_GLOBAL_CACHE_DIR": str(folder)}


def _can_create(folder: Path) -> bool:
    """Whether ``folder`` exists writable, or its nearest existing parent is writable."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def cached_object(
    compiler: str, flags: Sequence[str], files: Mapping[str, str], source: str, *, what: str
) -> Path:
    """Compile ``source`` (one of ``files``, which it may include) to an object once a process.

    The harnesses around a model (the host parity ``main``, the firmware ``main``s) change only
    with the model's interface; this keeps their objects in a per-process cache keyed by the
    compiler, the flags and the text of ``files``, so each check compiles only the model. The
    ``-fstack-usage`` file, if the flags ask for one, lies next to the object.

    Parameters
    ----------
    compiler
        The compiler to run.
    flags
        Its flags (``-c`` and ``-o`` are added).
    files
        File name -> text: the source and the headers it includes.
    source
        The file to compile.
    what
        What the step does, for the error message.

    Examples
    --------
    >>> from retrainer.deploy.tinyml.host import host_compiler
    >>> program, *lead = host_compiler().command  # cc, or zig from the mcu extra
    >>> files = {"one.c": "int one(void) { return 1; }"}
    >>> obj = cached_object(program, [*lead, "-O2"], files, "one.c", what="example")
    >>> obj.suffix, obj == cached_object(program, [*lead, "-O2"], files, "one.c", what="example")
    ('.o', True)
    """
    key = hashlib.sha256(
        json.dumps([compiler, list(flags), sorted(files.items()), source]).encode("utf-8")
    ).hexdigest()[:32]
    folder = cache_root() / key
    obj = folder / f"{Path(source).stem}.o"
    if obj.exists():
        return obj
    build = Path(tempfile.mkdtemp(prefix="build-", dir=cache_root()))
    for name, text in files.items():
        (build / name).write_text(text, encoding="utf-8")
    run_tool([compiler, *flags, f"-I{build}", "-c", "-o", obj.name, source], cwd=build, what=what)
    try:
        build.rename(folder)
    except OSError:  # another thread built the same object first
        shutil.rmtree(build, ignore_errors=True)
    return obj


@functools.cache
def cache_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="retrainer-cc-cache-"))
    atexit.register(shutil.rmtree, root, True)
    return root


# The Debian/Ubuntu packages that put each tool on PATH.
APT_PACKAGES = {
    "cc": ("gcc",),
    "arm-none-eabi-gcc": ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi"),
    "arm-none-eabi-size": ("gcc-arm-none-eabi",),  # via its dependency binutils-arm-none-eabi
    "qemu-system-arm": ("qemu-system-arm",),
}


def missing_tools(tools: Sequence[str]) -> tuple[str, ...]:
    """The ``tools`` not found on ``PATH``, in order.

    Examples
    --------
    >>> missing_tools(["no-such-compiler-here", "python3"])
    ('no-such-compiler-here',)
    """
    return tuple(t for t in tools if find_tool(t) is None)


def install_command(tools: Sequence[str]) -> str:
    """The ``apt-get`` command that installs ``tools`` (package order kept, no repeats).

    Examples
    --------
    >>> install_command(["arm-none-eabi-gcc", "qemu-system-arm"])
    'apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm'
    """
    packages = dict.fromkeys(p for t in tools for p in APT_PACKAGES.get(t, (t,)))
    return "apt-get install " + " ".join(packages)
