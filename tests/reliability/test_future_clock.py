"""A batch dated in the future is quarantined by name and never moves the data clock (issue 18).

The same ELEC2 weeks go to two stores; in one, week 3 arrives with its time column moved to
2999. That batch is stored quarantined at ingest with a note naming the time column, is never
checked or trained on, and the clock of every later cycle is the clean weeks' time: the
retrains the clean store makes on schedule, the other one makes too.
"""

import pandas as pd
from sqlalchemy import select

from retrainer.store.tables import BatchRow, EventRow

WEEK = 48 * 7


def weeks(elec, n: int) -> list[pd.DataFrame]:
    return [elec.iloc[i * WEEK : (i + 1) * WEEK] for i in range(n)]


def run(project, frames) -> list:
    out = []
    for i, frame in enumerate(frames):
        project.ingest(frame, key=f"week-{i}")
        out.append(project.cycle())
    return out


def test_a_batch_from_2999_is_quarantined_and_the_clock_keeps_going(make_project, tmp_path, elec):
    frames = weeks(elec, 8)
    clean = run(make_project(), frames)

    from retrainer.project import Project
    from tests.conftest import project_settings, store_url

    root = tmp_path / "future"
    settings = project_settings()
    settings["store"]["url"] = store_url(root)
    project = Project.from_dict(settings, root=root)
    future = frames[3].copy()
    future["timestamp"] = future["timestamp"] + (
        pd.Timestamp("2999-01-01", tz="UTC") - future["timestamp"].min()
    )
    future["id"] = future["id"] + 10**9  # another batch, not a re-sent one
    reports = run(project, [*frames[:3], future, *frames[3:]])

    with project.store.session() as s:
        row = s.scalar(select(BatchRow).where(BatchRow.key == "week-3"))
        event = s.scalar(select(EventRow).where(EventRow.kind == "quarantine"))
    assert row.status == "quarantined"
    assert "future_timestamp" in row.note and "'timestamp'" in row.note and "2999" in row.note
    assert event.batch_id == row.id and "2999" in event.message
    assert all(row.id not in r.batches for r in reports)  # never checked
    clocks = [r.clock for r in reports]
    assert clocks[3] == clocks[2]  # the future batch did not move the clock...
    assert clocks[4:] == [r.clock for r in clean[3:]]  # ...and the clean weeks still do
    assert not any(c.startswith("2999") for c in clocks)
    actions = [r.decision["action"] for r in reports]
    assert actions[:3] + actions[4:] == [r.decision["action"] for r in clean]
