"""Optional C extension: per-value detector steps (``retrainer.checks.concept._native``).

Everything else is declared in ``pyproject.toml``. Without a C compiler the build goes on
without the extension (``optional=True``) and the detectors run their Python ``update`` (ADWIN
its Numba loop) instead, with the same results.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "retrainer.checks.concept._native",
            ["src/retrainer/checks/concept/_native.c"],
            # no fused multiply-add: the same rounding as the Numba path, bit for bit
            extra_compile_args=["-O2", "-ffp-contract=off"] if os.name == "posix" else [],
            optional=True,
        )
    ]
)
