"""Security of the service: every route classified and enforced (RELIABILITY S5), no default
secrets and constant-time compare (S6), foreign Host, CORS, CSRF and framing (S8)."""

import hmac
import sqlite3

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.routing import APIRoute
from starlette.routing import Mount

from retrainer.errors import RetrainerError
from retrainer.service import auth, serve
from retrainer.service.auth import create_token, list_tokens, revoke_token, verify_token

# Every route of the app: public ones need nothing; read ones a read token; write ones a write
# token. A route missing here fails the test, so a new route cannot escape authentication.
ROUTES = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/"): "public",
    ("GET", "/ui/{page}"): "public",
    ("GET", "/ui/batches/{batch_id}"): "public",
    ("GET", "/static"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/metrics"): "read",
    ("GET", "/api/status"): "read",
    ("GET", "/api/overview"): "read",
    ("GET", "/api/batches"): "read",
    ("GET", "/api/batches/{batch_id}"): "read",
    ("GET", "/api/batches/{batch_id}/profile"): "read",
    ("GET", "/api/batches/{batch_id}/diagnosis"): "read",
    ("GET", "/api/checks"): "read",
    ("GET", "/api/alarms"): "read",
    ("GET", "/api/alarms/summary"): "read",
    ("GET", "/api/decisions"): "read",
    ("GET", "/api/decision-log"): "read",
    ("GET", "/api/decisions/{decision_id}"): "read",
    ("GET", "/api/cycles"): "read",
    ("GET", "/api/runs"): "read",
    ("GET", "/api/events"): "read",
    ("GET", "/api/models"): "read",
    ("GET", "/api/models/{version}"): "read",
    ("GET", "/api/models/{version}/artifact"): "read",
    ("GET", "/api/models/{version}/bundles/{target}"): "read",
    ("GET", "/api/models/{version}/bundles/{target}/manifest"): "read",
    ("GET", "/api/fleet"): "read",
    ("GET", "/api/fleet/devices/{device}/bundle"): "read",
    ("GET", "/api/aliases"): "read",
    ("GET", "/api/aliases/{name}/history"): "read",
    ("GET", "/api/performance"): "read",
    ("GET", "/api/drift"): "read",
    ("GET", "/api/schedule"): "read",
    ("GET", "/api/webhooks/deliveries"): "read",
    ("POST", "/api/batches"): "write",
    ("POST", "/api/labels"): "write",
    ("POST", "/api/predictions"): "write",
    ("POST", "/api/retrain"): "write",
    ("POST", "/api/promote"): "write",
    ("POST", "/api/rollback"): "write",
    ("POST", "/api/release"): "write",
    ("POST", "/api/telemetry"): "write",
    ("POST", "/api/rollouts"): "write",
}
SAMPLE = {"{page}": "models", "{batch_id}": "1", "{version}": "1", "{name}": "champion"}


def app_routes(app):
    found = set()
    for route in app.routes:
        if isinstance(route, Mount):
            found.add(("GET", route.path))
        else:
            methods = route.methods - {"HEAD"} if route.methods else {"GET"}
            found |= {(m, route.path) for m in methods}
    return found


def concrete(path):
    for name, value in SAMPLE.items():
        path = path.replace(name, value)
    return "/static/app.js" if path == "/static" else path


def test_every_route_is_classified(api):
    routes = app_routes(api["client"].app)
    missing = routes - set(ROUTES)
    assert not missing, f"routes without an auth classification: {sorted(missing)}"
    assert not set(ROUTES) - routes, "the table names routes that no longer exist"
    api_routes = [r for r in api["client"].app.routes if isinstance(r, APIRoute)]
    assert len(api_routes) >= 30


