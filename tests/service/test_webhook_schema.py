"""The webhook payloads follow the JSON schema shipped with the package
(``retrainer/service/webhook.schema.json``): every event kind, as a real receiver gets it."""

import copy
import json

import pytest

from retrainer.service.webhooks import WebhookDispatcher, payload_schema

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    schema = payload_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def bodies(service_project, receiver, elec, monkeypatch):
    """The bodies a receiver got for a bootstrap, a broken batch, drift, a retrain and a
    rollback: every event kind."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    server = receiver()
    hook = {"url": server.url, "secret_env": "HOOK_SECRET", "allow_private": True}
    project = service_project(service={"webhooks": [hook]})
    dispatcher = WebhookDispatcher(project)
    dispatcher.enqueue()
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()  # decision, version 1, promotion
    broken = elec.iloc[1344:1680].assign(vicdemand=None)
    project.ingest(broken, key="broken")  # data-quality alarm
    project.cycle()
    project.ingest(elec.iloc[8000:8336], key="months-later")  # drift alarm
    project.request_retrain("by hand")
    project.cycle()
    project.rollback(reason="back to the first")
    assert all(r.status == "delivered" for r in dispatcher.pump())
    return [json.loads(body) for _, _, body in server.requests]


def test_every_payload_follows_the_schema(bodies, validator):
    assert {b["event"] for b in bodies} == {"alarm", "decision", "version", "promotion", "rollback"}
    for body in bodies:
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (body["event"], errors)


def test_the_schema_refuses_what_a_receiver_could_not_rely_on(bodies, validator):
    promotion = next(b for b in bodies if b["event"] == "promotion")
    for broken in (
        {**promotion, "at": promotion["at"][:19]},  # a time without its offset
        {**promotion, "event": "promoted"},
        {k: v for k, v in promotion.items() if k != "event_id"},
        {**promotion, "extra": 1},
    ):
        assert not validator.is_valid(broken), broken
    wrong = copy.deepcopy(promotion)
    del wrong["data"]["previous"]
    assert not validator.is_valid(wrong)
