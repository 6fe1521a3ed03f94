"""Input limits of the service: request bodies capped before authentication, 64-bit ids.

``BodyCap`` is ASGI middleware: it refuses a declared ``Content-Length`` above the route's cap
at once, without reading a byte, and stops a streamed body the moment it passes the cap (413).
Uploads (batches, labels, predictions, telemetry) may have ``service.max_upload_mb``; every
other route ``SMALL_BODY_BYTES``. It runs before routing, so no route (and no token check,
which FastAPI runs after reading a JSON body) sees more than its cap.

Example:
    >>> body_limit("/api/batches", 1 << 20), body_limit("/api/promote", 1 << 20)
    (1048576, 65536)
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import HTTPException, Path, Query

SMALL_BODY_BYTES = 64 * 1024  # a JSON request of the API (reason texts of 500 characters)
UPLOAD_PATHS = ("/api/batches", "/api/labels", "/api/predictions", "/api/telemetry")
INT64_MAX = 2**63 - 1

# An id of the store: a signed 64-bit integer (SQLite's and PostgreSQL's largest), else 422.
PathId = Annotated[int, Path(ge=-INT64_MAX - 1, le=INT64_MAX)]
QueryId = Annotated[int | None, Query(ge=-INT64_MAX - 1, le=INT64_MAX)]


def body_limit(path: str, max_upload: int) -> int:
    """The most bytes a request body to ``path`` may have."""
    upload = any(path == p or path.startswith(p + "/") for p in UPLOAD_PATHS)
    return max(max_upload, SMALL_BODY_BYTES) if upload else SMALL_BODY_BYTES


class BodyCap:
    """ASGI middleware: a request body above its route's cap is refused (413) before any
    route runs; the upload routes' cap is the app's ``state.max_upload``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"], scope["app"].state.max_upload)
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1").strip()
        if declared and (not declared.isdigit() or int(declared) > limit):
            return await _refuse(send, f"the body has {declared} bytes; the limit is {limit}")
        size = 0

        async def capped():
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:  # an HTTPException: FastAPI's body reader passes it on
                    raise HTTPException(413, f"the body exceeds {limit} bytes")
            return message

        started = False

        async def watched(message):
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, watched)
        except HTTPException as exc:  # raised where no handler turns it into a response
            if started:
                raise
            await _refuse(send, exc.detail)


async def _refuse(send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
