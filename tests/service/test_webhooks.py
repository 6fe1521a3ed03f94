"""Webhooks: signed deliveries of record events, retries with back-off and a delivery log, and
the SSRF guard at connection time (RELIABILITY S7)."""

import hashlib
import hmac
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retrainer.errors import ConfigError
from retrainer.service.webhooks import BlockedAddressError, WebhookDispatcher, guard_address, post
from retrainer.store.tables import WebhookDeliveryRow

SECRET = "test-secret-123"


class Clock:
    def __init__(self):
        self.at = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self):
        return self.at


def hook(url, **extra):
    return {"url": url, "secret_env": "HOOK_SECRET", "allow_private": True, **extra}


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def test_events_are_delivered_signed(service_project, receiver, elec):
    server = receiver()
    project = service_project(service={"webhooks": [hook(server.url)]})
    dispatcher = WebhookDispatcher(project)
    assert dispatcher.enqueue() == 0  # first start: the cursor is set at the latest event
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()  # decision, version 1, promotion
    project.request_retrain("by hand")
    project.ingest(elec.iloc[1344:1680], key="week-5")
    project.cycle()
    results = dispatcher.pump()
    assert results and all(r.status == "delivered" for r in results)
    events = [json.loads(body)["event"] for _, _, body in server.requests]
    assert {"decision", "version", "promotion"} <= set(events)
    for _, headers, body in server.requests:
        stamp = headers["X-Retrainer-Timestamp"]
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert headers["X-Retrainer-Signature"] == "sha256=" + expected.hexdigest()
        assert headers["X-Retrainer-Event"] == json.loads(body)["event"]
    promotion = next(json.loads(b) for _, _, b in server.requests if b"promotion" in b)
    assert promotion["data"]["version"] == 1 and promotion["project"] == "svc"
    assert dispatcher.pump() == []  # nothing is sent twice
    with project.store.session() as s:
        assert all(r.status == "delivered" for r in s.scalars(select(WebhookDeliveryRow)))


def test_only_subscribed_events_and_one_row_per_event_across_processes(
    service_project, receiver, elec
):
    server = receiver()
    project = service_project(service={"webhooks": [hook(server.url, events=["promotion"])]})
    first, second = WebhookDispatcher(project), WebhookDispatcher(project, holder="other")
    first.enqueue()
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()
    project.set_state("webhook_cursor", {"event_id": 0})
    assert first.enqueue() == 1
    project.set_state("webhook_cursor", {"event_id": 0})
    assert second.enqueue() == 0  # the unique key keeps a second process from queueing it
    first.send_due()
    second.send_due()
    assert [json.loads(b)["event"] for _, _, b in server.requests] == ["promotion"]


def test_failures_are_retried_with_back_off_then_logged(service_project, receiver, elec):
    server = receiver(codes=(500, 503, 200))
    clock = Clock()
    project = service_project(
        service={"webhooks": [hook(server.url, events=["decision"], backoff="10s")]}
    )
    dispatcher = WebhookDispatcher(project, clock=clock)
    dispatcher.enqueue()
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()
    dispatcher.enqueue()
    waits = []
    for _ in range(3):
        (result,) = dispatcher.send_due()
        with project.store.session() as s:
            row = s.get(WebhookDeliveryRow, result.id)
            waits.append(row.next_at.replace(tzinfo=UTC) - clock.at)
        assert dispatcher.send_due() == []  # not due before its back-off
        clock.at += timedelta(minutes=5)
    assert [r[1]["X-Retrainer-Delivery"] for r in server.requests] == [row.key] * 3
    assert row.status == "delivered" and row.attempts == 3 and row.response_code == 200
    assert timedelta(seconds=5) <= waits[0] <= timedelta(seconds=10)
    assert timedelta(seconds=10) <= waits[1] <= timedelta(seconds=20)


def test_a_delivery_fails_for_good_after_max_attempts(service_project, receiver, elec):
    server = receiver(codes=(500,))
    clock = Clock()
    project = service_project(
        service={"webhooks": [hook(server.url, events=["decision"], max_attempts=2)]}
    )
    dispatcher = WebhookDispatcher(project, clock=clock)
    dispatcher.enqueue()
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()
    dispatcher.enqueue()
    statuses = []
    for _ in range(3):
        statuses += [r.status for r in dispatcher.send_due()]
        clock.at += timedelta(hours=1)
    assert statuses == ["pending", "failed"] and len(server.requests) == 2


