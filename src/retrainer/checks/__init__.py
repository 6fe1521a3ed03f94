"""Checks of a batch against its reference: data quality, data drift (and, elsewhere, concept).

The names are imported on first use (SciPy takes a while to import; the configuration's
validation reads ``retrainer.checks.concept`` without needing the rest).

>>> from retrainer.checks import CheckResult
>>> CheckResult.__name__
'CheckResult'
"""

import importlib

_WHERE = {
    "CheckResult": "retrainer.checks.result",
    "check_drift": "retrainer.checks.drift",
    "check_quality": "retrainer.checks.quality",
    "dataset_drift": "retrainer.checks.drift",
}

__all__ = ["CheckResult", "check_drift", "check_quality", "dataset_drift"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'retrainer.checks' has no attribute {name!r}")
