"""URLs in the project file without a server: ``file://`` through fsspec (the same code paths
as ``s3://``, see ``test_storage_s3``), and clear errors for schemes that cannot be opened."""

import sys

import pytest

from retrainer.config import Config
from retrainer.errors import ConfigError
from retrainer.watch import FolderWatch
from tests.conftest import store_url

WEEK = 48 * 7


def test_without_fsspec_a_url_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as on an install without the extra
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"data": {"target": "y", "labels": "s3://bucket/labels/"}})
    assert "data.labels: s3://bucket/labels/: reading URLs needs fsspec: pip install " in str(
        caught.value
    ) and "retrainer[s3]" in str(caught.value)


def test_an_unknown_scheme_is_a_config_error_naming_the_key():
    pytest.importorskip("fsspec")
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"data": {"target": "y", "source": "nosuch://bucket/in/"}})
    assert "data.source: nosuch://bucket/in/: unknown URL scheme 'nosuch'" in str(caught.value)


def test_a_scheme_whose_package_is_missing_says_what_to_install():
    pytest.importorskip("fsspec")
    if _installed("gcsfs"):
        pytest.skip("gcsfs is installed here")
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"data": {"target": "y"}, "store": {"artifacts": "gs://bucket/a"}})
    text = str(caught.value)
    assert "store.artifacts: gs://bucket/a" in text and "gcsfs" in text


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_a_file_url_source_and_artifact_folder(make_project, tmp_path, elec):
    pytest.importorskip("fsspec")
    (tmp_path / "in").mkdir()
    for week in range(4):
        part = elec.iloc[week * WEEK : (week + 1) * WEEK]
        part.to_csv(tmp_path / "in" / f"{week}.csv", index=False)
    project = make_project(
        store={"url": store_url(tmp_path), "artifacts": (tmp_path / "bucket" / "art").as_uri()},
        data={
            "target": "target",
            "id_column": "id",
            "time_column": "timestamp",
            "source": (tmp_path / "in").as_uri(),
        },
    )
    watch = FolderWatch(project)
    assert watch.scan() == 4
    batches, _ = watch.ingest_next(10)
    assert [b.n_rows for b in batches] == [WEEK] * 4
    assert watch.scan() == 0
    assert project.cycle().decision["action"] == "retrain"
    sha = project.champion.lineage["artifact"]
    assert (tmp_path / "bucket" / "art" / sha[:2] / sha).is_file()
    assert not any((tmp_path / "bucket" / "art" / ".tmp").iterdir())
    assert not (tmp_path / "artifacts").exists()  # nothing went to a local folder
    assert project.bundle_folder() == tmp_path / ".retrainer" / "bundles"  # built locally


def test_objects_that_left_the_bucket_leave_the_watch_state(make_project, tmp_path, elec):
    """The state of objects taken grew with every object ever taken (and was written whole at
    each ingest); now it holds what the bucket holds. One that comes back is not stored twice."""
    pytest.importorskip("fsspec")
    from retrainer.watch import OBJECTS_STATE

    (tmp_path / "in").mkdir()
    for week in range(4):
        elec.iloc[week * WEEK : (week + 1) * WEEK].to_csv(tmp_path / "in" / f"{week}.csv")
    project = make_project(
        store={"url": store_url(tmp_path), "artifacts": "artifacts"},
        data={"target": "target", "id_column": "id", "source": (tmp_path / "in").as_uri()},
    )
    watch = FolderWatch(project)
    watch.scan()
    watch.ingest_next(10)
    assert len(project.get_state(OBJECTS_STATE)) == 4
    kept = (tmp_path / "in" / "0.csv").read_bytes()
    for week in (0, 1):
        (tmp_path / "in" / f"{week}.csv").unlink()
    assert FolderWatch(project).scan() == 0
    state = project.get_state(OBJECTS_STATE)
    assert sorted(url.rsplit("/", 1)[1] for url in state) == ["2.csv", "3.csv"]
    (tmp_path / "in" / "0.csv").write_bytes(kept)  # sent again, same bytes
    again = FolderWatch(project)
    assert again.scan() == 1
    assert again.ingest_next(10) == ([], [])  # known by its content: nothing stored twice
    assert len(project.get_state(OBJECTS_STATE)) == 3 and project.status()["batches"]["total"] == 4


def test_a_buckets_files_are_listed_with_the_numbers_in_their_names_by_value(tmp_path):
    pytest.importorskip("fsspec")
    from retrainer.integrations.storage import listing

    (tmp_path / "in").mkdir()
    for week in (1, 2, 10, 11, 20):
        (tmp_path / "in" / f"week-{week}.csv").write_text("x\n1\n")
    found = [ref.name for ref, _ in listing((tmp_path / "in").as_uri())]
    assert found == ["week-1.csv", "week-2.csv", "week-10.csv", "week-11.csv", "week-20.csv"]
