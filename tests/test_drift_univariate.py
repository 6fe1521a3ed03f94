"""Each univariate drift test against SciPy or its published formula, the automatic choice, the
approximation error of profile-based tests against exact tests on raw rows, and the registry."""

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from retrainer.checks.multiple import adjust
from retrainer.checks.univariate import (
    TESTS,
    DriftTest,
    Pair,
    anderson_darling_from_counts,
    binned_distance,
    chi_square_table,
    choose_test,
    cramer_von_mises_from_counts,
    energy_from_counts,
    fisher_exact_2x2,
    hellinger,
    kl_divergence,
    ks_from_histograms,
    l_infinity,
    pool_sparse,
    quasi_p,
    register_test,
    smallest_p,
    total_variation,
    wasserstein_from_counts,
    z_test_proportions,
)
from retrainer.data.schema import Schema
from retrainer.profile import BatchProfile


def _untied_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bin per distinct value: counts of each sample and the sorted values."""
    values = np.unique(np.r_[a, b])
    return (
        np.searchsorted(np.sort(a), values, "right") - np.searchsorted(np.sort(a), values, "left"),
        np.searchsorted(np.sort(b), values, "right") - np.searchsorted(np.sort(b), values, "left"),
        values,
    )


@pytest.mark.parametrize("seed", range(4))
def test_cramer_von_mises_equals_scipy_on_one_value_per_bin(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=300), rng.normal(0.15 * seed, 1.0, size=200)
    x, y, _ = _untied_counts(a, b)
    t, p = cramer_von_mises_from_counts(x, y)
    exact = stats.cramervonmises_2samp(a, b, method="asymptotic")
    assert t == pytest.approx(exact.statistic, rel=1e-10)
    assert p == pytest.approx(exact.pvalue, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_anderson_darling_equals_scipy_on_tied_data(seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=400) * 2)
    b = np.round(rng.normal(0.1 * seed, 1.0, size=250) * 2)
    x, y, _ = _untied_counts(a, b)
    stat, p = anderson_darling_from_counts(x, y)
    with warnings.catch_warnings():  # SciPy warns when it clips p to 0.001..0.25
        warnings.simplefilter("ignore", UserWarning)
        exact = stats.anderson_ksamp([a, b], variant="midrank")
    assert stat == pytest.approx(exact.statistic, rel=1e-10)
    assert p == pytest.approx(exact.pvalue, rel=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_and_energy_equal_scipy_with_bin_sums(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.exponential(size=200), rng.exponential(1.0 + 0.2 * seed, size=150)
    x, y, values = _untied_counts(a, b)
    bounds = np.r_[values, values[-1] + 1.0]
    pair = Pair.numeric(x, y, bounds, ref_sums=x * values, cur_sums=y * values)
    assert binned_distance(pair) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-10)
    assert binned_distance(pair, "energy") == pytest.approx(stats.energy_distance(a, b), rel=1e-10)


def test_uniform_bin_distances_follow_the_closed_form():
    # Two uniform blocks [0, 1] and [1, 2]: W1 = 1 and int (F - G)^2 = 2/3.
    assert wasserstein_from_counts([5, 0], [0, 5], [0.0, 1.0, 2.0]) == pytest.approx(1.0)
    assert energy_from_counts([5, 0], [0, 5], [0.0, 1.0, 2.0]) == pytest.approx(np.sqrt(4 / 3))
    u = stats.uniform.rvs(size=200_000, random_state=1)
    ref_counts, cur_counts = [200_000, 0], [0, 200_000]
    w = stats.wasserstein_distance(u, u + 1.0)
    assert wasserstein_from_counts(ref_counts, cur_counts, [0.0, 1.0, 2.0]) == pytest.approx(w)


@pytest.mark.parametrize("seed", range(3))
def test_category_distances_match_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, 60, 12).astype(float), rng.integers(1, 60, 12).astype(float)
    p, q = a / a.sum(), b / b.sum()
    assert kl_divergence(a, b) == pytest.approx(stats.entropy(q, p), rel=1e-12)
    assert total_variation(a, b) == pytest.approx(distance.cityblock(p, q) / 2, rel=1e-12)
    assert l_infinity(a, b) == pytest.approx(distance.chebyshev(p, q), rel=1e-12)
    expected = distance.euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2)
    assert hellinger(a, b) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_chi_square_and_g_test_match_scipy(seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 80, size=(2, 7))
    table[:, 2] = 0
    live = table[:, table.sum(axis=0) > 0]
    for g in (False, True):
        stat, p = chi_square_table(table, g_test=g)
        kw = {"lambda_": "log-likelihood"} if g else {}
        ref = stats.chi2_contingency(live, correction=False, **kw)
        assert stat == pytest.approx(ref.statistic, rel=1e-10)
        assert p == pytest.approx(ref.pvalue, rel=1e-8)


def test_z_test_is_the_square_root_of_the_2x2_chi_square():
    z, p = z_test_proportions(40, 100, 58, 120)
    chi2 = stats.chi2_contingency([[40, 60], [58, 62]], correction=False)
    assert z**2 == pytest.approx(chi2.statistic, rel=1e-12)
    assert p == pytest.approx(chi2.pvalue, rel=1e-10)
    assert z > 0, "the batch share is higher"


@pytest.mark.parametrize("table", [[[8, 2], [1, 5]], [[3, 0], [0, 3]], [[10, 10], [9, 11]]])
def test_fisher_exact_matches_scipy(table):
    assert fisher_exact_2x2(table) == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-9)


def test_benjamini_hochberg_and_bonferroni_match_scipy():
    p = np.random.default_rng(0).uniform(size=30) ** 3
    assert adjust(p, "bh") == pytest.approx(stats.false_discovery_control(p), rel=1e-12)
    assert adjust(p, "bonferroni") == pytest.approx(np.minimum(p * 30, 1), rel=1e-12)
    assert adjust(p, "none") == pytest.approx(p)
    with pytest.raises(ValueError, match="correction"):
        adjust(p, "holm")


def test_every_registered_test_runs_on_its_kinds():
    rng = np.random.default_rng(0)
    edges = np.linspace(-3, 3, 9)
    num = Pair.numeric(
        np.histogram(rng.normal(size=500), np.r_[-np.inf, edges, np.inf])[0],
        np.histogram(rng.normal(0.5, 1, 400), np.r_[-np.inf, edges, np.inf])[0],
        np.r_[-5, edges, 5],
        ref_std=1.0,
    )
    cat = Pair.categorical({"a": 30, "b": 20}, {"a": 10, "b": 40})
    for name, test in TESTS.items():
        for pair in (num, cat):
            if pair.kind in test.kinds:
                stat, p = test.run(pair)
                assert np.isfinite(stat), name
                assert (p is None) == test.is_distance, name
    with pytest.raises(ValueError, match="does not apply"):
        TESTS["ks"].run(cat)


def test_users_register_their_own_test():
    def mean_gap(pair):
        return abs(pair.cur.argmax() - pair.ref.argmax()), None

    test = DriftTest("mode_gap", ("numeric",), mean_gap, threshold=1.0)
    register_test(test)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_test(test)
        ref = pd.DataFrame({"x": np.random.default_rng(0).normal(size=3000)})
        schema = Schema.infer(ref)
        reference = BatchProfile.from_frame(ref, schema)
        batch = BatchProfile.from_frame(ref + 2, schema, edges=reference.edges())
        from retrainer.checks.drift import check_drift

        verdict = check_drift(reference, batch, method="mode_gap")[0]
        assert verdict.name == "mode_gap" and verdict.alarm
        assert verdict.detail["reason"] == "configured (mode_gap)"
    finally:
        del TESTS["mode_gap"]


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        ({"a": 500, "b": 500}, {"a": 300, "b": 200}, "z"),
        ({"a": 500, "b": 2}, {"a": 40, "b": 0}, "fisher"),
        ({"a": 500, "b": 500, "c": 5}, {"a": 300, "b": 200}, "chi2"),
        ({"a": 5000, "b": 5000}, {"a": 3000, "b": 2000}, "jensen_shannon"),
    ],
)
def test_automatic_choice_by_kind_cardinality_and_size(ref, cur, expected):
    name, reason = choose_test(Pair.categorical(ref, cur))
    assert name == expected and reason
    small = Pair.numeric([10, 10], [10, 10], [0, 1, 2])
    big = Pair.numeric([2000, 2000], [1500, 1500], [0, 1, 2])
    assert choose_test(small)[0] == "ks" and "p-value" in choose_test(small)[1]
    assert choose_test(big)[0] == "wasserstein" and "distance" in choose_test(big)[1]


def _profiles(ref: np.ndarray, cur: np.ndarray, bins: int = 32):
    schema = Schema.infer(pd.DataFrame({"x": ref}))
    reference = BatchProfile.from_frame(pd.DataFrame({"x": ref}), schema, bins=bins)
    current = BatchProfile.from_frame(pd.DataFrame({"x": cur}), schema, edges=reference.edges())
    return reference, current


# Measured worst cases over normal, lognormal and uniform data, 20k reference / 5k batch rows,
# 32 quantile bins, shifts 0 / 0.1 / 0.5 sd (documented in the module doc of univariate.py):
# KS D 0.0035 below the exact D, CvM T within 0.012 (no shift) and 3 % (shifted),
# Wasserstein and energy within 0.015 sd (no shift) and 5 % (skewed data shifted by 0.5 sd).
@pytest.mark.parametrize("dist", ["normal", "lognormal"])
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_profile_tests_approximate_the_exact_tests_on_raw_rows(dist, shift):
    from retrainer.checks.drift import _pair

    rng = np.random.default_rng(11)
    draw = rng.normal if dist == "normal" else rng.lognormal
    ref = draw(size=20_000)
    cur = draw(size=5_000) + shift * ref.std()
    reference, current = _profiles(ref, cur)
    r, c = reference.columns["x"], current.columns["x"]
    approx = _pair("x", r, c, None, None, 0)
    exact = _pair("x", r, c, pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), 10**9)
    assert exact.exact and not approx.exact
    numeric = [name for name, test in TESTS.items() if "numeric" in test.kinds]
    stat = {name: (TESTS[name].run(approx), TESTS[name].run(exact)) for name in numeric}
    (d, p), (d_exact, p_exact) = stat["ks"]
    assert 0 <= d_exact - d <= max(r.hist) / r.values + max(c.hist) / c.values
    (t, pt), (t_exact, _) = stat["cramer_von_mises"]
    assert abs(t - t_exact) <= 0.03 + 0.05 * t_exact
    for name in ("wasserstein", "energy"):
        (w, _), (w_exact, _) = stat[name]
        assert abs(w - w_exact) <= 0.015 + 0.05 * w_exact, name
    # The verdicts at 5 % agree with the exact tests.
    assert (p < 0.05) == (p_exact < 0.05)
    assert (pt < 0.05) == (stats.cramervonmises_2samp(ref, cur).pvalue < 0.05)


def test_chi_square_keeps_its_level_at_small_batches_with_rare_categories():
    """12 categories with geometric shares (the rarest 0.1 %), a 4,000-row reference, batches
    of 30 and 90 rows from the same distribution: without pooling, one rare category seen once
    adds ~30 to chi-square and the test alarms in 12 % of unchanged batches at alpha 0.05."""
    rng = np.random.default_rng(1)
    shares = 0.6 ** np.arange(12)
    shares /= shares.sum()
    labels = [f"c{i}" for i in range(12)]
    for rows in (30, 90):
        alarms = {"chi2": 0, "g_test": 0}
        for _ in range(1000):
            ref = dict(zip(labels, rng.multinomial(4000, shares), strict=True))
            cur = dict(zip(labels, rng.multinomial(rows, shares), strict=True))
            pair = Pair.categorical(ref, cur)
            for name in alarms:
                alarms[name] += TESTS[name].run(pair)[1] < 0.05
        assert alarms["chi2"] <= 70 and alarms["g_test"] <= 75, (rows, alarms)


def test_pooled_chi_square_agrees_with_scipy_on_the_pooled_table():
    table = np.array([[400, 300, 200, 6, 3, 1], [40, 30, 20, 2, 1, 1]])
    pooled = pool_sparse(table)
    assert pooled.shape == (2, 4) and pooled.sum() == table.sum()
    expected = stats.chi2_contingency(pooled, correction=False)
    pair = Pair.categorical(
        dict(zip("abcdef", table[0], strict=True)), dict(zip("abcdef", table[1], strict=True))
    )
    stat, p = TESTS["chi2"].run(pair)
    assert stat == pytest.approx(expected.statistic)
    # a cell still expects under 5 rows: the p-value is simulated (the asymptotic one is 0.103)
    assert p == pytest.approx(expected.pvalue, abs=0.01) and p != pytest.approx(expected.pvalue)


def _g_of(a, b, k):
    table = np.stack([np.bincount(a, minlength=k), np.bincount(b, minlength=k)])
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")[0]


@pytest.mark.parametrize("g_test", [False, True], ids=["chi2", "g_test"])
def test_a_sparse_tables_p_value_is_scipys_permutation_p_value(g_test):
    """SciPy's permutation test of the same table (both margins fixed) is the reference;
    the asymptotic p-value of such a table is up to 40 times too small."""
    from retrainer.checks.univariate import simulated_p_value

    rng = np.random.default_rng(4)
    for cur in ([10, 8, 4, 0, 6], [12, 8, 6, 1, 3], [3, 2, 20, 2, 3]):
        table = np.array([[400, 300, 200, 60, 30], cur])
        ours = simulated_p_value(table, g_test=g_test)
        if g_test:  # SciPy permutes G itself only through permutation_test, on the rows
            rows = [np.repeat(np.arange(table.shape[1]), counts) for counts in table]

            scipy = stats.permutation_test(
                rows,
                functools.partial(_g_of, k=table.shape[1]),
                n_resamples=4_000,
                alternative="greater",
                rng=rng,
            )
        else:
            method = stats.PermutationMethod(n_resamples=20_000, rng=rng)
            scipy = stats.chi2_contingency(table, correction=False, method=method)
        resamples = 4_000 if g_test else 20_000  # each side's Monte Carlo error counts
        noise = np.sqrt(scipy.pvalue * (1 / 10_000 + 1 / resamples))
        assert ours == pytest.approx(scipy.pvalue, abs=4 * noise + 3e-4)
        assert ours == simulated_p_value(table, g_test=g_test)  # the same table, the same p
    assert simulated_p_value(np.array([[400, 300], [40, 30]])) is None  # no sparse cell
    assert simulated_p_value(np.array([[400, 300, 3.5], [40, 30, 0.5]])) is None  # deflated


@pytest.mark.parametrize("n, m", [(4, 1), (3, 2), (6, 3)])
def test_ks_on_tiny_samples_is_never_below_what_an_exact_test_can_give(n, m):
    """Rows counted as a fraction of a row (a column with one value a batch, a batch counted as
    one row) make tiny samples, where the asymptotic KS p-value of wholly separated samples was
    0 (``kstwo`` with ``en = 1``). It is floored at the smallest p-value of SciPy's exact test,
    which wholly separated samples reach."""
    exact = stats.ks_2samp(np.arange(n, dtype=float), 100.0 + np.arange(m), method="exact")
    assert smallest_p(n, m) == pytest.approx(exact.pvalue)
    d, p = ks_from_histograms([n, 0], [0, m])
    assert d == 1.0 and p == pytest.approx(exact.pvalue)


def test_an_estimated_dispersion_reads_p_from_the_f_tail_of_the_statistic_per_df():
    """Quasi-likelihood: chi-square (or G, or z squared) over its k - 1 degrees of freedom
    against F(k - 1, df) of the dispersion's estimate (SciPy's chi-square of the table and F);
    larger than chi-square's p, and chi-square's in the limit of a known dispersion."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        k = int(rng.integers(2, 6))
        table = rng.integers(5, 60, size=(2, k)).astype(float)
        pair = Pair.categorical(
            {str(i): table[0, i] for i in range(k)}, {str(i): table[1, i] for i in range(k)}
        )
        chi2 = stats.chi2_contingency(table, correction=False)
        df = int(rng.integers(1, 40))
        expected = stats.f.sf(chi2.statistic / (k - 1), k - 1, df)
        for test in ("chi2", "g_test"):
            statistic, p = TESTS[test].run(pair)
            if test == "chi2":
                assert quasi_p(test, pair, statistic, p, df) == pytest.approx(expected)
            assert quasi_p(test, pair, statistic, p, df) >= p
            assert quasi_p(test, pair, statistic, p, 10**7) == pytest.approx(p, rel=1e-3)
        if k == 2:
            z, p = TESTS["z"].run(pair)
            assert quasi_p("z", pair, z, p, df) == pytest.approx(expected)
    assert quasi_p("fisher", pair, 0.0, 0.3, 5) == 0.3  # an exact test keeps its p
    assert quasi_p("chi2", pair, statistic, 0.3, 0) == 0.3  # a known dispersion too


def test_only_a_test_that_reads_the_f_tail_says_so():
    """A rare binary category goes to Fisher's exact test, which keeps its own p under an
    estimated dispersion; its verdict does not claim an F tail. Chi-square's does."""
    from retrainer.checks.drift import check_drift

    spread = {"dispersion": {"card": 3.0}, "dispersion_df": {"card": 9}}
    for rare, test in ((5, "fisher"), (100, "z")):
        ref = pd.DataFrame({"card": ["yes"] * (400 - rare) + ["no"] * rare})
        schema = Schema.infer(ref)
        reference = BatchProfile.from_frame(ref, schema)
        batch = pd.DataFrame({"card": ["yes"] * 29 + ["no"]})
        current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
        result = check_drift(reference, current, **spread)[0]
        assert result.detail["test"] == test
        said = "dispersion_df" in result.detail and "F tail" in result.message
        assert said is (test == "z"), result.message
