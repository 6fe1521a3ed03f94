"""Getting data in from the command line: several paths and globs, naive times with
data.timezone, no id or time column, unmatched labels, re-sent rows, encodings, file lines."""

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from retrainer.cli import main
from retrainer.project import Project
from retrainer.store.tables import BatchRow
from tests.conftest import project_settings, store_url


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    return tmp_path


def configure(folder, **data):
    settings = project_settings()
    settings["store"]["url"] = store_url(folder)
    settings["data"].update(data)
    settings["data"] = {k: v for k, v in settings["data"].items() if v is not None}
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings))


def stored_batches(folder):
    project = Project.from_yaml(folder / "retrainer.yaml")
    with project.store.session() as s:
        return project, s.scalars(select(BatchRow).order_by(BatchRow.id)).all()


def said(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def weeks(elec, folder, n, *, labelled=True):
    for week in range(n):
        part = elec.iloc[week * 336 : (week + 1) * 336]
        part = part if labelled else part.drop(columns="target")
        part.to_csv(folder / "in" / f"week-{week:02d}.csv", index=False)


def test_several_paths_and_globs(folder, elec):
    configure(folder)
    weeks(elec, folder, 5)
    (folder / "more").mkdir()
    (folder / "in" / "week-04.csv").rename(folder / "more" / "week-04.csv")
    result = invoke("ingest", "in/week-00.csv", "in/week-0[1-3].csv", "more", "--json")
    assert result.exit_code == 0, result.output
    files = [r["file"] for r in json.loads(result.stdout)]
    assert files == [f"in/week-0{i}.csv" for i in range(4)] + ["more/week-04.csv"]
    result = invoke("ingest", "in/nothing-*.csv")
    assert result.exit_code == 2 and "in/nothing-*.csv: no file matches" in said(result)


def test_naive_times_need_data_timezone(folder, elec):
    naive = elec.iloc[:336].assign(timestamp=elec["timestamp"].iloc[:336].dt.tz_localize(None))
    naive.to_csv(folder / "in" / "naive.csv", index=False)
    configure(folder)
    result = invoke("ingest", "in/naive.csv")
    assert result.exit_code == 2 and "set data.timezone" in said(result)
    configure(folder, timezone="Australia/Sydney")
    assert invoke("ingest", "in/naive.csv").exit_code == 0
    project, batches = stored_batches(folder)
    stored = project.batch_frame(batches[0])["timestamp"]
    shift = naive["timestamp"].iloc[0] - stored.iloc[0].tz_localize(None)
    assert shift.total_seconds() == 10 * 3600  # Sydney in (southern) winter: UTC+10


def test_calendar_dates_need_no_time_zone(folder, elec):
    days = elec.iloc[:40].assign(timestamp=pd.date_range("2017-03-01", periods=40).strftime("%F"))
    days.to_csv(folder / "in" / "days.csv", index=False)
    configure(folder)
    result = invoke("ingest", "in/days.csv")
    assert result.exit_code == 0, result.output
    project, batches = stored_batches(folder)
    stored = project.batch_frame(batches[0])["timestamp"]
    assert stored.iloc[0] == pd.Timestamp("2017-03-01", tz="UTC")  # read as UTC days
    assert stored.iloc[-1] == pd.Timestamp("2017-04-09", tz="UTC")
    days["timestamp"] = pd.to_datetime(days["timestamp"]).dt.strftime("%F %H:%M")
    days.loc[39, "timestamp"] = "2017-04-09 12:00"  # one time of day: the file holds instants
    days.to_csv(folder / "in" / "mixed.csv", index=False)
    result = invoke("ingest", "in/mixed.csv")
    assert result.exit_code == 2 and "set data.timezone" in said(result)


def test_without_id_and_time_columns_a_note_says_what_is_assumed(folder, elec):
    configure(folder, id_column=None, time_column=None)
    elec.iloc[:336].drop(columns=["id", "timestamp"]).to_csv(folder / "in" / "a.csv", index=False)
    result = invoke("ingest", "in/a.csv")
    assert result.exit_code == 0, result.output
    assert "data.id_column is not set: rows are known by their order" in result.stderr
    assert "data.time_column is not set: batches are ordered as they are ingested" in result.stderr


def test_labels_that_match_nothing_exit_1_naming_the_first_ids(folder, elec):
    configure(folder)
    weeks(elec, folder, 2, labelled=False)
    assert invoke("ingest", "in").exit_code == 0
    labels = elec.iloc[:400][["id", "target"]]  # 336 match week 0, 64 are of week 1... and
    labels = labels.assign(id=labels["id"].where(labels.index < 330, labels["id"] + 10**6))
    labels.to_csv(folder / "labels.csv", index=False)
    result = invoke("ingest", "--labels", "labels.csv")
    assert result.exit_code == 1
    first = labels["id"].iloc[330:335].tolist()
    assert f"70 of 400 labels match no stored row (first ids: {', '.join(map(str, first))})" in (
        result.stderr
    )


def test_the_same_rows_under_another_name_are_not_stored_twice(folder, elec):
    configure(folder)
    weeks(elec, folder, 1)
    assert invoke("ingest", "in/week-00.csv").exit_code == 0
    (folder / "resent.csv").write_bytes((folder / "in" / "week-00.csv").read_bytes())
    result = invoke("ingest", "resent.csv")
    assert result.exit_code == 0 and "(already ingested)" in result.stdout
    assert len(stored_batches(folder)[1]) == 1


def test_an_encoding_error_names_file_line_and_setting(folder, elec):
    frame = elec.iloc[:336].assign(city="Zurich")
    frame.loc[frame.index[6], "city"] = "Zürich"
    frame.to_csv(folder / "in" / "latin.csv", index=False, encoding="latin-1")
    configure(folder)
    result = invoke("ingest", "in/latin.csv")
    assert result.exit_code == 2
    assert "in/latin.csv: line 8 is not valid utf-8 (byte 0xfc)" in said(result)
    assert "set data.encoding" in said(result)
    configure(folder, encoding="latin-1")
    assert invoke("ingest", "in/latin.csv").exit_code == 0


def test_positions_are_file_lines(folder, elec):
    frame = elec.iloc[:336].astype({"id": "float"})
    frame.loc[frame.index[7], "id"] = None  # the 8th data row: line 9 under the header
    frame.to_csv(folder / "in" / "holes.csv", index=False)
    configure(folder)
    result = invoke("ingest", "in/holes.csv")
    assert result.exit_code == 2
    assert "column 'id' (the id) is empty in line 9" in said(result)
