"""Synthetic streams with known concept drift points, from River's generators.

Each stream chains one generator per concept (SEA variants, Agrawal classification functions,
STAGGER concepts, or random hyperplanes), every concept seeded, so the true drift points are
known: the oracle policy of a backtest retrains right after them. Rows are generated at run
time (nothing is downloaded); River is needed (``pip install river``).

Example:
    >>> stream = drift_stream("stagger", rows_per_concept=100, batch_rows=50)
    >>> stream.frame.shape, [str(t) for t in stream.drift_times]
    ((300, 6), ['2024-01-15 00:00:00+00:00', '2024-01-29 00:00:00+00:00'])
    >>> stream.drift_rows
    (100, 200)

References:
    Street, Kim (2001). A streaming ensemble algorithm (SEA) for large-scale classification. KDD.
    Agrawal, Imielinski, Swami (1993). Database mining: a performance perspective. IEEE TKDE.
    Schlimmer, Granger (1986). Incremental learning from noisy data. Machine Learning 1(3).
    Hulten, Spencer, Domingos (2001). Mining time-changing data streams. KDD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

import pandas as pd

from retrainer.errors import RetrainerError

STREAMS = ("sea", "agrawal", "stagger", "hyperplane")
START = pd.Timestamp("2024-01-01", tz="UTC")


@dataclass(frozen=True)
class DriftStream:
    """A labelled stream (``id``, ``timestamp``, features, ``target``) and its true drift points."""

    name: str
    frame: pd.DataFrame
    drift_rows: tuple[int, ...]  # first row of each new concept
    drift_times: tuple[pd.Timestamp, ...]  # its timestamp
    concepts: tuple[str, ...]  # what each concept is, in order

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "rows": len(self.frame),
            "drift_rows": list(self.drift_rows),
            "drift_times": [t.isoformat() for t in self.drift_times],
            "concepts": list(self.concepts),
        }


def _generators(name: str, seed: int) -> list[tuple[str, Iterable]]:
    """One (description, generator) per concept of the stream ``name``."""
    try:
        from river.datasets import synth
    except ImportError:
        raise RetrainerError(
            f"the synthetic stream {name!r} needs River: pip install river"
        ) from None
    makers: dict[str, Callable[[int], list[tuple[str, Iterable]]]] = {
        "sea": lambda s: [
            (f"SEA variant {v}", synth.SEA(variant=v, noise=0.1, seed=s + i))
            for i, v in enumerate((0, 1, 2, 3))
        ],
        "agrawal": lambda s: [
            (f"Agrawal function {f}", synth.Agrawal(f, seed=s + i, perturbation=0.05))
            for i, f in enumerate((0, 2, 4, 6))
        ],
        "stagger": lambda s: [
            (f"STAGGER concept {f}", synth.STAGGER(f, seed=s + i, balance_classes=True))
            for i, f in enumerate((0, 1, 2))
        ],
        "hyperplane": lambda s: [
            (f"hyperplane {i + 1} (seed {s + i})", synth.Hyperplane(seed=s + i, n_features=10))
            for i in range(4)
        ],
    }
    if name not in makers:
        raise RetrainerError(f"unknown stream {name!r}; choose one of {', '.join(STREAMS)}")
    return makers[name](seed)


def drift_stream(
    name: str,
    *,
    rows_per_concept: int = 5_250,
    batch_rows: int = 500,
    period: str = "7D",
    seed: int = 0,
) -> DriftStream:
    """The stream ``name`` (``sea``, ``agrawal``, ``stagger`` or ``hyperplane``), its concepts
    chained abruptly every ``rows_per_concept`` rows, ``batch_rows`` rows per ``period`` of time.

    Parameters:
        name: which generator (see :data:`STREAMS`); SEA with 10 % label noise, Agrawal with 5 %
            perturbation, STAGGER with balanced classes, hyperplanes of 10 features with 5 %
            noise.
        rows_per_concept: rows of each concept (the default puts drifts mid-batch).
        batch_rows: rows per ``period`` (a backtest cuts one batch per period).
        period: the time one batch spans.
        seed: seeds the generators (concept ``i`` gets ``seed + i``).
    """
    if rows_per_concept < 1 or batch_rows < 1:
        raise RetrainerError(
            f"rows_per_concept and batch_rows must be at least 1; got {rows_per_concept}, "
            f"{batch_rows}"
        )
    rows, concepts = [], []
    for description, generator in _generators(name, seed):
        concepts.append(description)
        for x, y in islice(generator, rows_per_concept):
            rows.append({**{_column(k): v for k, v in x.items()}, "target": int(y)})
    features = pd.DataFrame(rows)
    step = pd.Timedelta(period) / batch_rows
    ids = pd.RangeIndex(len(features))
    times = pd.Series(START + step * ids.to_numpy(), name="timestamp")
    frame = pd.concat([pd.DataFrame({"id": ids.to_numpy(), "timestamp": times}), features], axis=1)
    drift_rows = tuple(rows_per_concept * i for i in range(1, len(concepts)))
    return DriftStream(
        name=name,
        frame=frame,
        drift_rows=drift_rows,
        drift_times=tuple(frame["timestamp"].iloc[r] for r in drift_rows),
        concepts=tuple(concepts),
    )


def _column(key: object) -> str:
    """River names some features by position (0, 1, ...): make them ``x0``, ``x1``, ..."""
    return f"x{key}" if isinstance(key, int) else str(key)
