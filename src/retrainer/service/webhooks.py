"""Webhooks: events of the record (alarm, decision, new version, promotion, rollback) POSTed as
signed JSON, retried with exponential back-off, every attempt kept in the delivery log.

Every event gets one delivery row per webhook (a unique key, so two service processes never
queue it twice); a sender claims a row before posting it. The body is signed with HMAC-SHA256
over ``<timestamp>.<body>``: header ``X-Retrainer-Signature: sha256=<hex>`` next to
``X-Retrainer-Timestamp``. Receivers check it with :func:`verify_signature`.

The SSRF guard resolves the host once per connection, refuses the connection when any address
is loopback, private, link-local, multicast or otherwise not globally routable (decimal and hex
spellings such as ``2130706433`` resolve to the address they hide), then connects to the very
address it checked, so a DNS answer that changes between check and use does not matter.
Redirects are never followed; responses are read up to 64 KiB.

Example:
    >>> body = b'{"event": "promotion"}'
    >>> headers = sign(body, "s3cret", timestamp=1700000000)
    >>> headers["X-Retrainer-Signature"][:7]
    'sha256='
    >>> verify_signature("s3cret", body, headers["X-Retrainer-Timestamp"],
    ...                  headers["X-Retrainer-Signature"], now=1700000010)
    True
    >>> guard_address("169.254.169.254")
    'link-local'
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from retrainer.config import WebhookSettings
from retrainer.errors import ConfigError, RetrainerError
from retrainer.store.tables import EventRow, WebhookDeliveryRow, utcnow
from retrainer.version import __version__

if TYPE_CHECKING:
    from retrainer.project import Project

__all__ = [
    "BlockedAddressError",
    "WebhookDispatcher",
    "WebhookThread",
    "event_name",
    "guard_address",
    "payload_schema",
    "post",
    "sign",
    "verify_signature",
]

log = logging.getLogger("retrainer.service")
MAX_RESPONSE = 64 * 1024
CURSOR = "webhook_cursor"
SCHEMA = "webhook.schema.json"  # the payloads' JSON schema
CLAIM_MARGIN = timedelta(seconds=30)
_KINDS = {
    "decision": "decision",
    "register": "version",
    "promote": "promotion",
    "rollback": "rollback",
}


class BlockedAddressError(RetrainerError):
    """A webhook URL resolves to an address the SSRF guard refuses."""


def guard_address(address: str) -> str | None:
    """Why connecting to this IP address is refused (``loopback``, ``private``, ...), or None.
    An IPv6 address that carries an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo) is refused
    when the IPv4 address it carries is.

    Example:
        >>> guard_address("2002:a9fe:a9fe::")
        '6to4 address of 169.254.169.254 (link-local)'
        >>> guard_address("2002:5db8:d822::1") is None
        True
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        for form, inner in _embedded_ipv4(ip):
            reason = _refused(inner)
            if reason:
                return f"{form} of {inner} ({reason})"
    return _refused(ip)


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, with the name of the form."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped address", ip.ipv4_mapped))
    if ip.sixtofour is not None:
        found.append(("6to4 address", ip.sixtofour))
    if ip in NAT64:
        found.append(("NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip.teredo is not None:
        server, client = ip.teredo
        found += [("Teredo address", server), ("Teredo address", client)]
    return found


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for reason in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    return None if ip.is_global else "not globally routable"


def _connect(host: str, port: int, timeout: float, allow_private: bool) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    if not allow_private:
        for *_, sockaddr in infos:
            reason = guard_address(sockaddr[0])
            if reason:
                raise BlockedAddressError(
                    f"webhook host {host!r} resolves to {sockaddr[0]} ({reason}): refused; set "
                    "allow_private: true on the webhook only for a trusted internal receiver"
                )
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise OSError(f"cannot connect to {host!r}: {error}")


class _GuardedHTTP(http.client.HTTPConnection):
    allow_private = False

    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout, self.allow_private)


class _GuardedHTTPS(http.client.HTTPSConnection):
    allow_private = False

    def connect(self) -> None:
        raw = _connect(self.host, self.port, self.timeout, self.allow_private)
        self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = 5.0,
    allow_private: bool = False,
) -> int:
    """POST ``body`` to ``url`` through the SSRF guard; returns the HTTP status code.

    Raises BlockedAddressError for a refused address and OSError when no connection could be
    made. Redirects are returned as their 3xx code, not followed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddressError(f"{url!r}: only http:// and https:// URLs are allowed")
    kind = _GuardedHTTPS if parts.scheme == "https" else _GuardedHTTP
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number
        raise BlockedAddressError(f"{url!r}: {exc}") from None
    # the bare host and an explicit port: http.client neither strips brackets when a port is
    # given nor parses an IPv6 literal without one (and writes the Host header brackets itself)
    conn = kind(parts.hostname, port, timeout=timeout)
    conn.allow_private = allow_private
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE)
        return response.status
    except (http.client.HTTPException, ssl.SSLError) as exc:
        raise OSError(f"{url}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The timestamp and signature headers for ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Retrainer-Timestamp": stamp, "X-Retrainer-Signature": f"sha256={digest}"}


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` (within ``tolerance`` seconds)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = sign(body, secret, timestamp=int(timestamp))["X-Retrainer-Signature"]
    return hmac.compare_digest(expected, signature) and age <= tolerance


def payload_schema() -> dict:
    """The JSON schema every payload follows (``webhook.schema.json``, shipped with this
    module; Draft 2020-12).

    >>> sorted(payload_schema()["properties"]["event"]["enum"])
    ['alarm', 'decision', 'promotion', 'rollback', 'version']
    """
    from importlib.resources import files

    return json.loads(files("retrainer.service").joinpath(SCHEMA).read_text(encoding="utf-8"))


def _aware(at: datetime) -> datetime:
    """A stored time with its UTC offset (SQLite hands times back without one)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def event_name(row: EventRow) -> str | None:
    """The webhook event of a record event, or None when webhooks do not announce it."""
    if row.kind == "check":
        return "alarm" if (row.data or {}).get("causes") else None
    return _KINDS.get(row.kind)


