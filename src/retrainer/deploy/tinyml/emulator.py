"""Run a firmware image's predict function on an emulated Cortex-M core (unicorn), row by row.

``pip install "retrainer[mcu]"`` brings unicorn, a CPU emulator (QEMU's CPU models as a library)
with instruction hooks. The image's loadable segments are placed at their run-time addresses
(flash at 0x0, RAM at 0x20000000, as the start-up code leaves them), and for each row the
features are written to RAM and the predict function is called as the AAPCS says (``r0``: the
pointer; the result in ``r0``, or ``s0`` for a float under the hard-float ABI).

Instructions are counted per executed basic block: a block hook adds the number of Thumb
instructions in the block (decoded once per block from their widths). Unicorn's per-instruction
code hook does not fire for an instruction of an ``IT`` block whose condition fails, which the
core still issues (and QEMU's ``-icount`` counts); on a forest, whose node step is ``ite ls``
and two conditional loads, the code hook counted 7 % fewer instructions than QEMU on the same
GNU image, the block count agrees with QEMU within the harness's few instructions.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrainer.deploy.tinyml.elf import read_image
from retrainer.errors import RetrainerError

EMULATOR = "unicorn"
FLASH, RAM, SIZE = 0x0000_0000, 0x2000_0000, 4 << 20
_RETURN = 0x1000_0000  # an address no image uses: the predict function returns here
_MAX_INSTRUCTIONS = 50_000_000  # per row; a model never needs this many
# unicorn's Cortex-M cores; ARMv6-M code runs unchanged on the Cortex-M3 model, as in QEMU.
_CORES = {
    "cortex-m0": "CORTEX_M0",
    "cortex-m0plus": "CORTEX_M0",
    "cortex-m1": "CORTEX_M0",
    "cortex-m3": "CORTEX_M3",
    "cortex-m4": "CORTEX_M4",
    "cortex-m7": "CORTEX_M7",
    "cortex-m33": "CORTEX_M33",
}


def available() -> bool:
    """Whether unicorn and pyelftools (the ``mcu`` extra) are installed.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return all(importlib.util.find_spec(m) is not None for m in ("unicorn", "elftools"))


def core(cpu: str) -> str | None:
    """The unicorn core that runs code for ``cpu`` (``-mcpu`` name), or None.

    Examples
    --------
    >>> core("cortex-m4"), core("cortex-m55")
    ('CORTEX_M4', None)
    """
    return _CORES.get(cpu)


@dataclass(frozen=True)
class BoardRun:
    """What the emulated core computed and how many instructions each call took.

    Parameters
    ----------
    outputs
        The predict function's result per row (int32 class index, or float32).
    instructions
        Instructions executed per call, from the first of the function to its return.
    max_stack_bytes
        Deepest stack seen below the caller's stack pointer over all calls.
    """

    outputs: np.ndarray
    instructions: np.ndarray
    max_stack_bytes: int


def run_predictions(
    elf: str | Path,
    function: str,
    features: np.ndarray,
    *,
    cpu: str = "cortex-m4",
    float_result: bool = False,
    hard_float: bool = True,
) -> BoardRun:
    """Call ``function(const float *features)`` of the image ``elf`` once per row of ``features``.

    Parameters
    ----------
    elf
        A linked image (flash at 0x0, RAM at 0x20000000) holding ``function``.
    function
        The predict function's symbol.
    features
        Rows of float32 features.
    cpu
        The ``-mcpu`` the image was built for.
    float_result
        The function returns a float (a regressor) instead of an ``int32_t``.
    hard_float
        The hard-float ABI (a float result in ``s0``, not ``r0``).
    """
    import unicorn
    from unicorn import arm_const

    name = core(cpu)
    if name is None:
        raise RetrainerError(f"unicorn has no core for {cpu} (it has {', '.join(_CORES)})")
    image = read_image(elf)
    if function not in image.symbols:
        raise RetrainerError(f"firmware image {elf} has no function {function}")
    rows = np.ascontiguousarray(features, dtype=np.float32)
    row_bytes = rows.shape[1] * 4 if rows.ndim == 2 else 0
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, f"UC_CPU_ARM_{name}"))
    for base in (FLASH, RAM, _RETURN):
        uc.mem_map(base, SIZE)
    for address, data in image.segments:
        if not (FLASH <= address < FLASH + SIZE or RAM <= address < RAM + SIZE):
            raise RetrainerError(f"firmware image {elf}: segment at {address:#x} outside flash/RAM")
        uc.mem_write(address, data)
    buffer = (max(image.ram_end, RAM) + 7) & ~7  # the row lies after .data and .bss
    stack_top = RAM + SIZE
    if buffer + row_bytes > stack_top - 64 * 1024:
        raise RetrainerError(f"firmware image {elf}: no RAM left for a row of features")
    count = [0]
    lowest = [stack_top]
    block_lengths: dict[tuple[int, int], int] = {}

    def on_block(uc_, address, size, user_data):
        n = block_lengths.get((address, size))
        if n is None:
            n = block_lengths[address, size] = thumb_instructions(
                bytes(uc_.mem_read(address, size))
            )
        count[0] += n

    def on_stack_write(uc_, access, address, size, value, user_data):
        lowest[0] = min(lowest[0], address)

    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    uc.hook_add(unicorn.UC_HOOK_MEM_WRITE, on_stack_write, begin=buffer + row_bytes, end=stack_top)
    result_reg = arm_const.UC_ARM_REG_S0 if float_result and hard_float else arm_const.UC_ARM_REG_R0
    entry = image.symbols[function] | 1
    outputs = np.empty(len(rows), dtype=np.float32 if float_result else np.int32)
    instructions = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        uc.mem_write(buffer, row.tobytes())
        uc.reg_write(arm_const.UC_ARM_REG_SP, stack_top)
        uc.reg_write(arm_const.UC_ARM_REG_LR, _RETURN | 1)
        uc.reg_write(arm_const.UC_ARM_REG_R0, buffer)
        count[0] = 0
        try:
            uc.emu_start(entry, _RETURN, count=_MAX_INSTRUCTIONS)
        except unicorn.UcError as exc:
            pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
            raise RetrainerError(
                f"emulated {cpu} stopped in {function} on row {i} at pc {pc:#x}: {exc}"
            ) from exc
        if uc.reg_read(arm_const.UC_ARM_REG_PC) != _RETURN:
            raise RetrainerError(
                f"emulated {cpu}: {function} did not return within {_MAX_INSTRUCTIONS} "
                f"instructions on row {i}"
            )
        raw = uc.reg_read(result_reg) & 0xFFFF_FFFF
        outputs[i : i + 1] = np.array([raw], dtype=np.uint32).view(outputs.dtype)
        instructions[i] = count[0]
    return BoardRun(outputs, instructions, stack_top - lowest[0])


def thumb_instructions(code: bytes) -> int:
    """Instructions in a run of Thumb code: a halfword starting 0b11101, 0b11110 or 0b11111
    begins a 32-bit instruction, any other a 16-bit one (ARMv7-M ARM, A5.1).

    Examples
    --------
    >>> thumb_instructions(bytes.fromhex("7047"))  # bx lr
    1
    >>> thumb_instructions(bytes.fromhex("b4eee77a" "f1ee10fa" "94bf"))  # vcmp, vmrs, ite ls
    3
    """
    n = i = 0
    while i < len(code):
        halfword = code[i] | (code[i + 1] << 8) if i + 1 < len(code) else 0
        i += 4 if halfword >> 11 in (0b11101, 0b11110, 0b11111) else 2
        n += 1
    return n
