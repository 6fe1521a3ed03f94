"""The fast profile path: blocked binning and moments, threads over columns, streamed Parquet."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from retrainer.data.io import iter_parquet
from retrainer.data.schema import Schema
from retrainer.errors import DataError
from retrainer.profile import BatchProfile, histogram, profile_column, quantile_edges
from retrainer.profile.column import BLOCK, LOOKUP_MIN


def _binary_search(values, edges):
    index = np.searchsorted(edges[:-1], values, side="right") + (values > edges[-1])
    size = edges.size + 1
    return np.bincount(index, minlength=size), np.bincount(index, weights=values, minlength=size)


def _edges_and_values(seed):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-9, 10)
    base = rng.standard_t(3, size=20_000) * scale + rng.normal() * scale * 100
    edges = quantile_edges(np.round(base, 2) if seed % 3 == 0 else base, int(rng.integers(3, 120)))
    if seed % 4 == 0:  # edges closer together than one cell of the lookup grid
        edges = np.unique(np.r_[edges, edges[2] + np.spacing(edges[2]) * np.arange(1, 5)])
    values = np.r_[
        rng.choice(base, 3 * BLOCK + 17) * rng.uniform(0.5, 2.0),
        np.repeat(edges, 3),
        np.nextafter(edges, np.inf),
        np.nextafter(edges, -np.inf),
        [-1e300, 1e300, edges[0] - scale, edges[-1] + scale],
    ]
    return edges, rng.permutation(values)


@pytest.mark.parametrize("seed", range(12))
def test_blocked_histograms_equal_the_binary_search_on_adversarial_edges(seed):
    edges, values = _edges_and_values(seed)
    counts, sums = _binary_search(values, edges)
    profile = profile_column(pd.Series(values), _spec("x"), edges=edges)
    assert values.size > LOOKUP_MIN and histogram(values, edges).tolist() == counts.tolist()
    assert list(profile.hist) == counts.tolist()
    np.testing.assert_allclose(profile.sums, sums, rtol=1e-9, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=40, unique=True),
    st.integers(0, 2**32 - 1),
)
@example(edges=[0.0, 1.0, 2.225073858507e-311, -1.0], seed=0)  # subnormal cells: found in CI
def test_any_sorted_edges_bin_like_the_binary_search(edges, seed):
    edges = np.sort(np.asarray(edges))
    rng = np.random.default_rng(seed)
    values = np.r_[rng.uniform(edges[0] - 1, edges[-1] + 1, LOOKUP_MIN + 100), edges]
    assert histogram(values, edges).tolist() == _binary_search(values, edges)[0].tolist()


def _spec(name):
    return Schema.infer(pd.DataFrame({name: [0.0, 1.0]})).columns[0]


@pytest.mark.parametrize("size", [5, BLOCK - 1, 3 * BLOCK + 5])
def test_blocked_moments_equal_scipy(size):
    rng = np.random.default_rng(size)
    values = rng.lognormal(3.0, 1.0, size)
    p = profile_column(pd.Series(values), _spec("x"))
    assert p.mean == pytest.approx(values.mean(), rel=1e-12)
    for order, got in ((2, p.m2), (3, p.m3), (4, p.m4)):
        assert got == pytest.approx(stats.moment(values, order) * size, rel=1e-9)
    assert p.skewness == pytest.approx(stats.skew(values), rel=1e-9)
    assert p.kurtosis == pytest.approx(stats.kurtosis(values), rel=1e-9)


def _frame(rows, seed=0):
    rng = np.random.default_rng(seed)
    data = {f"n{i}": rng.normal(i, 1.0, rows) for i in range(6)}
    data["n1"][rng.random(rows) < 0.05] = np.nan
    data["n2"][:3] = [np.inf, -np.inf, np.nan]
    data["c0"] = rng.choice(["a", "b", "c", None], rows)
    data["c1"] = pd.array(rng.choice([f"k{i}" for i in range(40)], rows), dtype="str")
    return pd.DataFrame(data)


def test_threads_over_columns_give_the_same_profile_as_one_thread():
    frame = _frame(120_000)
    frame.insert(3, "o", frame["c1"].astype(object))  # started first by the threads
    schema = Schema.infer(frame)
    edges = BatchProfile.from_frame(frame.head(5000), schema).edges()
    one = BatchProfile.from_frame(frame, schema, edges=edges, workers=1)
    four = BatchProfile.from_frame(frame, schema, edges=edges, workers=4)
    assert frame["o"].dtype == object and list(four.columns) == list(frame.columns)
    assert one.to_dict() == four.to_dict()
    assert four.columns["o"].categories == four.columns["c1"].categories


def test_a_parquet_file_streamed_in_chunks_profiles_like_the_whole_frame(tmp_path):
    frame = _frame(30_000, seed=1)
    schema = Schema.infer(frame)
    edges = BatchProfile.from_frame(frame.head(3000), schema).edges()
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=7000)
    sizes = [len(part) for part in iter_parquet(path, batch_rows=4000)]
    assert sum(sizes) == 30_000 and max(sizes) <= 4000
    whole = BatchProfile.from_frame(frame, schema, edges=edges)
    streamed = BatchProfile.from_chunks(iter_parquet(path, batch_rows=4000), schema, edges=edges)
    assert streamed.n_rows == whole.n_rows
    for name, col in whole.columns.items():
        got = streamed.columns[name]
        assert (got.count, got.nulls, got.non_finite) == (col.count, col.nulls, col.non_finite)
        assert got.hist == col.hist and got.categories == col.categories
        if col.mean is not None:
            assert got.mean == pytest.approx(col.mean, rel=1e-12)
            assert got.m2 == pytest.approx(col.m2, rel=1e-9)


def test_streaming_refuses_a_file_that_is_not_parquet_and_an_empty_input(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="x.parquet"):
        list(iter_parquet(bad))
    schema = Schema.infer(_frame(10))
    with pytest.raises(DataError, match="no chunks"):
        BatchProfile.from_chunks(iter([]), schema, edges={})


def _pandas_text_counts(series):
    """``text_counts`` as pandas alone counts (the path without the C extension)."""
    from retrainer.data.schema import as_text

    raw = series.value_counts(sort=False, dropna=True)
    counts = raw.groupby(as_text(raw.index.to_series(index=range(len(raw)))).to_numpy()).sum()
    return counts.sort_values(ascending=False, kind="stable").astype("int64")


@pytest.mark.parametrize(
    "values",
    [
        ["b", None, "a", "b", np.nan, "", "", "é", "中", "😀", "中", "ab" * 300, "ab" * 300],
        [f"k{i % 3001}" for i in range(20_000)],  # the table grows past its first 1024 slots
        ["a", 1, "1", None],  # not only strings: pandas counts
        [None, np.nan],
        [],
    ],
)
def test_object_strings_are_counted_as_pandas_counts_them(values):
    from retrainer.profile.column import text_counts

    series = pd.Series(values, dtype=object)
    got = text_counts(series)
    expected = _pandas_text_counts(series)
    assert got.to_dict() == expected.to_dict()
    assert int(got.sum()) == sum(v is not None and v == v for v in values)


def test_object_strings_counted_beside_a_changing_frame_stay_exact():
    """Counting releases the GIL: another thread building strings meanwhile changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from retrainer.profile import column
    from retrainer.profile.column import text_counts

    rng = np.random.default_rng(5)
    series = pd.Series(rng.choice([f"v{i}" for i in range(50)], 200_000)).astype(object)
    expected = _pandas_text_counts(series).to_dict()
    assert column._strings is None or column._string_counts(series) is not None  # the C path
    with ThreadPoolExecutor(2) as pool:
        noise = pool.submit(lambda: [str(i) * 3 for i in range(300_000)])
        counted = [pool.submit(text_counts, series) for _ in range(3)]
        assert all(c.result().to_dict() == expected for c in counted)
        assert len(noise.result()) == 300_000
