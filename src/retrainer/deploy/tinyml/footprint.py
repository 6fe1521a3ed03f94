"""Footprint: cross-compile the exported C for a Cortex-M target and measure flash and RAM.

Two toolchains can build the image: GNU (``arm-none-eabi-gcc`` with newlib-nano), the reference
whenever it is on ``PATH``, and zig from pip (``retrainer[mcu]``, bare metal, see
:mod:`retrainer.deploy.tinyml.zig`) when it is not.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrainer.deploy.tinyml import zig
from retrainer.deploy.tinyml.elf import read_image
from retrainer.deploy.tinyml.export import CExport
from retrainer.deploy.tinyml.target import DeployTarget
from retrainer.deploy.tinyml.toolchain import C_FLAGS, cached_object, find_tool, run_tool
from retrainer.errors import RetrainerError

CROSS_CC = "arm-none-eabi-gcc"
CROSS_SIZE = "arm-none-eabi-size"
GNU = "gnu"
_SPECS = ("--specs=nano.specs", "--specs=nosys.specs")
_OBJECT_FLAGS = ("-Os", "-ffunction-sections", "-fdata-sections", "-fstack-usage", *_SPECS)
_LINK_FLAGS = ("-Wl,--gc-sections", *_SPECS)


def cross_toolchain() -> str | None:
    """The toolchain that builds Cortex-M images here: ``"gnu"`` when ``arm-none-eabi-gcc`` and
    ``arm-none-eabi-size`` are on ``PATH`` (the reference), else ``"zig"`` when the ``mcu``
    extra is installed, else None.

    Examples
    --------
    >>> cross_toolchain() in ("gnu", "zig", None)
    True
    """
    if find_tool(CROSS_CC) is not None and find_tool(CROSS_SIZE) is not None:
        return GNU
    return zig.TOOLCHAIN if zig.available() else None


def missing_cross_reason() -> str:
    """Why no image can be built, and how to get a toolchain."""
    missing = CROSS_CC if find_tool(CROSS_CC) is None else CROSS_SIZE
    return (
        f"{missing} not found: install gcc-arm-none-eabi and libnewlib-arm-none-eabi, "
        "or pip install 'retrainer[mcu]'"
    )


def cross_flags(target: DeployTarget) -> dict[str, list[str]]:
    """The exact ``arm-none-eabi-gcc`` flags of the measured build: compile and link.

    Examples
    --------
    >>> flags = cross_flags(DeployTarget("m4", 256, 64))
    >>> "-ffp-contract=off" in flags["compile"], "-Wl,--gc-sections" in flags["link"]
    (True, True)
    """
    machine = list(target.compiler_flags())
    return {
        "compile": [*machine, *C_FLAGS, *_OBJECT_FLAGS],
        "link": [*machine, *_LINK_FLAGS],
    }


@dataclass(frozen=True)
class Footprint:
    """Flash and RAM of a minimal firmware image that runs the model, against a target's budget.

    Flash is ``text + data`` and RAM is ``data + bss + stack`` of the linked image (start-up
    included: newlib-nano's with GNU, the project's bare-metal one with zig); ``stack_bytes``
    sums the frames ``-fstack-usage`` reports for the model's functions and ``main`` (an upper
    bound of the deepest call chain). ``model_flash_bytes`` and ``model_ram_bytes`` subtract the
    same image built without the model. When no toolchain is installed, ``measured`` is False,
    ``fits`` is None and ``reason`` says why.

    Parameters
    ----------
    target
        Name of the deploy target.
    measured
        Whether the cross-compiler ran.
    flash_bytes, ram_bytes, stack_bytes
        Sizes of the image (None when not measured).
    model_flash_bytes, model_ram_bytes
        The model's own share.
    flash_budget_bytes, ram_budget_bytes
        The target's budgets.
    fits
        True when both budgets hold, None when not measured.
    reason
        Why it does not fit (with the excess in bytes), or why it was not measured.
    compiler
        The compiler's version line and the model's exact compile flags.
    toolchain
        ``"gnu"`` (``arm-none-eabi-gcc``, newlib-nano) or ``"zig"`` (bare metal, from pip).
    """

    target: str
    measured: bool
    flash_budget_bytes: int
    ram_budget_bytes: int
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    stack_bytes: int | None = None
    model_flash_bytes: int | None = None
    model_ram_bytes: int | None = None
    fits: bool | None = None
    reason: str = ""
    compiler: str = ""
    toolchain: str = ""

    @property
    def flash_excess_bytes(self) -> int | None:
        """Bytes over the flash budget (negative: headroom); None when not measured."""
        return None if self.flash_bytes is None else self.flash_bytes - self.flash_budget_bytes

    @property
    def ram_excess_bytes(self) -> int | None:
        """Bytes over the RAM budget (negative: headroom); None when not measured."""
        return None if self.ram_bytes is None else self.ram_bytes - self.ram_budget_bytes

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, with the excesses."""
        return {
            **asdict(self),
            "flash_excess_bytes": self.flash_excess_bytes,
            "ram_excess_bytes": self.ram_excess_bytes,
        }


