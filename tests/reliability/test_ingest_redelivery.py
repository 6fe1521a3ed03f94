"""R5: ingest is idempotent under at-least-once delivery (every batch twice, out of order).

Two stores get the same ELEC2 weeks and late labels: one in order, each once; the other every
message twice, shuffled, with the same keys (and once more without a key: the content hash is
the key). Row counts, stored files (content-addressed, so byte-identical) and the profiles the
cycle stores are identical per batch key.
"""

import random

from sqlalchemy import func, select

from retrainer.store.tables import BatchRow, EventRow, LabelSetRow, ProfileRow

WEEK = 48 * 7


def messages(elec, weeks: int) -> list[tuple[str, str, object]]:
    features = [c for c in elec.columns if c != "target"]
    out = [("batch", "week-0", elec.iloc[:WEEK])]
    for i in range(1, weeks):
        week = elec.iloc[i * WEEK : (i + 1) * WEEK]
        out.append(("batch", f"week-{i}", week[features]))
        out.append(("labels", f"labels-{i}", week[["id", "target"]]))
    return out


def deliver(project, message, keyed: bool = True) -> None:
    kind, key, frame = message
    if kind == "batch":
        project.ingest(frame, key=key if keyed else None)
    else:
        project.ingest_labels(frame, key=key if keyed else None)


def stored(project) -> dict:
    with project.store.session() as s:
        batches = {
            key: (n, n_labelled, artifact, labels)
            for key, n, n_labelled, artifact, labels in s.execute(
                select(
                    BatchRow.key,
                    BatchRow.n_rows,
                    BatchRow.n_labelled,
                    BatchRow.artifact,
                    BatchRow.labels,
                )
            )
        }
        label_sets = dict(s.execute(select(LabelSetRow.key, LabelSetRow.artifact)).all())
        profiles = dict(
            s.execute(
                select(BatchRow.key, ProfileRow.profile).join(
                    ProfileRow, ProfileRow.batch_id == BatchRow.id
                )
            ).all()
        )
        ingests = s.scalar(select(func.count()).where(EventRow.kind == "ingest"))
    return {"batches": batches, "labels": label_sets, "profiles": profiles, "ingests": ingests}


def test_every_message_twice_and_shuffled_stores_the_same(make_project, tmp_path, elec):
    once = make_project()
    for message in messages(elec, 4):
        deliver(once, message)
    once.cycle()

    from retrainer.project import Project
    from tests.conftest import project_settings, store_url

    root = tmp_path / "twice"
    settings = project_settings()
    settings["store"]["url"] = store_url(root)
    twice = Project.from_dict(settings, root=root)
    first, *rest = messages(elec, 4)
    deliver(twice, first)  # the schema is inferred from the first batch, as in `once`
    redelivered = rest * 2
    random.Random(7).shuffle(redelivered)
    batches = [m for m in rest if m[0] == "batch"]
    for message in redelivered:
        deliver(twice, message)
    for message in batches[:1]:
        deliver(twice, message, keyed=False)  # an unkeyed copy is a different message...
    twice.cycle()

    a, b = stored(once), stored(twice)
    extra = {k for k in b["batches"] if k.startswith("sha256:")}
    assert len(extra) == 1  # ...stored once under its content hash, however often it comes
    deliver(twice, batches[0], keyed=False)
    assert {k for k in stored(twice)["batches"] if k.startswith("sha256:")} == extra
    for key in extra:
        del b["batches"][key], b["profiles"][key]
    assert a["batches"] == b["batches"]
    assert a["labels"] == b["labels"]
    assert a["profiles"] == b["profiles"]
    assert b["ingests"] == a["ingests"] + 1  # redeliveries log no second ingest
