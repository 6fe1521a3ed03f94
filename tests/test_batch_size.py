"""A batch is called truncated below the usual size by more than the project's own batch sizes
vary: half of it where they are steady, less where they vary by themselves (a month's listings)."""

import numpy as np
import pandas as pd

from retrainer.diagnosis import batch_signals, diagnose_batch
from retrainer.diagnosis.batch_size import ALPHA, MOST_SHARE, usual_size

# Advertised 486 PCs a month, January 1993 to June 1995 (R's Ecdat ``Computers``, Stengos and
# Zacharias, Journal of Applied Econometrics): the market grew, then gave way to the Pentium.
LISTINGS = [94, 95, 100, 108, 139, 176, 249, 298, 246, 283, 259, 275, 216, 292, 267, 307, 339]
LISTINGS += [273, 225, 248, 205, 162, 191, 182, 158, 152, 163, 132, 129]
JULY_1995 = 75  # the next month's listings, in the data set


def truncated(rows: int, sizes: list[int]) -> list[str]:
    """The messages of the truncation alarms of a clean batch of ``rows`` after ``sizes``."""
    batch = pd.DataFrame({"x": np.arange(rows, dtype=float)})
    signals = batch_signals(batch, ["x"], expected_rows=usual_size(sizes))
    return [a.message for a in diagnose_batch([], None, None, signals).alarms]


def test_steady_batches_keep_the_half_rule():
    size = usual_size([336] * 20)
    assert (size.rows, size.share) == (336, MOST_SHARE)
    assert truncated(160, [336] * 20) and not truncated(170, [336] * 20)


def test_a_market_that_shrinks_by_itself_is_no_truncation():
    """Fails on the parent (the fixed half rule: "75 rows where about 155 are usual")."""
    size = usual_size(LISTINGS)
    assert JULY_1995 < MOST_SHARE * size.rows
    assert size.share < JULY_1995 / size.rows
    assert not truncated(JULY_1995, LISTINGS)
    found = truncated(10, LISTINGS)
    assert len(found) == 1 and f"fewer than {size.share:.2f} of them" in found[0]


def test_the_false_alarm_rate_is_about_alpha_where_sizes_vary():
    """Sizes drawn at random around a fixed level (log-normal, 35 % spread): the next batch from
    the same law is called truncated about ``ALPHA`` of the time; the half rule alone calls it
    so in about 3 % of batches."""
    rng = np.random.default_rng(7)
    trials, calibrated, half = 3000, 0, 0
    for _ in range(trials):
        sizes = np.round(np.exp(rng.normal(np.log(200), 0.35, size=41))).astype(int)
        size = usual_size(list(sizes[:40]))
        calibrated += sizes[40] < size.share * size.rows
        half += sizes[40] < MOST_SHARE * size.rows
    assert calibrated / trials <= 3 * ALPHA
    assert half / trials > 0.01


def test_a_backfilled_first_file_does_not_hide_a_truncated_week():
    """4 weeks of history in the first file, then weekly files: a week of 100 rows of 336 is
    truncated from the 4th file on (a prior pooled with the ratios from the 2nd file on would
    have passed it for 30 weeks)."""
    for weeks in (3, 5, 10, 30):
        assert truncated(100, [4 * 336] + [336] * weeks), weeks


def test_a_cohort_whose_first_years_already_differ_is_no_truncation_early_on():
    """A cohort's blood samples by year (R's survival ``flchain``: 1,275, 3,491, 1,381, then
    687 and 350): the 4th and 5th years were "truncated in transfer or export" by the half rule,
    which stood until 2 ratios calibrated the rule. The years after the first already differ
    by 2.5 times, and the rule now widens with them; steady weeks after a backfilled first
    file keep the half rule."""
    cohort = [1275, 3491, 1381, 687, 350]
    assert not truncated(687, cohort[:3]) and not truncated(350, cohort[:4])
    assert truncated(100, cohort[:3])  # a tenth of the usual year still is
    for history in ([336] * 3, [336] * 4, [4 * 336, 336, 336], [4 * 336, 336, 336, 336]):
        assert usual_size(history).share == MOST_SHARE and truncated(160, history), history
