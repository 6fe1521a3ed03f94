"""The compiled per-value steps of the detectors, when the C extension was built.

``pip install`` compiles ``_native.c`` when a C compiler is there. A detector class takes
``native("DDMStep")`` as its first base: the C type, whose ``update`` reads one value in one
compiled call, or, without the extension, :class:`Interpreted`, which adds nothing (the
detector's Python ``update`` runs). Both give the same change points and state (tested).

Example:
    >>> native("NoSuchStep") is Interpreted
    True
"""

from __future__ import annotations

from importlib import import_module

try:
    _native = import_module("retrainer.checks.concept._native")
except ImportError:  # built without a C compiler
    _native = None

COMPILED = _native is not None


class Interpreted:
    """The base that stands in for a compiled step: the Python ``update`` runs."""

    __slots__ = ()


def native(name: str) -> type:
    """The compiled type ``name`` of the extension, or :class:`Interpreted` without it."""
    return getattr(_native, name, Interpreted)
