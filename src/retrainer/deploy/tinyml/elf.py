"""Read a linked firmware image (ELF, with pyelftools): sizes, loadable segments, symbols."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrainer.errors import RetrainerError

_SHF_WRITE, _SHF_ALLOC = 0x1, 0x2


@dataclass(frozen=True)
class Image:
    """What an emulator needs from an ELF image, and its sizes as Berkeley ``size`` counts them.

    Parameters
    ----------
    text, data, bss
        Bytes of the allocated sections: read-only (code, constants, tables), initialised
        writable, zero-initialised.
    segments
        ``(address, bytes)`` of each loadable segment at its run-time (virtual) address.
    symbols
        Function and object names -> address (Thumb functions with the low bit set).
    ram_end
        First address after the last RAM byte the image uses.
    """

    text: int
    data: int
    bss: int
    segments: tuple[tuple[int, bytes], ...]
    symbols: dict[str, int]
    ram_end: int


def read_image(path: str | Path) -> Image:
    """Read the sections, loadable segments and symbols of the ELF file ``path``.

    Examples
    --------
    >>> read_image("/no/such/file.elf")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    retrainer.errors.RetrainerError: cannot read firmware image /no/such/file.elf: ...
    """
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError as exc:  # pragma: no cover - the mcu extra brings it
        raise RetrainerError("reading firmware images needs pip install 'retrainer[mcu]'") from exc
    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            text = data = bss = 0
            ram_end = 0
            for section in elf.iter_sections():
                flags = section["sh_flags"]
                if not flags & _SHF_ALLOC:
                    continue
                size = section["sh_size"]
                if section["sh_type"] == "SHT_NOBITS":
                    bss += size
                elif flags & _SHF_WRITE:
                    data += size
                else:
                    text += size
                if flags & _SHF_WRITE:
                    ram_end = max(ram_end, section["sh_addr"] + size)
            segments = tuple(
                (seg["p_vaddr"], seg.data())
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]
            )
            table = elf.get_section_by_name(".symtab")
            symbols = {
                sym.name: sym["st_value"]
                for sym in (table.iter_symbols() if table is not None else ())
                if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT")
            }
    except (OSError, ELFError) as exc:
        raise RetrainerError(f"cannot read firmware image {path}: {exc}") from exc
    return Image(text, data, bss, segments, symbols, ram_end)
