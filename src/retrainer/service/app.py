"""The REST API and the dashboard of one project, as a FastAPI app (OpenAPI at ``/docs``).

Every route under ``/api`` and ``/metrics`` needs a bearer token: ``read`` for GET, ``write``
for everything that changes the record. Only ``/healthz``, ``/readyz``, the documentation and
the dashboard's static shells and assets are public. Writes with a body take JSON only (or a
CSV or Parquet upload for batches and labels), so a cross-site form cannot post them; the Host
header must name this server (DNS rebinding); no CORS header is ever sent; pages may not be
framed.

Example:
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> from retrainer.project import Project
    >>> project = Project.from_dict({"data": {"target": "y"}}, root=tempfile.mkdtemp())
    >>> client = TestClient(create_app(project, allowed_hosts=["testserver"]))
    >>> client.get("/healthz").json(), client.get("/api/status").status_code
    ({'status': 'ok'}, 401)
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from retrainer import views
from retrainer.errors import (
    ConfigError,
    ConflictError,
    DataError,
    GateFailedError,
    IntegrityError,
    NotFoundError,
    RetrainerError,
    StoreError,
)
from retrainer.service import dashboard
from retrainer.service.auth import Token, verify_token
from retrainer.service.limits import INT64_MAX, BodyCap, PathId, QueryId
from retrainer.service.metrics import ServiceMetrics
from retrainer.store.tables import (
    AliasRow,
    BatchRow,
    CheckRow,
    CycleRow,
    DecisionRow,
    EventRow,
    RunRow,
    ScheduleSlotRow,
    WebhookDeliveryRow,
)

if TYPE_CHECKING:
    from retrainer.project import Project
    from retrainer.service.scheduler import Scheduler
    from retrainer.service.webhooks import WebhookThread

__all__ = ["create_app"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'"
)
UPLOAD_TYPES = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/octet-stream": "parquet",
}
INGEST_RETRIES = 5


class RetrainRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, le=INT64_MAX)
    reason: str = Field("promoted from the API", min_length=1, max_length=500)
    force: bool = Field(False, description="promote even a version that failed its gate")


class RollbackRequest(BaseModel):
    reason: str = Field("rolled back from the API", min_length=1, max_length=500)


class ReleaseRequest(BaseModel):
    batch: int = Field(ge=1, le=INT64_MAX)
    reason: str = Field(min_length=1, max_length=500)
    force: bool = Field(False, description="release even if the quality checks still alarm")


class RolloutRequest(BaseModel):
    target: str = Field(min_length=1, max_length=100)
    version: int | None = Field(None, ge=1, le=INT64_MAX)
    percent: float = Field(100.0, gt=0, le=100)
    rollback: bool = False
    reason: str = Field("", max_length=500)


class _Guard:
    """ASGI middleware: refuse foreign Host headers; add security headers to every response."""

    def __init__(self, app, allowed: set[str]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if "*" not in self.allowed and host not in self.allowed:
            body = json.dumps(
                {"detail": f"Host {host!r} is not served here; add it to service.allowed_hosts"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"x-frame-options", b"DENY"),
                    ],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        path = scope["path"]
        csp = DOCS_CSP if path.startswith("/docs") else CSP

        async def secured(message):
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"access-control-allow-origin"
                ]
                headers += [
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if path.startswith(("/api", "/metrics")):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, secured)


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


_bearer = HTTPBearer(auto_error=False, description="A token from `retrainer token create`.")
_credentials = Security(_bearer)


def require(scope: str) -> Callable[..., Token]:
    """A dependency: the caller's token, which must allow ``scope`` (401 without, 403 below)."""

    def check(
        request: Request, credentials: HTTPAuthorizationCredentials | None = _credentials
    ) -> Token:
        project: Project = request.app.state.project
        token = verify_token(project.store, credentials.credentials if credentials else None)
        if token is None:
            raise HTTPException(
                401,
                "missing or invalid token; send Authorization: Bearer "
                "<token> (create one with `retrainer token create`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not token.allows(scope):
            raise HTTPException(
                403, f"this token has scope {token.scope!r}; this call needs {scope!r}"
            )
        return token

    return check


def json_only(request: Request) -> None:
    """Writes with a JSON body accept ``application/json`` only (no form posts across sites)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, f"send the body as application/json, not {kind or 'nothing'!r}")


read_token = require("read")
write_token = require("write")
READ = [Depends(read_token)]
WRITE = [Depends(write_token)]
JSON_WRITE = [Depends(write_token), Depends(json_only)]


def create_app(
    project: Project,
    *,
    scheduler: Scheduler | None = None,
    webhooks: WebhookThread | None = None,
    allowed_hosts: list[str] | None = None,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    """The FastAPI app of a project.

    Parameters:
        project: the project it serves.
        scheduler: started with the app and stopped with it (None: cycles run elsewhere).
        webhooks: the webhook thread, started and stopped with the app.
        allowed_hosts: Host header names served (default: loopback names and
            ``service.host`` and ``service.allowed_hosts`` of the project file).
        metrics: the process's metrics (default: new ones).
    """
    service = project.config.service
    allowed = set(
        allowed_hosts
        if allowed_hosts is not None
        else [*LOOPBACK_NAMES, service.host, *service.allowed_hosts]
    )
    metrics = metrics or ServiceMetrics(
        project, is_leader=lambda: scheduler is not None and scheduler.lease.held
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for part in (scheduler, webhooks):
            if part is not None:
                part.start()
        yield
        for part in (webhooks, scheduler):
            if part is not None:
                await run_in_threadpool(part.stop)

    app = FastAPI(
        title=f"retrainer: {project.config.project}",
        lifespan=lifespan,
        redoc_url=None,
        description="Continuous training: batches in, models out. "
        "Authorize with a token from `retrainer token create`.",
    )
    app.state.project, app.state.metrics, app.state.scheduler = project, metrics, scheduler
    app.state.max_upload = int(service.max_upload_mb * 1024 * 1024)
    app.add_middleware(BodyCap)  # inner to the Host guard, outer to every route and token check
    app.add_middleware(_Guard, allowed=allowed)
    _errors(app)
    _public(app, project, scheduler)
    _reads(app, project, metrics)
    _writes(app, project, metrics, scheduler)
    _fleet(app, project)
    return app


def _errors(app: FastAPI) -> None:
    codes = [
        (NotFoundError, 404),
        (GateFailedError, 409),
        (ConflictError, 409),
        (DataError, 422),
        (ConfigError, 400),
        (IntegrityError, 500),
        (StoreError, 503),
        (RetrainerError, 400),
    ]

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        code = next(c for kind, c in codes if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc)}, status_code=code)

    for kind, _ in codes:
        app.add_exception_handler(kind, handle)


# ----------------------------------------------------------------------------- public
def _public(app: FastAPI, project: Project, scheduler: Scheduler | None) -> None:
    from importlib import resources

    static = resources.files("retrainer.service").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The store answers, the artifact folder exists and the scheduler (if any) ticks."""
        failing = []
        try:
            with project.store.session() as s:
                s.execute(text("select 1"))
        except Exception:  # any store failure means not ready
            failing.append("store")
        if not project.artifacts.root.is_dir():
            failing.append("artifacts")
        if scheduler is not None and not scheduler.running:
            failing.append("scheduler")
        code = 503 if failing else 200
        return JSONResponse(
            {"status": "not ready" if failing else "ready", "failing": failing}, status_code=code
        )

    @app.get("/", response_class=HTMLResponse, tags=["dashboard"])
    def home() -> str:
        """The dashboard's overview page."""
        return dashboard.render_page("overview")

    @app.get("/ui/batches/{batch_id}", response_class=HTMLResponse, tags=["dashboard"])
    def batch_page(batch_id: PathId) -> str:
        """The dashboard page of one batch (its data is fetched by the page)."""
        return dashboard.render_page("batch")

    @app.get("/ui/{page}", response_class=HTMLResponse, tags=["dashboard"])
    def page(page: str) -> str:
        """A dashboard page: performance, drift, alarms, models or batches."""
        if page == "batch":
            raise NotFoundError("open a batch at /ui/batches/<id>")
        return dashboard.render_page(page)


# ----------------------------------------------------------------------------- reads
def _rows(rows, fields: tuple[str, ...]) -> list[dict]:
    out = []
    for r in rows:
        item = {}
        for f in fields:
            value = getattr(r, f)
            item[f] = dashboard.iso(value) if hasattr(value, "isoformat") else value
        out.append(item)
    return out


BATCH_FIELDS = (
    "id",
    "key",
    "source",
    "received_at",
    "data_time",
    "n_rows",
    "n_labelled",
    "status",
    "note",
)


def _reads(app: FastAPI, project: Project, metrics: ServiceMetrics) -> None:  # noqa: C901
    store = project.store

    @app.get("/metrics", dependencies=READ, tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics (text format)."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/status", dependencies=READ, tags=["read"])
    def status() -> dict:
        """Counts, the champion, the last decision and the latest events."""
        return project.status()

    @app.get("/api/overview", dependencies=READ, tags=["read"])
    def overview() -> dict:
        """The champion, the health in words and the last decision (the dashboard's front)."""
        return dashboard.overview(project)

    @app.get("/api/batches", dependencies=READ, tags=["read"])
    def batches(
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=INT64_MAX),
        status: str | None = None,
    ) -> list[dict]:
        """Batches, newest first."""
        query = select(BatchRow).order_by(BatchRow.id.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(BatchRow.status == status)
        with store.session() as s:
            return _rows(s.scalars(query), BATCH_FIELDS)

    @app.get("/api/batches/{batch_id}", dependencies=READ, tags=["read"])
    def batch(batch_id: PathId) -> dict:
        """One batch with its profile and checks."""
        return dashboard.batch_detail(project, batch_id)

    @app.get("/api/batches/{batch_id}/profile", dependencies=READ, tags=["read"])
    def profile(batch_id: PathId) -> dict:
        """The profile of one batch."""
        detail = dashboard.batch_detail(project, batch_id)
        if detail["profile"] is None:
            raise NotFoundError(
                f"batch {batch_id} has no profile yet (it is profiled by the next cycle)"
            )
        return detail["profile"]

    @app.get("/api/batches/{batch_id}/diagnosis", dependencies=READ, tags=["read"])
    def diagnosis(batch_id: PathId) -> dict:
        """The diagnosis of one batch's alarms: ranked causes, evidence, actions, a fix."""
        found = project.diagnosis(batch_id)
        if found is None:
            raise NotFoundError(f"batch {batch_id} has no diagnosis yet (the next cycle checks it)")
        return found

    @app.get("/api/checks", dependencies=READ, tags=["read"])
    def checks(
        batch_id: QueryId = None,
        kind: str | None = None,
        alarm: bool | None = None,
        limit: int = Query(500, ge=1, le=5000),
    ) -> list[dict]:
        """Check results, newest first."""
        query = select(CheckRow).order_by(CheckRow.id.desc()).limit(limit)
        if batch_id is not None:
            query = query.where(CheckRow.batch_id == batch_id)
        if kind:
            query = query.where(CheckRow.kind == kind)
        if alarm is not None:
            query = query.where(CheckRow.alarm.is_(alarm))
        with store.session() as s:
            return [dashboard.check_dict(c) for c in s.scalars(query)]

    @app.get("/api/alarms", dependencies=READ, tags=["read"])
    def alarms(limit: int = Query(200, ge=1, le=2000)) -> list[dict]:
        """Alarms with their diagnosis (cause, action) and the decision taken, newest first."""
        return dashboard.alarms(project, limit=limit)

    @app.get("/api/alarms/summary", dependencies=READ, tags=["read"])
    def alarm_summary() -> dict:
        """Alarms grouped by cause, then column, with counts and the newest of each group."""
        return dashboard.alarm_summary(project)

    @app.get("/api/decision-log", dependencies=READ, tags=["read"])
    def decision_log(limit: int = Query(2000, ge=1, le=20000)) -> dict:
        """Every decision, newest first, reasons grouped; agreeing neighbours form stretches."""
        return dashboard.decision_log(project, limit=limit)

    @app.get("/api/decisions", dependencies=READ, tags=["read"])
    def decisions(limit: int = Query(200, ge=1, le=2000)) -> list[dict]:
        """Decisions of the trigger policy with their reasons, newest first."""
        with store.session() as s:
            rows = s.scalars(select(DecisionRow).order_by(DecisionRow.id.desc()).limit(limit))
            return _rows(rows, ("id", "cycle_id", "at", "action", "reasons", "suppressed"))

    @app.get("/api/decisions/{decision_id}", dependencies=READ, tags=["read"])
    def decision(decision_id: PathId) -> dict:
        """Why a decision went the way it did: triggers fired and suppressed, the evidence,
        the run it started, the reason in words (as `retrainer explain decision ID`)."""
        return views.decision_explanation(project, decision_id)

    @app.get("/api/cycles", dependencies=READ, tags=["read"])
    def cycles(limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """Cycles with their summaries, newest first."""
        with store.session() as s:
            rows = s.scalars(select(CycleRow).order_by(CycleRow.id.desc()).limit(limit))
            return _rows(rows, ("id", "started_at", "finished_at", "status", "summary"))

    @app.get("/api/runs", dependencies=READ, tags=["read"])
    def runs(limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """Retraining runs, newest first."""
        with store.session() as s:
            rows = s.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(limit))
            return _rows(
                rows,
                (
                    "id",
                    "key",
                    "cycle_id",
                    "decision_id",
                    "started_at",
                    "finished_at",
                    "status",
                    "window",
                    "metrics",
                    "version",
                    "error",
                ),
            )

    @app.get("/api/events", dependencies=READ, tags=["read"])
    def events(
        after: int = Query(0, ge=0, le=INT64_MAX), limit: int = Query(200, ge=1, le=2000)
    ) -> list[dict]:
        """Events of the record after an id, oldest first."""
        with store.session() as s:
            rows = s.scalars(
                select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
            )
            return _rows(rows, ("id", "at", "kind", "message", "cycle_id", "batch_id", "data"))

    @app.get("/api/models", dependencies=READ, tags=["models"])
    def models() -> list[dict]:
        """Every model version with metrics, lineage and aliases (without reference profiles)."""
        return [m.to_dict() | {"reference": None} for m in project.models]

    @app.get("/api/models/{version}", dependencies=READ, tags=["models"])
    def model(version: PathId) -> dict:
        """One model version, with its reference profile."""
        return project.registry.get(version).to_dict()

    @app.get("/api/models/{version}/artifact", dependencies=READ, tags=["models"])
    def artifact(version: PathId) -> Response:
        """The model file of a version (skops), verified against its hash before it is sent."""
        mv = project.registry.get(version)
        data = project.artifacts.get_bytes(mv.artifact)
        name = f"{project.config.project}-v{version}.skops"
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Artifact-SHA256": mv.artifact,
            },
        )

    @app.get("/api/models/{version}/bundles/{target}", dependencies=READ, tags=["models"])
    def bundle(version: PathId, target: str) -> Response:
        """The microcontroller bundle of a version for a deploy target (zip), verified first."""
        import io
        import zipfile

        from retrainer.deploy.tinyml import verify_bundle

        project.registry.get(version)
        if target not in project.config.deploy_targets:
            raise HTTPException(404, f"no deploy target {target!r} in the project file")
        folder = project.bundle_folder() / f"{target}-{version}"
        if not folder.is_dir():
            raise HTTPException(404, f"version {version} has no bundle for {target!r}")
        manifest = verify_bundle(folder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(manifest["files"]) + ["manifest.json"]:
                archive.write(folder / name, f"{folder.name}/{name}")
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{folder.name}.zip"'},
        )

    @app.get("/api/aliases", dependencies=READ, tags=["models"])
    def aliases() -> dict:
        """Where every alias points."""
        with store.session() as s:
            return {a.name: a.version for a in s.scalars(select(AliasRow))}

    @app.get("/api/aliases/{name}/history", dependencies=READ, tags=["models"])
    def alias_history(name: str) -> list[dict]:
        """Every move of an alias, oldest first."""
        return project.registry.history(name)

    @app.get("/api/performance", dependencies=READ, tags=["read"])
    def performance() -> dict:
        """Realised performance over time with retrain and promotion markers."""
        return dashboard.performance_series(project)

    @app.get("/api/drift", dependencies=READ, tags=["read"])
    def drift(
        limit: int = Query(2000, ge=1, le=20000), buckets: int = Query(40, ge=1, le=200)
    ) -> dict:
        """Drift scores per column and span of data time, newest first (the heatmap)."""
        return dashboard.drift_heatmap(project, limit=limit, buckets=buckets)

    @app.get("/api/schedule", dependencies=READ, tags=["service"])
    def schedule(limit: int = Query(50, ge=1, le=1000)) -> dict:
        """The scheduler's lease and its latest slots."""
        with store.session() as s:
            slots = _rows(
                s.scalars(select(ScheduleSlotRow).order_by(ScheduleSlotRow.id.desc()).limit(limit)),
                ("key", "nominal", "status", "attempts", "cycle_id", "error"),
            )
        sched = app.state.scheduler
        return {"lease": sched.lease.describe() if sched else None, "slots": slots}

    @app.get("/api/webhooks/deliveries", dependencies=READ, tags=["service"])
    def deliveries(limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        """The webhook delivery log, newest first."""
        with store.session() as s:
            rows = s.scalars(
                select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc()).limit(limit)
            )
            return _rows(
                rows,
                (
                    "id",
                    "event_id",
                    "event",
                    "url",
                    "status",
                    "attempts",
                    "response_code",
                    "error",
                    "created_at",
                    "delivered_at",
                ),
            )


