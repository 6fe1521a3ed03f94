"""Latency: run the exported C on an emulated Cortex-M board (QEMU MPS2) and count instructions.

The firmware reads feature rows and writes predictions through Arm semihosting; QEMU runs with
``-icount shift=0`` (one nanosecond of virtual time per instruction), so the SysTick timer counts
executed instructions. A calibration loop of known length fixes the instructions per tick.

Without QEMU, and with the ``mcu`` extra installed, the firmware image of the footprint (built
by GNU or by zig) runs on unicorn instead (:mod:`retrainer.deploy.tinyml.emulator`), which
counts the instructions of each call per executed block.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.deploy.tinyml import emulator
from retrainer.deploy.tinyml.export import CExport
from retrainer.deploy.tinyml.footprint import (
    CROSS_CC,
    GNU,
    compile_for_target,
    cross_toolchain,
    link_image,
)
from retrainer.deploy.tinyml.parity import compare_outputs, feature_matrix
from retrainer.deploy.tinyml.target import DeployTarget
from retrainer.deploy.tinyml.toolchain import C_FLAGS, cached_object, find_tool, run_tool

QEMU = "qemu-system-arm"
# MPS2 boards with RAM at 0x0 and 0x20000000; ARMv6-M code runs unchanged on the Cortex-M3 board.
BOARDS = {
    "cortex-m0": "mps2-an385",
    "cortex-m0plus": "mps2-an385",
    "cortex-m1": "mps2-an385",
    "cortex-m3": "mps2-an385",
    "cortex-m4": "mps2-an386",
    "cortex-m7": "mps2-an500",
}
_CALIBRATION_LOOPS = 1_000_000  # two instructions each
_LINKER_SCRIPT = """MEMORY
{
  CODE (rwx) : ORIGIN = 0x00000000, LENGTH = 4M
  RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 4M
}
ENTRY(reset_handler)
SECTIONS
{
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); } > CODE
  .ARM.exidx : { *(.ARM.exidx*) } > CODE
  .data : { *(.data*) . = ALIGN(4); } > RAM
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""


@dataclass(frozen=True)
class Latency:
    """Instructions per prediction on an emulated board, and the latency they mean on the target.

    Parameters
    ----------
    target
        Name of the deploy target.
    measured
        Whether the emulator ran; when False, ``reason`` says why.
    board
        The QEMU machine used, or ``unicorn <core>``.
    n
        Rows predicted on the board (at most ``target.board_rows``).
    instructions_per_prediction
        Mean instructions per call of the model (the call and two timer reads included).
    estimated_ms
        ``target.instructions_to_ms(instructions_per_prediction)``.
    budget_ms
        The target's ``max_latency_ms``.
    fits
        ``estimated_ms <= budget_ms`` (None without a budget or a measurement).
    agreement
        Share of the board's predictions equal to Python's.
    reason
        Why it was not measured, or by how much it is over budget.
    emulator
        ``"qemu"`` or ``"unicorn"``.
    toolchain
        The toolchain that built the firmware: ``"gnu"`` or ``"zig"``.
    """

    target: str
    measured: bool
    board: str = ""
    n: int = 0
    instructions_per_prediction: float | None = None
    estimated_ms: float | None = None
    budget_ms: float | None = None
    fits: bool | None = None
    agreement: float | None = None
    reason: str = ""
    emulator: str = ""
    toolchain: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def measure_latency(
    export: CExport,
    target: DeployTarget,
    X: Any,
    python_predictions: Any,
    *,
    refused: Any = None,
    max_rows: int | None = None,
    workdir: str | Path | None = None,
    model_object: Path | None = None,
    toolchain: str | None = None,
) -> Latency:
    """Run ``export`` on QEMU's MPS2 board for ``target.cpu`` over the first ``max_rows`` of ``X``.

    QEMU runs the GNU build when both are installed; otherwise unicorn (the ``mcu`` extra) runs
    the firmware image of the available toolchain.

    Parameters
    ----------
    export
        The C export of the model.
    target
        The deploy target (cpu, flags, clock and CPI, latency budget).
    X, python_predictions
        Rows and the Python model's predictions for them.
    refused
        Boolean mask of the rows Python refuses (default: none).
    max_rows
        Rows to run on the board (default ``target.board_rows``).
    workdir
        Directory for the build (kept); default a temporary directory that is removed.
    model_object
        The model already compiled by
        :func:`~retrainer.deploy.tinyml.footprint.compile_for_target`; default: compile it here.
    toolchain
        ``"gnu"`` or ``"zig"`` (default
        :func:`~retrainer.deploy.tinyml.footprint.cross_toolchain`).

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from retrainer.deploy.tinyml.export import export_c
    >>> X = [[0.0], [0.1], [0.5], [1.0]]
    >>> tree = DecisionTreeClassifier().fit(X, [0, 0, 1, 1])
    >>> lat = measure_latency(export_c(tree), DeployTarget("m4", 256, 64), X, tree.predict(X))
    >>> lat.agreement if lat.measured else 1.0
    1.0
    """
    base = {"target": target.name, "budget_ms": target.max_latency_ms}
    toolchain = toolchain or cross_toolchain()
    board = BOARDS.get(target.cpu)
    compiler, qemu = find_tool(CROSS_CC), find_tool(QEMU)
    use_qemu = toolchain == GNU and compiler is not None and qemu is not None and board
    core = emulator.core(target.cpu) if emulator.available() else None
    if not use_qemu and (toolchain is None or core is None):
        return Latency(measured=False, board=board or "", reason=_why_not(target), **base)
    rows = target.board_rows if max_rows is None else max_rows
    features = feature_matrix(export, X)[:rows]
    expected = np.asarray(python_predictions)[:rows]
    refused = None if refused is None else np.asarray(refused, dtype=bool)[:rows]
    expected = (expected, refused)
    with tempfile.TemporaryDirectory(prefix="retrainer-latency-") as tmp:
        work = Path(workdir if workdir is not None else tmp)
        work.mkdir(parents=True, exist_ok=True)
        model_object = model_object or compile_for_target(export, target, work, toolchain=toolchain)
        model_object = Path(model_object).resolve()
        if use_qemu:
            tools = (compiler, qemu)
            return _on_qemu(export, target, board, features, expected, work, model_object, tools)
        return _on_unicorn(export, target, features, expected, work, model_object, toolchain)