def measure_footprint(
    export: CExport,
    target: DeployTarget,
    *,
    workdir: str | Path | None = None,
    model_object: Path | None = None,
    toolchain: str | None = None,
) -> Footprint:
    """Cross-compile ``export`` with a minimal ``main`` for ``target`` and compare with its budget.

    Parameters
    ----------
    export
        The C export of the model.
    target
        The deploy target (cpu, float ABI, fpu, budgets).
    workdir
        Directory for the build (kept); default a temporary directory that is removed.
    model_object
        The model already compiled by :func:`compile_for_target` (its ``.su`` file next to it);
        default: compile it here.
    toolchain
        ``"gnu"`` or ``"zig"`` (default :func:`cross_toolchain`).

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> tree = DecisionTreeClassifier().fit([[0.0], [0.1], [0.5], [1.0]], [0, 0, 1, 1])
    >>> target = DeployTarget("m4", flash_kb=256, ram_kb=64)
    >>> fp = measure_footprint(export_c(tree), target)
    >>> fp.fits if fp.measured else True
    True
    """
    toolchain = toolchain or cross_toolchain()
    budgets = {
        "target": target.name,
        "flash_budget_bytes": target.flash_bytes,
        "ram_budget_bytes": target.ram_bytes,
    }
    if toolchain is None:
        return Footprint(measured=False, reason=missing_cross_reason(), **budgets)
    if workdir is not None:
        return _measure(export, target, Path(workdir), model_object, toolchain, budgets)
    with tempfile.TemporaryDirectory(prefix="retrainer-footprint-") as tmp:
        return _measure(export, target, Path(tmp), model_object, toolchain, budgets)


def compile_for_target(
    export: CExport,
    target: DeployTarget,
    workdir: str | Path,
    *,
    compiler: str | None = None,
    toolchain: str | None = None,
) -> Path | None:
    """Cross-compile the model alone to ``<workdir>/<name>.o`` (``-Os``, stack usage next to it).

    The footprint image and the emulated board's firmware link this one object, so what is
    measured and what runs on the board are the same machine code. Returns None when no
    toolchain is installed.

    Parameters
    ----------
    export
        The C export of the model.
    target
        The deploy target (its ``-mcpu``, float ABI and fpu).
    workdir
        Directory for the sources, the object and its ``.su`` file.
    compiler
        The GNU cross-compiler (default: ``arm-none-eabi-gcc`` on ``PATH``).
    toolchain
        ``"gnu"`` or ``"zig"`` (default :func:`cross_toolchain`).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> export = export_c(DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1]))
    >>> obj = compile_for_target(export, DeployTarget("m4", 256, 64), tempfile.mkdtemp())
    >>> obj is None or obj.name == "model.o"
    True
    """
    toolchain = toolchain or (GNU if compiler else cross_toolchain())
    if toolchain == zig.TOOLCHAIN:
        return zig.compile_model(export, target, workdir)
    compiler = compiler or find_tool(CROSS_CC)
    if toolchain is None or compiler is None:
        return None
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    export.write(work)
    includes = [f"-I{d}" for d in (str(work), *export.include_dirs)]
    run_tool(
        [compiler, *cross_flags(target)["compile"], *includes]
        + ["-c", "-o", f"{export.name}.o", f"{export.name}.c"],
        cwd=work,
        what=f"cross-compile of {export.name} for {target.name}",
    )
    return (work / f"{export.name}.o").resolve()


def _measure(
    export: CExport,
    target: DeployTarget,
    work: Path,
    model_object: Path | None,
    toolchain: str,
    budgets: dict[str, Any],
) -> Footprint:
    work.mkdir(parents=True, exist_ok=True)
    model_object = model_object or compile_for_target(export, target, work, toolchain=toolchain)
    model_object = Path(model_object).resolve()
    elf = link_image(export, target, work / "firmware.elf", model_object, toolchain)
    text, data, bss = _image_sizes(elf, toolchain)
    base_text, base_data, base_bss, base_stack = _baseline(
        toolchain, target, export.n_features, export.task
    )
    main = _main_object(toolchain, target, export, with_model=True)
    stack = _stack_bytes(main) + _stack_bytes(model_object)
    flash = text + data
    ram = data + bss + stack
    flash_over = flash - target.flash_bytes
    ram_over = ram - target.ram_bytes
    problems = []
    if flash_over > 0:
        problems.append(
            f"flash {flash} B > budget {target.flash_bytes} B ({flash_over} B over, "
            f"{flash_over / 1024:.1f} KiB)"
        )
    if ram_over > 0:
        problems.append(
            f"RAM {ram} B > budget {target.ram_bytes} B ({ram_over} B over, "
            f"{ram_over / 1024:.1f} KiB)"
        )
    return Footprint(
        measured=True,
        flash_bytes=flash,
        ram_bytes=ram,
        stack_bytes=stack,
        model_flash_bytes=flash - (base_text + base_data),
        model_ram_bytes=ram - (base_data + base_bss + base_stack),
        fits=not problems,
        reason="; ".join(problems),
        compiler=f"{_version(toolchain)} {' '.join(_flags(toolchain, target)['compile'])}",
        toolchain=toolchain,
        **budgets,
    )


