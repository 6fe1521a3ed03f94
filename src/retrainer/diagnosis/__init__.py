"""Diagnosis: every alarm gets a cause, a confidence, its evidence and an action.

See :mod:`retrainer.diagnosis.alarms` for the causes and their ranking,
:mod:`retrainer.diagnosis.engine` for the rules, :mod:`retrainer.diagnosis.signals` for the
row-level signals and :mod:`retrainer.diagnosis.fixes` for the fixes a user can accept. The names
are imported on first use (the rules need pandas; reading a stored diagnosis does not).

>>> from retrainer.diagnosis import rank
>>> rank([]).top is None
True
"""

import importlib

_WHERE = {
    "ACTIONS": "retrainer.diagnosis.alarms",
    "CAUSES": "retrainer.diagnosis.alarms",
    "WORDS": "retrainer.diagnosis.alarms",
    "Alarm": "retrainer.diagnosis.alarms",
    "Diagnosis": "retrainer.diagnosis.alarms",
    "RankedCause": "retrainer.diagnosis.alarms",
    "rank": "retrainer.diagnosis.alarms",
    "diagnose": "retrainer.diagnosis.engine",
    "diagnose_batch": "retrainer.diagnosis.engine",
    "relation_alarm": "retrainer.diagnosis.engine",
    "with_relation": "retrainer.diagnosis.engine",
    "BatchSignals": "retrainer.diagnosis.signals",
    "ColumnSignal": "retrainer.diagnosis.signals",
    "batch_signals": "retrainer.diagnosis.signals",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'retrainer.diagnosis' has no attribute {name!r}")
