"""What an SQL pull costs next to ingesting the same rows as a DataFrame.

Run: ``.venv/bin/python bench/sql_source.py [--rows 336,4704,45312] [--repeat 3]``; with
``RETRAINER_TEST_DATABASE_URL`` set (``eval "$(bash .ci/postgres.sh)"``) PostgreSQL is measured
beside SQLite. ELEC2 rows (9 columns plus the watermark ``loaded_at``) are loaded into a source
table, each in two loads (the second, 10 rows, only closes the first: ``hold_last``); a pull
queries the source, writes its plan, ingests the rows under the plan's key and moves the
watermark. The reference ingests the same rows, already in a DataFrame, into a fresh project
(the same Parquet write, schema inference and events). Both use a fresh SQLite store in a
temporary folder; the median wall time of ``--repeat`` fresh runs, warm (imports done, one
untimed run first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from retrainer.datasets import load_elec2
from retrainer.integrations.sql_source import sql_source
from retrainer.project import Project

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def project(folder: Path, source=None) -> Project:
    data = {"target": "target", "id_column": "id", "time_column": "timestamp", "timezone": "UTC"}
    if source:
        data["source"] = source
    settings = {"data": data, "store": {"url": f"sqlite:///{folder}/store.db"}}
    return Project.from_dict(settings, root=folder)


def pull_seconds(url: str, rows) -> float:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rows.assign(loaded_at=T0).to_sql(table, engine, index=False)
    closing = rows.iloc[:10].assign(loaded_at=T0 + timedelta(hours=1))
    closing.to_sql(table, engine, index=False, if_exists="append")
    source = {
        "sql": f"select * from {table} where loaded_at > :since",
        "url": url,
        "watermark": "loaded_at",
        "start": "1970-01-01",
    }
    try:
        with tempfile.TemporaryDirectory() as folder:
            puller = sql_source(project(Path(folder), source))
            start = time.perf_counter()
            pulled = puller.pull()
            seconds = time.perf_counter() - start
            assert pulled.rows == len(rows)
    finally:
        with engine.begin() as c:
            c.execute(sa.text(f"drop table {table}"))
        engine.dispose()
    return seconds


def ingest_seconds(rows) -> float:
    with tempfile.TemporaryDirectory() as folder:
        p = project(Path(folder))
        start = time.perf_counter()
        p.ingest(rows, key="bench")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="336,4704,45312")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    elec = load_elec2()
    sources = {"SQLite": None}
    if os.environ.get("RETRAINER_TEST_DATABASE_URL"):
        sources["PostgreSQL"] = os.environ["RETRAINER_TEST_DATABASE_URL"]
    print("| rows | DataFrame ingest s | " + " | ".join(f"{s} pull s" for s in sources) + " |")
    print("|---|---|" + "---|" * len(sources))
    with tempfile.TemporaryDirectory() as scratch:
        sources["SQLite"] = f"sqlite:///{scratch}/source.db"
        ingest_seconds(elec.iloc[:336])  # warm-up
        pull_seconds(sources["SQLite"], elec.iloc[:336])
        for n in (int(x) for x in args.rows.split(",")):
            rows = elec.iloc[:n]
            base = statistics.median(ingest_seconds(rows) for _ in range(args.repeat))
            pulls = [
                statistics.median(pull_seconds(url, rows) for _ in range(args.repeat))
                for url in sources.values()
            ]
            print(f"| {n:,} | {base:.3f} | " + " | ".join(f"{p:.3f}" for p in pulls) + " |")


if __name__ == "__main__":
    main()