# ----------------------------------------------------------------------------- writes
async def _body(request: Request) -> tuple[str, bytes]:
    """The request body (refused above the size limit) and its format."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in UPLOAD_TYPES:
        raise HTTPException(
            415,
            f"unsupported content type {kind or 'none'!r}; send "
            'application/json ({"key": ..., "rows": [...]}), text/csv or '
            "application/vnd.apache.parquet",
        )
    limit = request.app.state.max_upload
    return UPLOAD_TYPES[kind], await _limited(request, limit, "(service.max_upload_mb)")


async def _limited(request: Request, limit: int, why: str) -> bytes:
    """The request body, refused (413) above ``limit`` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body has {declared} bytes; the limit is {limit} {why}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body exceeds {limit} bytes {why}")
        chunks.append(chunk)
    return b"".join(chunks)


def _table(kind: str, body: bytes, where: str) -> tuple[pd.DataFrame, str | None]:
    """A DataFrame (and the key a JSON body names) from an uploaded body."""
    if not body:
        raise DataError(f"{where}: the body is empty")
    try:
        if kind == "csv":
            return pd.read_csv(io.BytesIO(body)), None
        if kind == "parquet":
            return pd.read_parquet(io.BytesIO(body)), None
        doc = json.loads(body)
    except (ValueError, OSError) as exc:  # pandas, pyarrow and json parse errors
        raise DataError(f"{where}: cannot read the {kind} body: {exc}") from None
    except RecursionError:  # JSON nested deeper than Python's stack
        raise DataError(f"{where}: the {kind} body is nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise DataError(
            f"{where}: the JSON body must be an object with a list 'rows' "
            '(e.g. {"key": "2024-05-06", "rows": [{"x": 1.0, "y": 0}]})'
        )
    rows, key = doc["rows"], doc.get("key")
    if not rows or not all(isinstance(r, dict) for r in rows):
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), 0)
        raise DataError(f"{where}: 'rows' must hold objects (row {bad} is not one)")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        raise DataError(f"{where}: 'key' must be a string of 1 to 200 characters")
    return pd.DataFrame.from_records(rows), key


