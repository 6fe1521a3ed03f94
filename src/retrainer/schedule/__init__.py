"""When to retrain, priced: the model-by-batch score matrix, the hindsight-optimal schedule, and
cost-aware policies (fixed schedules, detector triggers, CARA, UPF and our gain forecast)
simulated on that matrix.

A retrain costs ``cost`` errors; a model costs its errors on the batches it serves. The score
matrix holds, for the candidate model trained at every batch boundary (same window rule, label
delay honoured), its errors on every later batch: every schedule's total cost is read off it.
"""

from retrainer.schedule.optimal import Schedule, optimal_schedule
from retrainer.schedule.scores import ScoreMatrix, build_scores, cached_scores

__all__ = ["ScoreMatrix", "Schedule", "build_scores", "cached_scores", "optimal_schedule"]
