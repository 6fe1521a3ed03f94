"""Partitioned profiles and checks on a Dask LocalCluster equal the single-process ones (ELEC2)."""

import glob
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from retrainer.checks.drift import check_drift
from retrainer.checks.quality import check_quality
from retrainer.cli import main
from retrainer.compute import (
    check_large,
    check_partitioned,
    dask_client,
    iter_chunks,
    profile_partitioned,
    profile_streamed,
    quantile_edges_partitioned,
    read_frame,
)
from retrainer.compute.partitioned import SKETCH_POINTS
from retrainer.config import ComputeSettings
from retrainer.data.schema import Schema
from retrainer.errors import DataError
from retrainer.profile import BatchProfile
from retrainer.project import Project
from tests.conftest import project_settings, store_url

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

EXACT = (
    "count nulls invalid non_finite below_min above_max min max edges hist categories missing"
).split()


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _frame(elec: pd.DataFrame) -> pd.DataFrame:
    frame = elec.drop(columns=["target"]).copy()
    frame["weekday"] = frame["timestamp"].dt.day_name()
    frame["direction"] = np.where(elec["target"] == 1, "UP", "DOWN")
    frame.loc[frame.index % 97 == 0, "nswprice"] = np.nan
    frame.loc[frame.index % 1013 == 0, "vicprice"] = np.inf
    frame.loc[frame.index % 89 == 0, "weekday"] = None
    return frame


@pytest.fixture(scope="module")
def data(elec, tmp_path_factory):
    frame = _frame(elec)
    reference_rows = frame.iloc[:15_000]
    current = frame.iloc[15_000:].reset_index(drop=True)
    schema = Schema.infer(reference_rows)
    reference = BatchProfile.from_frame(reference_rows, schema)
    folder = tmp_path_factory.mktemp("parquet")
    for i, start in enumerate(range(0, len(current), 4_000)):
        current.iloc[start : start + 4_000].to_parquet(folder / f"part-{i:03d}.parquet")
    return schema, reference, current, folder


def _assert_same(partitioned: BatchProfile, single: BatchProfile) -> None:
    assert partitioned.n_rows == single.n_rows
    assert partitioned.columns.keys() == single.columns.keys()
    for name, one in single.columns.items():
        other = partitioned.columns[name]
        for attr in EXACT:
            assert getattr(other, attr) == getattr(one, attr), (name, attr)
        for attr, rel, abs_ in [
            ("mean", 1e-9, 1e-9),
            ("variance", 1e-9, 1e-9),
            ("skewness", 0, 1e-6),
            ("kurtosis", 0, 1e-6),
        ]:
            # (raw m3 and m4 of timestamps in ns are rounding noise: compare standardised ones)
            expected = getattr(one, attr)
            if expected is None:
                assert getattr(other, attr) is None, (name, attr)
            else:
                assert getattr(other, attr) == pytest.approx(expected, rel=rel, abs=abs_)
        if one.sums is not None:
            assert other.sums == pytest.approx(one.sums, rel=1e-9, abs=1e-6)


def test_profile_of_a_parquet_folder_equals_the_single_process_profile(client, data):
    schema, reference, current, folder = data
    single = BatchProfile.from_frame(pd.read_parquet(folder), schema, edges=reference.edges())
    partitioned = profile_partitioned(folder, schema, edges=reference.edges(), client=client)
    assert read_frame(folder).npartitions == len(list(folder.glob("*.parquet")))
    _assert_same(partitioned, single)
    # and against pandas directly, not only against the profiler
    assert partitioned.n_rows == len(current)
    assert partitioned.columns["nswprice"].nulls == int(current["nswprice"].isna().sum())
    assert partitioned.columns["vicprice"].non_finite == int(np.isinf(current["vicprice"]).sum())
    weekdays = current["weekday"].value_counts().to_dict()
    assert partitioned.columns["weekday"].categories == weekdays
    finite = current["nswdemand"].to_numpy()
    assert sum(partitioned.columns["nswdemand"].hist) == np.isfinite(finite).sum()


def test_a_glob_and_a_dask_frame_give_the_same_profile(client, data):
    schema, reference, current, folder = data
    single = BatchProfile.from_frame(current, schema, edges=reference.edges())
    frame = dd.from_pandas(current, npartitions=7)
    _assert_same(profile_partitioned(frame, schema, edges=reference.edges(), client=client), single)
    pattern = str(folder / "part-*.parquet")
    assert len(glob.glob(pattern)) == 8
    _assert_same(
        profile_partitioned(pattern, schema, edges=reference.edges(), client=client), single
    )


def test_checks_of_a_large_input_equal_the_single_process_checks(client, data):
    schema, reference, current, folder = data
    single = BatchProfile.from_frame(current, schema, edges=reference.edges())
    expected = [*check_quality(reference, single, schema), *check_drift(reference, single)]
    got = check_partitioned(folder, reference, schema, client=client)
    assert got.partitions == 8
    assert len(got.results) == len(expected) > 10
    assert any(r.alarm for r in expected)  # ELEC2 drifts: the comparison covers alarms too
    _assert_same_results(got.results, expected)


def _assert_same_results(results, expected) -> None:
    for mine, theirs in zip(results, expected, strict=True):
        a, b = mine.to_dict(), theirs.to_dict()
        for key in ("kind", "name", "column", "alarm", "severity", "status"):
            assert a[key] == b[key], (b["name"], b["column"], key)
        for key in ("statistic", "p_value", "threshold"):
            expected = b[key] if b[key] is None else pytest.approx(b[key], rel=1e-9, abs=1e-12)
            assert a[key] == expected, (b["column"], key)


