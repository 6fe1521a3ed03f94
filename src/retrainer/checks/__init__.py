"""Checks of a batch against its reference: data quality, data drift (and, elsewhere, concept)."""

from retrainer.checks.drift import check_drift, dataset_drift
from retrainer.checks.quality import check_quality
from retrainer.checks.result import CheckResult

__all__ = ["CheckResult", "check_drift", "check_quality", "dataset_drift"]