def link_image(
    export: CExport,
    target: DeployTarget,
    elf: Path,
    model_object: Path | None,
    toolchain: str,
) -> Path:
    """Link the minimal firmware (``main`` calling the model on volatile input) into ``elf``.

    With ``model_object`` None, the image holds the same ``main`` without the model (the
    baseline the model's share is measured against). Both toolchains keep the model's predict
    function as a symbol, so the emulator can call it in this same image.
    """
    with_model = model_object is not None
    main = _main_object(toolchain, target, export, with_model=with_model)
    objects = [main, *([model_object] if with_model else [])]
    what = f"link of the firmware of {export.name} for {target.name}"
    elf.parent.mkdir(parents=True, exist_ok=True)
    if toolchain == zig.TOOLCHAIN:
        return zig.link(target, objects, elf, what=what)
    run_tool(
        [_gnu(), *cross_flags(target)["link"], "-o", elf.name, *objects, "-lm"],
        cwd=elf.parent,
        what=what,
    )
    return elf


def _gnu() -> str:
    compiler = find_tool(CROSS_CC)
    if compiler is None:
        raise RetrainerError(missing_cross_reason())
    return compiler


def _flags(toolchain: str, target: DeployTarget) -> dict[str, list[str]]:
    return zig.cross_flags(target) if toolchain == zig.TOOLCHAIN else cross_flags(target)


def _image_sizes(elf: Path, toolchain: str) -> tuple[int, int, int]:
    """text, data, bss: ``arm-none-eabi-size`` for GNU, the ELF's sections for zig."""
    if toolchain == zig.TOOLCHAIN:
        image = read_image(elf)
        return image.text, image.data, image.bss
    size_tool = find_tool(CROSS_SIZE)
    if size_tool is None:
        raise RetrainerError(missing_cross_reason())
    what = f"size of {elf.name}"
    return _sizes(run_tool([size_tool, elf.name], cwd=elf.parent, what=what))


def _main_object(
    toolchain: str, target: DeployTarget, export: CExport, *, with_model: bool
) -> Path:
    """The minimal firmware ``main`` compiled once per interface (cached by its text)."""
    files = {"firmware-main.c": _main(export, with_model=with_model)}
    if with_model:
        files[f"{export.name}.h"] = export.header
    what = f"cross-compile of the firmware main for {target.name}"
    if toolchain == zig.TOOLCHAIN:
        return zig.compile_object(target, files, "firmware-main.c", what=what)
    flags = [*target.compiler_flags(), *C_FLAGS, *_OBJECT_FLAGS]
    return cached_object(_gnu(), flags, files, "firmware-main.c", what=what)


@functools.cache
def _baseline(
    toolchain: str, target: DeployTarget, n_features: int, task: str
) -> tuple[int, int, int, int]:
    """text, data, bss and stack of the same image without the model (once per interface)."""
    stub = CExport("model", "none", task, n_features, (), "", "", ())
    with tempfile.TemporaryDirectory(prefix="retrainer-footprint-") as tmp:
        elf = link_image(stub, target, Path(tmp) / "baseline.elf", None, toolchain)
        sizes = _image_sizes(elf, toolchain)
    main = _main_object(toolchain, target, stub, with_model=False)
    return (*sizes, _stack_bytes(main))


@functools.cache
def _version(toolchain: str) -> str:
    if toolchain == zig.TOOLCHAIN:
        return zig.version()
    return run_tool([_gnu(), "--version"], cwd=Path("."), what="compiler version").splitlines()[0]


def _sizes(berkeley: str) -> tuple[int, int, int]:
    """text, data, bss from ``size`` (Berkeley format) output."""
    for line in berkeley.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and all(f.isdigit() for f in fields[:3]):
            return int(fields[0]), int(fields[1]), int(fields[2])
    raise ValueError(f"cannot read sizes from arm-none-eabi-size output: {berkeley!r}")


def _stack_bytes(obj: Path) -> int:
    """Sum of the stack frames in the ``.su`` file next to ``obj`` (``-fstack-usage``)."""
    total = 0
    for line in obj.with_suffix(".su").read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1].strip().isdigit():
            total += int(fields[1])
    return total


def _main(export: CExport, *, with_model: bool) -> str:
    """A minimal firmware ``main``: volatile input and output keep the model from being removed."""
    out_type = "int32_t" if export.task == "classification" else "float"
    n = export.n_features
    call = f"{export.predict_function}(x)" if with_model else f"({out_type})x[0]"
    include = f'#include "{export.name}.h"\n' if with_model else ""
    return f"""#include <stdint.h>
{include}
volatile float footprint_input[{n}];
volatile {out_type} footprint_output;

int main(void)
{{
    float x[{n}];
    for (int32_t i = 0; i < {n}; i++) {{
        x[i] = footprint_input[i];
    }}
    footprint_output = {call};
    return 0;
}}
"""