def test_a_missing_secret_is_a_config_error(service_project, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    project = service_project(service={"webhooks": [hook("https://hooks.example.com/x")]})
    with pytest.raises(ConfigError, match="HOOK_SECRET"):
        WebhookDispatcher(project)


def test_only_http_and_https_urls_are_accepted(service_project):
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://x", "http://"):
        with pytest.raises(ConfigError, match="http"):
            service_project(service={"webhooks": [hook(url)]})
    with pytest.raises(BlockedAddressError):
        post("file:///etc/passwd", b"{}", {})


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if any socket connects (the guard must refuse before connecting)."""
    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise AssertionError(f"connected to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://2130706433/x",
        "http://0x7f.1/x",
        "http://localhost:8765/api",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://192.168.1.1/x",
        "https://100.64.0.1/x",
    ],
)
def test_private_addresses_are_refused_at_connection_time(url, no_connect):
    with pytest.raises(BlockedAddressError, match="refused"):
        post(url, b"{}", {"Content-Type": "application/json"})
    assert no_connect == []


def test_dns_rebinding_is_checked_on_the_address_used(monkeypatch, no_connect):
    answers = [["93.184.216.34"], ["127.0.0.1"], ["93.184.216.34", "10.1.2.3"]]
    calls = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        ips = answers[min(len(calls) - 1, len(answers) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(AssertionError, match="93.184.216.34"):  # public: it would connect
        post("http://rebind.example/x", b"{}", {})
    with pytest.raises(BlockedAddressError, match="127.0.0.1"):  # the second answer is checked
        post("http://rebind.example/x", b"{}", {})
    with pytest.raises(BlockedAddressError, match="10.1.2.3"):  # any private answer refuses
        post("http://rebind.example/x", b"{}", {})
    assert no_connect == [("93.184.216.34", 80)] and len(calls) == 3


def test_redirects_are_not_followed(service_project, receiver, elec):
    target = receiver()
    redirector = receiver(codes=(302,), location=target.url)
    clock = Clock()
    project = service_project(service={"webhooks": [hook(redirector.url, events=["decision"])]})
    dispatcher = WebhookDispatcher(project, clock=clock)
    dispatcher.enqueue()
    project.ingest(elec.iloc[:1344], key="four-weeks")
    project.cycle()
    dispatcher.enqueue()
    (result,) = dispatcher.send_due()
    assert result.status == "failed" and "redirects are not followed" in result.error
    assert len(redirector.requests) == 1 and target.requests == []


@pytest.mark.parametrize(
    "address, embedded",
    [
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4 of loopback
        ("2002:a9fe:a9fe::", "169.254.169.254"),  # 6to4 of the metadata service
        ("2002:0a00:0001::1", "10.0.0.1"),  # 6to4 of a private address
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 (RFC 6052) of loopback
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 of the metadata service
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo, client loopback
        ("::ffff:a9fe:a9fe", "169.254.169.254"),  # IPv4-mapped
    ],
)
def test_ipv6_forms_that_embed_a_refused_ipv4_are_refused(address, embedded, no_connect):
    reason = guard_address(address)
    assert reason is not None and embedded in reason
    with pytest.raises(BlockedAddressError, match="refused"):
        post(f"http://[{address}]:8443/x", b"{}", {})
    assert no_connect == []


def test_embedded_public_ipv4_and_plain_public_ipv6_pass_the_guard():
    assert guard_address("2002:5db8:d822::1") is None  # 6to4 of 93.184.216.34
    assert guard_address("64:ff9b::5db8:d822") == "reserved"  # all of ::/8 stays refused
    assert guard_address("2606:4700:4700::1111") is None


def test_an_ipv6_url_with_a_port_connects_to_that_address_and_port(monkeypatch, no_connect):
    asked = []

    def resolve(host, port, *args, **kwargs):
        asked.append((host, port))
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:4700:4700::1111", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for url, port in [
        ("http://[2606:4700:4700::1111]:8443/hook", 8443),
        ("http://[2606:4700:4700::1111]/", 80),
    ]:
        with pytest.raises(AssertionError, match="connected"):  # it got as far as connecting
            post(url, b"{}", {})
        assert asked[-1] == ("2606:4700:4700::1111", port)
    assert [a[1] for a in no_connect] == [8443, 80]


def test_an_ipv6_webhook_with_a_port_delivers():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server6(http.server.HTTPServer):
        address_family = socket.AF_INET6

    try:
        server = Server6(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert post(f"http://[::1]:{port}/hook", b"{}", {}, allow_private=True) == 204
    finally:
        server.shutdown()
        server.server_close()