def _retrying(call: Callable[[], Any]) -> Any:
    """Retry an ingest that lost a race: a concurrent insert of the same key, or a lock."""
    for attempt in range(1, INGEST_RETRIES + 1):
        try:
            return call()
        except (SQLIntegrityError, OperationalError) as exc:
            if attempt == INGEST_RETRIES:
                raise StoreError(f"the store stayed busy: {exc.orig}") from None
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


def _writes(
    app: FastAPI, project: Project, metrics: ServiceMetrics, scheduler: Scheduler | None
) -> None:
    def poke() -> None:
        if scheduler is not None:
            scheduler.wake.set()

    upload = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["rows"],
                        "properties": {
                            "key": {"type": "string"},
                            "rows": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    }

    @app.post(
        "/api/batches", dependencies=WRITE, tags=["write"], openapi_extra=upload, status_code=201
    )
    async def post_batch(
        request: Request, response: Response, key: str | None = Query(None, max_length=200)
    ) -> dict:
        """Ingest one batch (idempotent by key; 200 instead of 201 when it was already stored)."""
        started = time.perf_counter()
        kind, body = await _body(request)
        frame, named = _table(kind, body, "batch")
        info = await run_in_threadpool(
            _retrying, lambda: project.ingest(frame, key=named or key, source="api")
        )
        metrics.ingest_seconds.labels("batch").observe(time.perf_counter() - started)
        if not info.new:
            response.status_code = 200
        poke()
        return info.to_dict()

    @app.post(
        "/api/labels", dependencies=WRITE, tags=["write"], openapi_extra=upload, status_code=201
    )
    async def post_labels(
        request: Request, response: Response, key: str | None = Query(None, max_length=200)
    ) -> dict:
        """Join late labels (id and target columns) to stored batches (idempotent by key)."""
        started = time.perf_counter()
        kind, body = await _body(request)
        frame, named = _table(kind, body, "labels")
        report = await run_in_threadpool(
            _retrying, lambda: project.ingest_labels(frame, key=named or key, source="api")
        )
        metrics.ingest_seconds.labels("labels").observe(time.perf_counter() - started)
        if not report.new:
            response.status_code = 200
        poke()
        return report.to_dict()

    @app.post(
        "/api/predictions",
        dependencies=WRITE,
        tags=["write"],
        openapi_extra=upload,
        status_code=201,
    )
    async def post_predictions(
        request: Request,
        response: Response,
        key: str | None = Query(None, max_length=200),
        version: int | None = Query(
            None, ge=1, le=INT64_MAX, description="the model version that served"
        ),
    ) -> dict:
        """Join a serving system's predictions (id, prediction, optional score) to stored
        batches (idempotent by key); they are scored when the batches' labels arrive."""
        started = time.perf_counter()
        kind, body = await _body(request)
        frame, named = _table(kind, body, "predictions")
        report = await run_in_threadpool(
            _retrying,
            lambda: project.ingest_predictions(
                frame, key=named or key, version=version, source="api"
            ),
        )
        metrics.ingest_seconds.labels("predictions").observe(time.perf_counter() - started)
        if not report.new:
            response.status_code = 200
        return report.to_dict()

    writer = Depends(write_token)

    @app.post("/api/retrain", dependencies=JSON_WRITE, tags=["write"], status_code=202)
    def post_retrain(body: RetrainRequest, token: Token = writer) -> dict:
        """Ask for a retrain; the scheduler runs it in the next cycle (ignores the cooldown)."""
        project.request_retrain(body.reason, actor=f"token:{token.name}")
        poke()
        return {"requested": True, "reason": body.reason}

    @app.post("/api/promote", dependencies=JSON_WRITE, tags=["write"])
    def post_promote(body: PromoteRequest, token: Token = writer) -> dict:
        """Make a model version the champion (409 for one that failed its gate, unless
        ``force``)."""
        return project.promote(
            body.version, reason=body.reason, actor=f"token:{token.name}", force=body.force
        ).to_dict() | {"reference": None}

    @app.post("/api/release", dependencies=JSON_WRITE, tags=["write"])
    def post_release(body: ReleaseRequest, token: Token = writer) -> dict:
        """Release a quarantined ``batch`` (accepted fixes applied, quality checks re-run: 422 when
        they still alarm, unless ``force``), or the rows set aside from a batch that proceeded,
        so training windows include them; poked, the next cycle can retrain on them."""
        released = project.release(
            body.batch, body.reason, actor=f"token:{token.name}", force=body.force
        )
        poke()
        return released

    @app.post("/api/rollback", dependencies=JSON_WRITE, tags=["write"])
    def post_rollback(body: RollbackRequest, token: Token = writer) -> dict:
        """Give the champion alias back to the previous champion."""
        return project.rollback(reason=body.reason, actor=f"token:{token.name}").to_dict() | {
            "reference": None
        }


