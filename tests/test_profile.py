"""Column and batch profiles: counts and moments against NumPy, exact merges, JSON round trips."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrainer.checks import check_drift, check_quality
from retrainer.data.schema import ColumnSpec, Schema
from retrainer.profile import BatchProfile, histogram, profile_column, quantile_edges
from retrainer.profile.column import OTHER
from tests import SHARED_DATA

ELEC2 = f"{SHARED_DATA}/elec2.csv"


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return pd.read_csv(ELEC2, nrows=6000)


def _messy(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    x[rng.random(n) < 0.01] = -np.inf
    c = rng.choice(["a", "b", "c", None], size=n, p=[0.5, 0.3, 0.15, 0.05])
    t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**6, n), "s")
    return pd.DataFrame({"x": x, "c": c, "t": t})


def test_numeric_counts_and_moments_match_numpy():
    df = _messy(1)
    x = df["x"].to_numpy()
    finite = x[np.isfinite(x)]
    p = BatchProfile.from_frame(df, Schema.infer(df)).columns["x"]
    assert p.count == len(x)
    assert p.nulls == np.isnan(x).sum()
    assert p.non_finite == np.isinf(x).sum()
    assert p.values == finite.size
    assert p.min == finite.min() and p.max == finite.max()
    assert p.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert p.variance == pytest.approx(finite.var(), rel=1e-12)
    assert sum(p.hist) == finite.size
    assert p.hist[0] == 0 and p.hist[-1] == 0, "a reference has nothing outside its own range"


def test_histogram_matches_numpy_inside_and_counts_outside():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=5000)
    edges = quantile_edges(ref, 16)
    cur = rng.normal(1.0, 2.0, size=4000)
    counts = histogram(cur, edges)
    inner, _ = np.histogram(cur, bins=edges)
    assert counts[1:-1].tolist() == inner.tolist()
    assert counts[0] == (cur < edges[0]).sum() and counts[-1] == (cur > edges[-1]).sum()


@pytest.mark.parametrize("cut", [0, 1, 1234, 2999])
def test_merge_equals_profile_of_concatenation(cut):
    df = _messy(3)
    schema = Schema.infer(df)
    reference = BatchProfile.from_frame(_messy(4), schema)
    edges = reference.edges()
    a = BatchProfile.from_frame(df.iloc[:cut], schema, edges=edges)
    b = BatchProfile.from_frame(df.iloc[cut:], schema, edges=edges)
    whole = BatchProfile.from_frame(df, schema, edges=edges)
    merged = a.merge(b)
    assert merged.n_rows == whole.n_rows
    for name, w in whole.columns.items():
        m = merged.columns[name]
        exact = ("count", "nulls", "non_finite", "invalid", "hist", "edges", "categories")
        for field in exact + ("min", "max"):
            assert getattr(m, field) == getattr(w, field), (name, field)
        if w.mean is not None:
            assert m.mean == pytest.approx(w.mean, rel=1e-9)
            assert m.m2 == pytest.approx(w.m2, rel=1e-9)


def test_merge_of_profiles_on_other_edges_is_refused():
    df = _messy(5)
    schema = Schema.infer(df)
    a = BatchProfile.from_frame(df.iloc[:100], schema)
    b = BatchProfile.from_frame(df.iloc[100:], schema)
    with pytest.raises(ValueError, match="column 'x'.*edges=reference.edges"):
        a.merge(b)


def test_round_trip_through_json_without_nan(elec2):
    df = _messy(6).assign(empty=np.nan)
    schema = Schema.infer(df)
    for profile in (
        BatchProfile.from_frame(df, schema),
        BatchProfile.from_frame(df.head(0), schema),
        BatchProfile.from_frame(df.drop(columns=["c"]).assign(more=1), schema),
    ):
        text = json.dumps(profile.to_dict(), allow_nan=False)
        assert BatchProfile.from_dict(json.loads(text)) == profile
    elec = BatchProfile.from_frame(elec2, Schema.infer(elec2))
    assert BatchProfile.from_dict(json.loads(json.dumps(elec.to_dict()))) == elec


def test_constant_one_row_empty_and_all_nan_columns():
    spec = ColumnSpec("x", "numeric", True)
    constant = profile_column(pd.Series([0.003467] * 10), spec)
    assert constant.edges == (0.003467, 0.003467)
    assert constant.hist == (0, 10, 0) and constant.variance == 0.0
    later = profile_column(pd.Series([0.001, 0.003467, 0.5]), spec, edges=np.array(constant.edges))
    assert later.hist == (1, 1, 1)
    one = profile_column(pd.Series([2.0]), spec)
    assert (one.values, one.mean, one.variance, one.hist) == (1, 2.0, 0.0, (0, 1, 0))
    empty = profile_column(pd.Series([], dtype=float), spec)
    assert (empty.count, empty.mean, empty.edges, empty.hist) == (0, None, (), ())
    nan = profile_column(pd.Series([np.nan, None, np.inf]), spec, edges=np.array([0.0, 1.0]))
    assert (nan.nulls, nan.non_finite, nan.values, nan.hist) == (2, 1, 0, (0, 0, 0))
    assert empty.merge(one) == one.merge(empty)


def test_missing_column_and_bad_values_are_recorded_not_raised(elec2):
    schema = Schema.infer(elec2)
    batch = elec2.head(50).drop(columns=["feat_3"]).astype({"feat_2": object})
    batch.loc[17, "feat_2"] = "abc"
    profile = BatchProfile.from_frame(batch, schema)
    assert profile.columns["feat_3"].missing and profile.columns["feat_3"].count == 0
    price = profile.columns["feat_2"]
    assert (price.invalid, price.invalid_example, price.values, price.nulls) == (1, "abc", 49, 0)


def test_categorical_counts_cap_and_extra_columns():
    df = pd.DataFrame({"c": [f"v{i % 7}" for i in range(70)] + ["rare"], "n": range(71)})
    schema = Schema((ColumnSpec("c", "categorical", False),), ignored=("n",))
    full = BatchProfile.from_frame(df, schema)
    assert full.columns["c"].categories["v0"] == 10 and full.extra == {}
    capped = BatchProfile.from_frame(df, schema, top_k=3).columns["c"]
    assert capped.categories == {"v0": 10, "v1": 10, "v2": 10, OTHER: 41}
    assert capped.distinct == 8
    extra = BatchProfile.from_frame(df, Schema(())).extra
    assert set(extra) == {"c", "n"} and extra["n"].mean == 35.0 and extra["n"].hist is None


def test_datetime_profiles_agree_across_zones():
    instants = pd.to_datetime(["2021-03-01 10:00", "2021-03-02 10:00"], utc=True)
    spec = ColumnSpec("at", "datetime", False)
    utc = profile_column(pd.Series(instants), spec)
    plus2 = profile_column(pd.Series(instants.tz_convert("Etc/GMT-2")), spec)
    text = profile_column(pd.Series(["2021-03-01T12:00+02:00", "2021-03-02T12:00+02:00"]), spec)
    assert utc == plus2 == text
    assert utc.min == instants[0].timestamp()


cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=5),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ref=st.lists(st.tuples(cells, cells), max_size=40),
    cur=st.lists(st.tuples(cells, cells, cells), max_size=40),
)
def test_bad_batches_never_crash_profiles_or_checks(ref, cur):
    reference_frame = pd.DataFrame(ref, columns=["a", "b"], dtype=object).infer_objects()
    batch = pd.DataFrame(cur, columns=["a", "b2", "c"], dtype=object)
    schema = Schema.infer(reference_frame)
    reference = BatchProfile.from_frame(reference_frame, schema)
    current = BatchProfile.from_frame(batch, schema, edges=reference.edges())
    json.dumps(current.to_dict(), allow_nan=False)
    results = check_quality(reference, current, schema) + check_drift(
        reference, current, min_rows=1
    )
    assert all(r.column is not None for r in results)
    json.dumps([r.to_dict() for r in results], allow_nan=False)
    schema.validate(batch)


@pytest.mark.parametrize("seed", range(3))
def test_large_histograms_through_the_lookup_table_equal_the_binary_search(seed):
    rng = np.random.default_rng(seed)
    ref = np.round(rng.lognormal(size=20_000), seed)
    edges = quantile_edges(ref, 32)
    values = np.r_[rng.lognormal(0.3, 1.2, size=50_000), np.repeat(edges, 100), -1.0, 1e9]
    index = np.searchsorted(edges[:-1], values, side="right") + (values > edges[-1])
    expected = np.bincount(index, minlength=edges.size + 1)
    assert histogram(values, edges).tolist() == expected.tolist()


@pytest.mark.parametrize("dtype", [object, "category", "str", "string[pyarrow]", "string[python]"])
def test_category_counts_do_not_depend_on_the_string_dtype(dtype):
    """Counting first and turning only distinct values into text gives the counts of the old
    per-row text path (``as_text`` on every value), whatever the string dtype."""
    from retrainer.data.schema import as_text

    rng = np.random.default_rng(3)
    values = rng.choice(["a", "b", "é", "long value " * 3, "z"], 5000).astype(object)
    values[rng.random(5000) < 0.1] = None
    series = pd.Series(values).astype(dtype)
    spec = ColumnSpec("c", "categorical", True)
    got = profile_column(series, spec, top_k=3)
    per_row = as_text(pd.Series(values).dropna()).value_counts()
    assert got.nulls == int(pd.isna(values).sum())
    assert got.distinct == per_row.size
    top = per_row.sort_values(ascending=False)
    assert got.categories["__other__"] == int(top.iloc[3:].sum())
    assert {k: v for k, v in got.categories.items() if k != "__other__"} == top.iloc[:3].to_dict()


def test_category_counts_merge_values_with_the_same_text():
    series = pd.Series([1, "1", 2.0, b"2", None, "x"], dtype=object)
    got = profile_column(series, ColumnSpec("c", "categorical", True))
    assert got.categories == {"1": 2, "2.0": 1, "2": 1, "x": 1}  # as_text: 1 and "1" are one
    assert (got.nulls, got.distinct) == (1, 4)