def tools_cover(target: DeployTarget) -> bool:
    """Whether ``target``'s footprint (and latency, when it has a budget) can be measured with
    what is installed, the ``mcu`` extra included.

    Examples
    --------
    >>> isinstance(tools_cover(DeployTarget("m4", 256, 64)), bool)
    True
    """
    toolchain = cross_toolchain()
    if toolchain is None or target.max_latency_ms is None:
        return toolchain is not None
    return board_emulator(target, toolchain) is not None


def board_emulator(target: DeployTarget, toolchain: str | None) -> str | None:
    """The emulator that runs ``target``'s firmware built by ``toolchain`` here: ``"qemu"``
    (GNU's image, the reference), ``"unicorn"`` (the ``mcu`` extra), or None.

    Examples
    --------
    >>> board_emulator(DeployTarget("m4", 256, 64), None) is None
    True
    """
    if toolchain is None:
        return None
    if toolchain == GNU and find_tool(QEMU) is not None and target.cpu in BOARDS:
        return "qemu"
    if emulator.available() and emulator.core(target.cpu) is not None:
        return emulator.EMULATOR
    return None


def _why_not(target: DeployTarget) -> str:
    """Why no emulator can run ``target``'s firmware here, and what installs one."""
    pip = "pip install 'retrainer[mcu]'"
    if emulator.available() and emulator.core(target.cpu) is None:
        return f"no emulated MPS2 board or unicorn core for {target.cpu}"
    if BOARDS.get(target.cpu) is None:
        return f"no emulated MPS2 board for {target.cpu} (unicorn runs it: {pip})"
    missing = CROSS_CC if find_tool(CROSS_CC) is None else QEMU
    return (
        f"{missing} not found: install gcc-arm-none-eabi, libnewlib-arm-none-eabi "
        f"and qemu-system-arm, or {pip}"
    )


def _on_unicorn(
    export: CExport,
    target: DeployTarget,
    features: np.ndarray,
    expected: tuple[np.ndarray, np.ndarray | None],
    work: Path,
    model_object: Path,
    toolchain: str,
) -> Latency:
    """Run the footprint's firmware image on unicorn and count instructions per call."""
    elf = link_image(export, target, work / "board.elf", model_object, toolchain)
    run = emulator.run_predictions(
        elf,
        export.predict_function,
        features,
        cpu=target.cpu,
        float_result=export.task != "classification",
        hard_float=target.float_abi == "hard",
    )
    _, same, _ = compare_outputs(export, run.outputs, *expected)
    n = len(run.instructions)
    instructions = float(run.instructions.mean()) if n else 0.0
    return _latency(
        target,
        board=f"{emulator.EMULATOR} {emulator.core(target.cpu)}",
        n=n,
        instructions=instructions,
        agreement=float(same.mean()) if same.size else 1.0,
        emulator=emulator.EMULATOR,
        toolchain=toolchain,
    )