@dataclass(frozen=True)
class DeliveryResult:
    """One delivery attempt."""

    id: int
    status: str
    attempts: int
    response_code: int | None
    error: str

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "attempts": self.attempts,
            "response_code": self.response_code,
            "error": self.error,
        }


class WebhookDispatcher:
    """Queues deliveries for new events and sends the due ones.

    Parameters:
        project: the project whose events are announced.
        webhooks: the webhooks (default: ``service.webhooks`` of the project file).
        holder: who claims deliveries (a process id).
        clock: the time source.
    """

    def __init__(
        self,
        project: Project,
        webhooks: list[WebhookSettings] | None = None,
        *,
        holder: str = "",
        clock=utcnow,
    ):
        self.project = project
        self.webhooks = list(project.config.service.webhooks if webhooks is None else webhooks)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.secrets: dict[str, str] = {}
        for i, hook in enumerate(self.webhooks):
            secret = os.environ.get(hook.secret_env)
            if not secret:
                raise ConfigError(
                    [
                        f"service.webhooks.{i}.secret_env: environment variable "
                        f"{hook.secret_env} is not set (it holds the HMAC secret)"
                    ]
                )
            self.secrets[hook.url] = secret

    def enqueue(self) -> int:
        """Queue one delivery per webhook for every event after the cursor; returns how many."""
        if not self.webhooks:
            return 0
        state = self.project.get_state(CURSOR)
        with self.project.store.session() as s:
            if state is None:  # first start: announce what happens from now on
                latest = s.scalar(select(func.max(EventRow.id))) or 0
                self.project.set_state(CURSOR, {"event_id": latest}, s)
                return 0
            events = s.scalars(
                select(EventRow)
                .where(EventRow.id > state["event_id"])
                .order_by(EventRow.id)
                .limit(500)
            ).all()
            pending = [(e.id, event_name(e), e) for e in events]
        queued = 0
        for event_id, name, event in pending:
            for hook in self.webhooks:
                if name in hook.events:
                    queued += self._queue(event_id, name, event, hook)
        if pending:
            self.project.set_state(CURSOR, {"event_id": pending[-1][0]})
        return queued

    def _queue(self, event_id: int, name: str, event: EventRow, hook: WebhookSettings) -> int:
        digest = hashlib.sha256(hook.url.encode()).hexdigest()[:16]
        payload = {
            "event": name,
            "event_id": event_id,
            "project": self.project.config.project,
            "at": _aware(event.at).isoformat(),
            "message": event.message,
            "batch_id": event.batch_id,
            "cycle_id": event.cycle_id,
            "data": event.data or {},
        }
        try:
            with self.project.store.session() as s:
                s.add(
                    WebhookDeliveryRow(
                        key=f"{event_id}:{digest}",
                        event_id=event_id,
                        event=name,
                        url=hook.url,
                        payload=payload,
                        next_at=self.clock(),
                    )
                )
        except SQLIntegrityError:
            return 0  # another process queued it
        return 1

    def send_due(self, limit: int = 50) -> list[DeliveryResult]:
        """Send every delivery whose time has come; returns what each attempt gave."""
        hooks = {h.url: h for h in self.webhooks}
        now = self.clock()
        with self.project.store.session() as s:
            due = s.scalars(
                select(WebhookDeliveryRow.id)
                .where(
                    WebhookDeliveryRow.status == "pending",
                    WebhookDeliveryRow.next_at <= now,
                    WebhookDeliveryRow.url.in_(list(hooks)),
                )
                .order_by(WebhookDeliveryRow.id)
                .limit(limit)
            ).all()
        return [r for d in due if (r := self._attempt(d, hooks)) is not None]

    def _attempt(
        self, delivery_id: int, hooks: dict[str, WebhookSettings]
    ) -> DeliveryResult | None:
        with self.project.store.session() as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            hook = hooks[row.url]
            claim_until = self.clock() + hook.timeout * 2 + CLAIM_MARGIN
            claimed = s.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.status == "pending")
                .values(status="sending", holder=self.holder, next_at=claim_until)
            ).rowcount
            if not claimed:
                return None
            s.refresh(row)
            url, key, payload, attempts = row.url, row.key, dict(row.payload), row.attempts + 1
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Retrainer-Event": payload["event"],
            "X-Retrainer-Delivery": key,
            "User-Agent": f"retrainer/{__version__}",
            **sign(body, self.secrets[url]),
        }
        code, error = None, ""
        try:
            code = post(
                url,
                body,
                headers,
                timeout=hook.timeout.total_seconds(),
                allow_private=hook.allow_private,
            )
            if not 200 <= code < 300:
                error = f"HTTP {code}" + (
                    " (redirects are not followed)" if 300 <= code < 400 else ""
                )
        except (OSError, RetrainerError) as exc:
            error = str(exc)
        now = self.clock()
        if not error:
            status = "delivered"
        elif attempts >= hook.max_attempts or isinstance(code, int) and 300 <= code < 400:
            status = "failed"
        else:
            status = "pending"
        with self.project.store.session() as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            row.status, row.attempts, row.response_code, row.error = status, attempts, code, error
            row.holder = ""
            if status == "delivered":
                row.delivered_at = now
            elif status == "pending":
                row.next_at = now + _backoff(hook.backoff, attempts)
        if error:
            log.warning("webhook %s, delivery %s attempt %d: %s", url, key, attempts, error)
        return DeliveryResult(delivery_id, status, attempts, code, error)

    def release_stale(self) -> int:
        """Put deliveries whose sender died mid-post (claim expired) back in the queue."""
        with self.project.store.session() as s:
            return s.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.status == "sending",
                    WebhookDeliveryRow.next_at < self.clock(),
                )
                .values(status="pending", holder="")
            ).rowcount

    def pump(self) -> list[DeliveryResult]:
        """Release stale claims, queue new events, then send what is due."""
        self.release_stale()
        self.enqueue()
        return self.send_due()


def _backoff(base: timedelta, attempts: int) -> timedelta:
    """Exponential back-off with full jitter on the upper half: base * 2^(n-1) * [0.5, 1]."""
    return base * (2 ** (attempts - 1)) * random.uniform(0.5, 1.0)


class WebhookThread:
    """Pumps a dispatcher from a background thread every ``interval`` seconds."""

    def __init__(self, dispatcher: WebhookDispatcher, interval: float = 1.0):
        self.dispatcher, self.interval = dispatcher, interval
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retrainer-webhooks", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatcher.pump()
            except Exception:  # keep announcing through a store hiccup
                log.exception("webhook pump failed")
            self.wake.wait(self.interval)
            self.wake.clear()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current delivery."""
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout)
