"""Cortex-M builds from pip (``retrainer[mcu]``): zig's clang cross-compiles and links the model.

``pip install "retrainer[mcu]"`` brings the ``ziglang`` wheel: a clang-based C cross-compiler
with LLVM's linker and a freestanding runtime (``compiler_rt``: soft double arithmetic, ``expf``,
``exp``). The image is bare metal: the project ships the start-up code (``mcu/startup.c``), a
linker script (``mcu/firmware.ld``, the MPS2 memory map) and the two ``<math.h>`` functions
``compiler_rt`` lacks (``tanhf`` and ``tanh``, from Zig's standard library, ``mcu/libm.zig``).
The C sees musl's headers (shipped inside the wheel); no C library is linked.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from retrainer.deploy.tinyml.export import CExport
from retrainer.deploy.tinyml.target import DeployTarget
from retrainer.deploy.tinyml.toolchain import C_FLAGS, cache_root, cached_object, run_tool
from retrainer.errors import RetrainerError

TOOLCHAIN = "zig"
MCU = Path(__file__).with_name("mcu")
# -mfpu of arm-none-eabi-gcc -> the LLVM feature zig adds to -mcpu.
_FPU_FEATURES = {
    "fpv4-sp-d16": "vfp4d16sp",
    "fpv5-sp-d16": "fp_armv8d16sp",
    "fpv5-d16": "fp_armv8d16",
}
# -Oz is clang's level that gives up speed for size as GCC's -Os does (clang's -Os keeps
# movw/movt address pairs and code-growing loop transforms: the model's code took up to 17 %
# more flash than GCC's); zig cc reads -Oz as -Os, so it goes to clang's front end directly.
_OBJECT_FLAGS = (
    "-Os",
    "-Xclang",
    "-Oz",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
)
# At link time zig builds its runtime (compiler_rt: soft double arithmetic, expf, exp) for the
# image: -Os builds it for size, as the model's object (without it, compiler_rt is optimised for
# speed and its routines take 20-40 % more flash than libgcc's); no unwind tables, as in the
# objects; -g keeps the symbol table, which an -Os link strips (the emulator calls the predict
# function by name; debug sections are not loaded, so they take no flash).
_LINK_FLAGS = (
    "-Os",
    "-g",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-nostartfiles",
    "-Wl,--gc-sections",
    "-Wl,--entry=reset_handler",
)
_LIB = "$(ZIG_LIB)"  # how the flags name zig's lib folder in the manifest and the Makefile


def available() -> bool:
    """Whether the ``ziglang`` wheel (the ``mcu`` extra) is installed.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return importlib.util.find_spec("ziglang") is not None


def command() -> list[str]:
    """``zig`` as this Python runs it: ``python -m ziglang``."""
    return [sys.executable, "-m", "ziglang"]