@pytest.mark.parametrize("method,path", sorted(ROUTES))
def test_every_route_enforces_its_class(api, method, path):
    client, kind = api["client"], ROUTES[(method, path)]
    url = concrete(path)
    wrong = {"Authorization": "Bearer rtk_000000000000_" + "A" * 43}
    calls = {
        "none": {},
        "wrong": wrong,
        "read": api["read"],
    }
    for who, headers in calls.items():
        r = client.request(method, url, headers=headers, json={"reason": "x", "version": 1})
        if kind == "public":
            assert r.status_code < 400, (who, r.status_code)
        elif who in ("none", "wrong"):
            assert r.status_code == 401, (who, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        elif kind == "write":
            assert r.status_code == 403, (who, r.status_code)
        else:
            assert r.status_code not in (401, 403), (who, r.status_code)


def _dump(project) -> str:
    """Every row of the store as text: SQLite's dump, or every table of the schema."""
    url = project.config.store_url
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return "\n".join(db.iterdump())
    with project.store.session() as s:
        names = sa.inspect(s.get_bind()).get_table_names()
        rows = [row for name in names for row in s.execute(sa.text(f'SELECT * FROM "{name}"'))]
    return "\n".join(str(tuple(row)) for row in rows)


def test_tokens_are_stored_hashed_and_revocable(api):
    project = api["project"]
    token, text = create_token(project.store, "ci", scope="read")
    dump = _dump(project)
    assert token.prefix in dump and "'ci'" in dump  # the dump holds the token's row
    assert text not in dump and text.split("_", 2)[2] not in dump
    assert verify_token(project.store, text).name == "ci"
    revoke_token(project.store, token.prefix)
    r = api["client"].get("/api/status", headers={"Authorization": f"Bearer {text}"})
    assert r.status_code == 401
    assert [t.revoked for t in list_tokens(project.store) if t.name == "ci"] == [True]


def test_token_comparison_is_constant_time(api, monkeypatch):
    calls, real = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert api["client"].get("/api/status", headers=api["read"]).status_code == 200
    assert api["client"].get("/api/status", headers={"Authorization": "Bearer x"}).status_code
    assert len(calls) == 2  # a malformed token is compared too (no early return)


def test_no_token_means_no_remote_bind(service_project, monkeypatch):
    project = service_project()
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(k))
    with pytest.raises(RetrainerError, match="refusing to listen on 0.0.0.0"):
        serve(project, host="0.0.0.0", port=0, scheduler=False)
    assert not started and not list_tokens(project.store)
    printed = []
    serve(project, host="127.0.0.1", port=0, scheduler=False, echo=printed.append)
    assert started[-1]["host"] == "127.0.0.1"
    (bootstrap,) = list_tokens(project.store)
    assert bootstrap.scope == "write"
    shown = next(line for line in printed if "shown once" in line).rsplit(" ", 1)[1]
    assert verify_token(project.store, shown).name == "bootstrap"
    serve(project, host="0.0.0.0", port=0, scheduler=False, echo=printed.append)
    assert started[-1]["host"] == "0.0.0.0" and len(list_tokens(project.store)) == 1


def test_token_command_line(tmp_path, monkeypatch):
    import yaml

    from retrainer.cli import main
    from tests.service.service_helpers import service_settings

    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(service_settings()))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "--name", "ci", "--scope", "write", "--json"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(main, ["token", "list", "--json"])
    assert '"ci"' in listed.output and "rtk_" not in listed.output
    gone = runner.invoke(main, ["token", "revoke", "nobody"])
    assert gone.exit_code == 2 and "no token" in gone.output


def test_cli_refuses_a_remote_bind_without_tokens(tmp_path, monkeypatch):
    import yaml

    from retrainer.cli import main
    from tests.service.service_helpers import service_settings

    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(service_settings()))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2 and "refusing to listen" in result.output


def test_foreign_host_header_is_refused(api):
    client = api["client"]
    r = client.get("/api/status", headers=api["read"] | {"Host": "evil.example"})
    assert r.status_code == 400 and "evil.example" in r.json()["detail"]
    assert client.get("/healthz", headers={"Host": "evil.example:80"}).status_code == 400
    assert client.get("/healthz", headers={"Host": "testserver:8765"}).status_code == 200


def test_cross_site_writes_and_cors(api):
    client, write, project = api["client"], api["write"], api["project"]
    r = client.post(
        "/api/retrain",
        content=b'{"reason": "csrf"}',
        headers=write | {"Content-Type": "text/plain"},
    )
    assert r.status_code == 415 and not project.get_state("manual")
    r = client.post(
        "/api/retrain", content=b'{"reason": "csrf"}', headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 401
    r = client.options(
        "/api/promote",
        headers={
            "Origin": "https://evil",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/status", headers=api["read"] | {"Origin": "https://evil"})
    assert "access-control-allow-origin" not in r.headers


def test_security_headers_on_every_response(api):
    for path in ("/", "/ui/models", "/api/status", "/static/app.js", "/healthz", "/nope"):
        r = api["client"].get(path, headers=api["read"])
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff", path
    page = api["client"].get("/")
    assert "script-src 'self';" in page.headers["content-security-policy"]
