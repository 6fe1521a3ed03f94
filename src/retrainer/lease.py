"""A named lease in the store: at most one process at a time runs a project's cycle.

The service's scheduler, ``retrainer cycle``, ``retrainer run`` and the Python API all take the
same lease (``cycle:<project>``), so two processes on one store never run two cycles at once.
The holder renews it while it works; another process takes it over once it has expired, or at
once when the holder was a process of the same host that is gone (a crash blocks nothing).

Example:
    >>> import tempfile
    >>> from datetime import timedelta
    >>> from retrainer.store import Store
    >>> store = Store(f"sqlite:///{tempfile.mkdtemp()}/store.db")
    >>> first = Lease(store, "cycle:demo", "a", timedelta(seconds=30))
    >>> second = Lease(store, "cycle:demo", "b", timedelta(seconds=30))
    >>> first.acquire(utcnow()), second.acquire(utcnow())
    (True, False)
    >>> first.release(); second.acquire(utcnow())
    True
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError

from retrainer.errors import BusyError
from retrainer.store.tables import LeaseRow, utcnow

__all__ = ["Heartbeat", "Lease", "cycle_lease", "holder_id"]

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dead_here(holder: str) -> bool:
    """Whether a holder named by ``holder_id`` was a process of this host that is gone."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but someone else's
        return False
    return False


def holder_id() -> str:
    """A name for this process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A named lease in the store: ``acquire`` takes it when free or expired and renews it
    when held.

    Parameters:
        store: the metadata store.
        name: what the lease guards (``cycle:<project>``).
        holder: who asks.
        ttl: how long a grant lasts without renewal.
    """

    def __init__(self, store: Any, name: str, holder: str, ttl: timedelta):
        self.store, self.name, self.holder, self.ttl = store, name, holder, ttl
        self.held = False

    def acquire(self, now: datetime) -> bool:
        """Take or renew the lease; returns whether this holder has it now."""
        values: dict[str, Any] = {"holder": self.holder, "expires_at": now + self.ttl}
        if not self.held:
            values["acquired_at"] = now
        try:
            with self.store.session() as s:
                taken = s.execute(
                    update(LeaseRow)
                    .where(
                        LeaseRow.name == self.name,
                        or_(LeaseRow.holder == self.holder, LeaseRow.expires_at < now),
                    )
                    .values(**values)
                ).rowcount
                row = None if taken else s.get(LeaseRow, self.name)
                if not taken and row is None:
                    s.execute(
                        insert(LeaseRow).values(name=self.name, **(values | {"acquired_at": now}))
                    )
                    taken = 1
                elif not taken and _dead_here(row.holder):  # crashed on this host: no need to wait
                    taken = s.execute(
                        update(LeaseRow)
                        .where(LeaseRow.name == self.name, LeaseRow.holder == row.holder)
                        .values(**(values | {"acquired_at": now}))
                    ).rowcount
        except (SQLIntegrityError, OperationalError):
            taken = 0
        self.held = bool(taken)
        return self.held

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so another process need not wait."""
        if self.held:
            with self.store.session() as s:
                s.execute(
                    update(LeaseRow)
                    .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                    .values(expires_at=EPOCH)
                )
            self.held = False

    def describe(self) -> dict | None:
        """The lease row as a dict, or None before anyone took it."""
        with self.store.session() as s:
            row = s.get(LeaseRow, self.name)
            if row is None:
                return None
            return {
                "name": row.name,
                "holder": row.holder,
                "acquired_at": _aware(row.acquired_at).isoformat(),
                "expires_at": _aware(row.expires_at).isoformat(),
            }


class Heartbeat:
    """Renews a lease from a side thread while the block runs (a long cycle)."""

    def __init__(self, lease: Lease, clock: Callable[[], datetime], every: timedelta):
        self.lease, self.clock, self.every = lease, clock, every.total_seconds()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._done.wait(self.every):
            if not self.lease.acquire(self.clock()):
                log.error(
                    "lost the scheduler lease during a cycle (the store was unreachable "
                    "longer than the lease)"
                )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


@contextmanager
def cycle_lease(
    project: Any, holder: str | None = None, clock: Callable[[], datetime] = utcnow
) -> Iterator[Lease]:
    """Hold the project's cycle lease for the block (renewed meanwhile).

    A ``holder`` that already has the lease (the scheduler) renews it and keeps it afterwards;
    anyone else takes it for the block and gives it up at the end. Raises ``BusyError``,
    naming the holder, when another process has it.
    """
    ttl = project.config.service.schedule.lease
    lease = Lease(project.store, f"cycle:{project.config.project}", holder or holder_id(), ttl)
    if not lease.acquire(clock()):
        held = lease.describe() or {}
        raise BusyError(
            f"another process ({held.get('holder', '?')}) is running a cycle of project "
            f"{project.config.project!r}; its lease expires at {held.get('expires_at', '?')} "
            "unless renewed. Try again later (a running `retrainer serve` runs cycles itself)."
        )
    try:
        with Heartbeat(lease, clock, ttl / 3):
            yield lease
    finally:
        if holder is None:
            lease.release()
