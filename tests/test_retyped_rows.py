"""A numeric column sent as text with a unit, one row holding a word no unit reads: the
diagnosis names that row and its value, and the proposed fix reads it as missing, so that once
a person accepts the fix the quarantined batch can be released (before, the fix parsed the
units only and the release failed on the word, with --force too)."""

import numpy as np
import pytest
from sqlalchemy import select

from retrainer.errors import DataError
from retrainer.store.tables import BatchRow

HISTORY, WEEK = 1344, 336


def test_a_word_among_unit_values_is_named_and_read_as_missing_by_the_fix(make_project, elec):
    data = elec.assign(nswdemand=(elec["nswdemand"] * 80.0 + 970.0).round(1))  # hPa
    project = make_project()
    project.ingest(data.iloc[:HISTORY], key="history")
    project.cycle()
    week = data.iloc[HISTORY : HISTORY + WEEK].copy()
    week["nswdemand"] = week["nswdemand"].map(lambda v: f"{v:.1f} hPa").astype(object)
    week.iloc[7, week.columns.get_loc("nswdemand")] = "n/a?"
    first = project.ingest(week, key="text").id
    assert project.cycle().quarantined == (first,)
    diagnosis = project.diagnosis(first)
    alarm = diagnosis["alarms"][0]
    assert alarm["check"] == "retyped" and "no unit reads rows 7 ('n/a?')" in alarm["message"]
    assert diagnosis["fix"]["missing_values"] == {"nswdemand": ["n/a?"]}
    project.accept_fix(first, reason="the producer adds the unit; n/a? is a gap")
    released = project.release(first, "parsed by the accepted fix")
    assert released["status"] == "processed"
    with project.store.session() as s:
        row = s.scalars(select(BatchRow).where(BatchRow.id == first)).one()
        s.expunge(row)
    values = project.batch_frame(row)["nswdemand"]
    assert np.isnan(values.iloc[7]) and values.iloc[0] == data["nswdemand"].iloc[HISTORY]


def test_a_sensors_nil_is_a_missing_value_marker_not_a_retyped_column(make_project, elec):
    """A glucose monitor's export wrote ``nil`` for its current through a 3.7-day dropout
    (1,061 of 1,882 readings of a week; Bokeh's sample data): the column was called re-typed
    with no fix. Here 190 of a week's 336 demands read ``nil`` in one run; the diagnosis names
    the marker and proposes to read it as missing, and once accepted the batch reads as numbers
    with nulls, judged by the null-rate rules (a person who checked releases it)."""
    project = make_project()
    project.ingest(elec.iloc[:HISTORY], key="history")
    project.cycle()
    week = elec.iloc[HISTORY : HISTORY + WEEK].copy()
    week["nswdemand"] = week["nswdemand"].astype(object)
    week.iloc[100:290, week.columns.get_loc("nswdemand")] = "nil"
    first = project.ingest(week, key="dropout").id
    assert project.cycle().quarantined == (first,)
    diagnosis = project.diagnosis(first)
    alarm = diagnosis["alarms"][0]
    assert alarm["check"] == "missing_marker" and alarm["cause"] == "data_quality"
    assert "57% of the values read 'nil'" in alarm["message"]
    assert diagnosis["fix"]["missing_values"] == {"nswdemand": ["nil"]}
    project.accept_fix(first, reason="the monitor writes nil while the sensor is off")
    with pytest.raises(DataError, match=r"stays quarantined.*null"):
        project.release(first, "read by the accepted fix")
    released = project.release(first, "a person checked the dropout", force=True)
    assert released["status"] == "processed"
    with project.store.session() as s:
        row = s.scalars(select(BatchRow).where(BatchRow.id == first)).one()
        s.expunge(row)
    values = project.batch_frame(row)["nswdemand"]
    assert values.isna().sum() == 190 and values.iloc[0] == elec["nswdemand"].iloc[HISTORY]
