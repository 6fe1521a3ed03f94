"""Corrected labels (issue 18 item 9): refused by default, replaced only when asked, logged."""

import pytest
from sqlalchemy import select

from retrainer.errors import DataError
from retrainer.store.tables import EventRow

WEEK = 48 * 7


def stored_target(project, batch_id):
    from retrainer.store.tables import BatchRow

    with project.store.session() as s:
        return project.batch_frame(s.get(BatchRow, batch_id))["target"]


def test_a_corrected_label_file_is_refused_and_names_replace(make_project, elec):
    project = make_project()
    week = elec.iloc[:WEEK]
    batch = project.ingest(week.drop(columns="target"), key="week")
    assert project.ingest_labels(week[["id", "target"]], key="labels").matched == WEEK
    corrected = week[["id", "target"]].copy()
    corrected["target"] = 1 - corrected["target"]
    with pytest.raises(DataError, match=r"336 label\(s\) differ.*ingest --labels --replace"):
        project.ingest_labels(corrected, key="labels-corrected")
    assert (stored_target(project, batch.id).to_numpy() == week["target"].to_numpy()).all()
    # the same labels again under another name are no correction: nothing unmatched, no refusal
    again = project.ingest_labels(week[["id", "target"]], key="labels-renamed")
    assert (again.matched, again.unchanged, again.unmatched) == (0, WEEK, 0)
    assert project.get_state("early_labels") in (None, {})


def test_replace_corrects_late_and_own_labels_and_logs_it(make_project, elec):
    project = make_project()
    week = elec.iloc[:WEEK]
    own = project.ingest(week, key="with-labels")  # labels that came inside the batch
    late = project.ingest(elec.iloc[WEEK : 2 * WEEK].drop(columns="target"), key="late")
    project.ingest_labels(elec.iloc[WEEK : 2 * WEEK][["id", "target"]], key="late-labels")
    corrected = elec.iloc[WEEK - 10 : WEEK + 10][["id", "target"]].copy()
    corrected["target"] = 1 - corrected["target"]
    report = project.ingest_labels(corrected, key="fix", replace=True, actor="alice")
    assert (report.replaced, report.matched, report.unmatched) == (20, 0, 0)
    assert report.batches == (own.id, late.id)
    expected = 1 - elec["target"].iloc[WEEK - 10 : WEEK + 10].to_numpy()
    assert (stored_target(project, own.id).iloc[-10:].to_numpy() == expected[:10]).all()
    assert (stored_target(project, late.id).iloc[:10].to_numpy() == expected[10:]).all()
    assert (stored_target(project, own.id).iloc[:-10] == week["target"].iloc[:-10]).all()
    with project.store.session() as s:
        event = s.scalar(select(EventRow).where(EventRow.kind == "labels_replaced"))
    assert event.data["replaced"] == 20 and event.data["actor"] == "alice"
    assert event.data["batches"] == [own.id, late.id]
    assert "alice" in event.message and "20 stored labels replaced" in event.message


def test_a_fraction_is_no_class_label(make_project, elec):
    """A classification project refuses labels such as 0.5 at ingest, naming the row, instead of
    failing the cycle's evaluation later (found by the B1 fuzz)."""
    project = make_project()
    week = elec.iloc[:336].astype({"target": float})
    week.loc[week.index[7], "target"] = 0.5
    with pytest.raises(DataError, match=r"row 7 has 0.5, not a class label"):
        project.ingest(week, key="half")
    labels = elec.iloc[:10][["id", "target"]].assign(target=0.25)
    with pytest.raises(DataError, match="not a class label"):
        project.ingest_labels(labels, key="quarter")
    huge = elec.iloc[:10][["id", "target"]].assign(target=-2.29e196)  # found by the fuzz too
    with pytest.raises(DataError, match="row 0 has -2.29e[+]196, not a class label"):
        project.ingest_labels(huge, key="huge")