def _on_qemu(
    export: CExport,
    target: DeployTarget,
    board: str,
    features: np.ndarray,
    expected: tuple[np.ndarray, np.ndarray | None],
    work: Path,
    model_object: Path,
    tools: tuple[str, str],
) -> Latency:
    """Link the semihosting firmware with ``model_object`` and count instructions on QEMU."""
    compiler, qemu = tools
    work.mkdir(parents=True, exist_ok=True)
    what = f"emulated run of {export.name} on {board}"
    main = cached_object(
        compiler,
        [*target.compiler_flags(), *C_FLAGS, "-Os"],
        {"board-main.c": _firmware(export), f"{export.name}.h": export.header},
        "board-main.c",
        what=what,
    )
    (work / "board.ld").write_text(_LINKER_SCRIPT, encoding="utf-8")
    run_tool(
        [compiler, *target.compiler_flags(), "-nostartfiles", "--specs=nano.specs"]
        + ["--specs=nosys.specs", "-T", "board.ld", "-o", "board.elf", main]
        + [model_object, "-lm"],
        cwd=work,
        what=what,
    )
    features.tofile(work / "features.bin")
    run_tool(
        [qemu, "-M", board, "-display", "none", "-monitor", "none", "-serial", "none"]
        + ["-icount", "shift=0", "-semihosting-config", "enable=on,target=native"]
        + ["-kernel", "board.elf"],
        cwd=work,
        what=what,
    )
    classification = export.task == "classification"
    out = np.fromfile(work / "predictions.bin", dtype=np.int32 if classification else np.float32)
    stats = out[-4:].view(np.uint32).astype(np.int64)
    n, ticks, calibration_ticks = int(stats[0]), int(stats[1] + (stats[2] << 32)), int(stats[3])
    _, same, _ = compare_outputs(export, out[:-4], *expected)
    per_tick = 2 * _CALIBRATION_LOOPS / max(calibration_ticks, 1)
    instructions = ticks * per_tick / max(n, 1)
    return _latency(
        target,
        board=board,
        n=n,
        instructions=instructions,
        agreement=float(same.mean()) if same.size else 1.0,
        emulator="qemu",
        toolchain=GNU,
    )


def _latency(target: DeployTarget, *, instructions: float, **measured: Any) -> Latency:
    """A measured :class:`Latency`, against the target's budget."""
    ms = target.instructions_to_ms(instructions)
    fits = None if target.max_latency_ms is None else ms <= target.max_latency_ms
    reason = (
        f"estimated {ms:.3f} ms > budget {target.max_latency_ms} ms "
        f"({instructions:.0f} instructions at {target.clock_mhz} MHz, "
        f"CPI {target.cycles_per_instruction})"
        if fits is False
        else ""
    )
    return Latency(
        target=target.name,
        measured=True,
        instructions_per_prediction=instructions,
        estimated_ms=ms,
        budget_ms=target.max_latency_ms,
        fits=fits,
        reason=reason,
        **measured,
    )


def _firmware(export: CExport) -> str:
    """Bare-metal main: vector table, FPU on, semihosted file I/O, SysTick around each call."""
    out_type = "int32_t" if export.task == "classification" else "float"
    return f"""#include <stdint.h>

#include "{export.name}.h"

extern uint32_t __bss_start, __bss_end, __stack_top;
int main(void);
void reset_handler(void);

__attribute__((section(".vectors"), used))
static const void *const vectors[2] = {{&__stack_top, reset_handler}};

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

static int semihost(int op, const void *arg)
{{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}}

static int put(int file, const void *data, uint32_t size)
{{
    const uint32_t args[3] = {{(uint32_t)file, (uint32_t)data, size}};
    return semihost(0x05, args);
}}

void reset_handler(void)
{{
    CPACR |= 0xFu << 20; /* full access to CP10 and CP11 (the FPU), harmless without one */
    __asm__ volatile("dsb\\n isb");
    for (uint32_t *p = &__bss_start; p < &__bss_end; p++) {{
        *p = 0;
    }}
    /* ADP_Stopped_ApplicationExit -> exit status 0, ADP_Stopped_RunTimeErrorUnknown -> 1 */
    semihost(0x18, (const void *)(main() == 0 ? 0x20026u : 0x20023u));
    for (;;) {{
    }}
}}

int main(void)
{{
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
    const uint32_t open_in[3] = {{(uint32_t)"features.bin", 1u, 12u}};
    const uint32_t open_out[3] = {{(uint32_t)"predictions.bin", 5u, 15u}};
    const int in = semihost(0x01, open_in);
    const int out = semihost(0x01, open_out);
    if (in < 0 || out < 0) {{
        return 1;
    }}
    float x[{export.n_features}];
    uint64_t ticks = 0;
    uint32_t n = 0;
    for (;;) {{
        const uint32_t read_args[3] = {{(uint32_t)in, (uint32_t)x, sizeof x}};
        if (semihost(0x06, read_args) != 0) {{
            break;
        }}
        const uint32_t t0 = SYST_CVR;
        const {out_type} y = {export.predict_function}(x);
        const uint32_t t1 = SYST_CVR;
        ticks += (t0 - t1) & 0xFFFFFFu;
        n++;
        put(out, &y, sizeof y);
    }}
    uint32_t loops = {_CALIBRATION_LOOPS}u;
    const uint32_t c0 = SYST_CVR;
    __asm__ volatile(".syntax unified\\n1: subs %0, %0, #1\\n bne 1b" : "+l"(loops) : : "cc");
    const uint32_t c1 = SYST_CVR;
    const uint32_t calibration = (c0 - c1) & 0xFFFFFFu;
    const uint32_t stats[4] = {{n, (uint32_t)ticks, (uint32_t)(ticks >> 32), calibration}};
    put(out, stats, sizeof stats);
    return 0;
}}
"""
