"""Diagnosis: every alarm gets a cause, a confidence, its evidence and an action.

See :mod:`retrainer.diagnosis.engine` for the rules, :mod:`retrainer.diagnosis.signals` for the
row-level signals and :mod:`retrainer.diagnosis.fixes` for the fixes a user can accept.
"""

from retrainer.diagnosis.engine import (
    ACTIONS,
    CAUSES,
    WORDS,
    Alarm,
    Diagnosis,
    RankedCause,
    diagnose,
    diagnose_batch,
    rank,
    relation_alarm,
    with_relation,
)
from retrainer.diagnosis.signals import BatchSignals, ColumnSignal, batch_signals

__all__ = [
    "ACTIONS",
    "CAUSES",
    "WORDS",
    "Alarm",
    "BatchSignals",
    "ColumnSignal",
    "Diagnosis",
    "RankedCause",
    "batch_signals",
    "diagnose",
    "diagnose_batch",
    "rank",
    "relation_alarm",
    "with_relation",
]
