"""A diagnosed changed relation reaches the decision: the champion's error on newly labelled
rows rose with the inputs unchanged, so the cycle retrains even when no trigger of the policy
fired (the design: "a diagnosed changed relation always fires a retrain"). The per-batch
quarantine once fed the decision only the batches' own alarms, and the relation alarms, raised
when labels are scored, were reported but never decided on (DDM-only on STAGGER: one retrain
instead of three)."""

from retrainer.project import Project
from tests.conftest import project_settings, store_url

HISTORY, WEEK = 1344, 336


def test_a_changed_relation_on_labelled_rows_retrains_without_any_trigger(tmp_path, elec):
    settings = project_settings(policy={"triggers": [{"type": "manual"}]})
    settings["store"]["url"] = store_url(tmp_path)
    project = Project.from_dict(settings, root=tmp_path)
    project.ingest(elec.iloc[:HISTORY], key="history")
    assert project.cycle().champion == 1
    flipped = elec.iloc[HISTORY : HISTORY + WEEK].copy()
    flipped["target"] = 1 - flipped["target"]  # the same inputs now get the other label
    project.ingest(flipped, key="flipped")
    report = project.cycle()
    assert any(a["cause"] == "changed_relation" for a in report.alarms)
    assert report.decision["action"] == "retrain"
    assert any(r.startswith("changed relation:") for r in report.decision["reasons"])
