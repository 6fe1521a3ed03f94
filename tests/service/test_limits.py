"""Input limits of the service (issue 18, items 4-5): bodies are capped before the token is
checked, on every route; ids beyond 64 bits and deeply nested JSON are 4xx, never 500.

The body tests drive the ASGI app directly with a ``receive`` that counts the bytes the app
pulls, so "read whole before answering 401" is measured, not guessed.
"""

import asyncio
import json
import re

import pytest
from fastapi.routing import APIRoute

from retrainer.service.limits import SMALL_BODY_BYTES

CHUNK = 1 << 16
HUGE = 200 << 20  # the 200 MB of the report, never materialised: chunks are made lazily


def drive(app, method: str, path: str, headers: dict, total: int, declare: bool):
    """Send ``total`` bytes to ``path`` in chunks; return (status, bytes the app pulled)."""
    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.request", "body": b"", "more_body": False}
        size = min(CHUNK, total - pulled)
        pulled += size
        return {"type": "http.request", "body": b" " * size, "more_body": pulled < total}

    async def send(message):
        sent.append(message)

    raw = {"host": "testserver", "content-type": "application/json", **headers}
    if declare:
        raw["content-length"] = str(total)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in raw.items()],
        "server": ("testserver", 80),
        "client": ("203.0.113.9", 5555),
    }
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), pulled


WRITES = [
    "/api/retrain",
    "/api/promote",
    "/api/rollback",
    "/api/rollouts",
    "/api/release",
]
UPLOADS = ["/api/batches", "/api/labels", "/api/predictions", "/api/telemetry"]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", WRITES + UPLOADS + ["/api/status", "/no/such/route"])
def test_an_unauthenticated_huge_body_is_refused_unread(api, path, declare):
    app = api["client"].app
    status, pulled = drive(app, "POST", path, {}, HUGE, declare)
    assert status in (401, 404, 405, 413)
    assert pulled <= SMALL_BODY_BYTES + CHUNK  # at most the cap of a small body, never 200 MB
    if declare:
        assert (status, pulled) == (413, 0)  # refused on the declared size, nothing read


@pytest.mark.parametrize("path", WRITES)
def test_an_authenticated_oversize_json_body_is_413_and_a_normal_one_passes(api, path):
    app = api["client"].app
    status, pulled = drive(app, "POST", path, api["write"], HUGE, declare=False)
    assert status == 413 and pulled <= SMALL_BODY_BYTES + CHUNK
    answer = api["client"].post("/api/retrain", json={"reason": "x" * 400}, headers=api["write"])
    assert answer.status_code == 202


def test_uploads_keep_their_own_larger_cap(api):
    app = api["client"].app
    app.state.max_upload = 4 * SMALL_BODY_BYTES
    status, pulled = drive(app, "POST", "/api/batches", api["write"], 2 * SMALL_BODY_BYTES, False)
    assert status == 422  # read whole (2x the small cap, under the upload cap), then refused
    assert pulled == 2 * SMALL_BODY_BYTES
    status, pulled = drive(app, "POST", "/api/batches", api["write"], HUGE, declare=False)
    assert status == 413 and pulled <= 4 * SMALL_BODY_BYTES + CHUNK


TOO_BIG = [2**64, 99999999999999999999999, -(2**64)]


def int_params(app):
    """(method, path template, path params, query params) of every route with integer ids."""
    spec = app.openapi()
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            op = spec["paths"][route.path_format][method.lower()]
            ints = [
                p
                for p in op.get("parameters", [])
                if "integer" in json.dumps(p["schema"]) and p["name"] != "limit"
            ]
            if ints:
                yield method, route.path_format, ints


def test_every_integer_parameter_is_checked_as_64_bit(api):
    client, app = api["client"], api["client"].app
    seen = set()
    for method, template, params in int_params(app):
        for param in params:
            for value in TOO_BIG:
                names = re.findall(r"\{(\w+)\}", template)
                given = {n: str(value) if n == param["name"] else "1" for n in names}
                path = template.format(**(given | {"target": "t"} if "target" in names else given))
                query = {param["name"]: value} if param["in"] == "query" else {}
                answer = client.request(method, path, params=query, headers=api["write"])
                assert 400 <= answer.status_code < 500, (method, path, query, answer.text)
            seen.add((template, param["name"]))
    assert {("/api/models/{version}", "version"), ("/api/events", "after")} <= seen
    assert {("/api/batches", "offset"), ("/api/checks", "batch_id")} <= seen
    assert {
        ("/api/predictions", "version"),
        ("/api/decisions/{decision_id}", "decision_id"),
    } <= seen


@pytest.mark.parametrize("path", ["/api/promote", "/api/rollouts"])
def test_ids_in_json_bodies_are_64_bit(api, path):
    body = {"version": 2**64, "target": "t"}
    answer = api["client"].post(path, json=body, headers=api["write"])
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "path", ["/api/batches", "/api/labels", "/api/predictions", "/api/retrain"]
)
def test_deeply_nested_json_is_a_4xx(api, path):
    depth = 100_000
    body = '{"rows": [' + "[" * depth + "]" * depth + "]}"
    api["client"].app.state.max_upload = 1 << 20
    answer = api["client"].post(
        path, content=body, headers={**api["write"], "content-type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text[:200]