# ----------------------------------------------------------------------------- fleet
def _fleet(app: FastAPI, project: Project) -> None:
    from retrainer.deploy import fleet

    @app.get("/api/models/{version}/bundles/{target}/manifest", dependencies=READ, tags=["fleet"])
    def bundle_manifest(version: PathId, target: str) -> dict:
        """The verified manifest of a version's microcontroller bundle (file hashes, sizes)."""
        return fleet.bundle_manifest(project, version, target)

    @app.get("/api/fleet", dependencies=READ, tags=["fleet"])
    def fleet_view() -> dict:
        """Devices (target, version run and offered, last seen), rollouts, fleet drift checks."""
        return fleet.fleet(project)

    @app.get("/api/fleet/devices/{device}/bundle", dependencies=READ, tags=["fleet"])
    def device_bundle(device: str, target: str | None = Query(None, max_length=100)) -> dict:
        """Which bundle a device should run: version, bundle and manifest URLs, fallback."""
        return fleet.assignment(project, device, target).to_dict()

    @app.post("/api/telemetry", dependencies=WRITE, tags=["fleet"], status_code=201)
    async def post_telemetry(request: Request, response: Response) -> dict:
        """Store one device telemetry report (application/octet-stream, the sketch's bytes);
        its profile is checked for drift at once. 200 when it was already stored."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/octet-stream":
            raise HTTPException(415, "send the report as application/octet-stream")
        limit = min(request.app.state.max_upload, fleet.MAX_REPORT_BYTES)
        body = await _limited(request, limit, "(the most a telemetry report has)")
        stored = await run_in_threadpool(
            _retrying, lambda: fleet.ingest_telemetry(project, body, source="api")
        )
        if not stored.new:
            response.status_code = 200
        return stored.to_dict()

    writer = Depends(write_token)

    @app.post("/api/rollouts", dependencies=JSON_WRITE, tags=["fleet"], status_code=201)
    def post_rollout(body: RolloutRequest, token: Token = writer) -> dict:
        """Offer a version's bundle to a share of a target's devices, or roll back."""
        actor = f"token:{token.name}"
        if body.rollback:
            return fleet.rollback(project, body.target, reason=body.reason, actor=actor).to_dict()
        if body.version is None:
            raise HTTPException(422, "name the version to roll out (or set rollback)")
        return fleet.start_rollout(
            project, body.target, body.version, body.percent, reason=body.reason, actor=actor
        ).to_dict()
