"""Deploy target: the budget a microcontroller gives a model (flash, RAM, latency, parity)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from retrainer.errors import ConfigError

_CPU = re.compile(r"^cortex-m(0|0plus|1|3|4|7|23|33|35p|55|85)$")
_FLOAT_ABIS = ("soft", "softfp", "hard")
_FPU = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class DeployTarget:
    """A microcontroller a model must fit: flash, RAM, latency and minimum C/Python agreement.

    Parameters
    ----------
    name
        Name of the target in the project file, e.g. ``cortex-m4f``.
    flash_kb, ram_kb
        Budgets in KiB (1024 bytes) for the minimal firmware image that runs the model.
    max_latency_ms
        Latency budget per prediction; ``None`` means no latency budget.
    min_agreement
        Share of predictions the C model must make exactly as the Python model does.
    cpu, float_abi, fpu
        ``-mcpu``, ``-mfloat-abi`` and ``-mfpu`` of ``arm-none-eabi-gcc`` (``fpu`` is ignored
        when ``float_abi`` is ``soft``).
    clock_mhz, cycles_per_instruction
        Turn the instructions counted on the emulated board into milliseconds on the device:
        ``ms = instructions * cycles_per_instruction / (clock_mhz * 1000)``. The default CPI of
        1.5 is a conservative figure for a Cortex-M4 running from flash with wait states.
    board_rows
        At most this many of the recent rows run on the emulated board (the first ones; the
        host parity check runs all of them). The board run checks the cross-compiled code and
        counts instructions; a few hundred rows do that, and more only cost emulator time.

    Examples
    --------
    >>> t = DeployTarget.from_dict("cortex-m4f", {"flash_kb": 256, "ram_kb": 64})
    >>> t.flash_bytes, t.ram_bytes, t.min_agreement
    (262144, 65536, 0.99)
    >>> t.compiler_flags()
    ('-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16')
    """

    name: str
    flash_kb: float
    ram_kb: float
    max_latency_ms: float | None = None
    min_agreement: float = 0.99
    cpu: str = "cortex-m4"
    float_abi: str = "hard"
    fpu: str = "fpv4-sp-d16"
    clock_mhz: float = 64.0
    cycles_per_instruction: float = 1.5
    board_rows: int = 500

    def __post_init__(self) -> None:
        problems = []
        for key in ("flash_kb", "ram_kb", "clock_mhz", "cycles_per_instruction"):
            value = getattr(self, key)
            if not _positive(value):
                problems.append(
                    f"deploy_targets.{self.name}.{key}: {value!r} is not a positive number"
                )
        if self.max_latency_ms is not None and not _positive(self.max_latency_ms):
            problems.append(
                f"deploy_targets.{self.name}.max_latency_ms: {self.max_latency_ms!r} "
                "is not a positive number"
            )
        if not (isinstance(self.board_rows, int) and _positive(self.board_rows)):
            problems.append(
                f"deploy_targets.{self.name}.board_rows: {self.board_rows!r} "
                "is not a positive whole number"
            )
        if not _is_number(self.min_agreement) or not 0.0 <= self.min_agreement <= 1.0:
            problems.append(
                f"deploy_targets.{self.name}.min_agreement: {self.min_agreement!r} "
                "is not a share between 0 and 1"
            )
        if not isinstance(self.cpu, str) or not _CPU.match(self.cpu):
            problems.append(
                f"deploy_targets.{self.name}.cpu: {self.cpu!r} is not a Cortex-M name "
                "such as cortex-m4"
            )
        if self.float_abi not in _FLOAT_ABIS:
            problems.append(
                f"deploy_targets.{self.name}.float_abi: {self.float_abi!r} is not one of "
                f"{', '.join(_FLOAT_ABIS)}"
            )
        if not isinstance(self.fpu, str) or not _FPU.match(self.fpu):
            problems.append(f"deploy_targets.{self.name}.fpu: {self.fpu!r} is not an fpu name")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> DeployTarget:
        """Build a target from its entry in the project file; unknown keys are an error.

        Parameters
        ----------
        name
            The key of the entry under ``deploy_targets``.
        d
            Its settings (``flash_kb`` and ``ram_kb`` are required).

        Examples
        --------
        >>> DeployTarget.from_dict("m0", {"flash_kb": 32, "ram_kb": 8, "cpu": "cortex-m0",
        ...                               "float_abi": "soft"}).compiler_flags()
        ('-mcpu=cortex-m0', '-mthumb', '-mfloat-abi=soft')
        """
        known = {f for f in cls.__dataclass_fields__ if f != "name"}
        problems = [f"deploy_targets.{name}.{k}: unknown key" for k in d if k not in known]
        problems += [
            f"deploy_targets.{name}.{k}: required" for k in ("flash_kb", "ram_kb") if k not in d
        ]
        if problems:
            raise ConfigError(problems)
        return cls(name=name, **dict(d))

    @property
    def flash_bytes(self) -> int:
        """The flash budget in bytes."""
        return int(self.flash_kb * 1024)

    @property
    def ram_bytes(self) -> int:
        """The RAM budget in bytes."""
        return int(self.ram_kb * 1024)

    def instructions_to_ms(self, instructions: float) -> float:
        """Milliseconds that ``instructions`` take on this target (see ``clock_mhz``).

        Examples
        --------
        >>> m4 = DeployTarget("m4", 256, 64, clock_mhz=64, cycles_per_instruction=1.0)
        >>> m4.instructions_to_ms(64_000)
        1.0
        """
        return instructions * self.cycles_per_instruction / (self.clock_mhz * 1000.0)

    def compiler_flags(self) -> tuple[str, ...]:
        """The ``arm-none-eabi-gcc`` machine flags for this target."""
        flags = (f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}")
        if self.float_abi != "soft":
            flags += (f"-mfpu={self.fpu}",)
        return flags

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for the event log and the bundle manifest)."""
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> bool:
    return _is_number(value) and value > 0
