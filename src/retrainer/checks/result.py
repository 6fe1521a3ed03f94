"""The outcome of one check on one column (or on the whole batch).

Example:
    >>> r = CheckResult("drift", "ks", "price", True, "warning", statistic=0.4, p_value=1e-6)
    >>> r.to_dict()["statistic"], r.alarm
    (0.4, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("quality", "drift", "concept", "performance")
SEVERITIES = ("info", "warning", "error")
STATUSES = (
    "ok",
    "insufficient",
    "schema_error",
    "non_finite",
    "excluded_id_like",
    "excluded_calendar",
)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers and NaN or inf made None (for JSON).

    Example:
        >>> import numpy as np
        >>> plain({"d": np.float64(0.5), "xs": [np.int64(2), float("nan")]})
        {'d': 0.5, 'xs': [2, None]}
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class CheckResult:
    """One check that ran: did it raise an alarm, how severe, and the numbers behind it.

    ``status`` says whether the check could run: ``ok``, ``insufficient`` (too few rows),
    ``schema_error`` (the column is missing or of another kind), ``non_finite`` (no finite
    values), ``excluded_id_like`` (an id-like column is not tested) or ``excluded_calendar`` (a
    date part of the time column is not tested for drift).
    """

    kind: str
    name: str
    column: str | None
    alarm: bool
    severity: str = "info"
    status: str = "ok"
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    message: str = ""
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"check kind {self.kind!r} is not one of {KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (plain numbers, None instead of NaN)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "column": self.column,
            "alarm": bool(self.alarm),
            "severity": self.severity,
            "status": self.status,
            "statistic": plain(self.statistic),
            "p_value": plain(self.p_value),
            "threshold": plain(self.threshold),
            "message": self.message,
            "detail": plain(self.detail),
        }
