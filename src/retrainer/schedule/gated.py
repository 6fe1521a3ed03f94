"""The live gate in the simulation: a simulated retrain goes into service only if its gate copy
is not worse than the champion on the held-out rows, judged by :func:`retrainer.gate.evaluate_gate`
itself (the same paired comparison, tolerance, confidence, ``min_rows`` and
``on_inconclusive`` as the project's ``gate`` section).

The score matrix records, per boundary, the gate copy's per-row errors on its held-out rows
(:meth:`~retrainer.schedule.scores.ScoreMatrix.gate_errors`) and every model's per-row errors on
each later batch, so both models' outcomes on the same rows are replayed through the gate as
recorded predictions against labels of 0: a classifier's wrong prediction is a 1 (the gate
metric is accuracy: the matrix counts errors), a regressor's prediction is its absolute error
(the gate metric is the matrix's, mae or rmse, whose value on those rows is the same).

Example:
    >>> import numpy as np, pandas as pd
    >>> from retrainer.schedule.scores import build_scores
    >>> from retrainer.training import Trainer
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=600)})
    >>> y = (X["x"] > 0).astype(int)
    >>> batches = [(X[i : i + 100], y[i : i + 100]) for i in range(0, 600, 100)]
    >>> m = build_scores(batches, Trainer("sklearn.tree.DecisionTreeClassifier"), history=2)
    >>> gate = Gate(m)
    >>> result = gate(2, 0)
    >>> result.passed, result.verdict, result.n_holdout  # 20 % of a 4-batch window
    (True, 'not_worse', 80)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from retrainer.gate import GateResult, evaluate_gate


class Recorded:
    """A model that replays recorded outcomes: its "prediction" of row ``i`` is column
    ``column`` of the rows given (1 where the recorded model was wrong; labels are all 0)."""

    def __init__(self, column: str) -> None:
        self.column = column

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy()


class Gate:
    """``gate(t, k)``: the gate's result for the candidate of boundary ``t`` against champion
    ``k`` (memoised: policies ask again for the same pair)."""

    def __init__(
        self,
        matrix: Any,
        *,
        tolerance: float = 0.0,
        confidence: float = 0.95,
        min_rows: int = 30,
        on_inconclusive: str = "promote",
    ) -> None:
        self.matrix = matrix
        self.settings = dict(
            tolerance=tolerance,
            confidence=confidence,
            min_rows=min_rows,
            on_inconclusive=on_inconclusive,
        )
        self.starts = np.r_[0, np.cumsum(matrix.rows)]
        self.seen: dict[tuple[int, int], GateResult] = {}

    @classmethod
    def from_settings(cls, matrix: Any, gate: Any) -> Gate:
        """From a project's ``gate`` section (:class:`retrainer.config.GateSettings`)."""
        return cls(
            matrix,
            tolerance=gate.tolerance,
            confidence=gate.confidence,
            min_rows=gate.min_rows,
            on_inconclusive=gate.on_inconclusive,
        )

    def __call__(self, t: int, k: int) -> GateResult:
        if (t, k) not in self.seen:
            self.seen[t, k] = self._judge(t, k)
        return self.seen[t, k]

    def _judge(self, t: int, k: int) -> GateResult:
        m = self.matrix
        start = int(m.gate_start[t])
        if start < 0:  # the window ends in the history: the first model's window again
            return GateResult(
                True, m.metric or "accuracy", None, None, self.settings["tolerance"], 0,
                "the same labelled window as the champion's: the same model", "not_worse",
            )  # fmt: skip
        skip = max(int(self.starts[k]) - start, 0)  # rows before batch k: champion not scored
        challenger = m.gate_errors(t)[skip:]
        first = start + skip - int(self.starts[k])  # in the champion's rows (batches k on)
        own = m.row_errors(k)[first : first + len(challenger)]
        if m.metric == "rmse":  # squared errors: the absolute ones give the same rmse
            challenger, own = np.sqrt(challenger), np.sqrt(own)
        X = pd.DataFrame({"challenger": challenger, "champion": own})
        return evaluate_gate(
            Recorded("challenger"),
            Recorded("champion"),
            X,
            np.zeros(len(X), dtype=challenger.dtype),
            metric=m.metric or "accuracy",
            **self.settings,
        )
