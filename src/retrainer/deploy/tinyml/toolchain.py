"""Run C compilers and the programs they build, with argument lists only (never a shell)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from retrainer.errors import RetrainerError

# ISO C99 turns off floating-point contraction (a*b+c -> fma) that GNU C allows by default: the
# host build and the Cortex-M build must round the same way.
C_FLAGS = ("-std=c99", "-ffp-contract=off", "-Wall", "-Wextra")
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
    >>> from pathlib import Path
    >>> run_tool(["true"], cwd=Path("."), what="example")
    ''
    """
    argv = [os.fspath(a) for a in args]
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
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
