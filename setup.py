"""Optional C extension: ADWIN's window (``retrainer.checks.concept._adwin``).

Everything else is declared in ``pyproject.toml``. Without a C compiler the build goes on
without the extension (``optional=True``) and ADWIN runs its Numba loop instead.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "retrainer.checks.concept._adwin",
            ["src/retrainer/checks/concept/_adwin.c"],
            # no fused multiply-add: the same rounding as the Numba path, bit for bit
            extra_compile_args=["-O2", "-ffp-contract=off"] if os.name == "posix" else [],
            optional=True,
        )
    ]
)
