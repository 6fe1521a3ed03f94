"""Optional C extensions: per-value detector steps (``retrainer.checks.concept._native``) and
counting a column of Python strings without the GIL (``retrainer.profile._strings``).

Everything else is declared in ``pyproject.toml``. Without a C compiler the build goes on
without them (``optional=True``): the detectors run their Python ``update`` (ADWIN its Numba
loop) and pandas counts strings instead, with the same results.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "retrainer.checks.concept._native",
            ["src/retrainer/checks/concept/_native.c"],
            # no fused multiply-add: the same rounding as the Python and Numba paths, bit for bit
            extra_compile_args=["-O2", "-ffp-contract=off"] if os.name == "posix" else [],
            optional=True,
        ),
        Extension(
            "retrainer.profile._strings",
            ["src/retrainer/profile/_strings.c"],
            extra_compile_args=["-O2"] if os.name == "posix" else [],
            optional=True,
        ),
    ]
)
