"""Row-level signals of a batch that a profile cannot carry: duplicated rows, the most frequent
value of each numeric column and its longest run of identical consecutive values.

Profiles describe distributions; a stuck sensor (one value repeated row after row), a new fill
value (one value scattered over many rows) and a re-delivered batch (duplicated rows) need the
rows. These signals are computed once per batch, in one pass per column, next to the profile.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": [1, 2, 2, 3], "x": [0.5, 7.0, 7.0, 7.0]})
    >>> s = batch_signals(frame, ["x"], keys=["id"])
    >>> s.duplicates, s.columns["x"].mode, s.columns["x"].mode_count, s.columns["x"].run
    (1, 7.0, 3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from retrainer.checks.result import plain
from retrainer.data.schema import NULL_WORDS, UNIT, as_text, unit_suffixes
from retrainer.diagnosis.batch_size import MOST_SHARE, UsualSize
from retrainer.diagnosis.units import QUANTILES
from retrainer.profile.batch import repeated_rows, row_hashes

ALPHA = 1e-3  # false-alarm rate per column per batch of the fill-value rule
NATURAL_SHARE = 0.01  # a value the reference holds this often is an ordinary reading
SHOW_ROWS = 10  # unreadable rows named per column


def unusual_share(
    count: int,
    rows: int,
    reference_share: float,
    alpha: float = ALPHA,
    reference_rows: int | None = None,
) -> bool:
    """Whether ``count`` of ``rows`` holding one value is more than the reference's share of
    that value explains: the binomial probability of at least ``count`` is below ``alpha``.

    With ``reference_rows``, the reference's share is a count of its rows, itself a sample:
    the batch's count is read against both counts together (Fisher's exact test, one-sided: the
    hypergeometric chance that the batch holds at least ``count`` of them). Three unchanged
    closing prices in 349 trading days do not make three in 22 improbable; a value the reference
    never held still is.

    Example:
        >>> unusual_share(12, 30, 0.38), unusual_share(25, 30, 0.38), unusual_share(4, 30, 0.0)
        (False, True, True)
        >>> unusual_share(3, 22, 3 / 349), unusual_share(3, 22, 3 / 349, reference_rows=349)
        (True, False)
    """
    if count <= 0 or rows <= 0:
        return False
    from scipy import stats  # here: `retrainer explain` reads signals without SciPy

    share = min(max(reference_share, 0.0), 1.0)
    if not reference_rows:
        return float(stats.binom.sf(count - 1, rows, share)) < alpha
    held = round(share * reference_rows)
    chance = stats.hypergeom.sf(count - 1, reference_rows + rows, held + count, rows)
    return float(chance) < alpha


def in_blocks(count: int, runs: int, rows: int, alpha: float = ALPHA) -> bool:
    """Whether ``count`` of ``rows`` holding one value gather in ``runs`` blocks of consecutive
    rows, fewer than rows placed at random form with probability ``alpha`` (the exact
    distribution of the number of runs of one symbol: ``C(count-1, r-1) C(rows-count+1, r) /
    C(rows, count)``; Wald and Wolfowitz's runs test, one-sided). A fill value stands in for
    readings lost here and there, so it is scattered; a reading held while nothing new came in
    (a poll carried forward, a sensor between updates) comes in blocks.

    Example:
        >>> in_blocks(19, 2, 26), in_blocks(19, 7, 26), in_blocks(30, 20, 90)
        (True, False, False)
    """
    if not 0 < runs <= count < rows:
        return False
    from scipy.special import gammaln, logsumexp  # here: `retrainer explain` imports this module

    def log_comb(n, k):
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    r = np.arange(1, runs + 1)
    log_p = log_comb(count - 1, r - 1) + log_comb(rows - count + 1, r) - log_comb(rows, count)
    return float(np.exp(logsumexp(log_p))) < alpha


@dataclass(frozen=True)
class ColumnSignal:
    """The most frequent finite value of a numeric column, its count, the longest run of
    one value in consecutive rows (``run_value``), its ``QUANTILES`` (for unit changes), the
    number of blocks of consecutive rows the most frequent value forms (``mode_runs``), the
    next most frequent values with their counts and blocks (``others``: at most 2) and,
    for values that are no numbers, how many (``bad``), the first rows (``bad_rows``, 0-based
    positions in the batch), the unit suffixes among them (``"1014.7 hPa"``), the rows no
    unit reads either (``unparsed``: row -> value) and the commonest of those values with their
    counts (``words``: at most two, enough to tell a lone marker such as ``"nil"``)."""

    mode: float | None
    mode_count: int
    run: int
    run_value: float | None
    quantiles: tuple[float, ...] = ()
    values: int = 0
    bad_rows: tuple[int, ...] = ()
    bad: int = 0
    units: dict[str, int] = field(default_factory=dict)
    unit_numbers: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    unparsed: dict[int, str] = field(default_factory=dict)  # row -> value, with no unit either
    mode_runs: int = 0
    words: dict[str, int] = field(default_factory=dict)
    first: float | None = None  # the first finite value, in row order
    median_step: float | None = None  # of |x[i+1] - x[i]| over consecutive finite values
    largest_step: float | None = None
    others: tuple[tuple[float, int, int], ...] = ()  # (value, rows, blocks) after the mode

    def to_dict(self) -> dict:
        return plain(
            {
                "mode": self.mode,
                "mode_count": self.mode_count,
                "mode_runs": self.mode_runs,
                "others": [list(o) for o in self.others],
                "run": self.run,
                "run_value": self.run_value,
                "quantiles": list(self.quantiles),
                "values": self.values,
                "bad_rows": list(self.bad_rows),
                "bad": self.bad,
                "units": self.units,
                "unparsed": {str(k): v for k, v in self.unparsed.items()},
                "words": self.words,
                "first": self.first,
                "median_step": self.median_step,
                "largest_step": self.largest_step,
            }
        )


@dataclass(frozen=True)
class BatchSignals:
    """Row-level signals of one batch.

    ``duplicates`` counts rows that repeat an earlier row: rows with the same key (``keyed``:
    the id or time column) or, without a key, the same values in every column. Without a key,
    ``repeats`` counts the rows that repeat the row just before (readings held) and ``resent``
    the rows of blocks of two or more consecutive rows sent before in the same order.
    ``expected_rows`` is the usual batch size (the median of recent batches) when known, and a
    batch of fewer than ``truncated_share`` of it is truncated
    (:mod:`retrainer.diagnosis.batch_size`). ``previous_last`` holds, for the numeric columns
    that left their range, the last finite value of the newest accepted batch before this one:
    where a column goes on from it in steps like its own, the batch continues the series (see
    ``diagnosis.engine.continues``; the columns' signals then hold their first value and steps).
    """

    n_rows: int
    duplicates: int = 0
    keyed: bool = False
    expected_rows: float | None = None
    columns: dict[str, ColumnSignal] = field(default_factory=dict)
    repeats: int = 0
    resent: int = 0
    truncated_share: float = MOST_SHARE
    previous_last: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "duplicates": self.duplicates,
            "repeats": self.repeats,
            "resent": self.resent,
            "keyed": self.keyed,
            "expected_rows": plain(self.expected_rows),
            "truncated_share": self.truncated_share,
            "previous_last": plain(self.previous_last),
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
        }


def _unreadable(series: pd.Series, values: np.ndarray) -> dict:
    """Rows whose value is no number, and the unit suffixes among them."""
    if pd.api.types.is_numeric_dtype(series.dtype):
        return {}
    bad = np.isnan(values) & series.notna().to_numpy()
    if bad.any():
        bad[bad] = ~series[bad].map(str).str.strip().str.lower().isin(NULL_WORDS).to_numpy()
    if not bad.any():
        return {}
    text = series[bad]
    found = as_text(text).str.extract(UNIT)
    parts = found.dropna()
    parts["number"] = pd.to_numeric(parts["number"], errors="coerce")
    neither = np.flatnonzero(bad)[found["unit"].isna().to_numpy()]
    words = series.iloc[neither].map(str).value_counts().head(2)
    return {
        "unparsed": {int(i): str(series.iloc[i]) for i in neither[:SHOW_ROWS]},
        "bad_rows": tuple(int(i) for i in np.flatnonzero(bad)[:SHOW_ROWS]),
        "bad": int(bad.sum()),
        "units": unit_suffixes(text),
        "unit_numbers": parts.reset_index(drop=True),
        "words": {str(k): int(v) for k, v in words.items()},
    }


def _column_signal(series: pd.Series, steps: bool = False) -> ColumnSignal:
    """``steps``: also the first value and the steps between consecutive finite values (read
    only for a column that left its range and has a batch before it to go on from)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    unreadable = _unreadable(series, values)
    if finite.size == 0:
        return ColumnSignal(None, 0, 0, None, **unreadable)
    uniques, counts = np.unique(finite, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:3]  # the commonest first, ties by value
    top = int(order[0])
    same = np.isfinite(values[1:]) & (values[1:] == values[:-1])
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    lengths = np.diff(np.concatenate([starts, [values.size]]))
    longest = int(np.argmax(lengths))
    run_value = values[starts[longest]]
    moves = np.abs(np.diff(finite)) if steps else np.empty(0)
    return ColumnSignal(
        float(uniques[top]),
        int(counts[top]),
        int(lengths[longest]) if np.isfinite(run_value) else 1,
        float(run_value) if np.isfinite(run_value) else None,
        tuple(float(q) for q in np.quantile(finite, QUANTILES)),
        int(finite.size),
        **unreadable,
        mode_runs=int((values[starts] == uniques[top]).sum()),
        others=tuple(
            (float(uniques[k]), int(counts[k]), int((values[starts] == uniques[k]).sum()))
            for k in order[1:]
        ),
        first=float(finite[0]) if steps else None,
        median_step=float(np.median(moves)) if moves.size else None,
        largest_step=float(moves.max()) if moves.size else None,
    )


def batch_signals(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    *,
    keys: Sequence[str] = (),
    expected_rows: float | UsualSize | None = None,
    previous_last: dict[str, float] | None = None,
) -> BatchSignals:
    """Signals of ``frame``: duplicated rows and, per ``numeric`` column, mode and longest run.

    Parameters:
        frame: the batch, rows in arrival order.
        numeric: the numeric feature columns to summarise (absent ones are skipped).
        keys: columns that identify a row (id, time); duplicates are counted on them when present.
        expected_rows: the usual batch size (with the share below it that is truncated), to
            tell a truncated batch.
        previous_last: per numeric column, the last finite value of the batch before (its
            columns' steps are measured too).
    """
    usual = UsualSize(expected_rows) if isinstance(expected_rows, int | float) else expected_rows
    present = [k for k in keys if k in frame.columns]
    repeats = resent = 0
    if present:
        duplicates = int(frame.duplicated(subset=present).sum())
    else:
        hashes = row_hashes(frame)
        duplicates = int(pd.Index(hashes).duplicated().sum())
        if duplicates:
            repeats, resent = repeated_rows(hashes), resent_rows(hashes)
    before = previous_last or {}
    columns = {
        name: _column_signal(frame[name], steps=name in before)
        for name in numeric
        if name in frame.columns and isinstance(frame[name], pd.Series)
    }
    return BatchSignals(
        len(frame),
        duplicates,
        bool(present),
        usual.rows if usual else None,
        columns,
        repeats,
        resent,
        usual.share if usual else MOST_SHARE,
        dict(before),
    )


def resent_rows(hashes: np.ndarray) -> int:
    """Rows in blocks of two or more consecutive rows that came before in the same order (a
    re-sent stretch of a file): pairs of successive row hashes seen earlier, pairs of one held
    reading left out.

    Example:
        >>> resent_rows(np.array([1, 2, 3, 4, 2, 3, 5])), resent_rows(np.array([1, 1, 1, 2]))
        (2, 0)
    """
    if len(hashes) < 2:
        return 0
    before, after = hashes[:-1], hashes[1:]
    seen = pd.MultiIndex.from_arrays([before, after]).duplicated()
    again = seen & (before != after)
    rows = np.zeros(len(hashes), dtype=bool)
    rows[:-1] |= again
    rows[1:] |= again
    return int(rows.sum())
