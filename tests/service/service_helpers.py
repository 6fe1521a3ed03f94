"""Helpers of the service tests: settings, JSON rows, a webhook receiver."""

import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import store_url

WEEK = 336  # half-hours in a week of ELEC2


def service_settings(folder=None, **overrides):
    """Settings of an ELEC2 project with a quick trainer and no schedule, on ``store.db`` beside
    the project file, or on PostgreSQL (``RETRAINER_TEST_DATABASE_URL``) in a schema of its own
    (the same ``folder`` gives the same schema; without one, a fresh schema each call)."""
    settings = {
        "project": "svc",
        "store": {"url": store_url(folder), "artifacts": "artifacts"},
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": {"max_depth": 6, "random_state": 0},
            "window": {"batches": 4},
            "min_rows": 200,
        },
        "policy": {"triggers": [{"type": "drift"}, {"type": "concept"}, {"type": "manual"}]},
        "gate": {"metric": "accuracy", "tolerance": 0.01},
    }
    settings.update(overrides)
    return settings


def records(frame):
    """JSON rows of a DataFrame, timestamps as ISO 8601 with their offset."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


class Receiver:
    """A loopback HTTP server that records every request and answers from a list of codes."""

    def __init__(self, codes=(200,), location=None):
        self.requests = []
        self.codes = list(codes)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(project):
    """The project's app served by uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    from retrainer.service import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(project), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
