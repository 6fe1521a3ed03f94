"""S10: proof-of-concept requests of published advisories, replayed against our API.

Each case is the request an advisory's PoC (or its nuclei template) sends to MLflow, BentoML,
ZenML, Kubeflow Pipelines or ClearML, turned into the equivalent request on our routes: the
same traversal payload on our artifact and page routes, the same pickle body on our upload
routes, the same unauthenticated or cross-site request on our write routes. A PoC succeeds if
the response is 2xx, leaks the canary file (which sits outside the data root) or
``/etc/passwd``, leaves a marker file, or the process opens a network connection; every case
must get a 4xx instead, never a 5xx. The dependency half of S10 (pip-audit with a waiver file)
is ``tests/security/test_dependencies.py``.
"""

import os
import pickle
import sys

import pytest
from fastapi.testclient import TestClient

from retrainer.project import Project
from retrainer.service import create_app
from retrainer.service.auth import create_token
from tests.service.service_helpers import WEEK, records, service_settings

CANARY = "CANARY-7f3a9c-outside-the-root"
_CONNECTS: list[tuple] = []
_WATCH = {"on": False}


def _audit(event: str, args: tuple) -> None:
    if _WATCH["on"] and event == "socket.connect":
        _CONNECTS.append(args[1:])


sys.addaudithook(_audit)


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def service(tmp_path_factory, elec):
    root = tmp_path_factory.mktemp("cve")
    (root.parent / "canary.txt").write_text(CANARY)
    project = Project.from_dict(service_settings(root / "data"), root=root / "data")
    project.ingest(elec.iloc[: 4 * WEEK], key="weeks-0-3")
    project.cycle()
    _, read = create_token(project.store, "reader", scope="read")
    _, write = create_token(project.store, "writer", scope="write")
    client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    yield {
        "client": client,
        "root": root,
        "read": {"Authorization": f"Bearer {read}"},
        "write": {"Authorization": f"Bearer {write}"},
        "rows": records(elec.iloc[4 * WEEK : 4 * WEEK + 10]),
    }
    project.store.dispose()


TRAVERSALS = (
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fcanary.txt",
    "%252e%252e%252fcanary.txt",
    "..\\..\\canary.txt",
    "file:///etc/passwd",
    "%23%2f..%2f..%2fcanary.txt",  # "#/../": a raw # would end the path in the client
)

