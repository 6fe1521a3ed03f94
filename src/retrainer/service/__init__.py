"""The service (``retrainer serve``): REST API, dashboard, scheduler, webhooks and metrics in one
process on the project's store.

Example:
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from retrainer.errors import RetrainerError
from retrainer.service.app import create_app
from retrainer.service.auth import create_token, has_tokens

if TYPE_CHECKING:
    from retrainer.project import Project

__all__ = ["create_app", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    project: Project,
    *,
    host: str | None = None,
    port: int | None = None,
    scheduler: bool = True,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the service until interrupted.

    A non-loopback address is refused while the store holds no API token. On loopback a
    fresh store gets a write token, printed once.

    Parameters:
        project: the project to serve.
        host: address to listen on (default ``service.host``).
        port: port (default ``service.port``).
        scheduler: run cycles in this process (False: API and dashboard only).
        echo: where to print the address and a generated token.
    """
    import uvicorn

    from retrainer.service.metrics import ServiceMetrics
    from retrainer.service.scheduler import Scheduler
    from retrainer.service.webhooks import WebhookDispatcher, WebhookThread

    settings = project.config.service
    host = host or settings.host
    port = settings.port if port is None else port
    if not has_tokens(project.store):
        if not is_loopback(host):
            raise RetrainerError(
                f"refusing to listen on {host} without an API token: anyone who can reach it "
                "could change the champion. Create one first: retrainer token create --name "
                "admin --scope write"
            )
        _, text = create_token(project.store, "bootstrap", scope="write")
        echo(f"no API token existed; created a write token (shown once, keep it): {text}")
    sched = None
    metrics = ServiceMetrics(project, is_leader=lambda: sched is not None and sched.lease.held)
    if scheduler:
        sched = Scheduler(
            project, on_cycle=metrics.observe_cycle, on_missed=metrics.missed_slots.inc
        )
    hooks = None
    if settings.webhooks:
        hooks = WebhookThread(WebhookDispatcher(project))
    app = create_app(project, scheduler=sched, webhooks=hooks, metrics=metrics)
    shown = f"[{host}]" if ":" in host else host
    echo(
        f"retrainer serving {project.config.project} on http://{shown}:{port} "
        f"(dashboard /, API docs /docs, metrics /metrics); scheduler "
        f"{'on' if scheduler else 'off'}"
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        access_log=False,
    )
