"""Mergeable profiles of batches: one small summary per column, computed in one pass."""

from retrainer.profile.batch import BatchProfile
from retrainer.profile.column import ColumnProfile, histogram, profile_column, quantile_edges

__all__ = ["BatchProfile", "ColumnProfile", "histogram", "profile_column", "quantile_edges"]