# (advisory, method, path, token, extra request arguments); {marker} is a file that must not
# appear, {t} a traversal payload.
CASES = [
    # MLflow CVE-2023-1177: create a model whose source is file:///, then read it back.
    ("MLflow CVE-2023-1177", "POST", "/ajax-api/2.0/mlflow/registered-models/create", "write",
     {"json": {"name": "x"}}),
    ("MLflow CVE-2023-1177", "POST", "/ajax-api/2.0/mlflow/model-versions/create", "write",
     {"json": {"name": "x", "source": "file:///etc/"}}),
    ("MLflow CVE-2023-1177", "GET", "/model-versions/get-artifact?path=passwd&name=x&version=1",
     "read", {}),
    # MLflow CVE-2023-2356/6909/6976, CVE-2024-1483/3848, CVE-2026-2614: artifact path traversal.
    # (our route takes no path parameter: it must ignore it and send version 1's own file)
    *[("MLflow artifact traversal", "GET", f"/api/models/1/artifact?path={t}", "read",
       {"ignored": True}) for t in TRAVERSALS],
    *[("MLflow artifact traversal", "GET", f"/api/models/{t}/artifact", "read", {})
      for t in TRAVERSALS],
    *[("MLflow artifact traversal", "GET", f"/api/models/1/bundles/{t}", "read", {})
      for t in TRAVERSALS],
    # ZenML CVE-2024-2083 and MLflow CVE-2023-3765: static and page routes traversal.
    *[("ZenML CVE-2024-2083", "GET", f"/ui/{t}", None, {}) for t in TRAVERSALS],
    *[("ZenML CVE-2024-2083", "GET", f"/static/{t}", None, {}) for t in TRAVERSALS],
    # MLflow CVE-2024-37052..60, ClearML CVE-2024-24590: a pickled model is loaded.
    ("MLflow CVE-2024-37052", "POST", "/api/models", "write", {"content": "{pickle}"}),
    ("ClearML CVE-2024-24590", "POST", "/api/batches?key=p1", "write",
     {"content": "{pickle}", "headers": {"Content-Type": "application/octet-stream"}}),
    # BentoML CVE-2024-2912 / CVE-2025-27520: pickle body with the pickle content type.
    ("BentoML CVE-2025-27520", "POST", "/api/batches?key=p2", "write",
     {"content": "{pickle}", "headers": {"Content-Type": "application/vnd.bentoml+pickle"}}),
    ("BentoML CVE-2024-2912", "POST", "/api/predictions?key=p3", "write",
     {"content": "{pickle}", "headers": {"Content-Type": "application/vnd.bentoml+pickle"}}),
    ("BentoML CVE-2024-2912", "POST", "/api/labels?key=p4", "write",
     {"content": "{pickle}", "headers": {"Content-Type": "application/x-pickle"}}),
    # BentoML CVE-2025-54381, MLflow CVE-2023-6974, KFP SSRF: the server fetches a URL.
    ("BentoML CVE-2025-54381", "POST", "/api/batches?key=u1", "write",
     {"json": {"url": "http://169.254.169.254/latest/meta-data/"}}),
    ("MLflow CVE-2023-6974", "POST", "/api/webhooks", "write",
     {"json": {"url": "http://127.0.0.1:22/"}}),
    ("KFP SSRF", "POST", "/apis/v1beta1/pipelines/upload?uploadfile=http://10.0.0.1/", "write",
     {}),
    # MLflow CVE-2026-2652/0545, ClearML CVE-2024-24592: routes outside the auth middleware.
    ("MLflow CVE-2026-2652", "GET", "/api/models", None, {}),
    ("MLflow CVE-2026-2652", "GET", "/api/models/1/artifact", None, {}),
    ("MLflow CVE-2026-0545", "GET", "/metrics", None, {}),
    ("MLflow CVE-2026-0545", "POST", "/api/promote", None, {"json": {"version": 1}}),
    ("ClearML CVE-2024-24592", "GET", "/api/events", None, {}),
    ("ZenML CVE-2024-25723", "PUT", "/api/v1/users/1/activate", None, {"json": {"password": "x"}}),
    # MLflow CVE-2024-4263: a read-only user deletes or changes things.
    ("MLflow CVE-2024-4263", "POST", "/api/promote", "read", {"json": {"version": 1}}),
    ("MLflow CVE-2024-4263", "POST", "/api/rollback", "read", {"json": {"reason": "x"}}),
    ("MLflow CVE-2024-4263", "DELETE", "/api/models/1", "read", {}),
    # MLflow CVE-2023-43472, CVE-2025-1473, ClearML CVE-2024-24593, KFP CVE-2026-88986:
    # cross-site writes (text/plain to skip the preflight) and a DNS-rebinding Host.
    ("MLflow CVE-2023-43472", "POST", "/api/retrain", "write",
     {"content": '{"reason": "csrf"}', "headers": {"Content-Type": "text/plain"}}),
    ("MLflow CVE-2025-1473", "POST", "/api/promote", "write",
     {"content": '{"version": 1}', "headers": {"Content-Type": "text/plain",
                                               "Origin": "https://evil.example"}}),
    ("MLflow CVE-2023-43472", "GET", "/api/models", "read",
     {"headers": {"Host": "attacker.example"}}),
]  # fmt: skip


def _prepare(case, service, marker):
    advisory, method, path, token, kwargs = case
    headers = dict(service[token]) if token else {}
    headers.update(kwargs.get("headers", {}))
    request = {"headers": headers}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    if "content" in kwargs:
        content = kwargs["content"]
        request["content"] = (
            pickle.dumps(_Payload(str(marker))) if content == "{pickle}" else content
        )
    return advisory, method, path, request


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]} {c[2][:60]}" for c in CASES])
def test_the_poc_gets_a_4xx_and_does_nothing(service, case, tmp_path):
    marker = tmp_path / "marker"
    advisory, method, path, request = _prepare(case, service, marker)
    _CONNECTS.clear()
    _WATCH["on"] = True
    try:
        response = service["client"].request(method, path, **request)
    finally:
        _WATCH["on"] = False
    if case[4].get("ignored"):
        assert response.status_code == 200 and response.content[:4] == b"PK\x03\x04"
    else:
        assert 400 <= response.status_code < 500, (advisory, response.status_code, response.text)
    assert CANARY not in response.text
    assert "root:x:0:0" not in response.text
    assert not marker.exists()
    assert _CONNECTS == []


def test_the_replay_can_fail(service):
    """The same client does reach the data with a proper request (the harness is live)."""
    ok = service["client"].get("/api/models/1/artifact", headers=service["read"])
    assert ok.status_code == 200 and ok.content[:2] == b"PK"
    promote = service["client"].post("/api/promote", json={"version": 1, "reason": "t"},
                                     headers=service["write"])  # fmt: skip
    assert promote.status_code == 200
