"""The drift engine end to end: tiny batches, huge batches, ID-like and high-cardinality columns,
bad input, exact tests on raw rows, the multiple-testing correction, output drift and the
multivariate checks (RELIABILITY B1, B3-B5)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics.pairwise import rbf_kernel

from retrainer.checks.drift import check_drift, dataset_drift, output_drift
from retrainer.checks.multiple import adjust
from retrainer.checks.multivariate import (
    domain_classifier,
    mmd,
    mmd_unbiased,
    pca_reconstruction,
)
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile


def _profiles(ref: pd.DataFrame, cur: pd.DataFrame):
    schema = Schema.infer(ref)
    reference = BatchProfile.from_frame(ref, schema)
    return reference, BatchProfile.from_frame(cur, schema, edges=reference.edges())


@pytest.mark.parametrize("size", [1, 2, 8])
def test_tiny_batches_are_insufficient_with_minimum_and_detectable_shift(size):
    rng = np.random.default_rng(size)
    ref = pd.DataFrame({"x": rng.normal(size=10_000), "c": rng.choice(list("ab"), 10_000)})
    cur = ref.sample(size, random_state=1)
    results = check_drift(*_profiles(ref, cur))
    assert [(r.status, r.alarm) for r in results] == [("insufficient", False)] * 2
    x = results[0]
    assert x.detail["minimum"] == 30 and x.detail["values"] == size
    assert x.detail["min_detectable_shift_sd"] > 1.0, "a tiny batch can only see a huge shift"
    assert "could only detect shifts above" in x.message


@pytest.mark.parametrize("size", [30, 100])
def test_same_distribution_batches_keep_false_alarms_below_alpha(size):
    rng = np.random.default_rng(size)
    ref = pd.DataFrame(
        {"x": rng.normal(size=10_000), "c": rng.choice(list("abc"), 10_000, p=[0.5, 0.3, 0.2])}
    )
    reference, _ = _profiles(ref, ref)
    schema = Schema.infer(ref)
    alarms = []
    for _ in range(300):
        cur = pd.DataFrame(
            {"x": rng.normal(size=size), "c": rng.choice(list("abc"), size, p=[0.5, 0.3, 0.2])}
        )
        batch = BatchProfile.from_frame(cur, schema, edges=reference.edges())
        alarms += [r.alarm for r in check_drift(reference, batch) if r.name in ("ks", "chi2")]
    assert np.mean(alarms) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / len(alarms))


def test_large_samples_judge_by_effect_not_by_p_value():
    rng = np.random.default_rng(0)
    n = 200_000
    ref = pd.DataFrame({"x": rng.normal(size=n)})
    reference, _ = _profiles(ref, ref.head(10))
    schema = Schema.infer(ref)
    verdicts = {}
    for shift in (0.0, 0.01, 0.5):
        cur = pd.DataFrame({"x": rng.normal(shift, 1.0, size=n)})
        batch = BatchProfile.from_frame(cur, schema, edges=reference.edges())
        verdicts[shift] = check_drift(reference, batch)[0]
    assert [v.alarm for v in verdicts.values()] == [False, False, True]
    assert all(v.name == "wasserstein" for v in verdicts.values())
    assert verdicts[0.5].detail["effect_size"] == pytest.approx(0.5, abs=0.03)
    assert verdicts[0.01].detail["min_detectable_effect"] == 0.1
    again = BatchProfile.from_frame(
        pd.DataFrame({"x": rng.normal(0.5, 1.0, size=n)}), schema, edges=reference.edges()
    )
    assert check_drift(reference, again)[0].alarm, "deterministic profiles, same verdict"


def test_id_like_and_high_cardinality_columns_are_bounded():
    rng = np.random.default_rng(1)
    n = 100_000
    ref = pd.DataFrame(
        {
            "id": [f"user-{i}" for i in range(n)],
            "city": rng.choice([f"c{i}" for i in range(5000)], n),
        }
    )
    cur = pd.DataFrame(
        {
            "id": [f"user-{i}" for i in range(n, 2 * n)],
            "city": rng.choice([f"c{i}" for i in range(5000)], n),
        }
    )
    results = {r.column: r for r in check_drift(*_profiles(ref, cur)) if r.name != "psi"}
    assert results["id"].status == "excluded_id_like"
    assert results["city"].status == "ok" and not results["city"].alarm
    assert results["city"].detail["categories"] <= 1001, "top-k plus other"


@pytest.mark.parametrize(
    "cur",
    [
        pd.DataFrame({"x": [np.nan] * 50, "c": [None] * 50}),
        pd.DataFrame({"x": [3.0] * 50, "c": ["a"] * 50}),
        pd.DataFrame({"x": [1.0], "c": ["a"]}),
        pd.DataFrame({"x": pd.Series([], dtype=float), "c": pd.Series([], dtype=str)}),
        pd.DataFrame({"x": [1, "two", 3.0, None] * 20, "c": [1, "a", 2.5, None] * 20}),
        pd.DataFrame({"x": [np.inf, -np.inf] * 30, "c": ["a", "b"] * 30}),
    ],
    ids=["all-nan", "constant", "one-row", "empty", "mixed", "inf"],
)
def test_bad_batches_give_a_defined_result(cur):
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(list("abc"), 500)})
    results = check_drift(*_profiles(ref, cur))
    assert {r.column for r in results} == {"x", "c"}
    for r in results:
        assert r.status in ("ok", "insufficient", "non_finite", "schema_error")
        assert r.statistic is None or np.isfinite(r.statistic)
        assert r.p_value is None or 0 <= r.p_value <= 1
    assert dataset_drift(results).alarm in (True, False)


def test_small_batches_use_exact_tests_on_raw_rows():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=800)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1.0, size=60)})
    reference, batch = _profiles(ref, cur)
    verdict = check_drift(reference, batch, reference_rows=ref, current_rows=cur)[0]
    exact = stats.ks_2samp(ref["x"], cur["x"])
    assert verdict.detail["method"] == "exact"
    assert verdict.statistic == pytest.approx(exact.statistic)
    assert verdict.p_value == pytest.approx(exact.pvalue)
    approx = check_drift(reference, batch)[0]
    assert approx.detail["method"] == "profile" and approx.statistic <= verdict.statistic


@pytest.mark.parametrize("method", ["cramer_von_mises", "anderson_darling", "energy", "psi"])
def test_configured_tests_run_and_say_why(method):
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("ab"), 3000)})
    cur = pd.DataFrame({"x": rng.normal(1.0, 1.0, size=500), "c": rng.choice(list("ab"), 500)})
    results = check_drift(*_profiles(ref, cur), method={"numeric": method})
    x = results[0]
    assert x.name == method and x.alarm and x.detail["reason"] == f"configured ({method})"
    assert results[-1].name == "z" and len(results) == 2  # one verdict per column


def test_correction_adjusts_p_values_over_columns():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=2000) for i in range(6)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.12 * i, 1.0, size=300) for i in range(6)})
    reference, batch = _profiles(ref, cur)
    plain = [r for r in check_drift(reference, batch) if r.name == "ks"]
    bh = [r for r in check_drift(reference, batch, correction="bh") if r.name == "ks"]
    expected = adjust([r.p_value for r in plain], "bh")
    assert [r.detail["p_adjusted"] for r in bh] == pytest.approx(expected)
    assert sum(r.alarm for r in bh) <= sum(r.alarm for r in plain)
    assert dataset_drift(bh).detail["correction"] == ["bh"]


def test_output_drift_of_predictions_and_targets():
    rng = np.random.default_rng(6)
    same = output_drift(pd.Series(rng.normal(size=2000)), pd.Series(rng.normal(size=300)))
    moved = output_drift(
        pd.Series(rng.choice(["no", "yes"], 2000, p=[0.8, 0.2])),
        pd.Series(rng.choice(["no", "yes"], 400, p=[0.6, 0.4])),
        name="target",
    )
    assert same[0].column == "prediction" and not same[0].alarm
    assert moved[0].column == "target" and moved[0].name == "z" and moved[0].alarm


def _correlated(rng, n: int, rho: float) -> pd.DataFrame:
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)})


def test_mmd_statistic_matches_the_kernel_formula():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(40, 3)), rng.normal(0.5, 1.0, size=(30, 3))
    k = rbf_kernel(np.vstack([x, y]), gamma=0.3)
    kxx, kyy, kxy = k[:40, :40], k[40:, 40:], k[:40, 40:]
    expected = (kxx.sum() - 40) / (40 * 39) + (kyy.sum() - 30) / (30 * 29) - 2 * kxy.mean()
    assert mmd_unbiased(k, np.arange(70) >= 40) == pytest.approx(expected, rel=1e-12)


def test_multivariate_checks_see_a_broken_correlation_that_margins_hide():
    rng = np.random.default_rng(8)
    ref, same = _correlated(rng, 600, 0.9), _correlated(rng, 400, 0.9)
    broken = _correlated(rng, 400, 0.0)
    margins = check_drift(*_profiles(ref, broken))
    assert not any(r.alarm for r in margins), "each column alone did not move"
    found = {}
    for check in (domain_classifier, mmd, pca_reconstruction):
        assert not check(ref, same).alarm, check.__name__
        found[check.__name__] = check(ref, broken)
        assert found[check.__name__].alarm, check.__name__
    auc = found["domain_classifier"]
    assert auc.detail["auc_low"] > 0.55 and auc.statistic <= auc.detail["auc_high"]


def test_linear_time_mmd_for_large_samples_and_tiny_inputs():
    rng = np.random.default_rng(9)
    ref, cur = _correlated(rng, 3000, 0.9), _correlated(rng, 3000, 0.0)
    r = mmd(ref, cur, max_rows=500)
    assert r.detail["variant"] == "linear" and r.alarm
    assert not mmd(ref, _correlated(rng, 3000, 0.9), max_rows=500).alarm
    assert mmd(ref, cur.head(5)).status == "insufficient"
