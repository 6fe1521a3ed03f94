"""Give every alarm a cause and the action it implies (see :mod:`retrainer.diagnosis`).

Example:
    >>> from retrainer.checks.result import CheckResult
    >>> alarm = diagnose([CheckResult("quality", "missing_column", "price", True, "error")])[0]
    >>> alarm.cause, alarm.blocking
    ('upstream_change', True)
"""

from retrainer.diagnosis import ACTIONS, Alarm, Diagnosis, diagnose, diagnose_batch

__all__ = ["ACTIONS", "Alarm", "Diagnosis", "diagnose", "diagnose_batch"]
