"""The host C compiler of the parity build: the system ``cc``, else zig's clang from pip.

The gate compiles the exported C for this machine and compares its predictions with Python's.
A system ``cc`` on ``PATH`` is used when there is one; on a machine with only Python and pip,
``pip install "retrainer[mcu]"`` brings the ``ziglang`` wheel, whose ``zig cc`` (clang, with
glibc or musl headers shipped in the wheel) builds the same C with the same flags
(:data:`~retrainer.deploy.tinyml.toolchain.HOST_FLAGS`: ``-std=c99 -ffp-contract=off`` keeps
clang from fusing multiply-adds, as it does for GCC). zig's first build fills its cache
(``ZIG_GLOBAL_CACHE_DIR``, by default ``~/.cache/zig``) and takes tens of seconds once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from retrainer.deploy.tinyml import zig
from retrainer.deploy.tinyml.toolchain import find_tool, run_tool

CC = "cc"
ZIG_CC = "python3 -m ziglang cc"  # how a manifest and a bundle's Makefile name zig's compiler


@dataclass(frozen=True)
class HostCompiler:
    """A C compiler for this machine and how to run it.

    Parameters
    ----------
    toolchain
        ``cc`` (the system compiler) or ``zig`` (``python -m ziglang cc`` from the ``mcu`` extra).
    command
        The program and its leading arguments, as run here.

    Examples
    --------
    >>> HostCompiler("zig", ("/venv/bin/python", "-m", "ziglang", "cc")).portable
    'python3 -m ziglang cc'
    >>> HostCompiler("cc", ("/usr/bin/cc",)).portable
    '/usr/bin/cc'
    """

    toolchain: str
    command: tuple[str, ...]

    @property
    def portable(self) -> str:
        """The command as a build file repeats it (zig through ``python3 -m ziglang cc``)."""
        return ZIG_CC if self.toolchain == zig.TOOLCHAIN else " ".join(self.command)

    @property
    def version(self) -> str:
        """The compiler's version line (``cc (Debian 12.2.0-14) 12.2.0``, ``zig 0.17.1``)."""
        if self.toolchain == zig.TOOLCHAIN:
            return zig.version()
        return _version_line(self.command)


def host_compiler() -> HostCompiler | None:
    """The host compiler of the parity build: ``cc`` on ``PATH``, else zig from the ``mcu``
    extra, else None.

    Examples
    --------
    >>> found = host_compiler()
    >>> found is None or found.toolchain in ("cc", "zig")
    True
    """
    system = find_tool(CC)
    if system is not None:
        return HostCompiler(CC, (system,))
    if zig.available():
        program, *lead = zig.command()
        return HostCompiler(zig.TOOLCHAIN, (program, *lead, "cc"))
    return None


@functools.cache
def _version_line(command: tuple[str, ...]) -> str:
    out = run_tool([*command, "--version"], cwd=Path("."), what="host compiler version")
    return next(iter(out.splitlines()), "").strip()