def lib_dir() -> Path:
    """zig's lib folder (its ``compiler_rt``, standard library and libc headers)."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        raise RetrainerError("the zig toolchain is not installed: pip install 'retrainer[mcu]'")
    return Path(spec.origin).parent / "lib"


@functools.cache
def version() -> str:
    """``zig <version>``, as the manifest records it."""
    return "zig " + run_tool([*command(), "version"], cwd=Path("."), what="zig version").strip()


def machine_flags(target: DeployTarget) -> list[str]:
    """zig's ``-target`` and ``-mcpu`` for ``target`` (the fpu is a feature of the cpu).

    Examples
    --------
    >>> machine_flags(DeployTarget("m4f", 256, 64))
    ['-target', 'thumb-freestanding-eabihf', '-mcpu=cortex_m4+vfp4d16sp']
    >>> machine_flags(DeployTarget("m0", 32, 8, cpu="cortex-m0plus", float_abi="soft"))
    ['-target', 'thumb-freestanding-eabi', '-mcpu=cortex_m0plus']
    """
    cpu = target.cpu.replace("-", "_")
    if target.float_abi == "soft":
        return ["-target", "thumb-freestanding-eabi", f"-mcpu={cpu}"]
    feature = _FPU_FEATURES.get(target.fpu)
    if feature is None:
        raise RetrainerError(
            f"deploy target {target.name}: fpu {target.fpu!r} has no zig cpu feature here "
            f"(known: {', '.join(_FPU_FEATURES)}); install arm-none-eabi-gcc for it"
        )
    abi = "eabihf" if target.float_abi == "hard" else "eabi"
    return ["-target", f"thumb-freestanding-{abi}", f"-mcpu={cpu}+{feature}"]


def cross_flags(target: DeployTarget) -> dict[str, list[str]]:
    """The exact zig flags of the measured build; ``$(ZIG_LIB)`` stands for :func:`lib_dir`.

    Examples
    --------
    >>> flags = cross_flags(DeployTarget("m4", 256, 64))
    >>> "-ffp-contract=off" in flags["compile"], "-Wl,--gc-sections" in flags["link"]
    (True, True)
    """
    headers = ["-isystem", f"{_LIB}/libc/include/arm-linux-musl"]
    headers += ["-isystem", f"{_LIB}/libc/include/generic-musl"]
    machine = machine_flags(target)
    return {
        "compile": [*machine, *headers, *C_FLAGS, *_OBJECT_FLAGS],
        "link": [*machine, *_LINK_FLAGS],
    }


def _resolved(flags: Sequence[str]) -> list[str]:
    return [f.replace(_LIB, str(lib_dir())) for f in flags]


def _zig_cc() -> tuple[str, list[str]]:
    """The program and the leading arguments of ``zig cc`` (for :func:`cached_object`)."""
    zig = command()
    return zig[0], [*zig[1:], "cc"]


def compile_model(export: CExport, target: DeployTarget, workdir: str | Path) -> Path:
    """Cross-compile the model alone to ``<workdir>/<name>.o``, its stack usage in ``<name>.su``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> export = export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1]))
    >>> obj = compile_model(export, DeployTarget("m4", 256, 64), tempfile.mkdtemp()) \\
    ...     if available() else None
    >>> obj is None or obj.with_suffix(".su").exists()
    True
    """
    flags = _resolved(cross_flags(target)["compile"])
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    export.write(work)
    includes = [f"-I{d}" for d in (str(work), *export.include_dirs)]
    program, lead = _zig_cc()
    run_tool(
        [program, *lead, *flags, *includes]
        + [*_stack_usage(export.name), "-c", "-o", f"{export.name}.o", f"{export.name}.c"],
        cwd=work,
        what=f"zig cross-compile of {export.name} for {target.name}",
    )
    return (work / f"{export.name}.o").resolve()


def compile_object(target: DeployTarget, files: dict[str, str], source: str, *, what: str) -> Path:
    """Compile one C file of the image (cached per process, like the GNU harness objects)."""
    program, lead = _zig_cc()
    flags = [*lead, *_resolved(cross_flags(target)["compile"]), *_stack_usage(Path(source).stem)]
    return cached_object(program, flags, files, source, what=what)


def link(target: DeployTarget, objects: Sequence[Path], elf: Path, *, what: str) -> Path:
    """Link ``objects`` with the start-up code and Zig's ``tanhf``/``tanh`` into ``elf``."""
    startup = compile_object(
        target,
        {"startup.c": (MCU / "startup.c").read_text(encoding="utf-8")},
        "startup.c",
        what=f"zig compile of the start-up code for {target.name}",
    )
    program, lead = _zig_cc()
    run_tool(
        [program, *lead, *cross_flags(target)["link"], "-T", MCU / "firmware.ld"]
        + ["-o", elf.name, startup, *objects, _libm(tuple(machine_flags(target)))],
        cwd=elf.parent,
        what=what,
    )
    return elf


@functools.cache
def _libm(machine: tuple[str, ...]) -> Path:
    """``mcu/libm.zig`` compiled once per machine (it exports ``tanhf`` and ``tanh``)."""
    folder = Path(tempfile.mkdtemp(prefix="zig-libm-", dir=cache_root()))
    obj = folder / "libm.o"
    triple, cpu = machine[1], machine[2].removeprefix("-mcpu=")
    run_tool(
        [*command(), "build-obj", MCU / "libm.zig", "-target", triple, "-mcpu", cpu]
        + ["-OReleaseSmall", "-ffunction-sections", "-fno-unwind-tables", f"-femit-bin={obj}"],
        cwd=folder,
        what="zig build of libm.zig",
    )
    return obj


def _stack_usage(stem: str) -> list[str]:
    """clang's ``-fstack-usage`` with the ``.su`` file next to the object (zig cc moves the
    object out of a temporary folder and would leave the ``.su`` file behind)."""
    return ["-Xclang", "-stack-usage-file", "-Xclang", f"{stem}.su"]
