"""Concept drift: streaming detectors on a model's error or loss stream.

Each detector reads values one at a time (``update``) or a batch at once (``update_many``,
vectorised), skips NaN and inf (counted in ``n_nonfinite``), and can be persisted between cycles
with ``state_dict`` / ``from_state`` (or :func:`detector_from_state` when the kind is not known).

Example:
    >>> import json
    >>> detector = DDM()
    >>> _ = detector.update_many([0, 0, 1, 0] * 100)
    >>> detector_from_state(json.loads(json.dumps(detector.state_dict())))
    DDM(warm_start=30, warning_threshold=2.0, drift_threshold=3.0)
"""

from retrainer.checks.concept.adwin import ADWIN
from retrainer.checks.concept.base import BinaryDriftDetector, DriftDetector
from retrainer.checks.concept.cusum import CUSUM
from retrainer.checks.concept.ddm import DDM
from retrainer.checks.concept.eddm import EDDM
from retrainer.checks.concept.hddm_a import HDDMA
from retrainer.checks.concept.hddm_w import HDDMW
from retrainer.checks.concept.kswin import KSWIN
from retrainer.checks.concept.page_hinkley import PageHinkley
from retrainer.errors import DataError

DETECTORS: dict[str, type[DriftDetector]] = {
    cls.__name__: cls for cls in (DDM, EDDM, HDDMA, HDDMW, ADWIN, PageHinkley, KSWIN, CUSUM)
}


def detector_from_state(d: dict) -> DriftDetector:
    """Rebuild any detector from its :meth:`DriftDetector.state_dict` output."""
    name = d.get("detector") if isinstance(d, dict) else None
    if name not in DETECTORS:
        raise DataError(f"unknown detector {name!r} in a saved state; known: {sorted(DETECTORS)}")
    return DETECTORS[name].from_state(d)


__all__ = [
    "ADWIN",
    "CUSUM",
    "DDM",
    "DETECTORS",
    "EDDM",
    "HDDMA",
    "HDDMW",
    "KSWIN",
    "BinaryDriftDetector",
    "DriftDetector",
    "PageHinkley",
    "detector_from_state",
]
