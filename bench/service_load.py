"""Load test of `retrainer serve` on loopback: 100 concurrent clients post batches for at most
60 s; prints rows acknowledged vs rows stored, errors and the ingest latency percentiles.

Run: .venv/bin/python bench/service_load.py [--clients 100] [--seconds 60] [--rows 100]

The service runs as a subprocess on a free 127.0.0.1 port over a fresh SQLite store (the shipped
defaults), without its scheduler so that only ingest is measured. Every batch carries a unique
key; the check is that every acknowledged row is stored once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from retrainer.datasets import load_elec2
from retrainer.project import Project
from retrainer.service.auth import create_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(
    n: int, http: httpx.AsyncClient, rows: list[list[dict]], deadline: float, results: dict
) -> None:
    i = 0
    while time.monotonic() < deadline:
        batch = rows[(n * 7919 + i) % len(rows)]
        started = time.perf_counter()
        try:
            r = await http.post("/api/batches", json={"key": f"c{n}-b{i}", "rows": batch})
        except httpx.HTTPError as exc:
            results["errors"].append(f"{type(exc).__name__}: {exc}")
        else:
            if r.status_code == 201:
                results["latency"].append(time.perf_counter() - started)
                results["acked"] += len(batch)
            else:
                results["errors"].append(f"HTTP {r.status_code}: {r.text[:200]}")
        i += 1


async def load(base: str, token: str, clients: int, seconds: float, rows: list) -> dict:
    results: dict = {"latency": [], "acked": 0, "errors": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, timeout=120, limits=limits, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(n, http, rows, deadline, results) for n in range(clients)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rows", type=int, default=100, help="rows per batch")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 60.0)  # bounded by design

    folder = Path(tempfile.mkdtemp(prefix="retrainer-load-"))
    settings = {
        "project": "load",
        "data": {"target": "target", "id_column": "id", "time_column": "timestamp"},
        "trainer": {"estimator": "sklearn.tree.DecisionTreeClassifier"},
    }
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(settings))
    project = Project.from_yaml(folder / "retrainer.yaml")
    _, token = create_token(project.store, "load", scope="write")
    elec = load_elec2()
    frames = [elec.iloc[i : i + args.rows] for i in range(0, len(elec) - args.rows, args.rows)]
    rows = [json.loads(f.to_json(orient="records", date_format="iso")) for f in frames]
    project.ingest(frames[0], key="schema")  # the first batch fixes the inferred schema

    port = free_port()
    log = open(folder / "serve.log", "w")  # noqa: SIM115 (closed at the end)
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retrainer.cli",
            "-c",
            "retrainer.yaml",
            "serve",
            "--port",
            str(port),
            "--no-scheduler",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        started = time.monotonic()
        results = asyncio.run(load(base, token, args.clients, args.seconds, rows))
        elapsed = time.monotonic() - started
        status = httpx.get(
            base + "/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).json()
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
    stored = status["rows"] - len(frames[0])
    latency = np.array(results["latency"]) * 1000
    p50, p99 = np.percentile(latency, [50, 99]) if len(latency) else (float("nan"),) * 2
    print(
        f"retrainer serve ingest, loopback, SQLite, {args.clients} clients x {elapsed:.0f} s, "
        f"{args.rows} rows per batch"
    )
    print(
        f"{'batches acked':>16} {'rows sent':>10} {'rows stored':>12} {'lost':>6} "
        f"{'errors':>7} {'batches/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(
        f"{len(latency):>16} {results['acked']:>10} {stored:>12} "
        f"{results['acked'] - stored:>6} {len(results['errors']):>7} "
        f"{len(latency) / elapsed:>10.1f} {p50:>8.1f} {p99:>8.1f}"
    )
    for error in sorted(set(results["errors"]))[:5]:
        print("  error:", error)


if __name__ == "__main__":
    main()