def test_without_edges_the_quantile_edges_are_close_and_counts_exact(client, data):
    schema, _, current, folder = data
    edges = quantile_edges_partitioned(read_frame(folder), schema, bins=10, client=client)
    for name in ("nswprice", "nswdemand", "transfer", "vicprice"):
        values = np.sort(current[name].to_numpy(dtype="float64"))
        values = values[np.isfinite(values)]
        assert edges[name][[0, -1]].tolist() == [values[0], values[-1]]
        # the rank interval of each edge (ties!) is within 1 / SKETCH_POINTS of its target
        low = np.searchsorted(values, edges[name], "left") / values.size
        high = np.searchsorted(values, edges[name], "right") / values.size
        targets = np.linspace(0.0, 1.0, 11)
        assert len(edges[name]) == 11
        assert np.maximum(low - targets, targets - high).max() <= 1 / SKETCH_POINTS, name
    partitioned = profile_partitioned(folder, schema, bins=10, client=client)
    single = BatchProfile.from_frame(current, schema, edges=partitioned.edges())
    _assert_same(partitioned, single)


def test_the_default_local_cluster_and_clear_errors(data, tmp_path):
    schema, reference, current, folder = data
    with dask_client(workers=1) as local:
        assert len(local.scheduler_info()["workers"]) == 1
        profile = profile_partitioned(folder, schema, edges=reference.edges(), client=local)
    assert profile.n_rows == len(current)
    with pytest.raises(DataError, match="no file matches"):
        read_frame(tmp_path / "nothing-*.parquet")
    with pytest.raises(DataError, match="holds no .parquet files"):
        read_frame(tmp_path)


def test_the_local_backend_streams_row_groups_to_the_same_profile(data, tmp_path):
    schema, reference, current, folder = data
    single = BatchProfile.from_frame(current, schema, edges=reference.edges())
    one = tmp_path / "one.parquet"
    current.to_parquet(one, row_group_size=2_500)
    chunks = list(iter_chunks(one, chunk_rows=1_000))
    assert max(len(c) for c in chunks) == 1_000  # never the whole file at once
    assert sum(len(c) for c in chunks) == len(current)
    for source in (folder, str(folder / "part-*.parquet"), one, current):
        streamed, _ = profile_streamed(source, schema, edges=reference.edges(), chunk_rows=3_000)
        _assert_same(streamed, single)
    current.iloc[:10_000].to_csv(tmp_path / "a.csv", index=False)
    current.iloc[10_000:].to_csv(tmp_path / "b.csv", index=False)
    from_csv, n = profile_streamed(str(tmp_path / "*.csv"), schema, edges=reference.edges())
    assert n == 2 and from_csv.n_rows == len(current)
    assert from_csv.columns["weekday"].categories == single.columns["weekday"].categories
    assert from_csv.columns["nswprice"].hist == single.columns["nswprice"].hist


def test_streamed_quantile_edges_are_the_sketch_of_the_partitions(client, data):
    schema, _, current, folder = data
    streamed, chunks = profile_streamed(folder, schema, bins=10)
    assert chunks == 8
    on_dask = quantile_edges_partitioned(read_frame(folder), schema, bins=10, client=client)
    assert streamed.edges().keys() == on_dask.keys()
    for name, edges in on_dask.items():
        assert streamed.edges()[name].tolist() == edges.tolist(), name
    _assert_same(streamed, BatchProfile.from_frame(current, schema, edges=streamed.edges()))


def test_check_large_gives_the_same_checks_on_both_backends(client, data):
    schema, reference, current, folder = data
    local = check_large(folder, reference, schema, ComputeSettings())
    on_dask = check_partitioned(folder, reference, schema, client=client)
    assert local.partitions == on_dask.partitions == 8
    assert len(local.results) > 10 and local.alarms
    _assert_same_results(local.results, on_dask.results)
    in_memory = check_partitioned(current, reference, schema, client=client)
    assert in_memory.partitions == 1
    _assert_same_results(in_memory.results, on_dask.results)
    with pytest.raises(DataError, match="no file matches"):
        check_large(folder / "nothing-*.parquet", reference, schema, ComputeSettings())


def test_check_large_from_the_command_line(elec, tmp_path):
    settings = project_settings()
    settings["store"]["url"] = store_url(tmp_path)
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(tmp_path / "retrainer.yaml")
    project.ingest(elec.iloc[:1344], key="history")
    project.cycle()
    assert project.champion.reference
    big = tmp_path / "big"
    big.mkdir()
    for i in range(3):
        part = elec.iloc[20_000 + i * 3_000 : 23_000 + i * 3_000]
        part.drop(columns="target").to_parquet(big / f"{i}.parquet")
    args = ["-c", str(tmp_path / "retrainer.yaml"), "check-large", str(big), "--json"]
    outputs = []
    for extra in (["--workers", "1"], []):  # a LocalCluster, then compute: local (streamed)
        result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["rows"], data["partitions"]) == (9_000, 3)
        assert {a["column"] for a in data["alarms"]} & {"nswprice", "vicprice"}
        outputs.append(data)
    assert outputs[0] == outputs[1]
