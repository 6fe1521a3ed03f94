"""The process the crash-safety test kills: ELEC2 weeks through the real loop, with a kill switch.

Run as ``python crash_worker.py ROOT WEEKS [POINT N]``. It opens the project in ROOT, then for
each week: ingests the previous week's labels (late labels), ingests the week's features, and
runs a cycle. Every ingest that returned prints ``accepted <key> <rows>`` (flushed), so the
test knows what the store promised to keep. With POINT and N it sends itself SIGKILL at the
N-th call of POINT:

- ``fsync``: inside an artifact write, after the bytes, before the fsync and rename;
- ``replace``: right after an artifact file got its final name (no row yet);
- ``commit``: inside a database commit, before it happens;
- ``committed``: right after a database commit;
- ``register``: right after a model version was registered (before the gate's promotion);
- ``promote``: right after an alias switch.

Ingest is idempotent by key, so a restarted worker redoes only what is missing.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

WEEK = 48 * 7
BOOTSTRAP = 2  # the first weeks arrive labelled


def _kill_at(point: str, n: int) -> None:
    """Patch the chosen call so that its ``n``-th call kills this process."""
    import sqlalchemy.orm

    from retrainer.registry import Registry

    calls = 0

    def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == n:
            print(f"killing at {point} #{n}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    def before(original):
        def wrapper(*args, **kwargs):
            tick()
            return original(*args, **kwargs)

        return wrapper

    def after(original):
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            tick()
            return result

        return wrapper

    if point == "fsync":
        os.fsync = before(os.fsync)
    elif point == "replace":
        os.replace = after(os.replace)
    elif point == "commit":
        sqlalchemy.orm.Session.commit = before(sqlalchemy.orm.Session.commit)
    elif point == "committed":
        sqlalchemy.orm.Session.commit = after(sqlalchemy.orm.Session.commit)
    elif point == "register":
        Registry.register = after(Registry.register)
    elif point == "promote":
        Registry._move = after(Registry._move)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(root: Path, weeks: int) -> None:
    from retrainer.datasets import load_elec2
    from retrainer.project import Project

    project = Project.from_yaml(root / "retrainer.yaml")
    elec = load_elec2().iloc[: WEEK * weeks]
    features = [c for c in elec.columns if c != "target"]
    for i in range(weeks):
        week = elec.iloc[i * WEEK : (i + 1) * WEEK]
        if i > BOOTSTRAP + 1:
            previous = elec.iloc[(i - 1) * WEEK : i * WEEK][["id", "target"]]
            labels = project.ingest_labels(previous, key=f"labels-{i - 1:03d}")
            print(f"accepted labels-{i - 1:03d} {labels.n_rows}", flush=True)
        batch = project.ingest(week if i <= BOOTSTRAP else week[features], key=f"week-{i:03d}")
        print(f"accepted week-{i:03d} {batch.n_rows}", flush=True)
        if batch.new or i == weeks - 1:
            project.cycle()
            print(f"cycle after week-{i:03d}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5:
        _kill_at(sys.argv[3], int(sys.argv[4]))
    main(Path(sys.argv[1]), int(sys.argv[2]))
