"""Turn-taking between pqlkit processes on one DuckDB file: an exclusive flock on
``<db>.lock``, shared by the connections of one process (DuckDB shares one database instance
within a process too), with a queue so that no process starves.

Without the queue, a process whose threads keep opening connections (the web app serving a page
every 0.4 s) never lets its count fall to zero, and `pql score` waited its whole
PQL_LOCK_TIMEOUT and failed. So a process that finds the file taken leaves a ticket beside it
(``<db>.lock.want.<pid>.<n>``); tickets are served oldest first; and a process that holds the
file lets no new connection of its own join while another process's ticket waits (a thread that
already holds a connection still may: it would otherwise wait for itself). A long-lived holder
(the web app's warm connection) asks :meth:`FileLock.wanted_elsewhere` and lets go.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, ClassVar

from ..errors import BackendUnavailable

_tickets = itertools.count()


class _Ticket:
    """One waiter's place in the queue: a file whose name orders it (time, pid, number), on
    which its waiter holds a flock while it waits: a ticket nobody holds is stale (its waiter
    died), whatever process now has its pid."""

    def __init__(self, lock: Path):
        self.lock = lock
        stamp = f"{time.time_ns():020d}"
        name = f"{stamp}.{os.getpid()}.{next(_tickets)}"
        self.path = lock.with_name(f"{lock.name}.want.{name}")
        # locked under another name, then renamed into the queue: no one sees it unlocked
        draft = lock.with_name(f"{lock.name}.draft.{name}")
        self.fh = open(draft, "a+b")  # noqa: SIM115  (closed by drop)
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(draft, self.path)

    def first(self) -> bool:
        """Whether no live ticket of another process is older than this one (threads of one
        process share the lock, so they need no order among themselves; stale tickets, of dead
        processes, go)."""
        me = os.getpid()
        for other in sorted(_waiting(self.lock)):
            if other == self.path:
                return True
            if _pid(other) != me and _alive(other):
                return False
        return True

    def drop(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.fh.close()


def _waiting(lock: Path) -> list[Path]:
    return list(lock.parent.glob(f"{lock.name}.want.*"))


def _pid(ticket: Path) -> int:
    try:
        return int(ticket.name.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return -1  # not a ticket of ours


def _alive(ticket: Path) -> bool:
    """Whether the ticket's waiter still waits: it holds a flock on the ticket while it does
    (a pid alone may have been reused: a container's `pql serve` is always pid 1)."""
    try:
        with open(ticket, "rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:
        return False  # gone meanwhile, or unreadable: not a waiter to wait for
    with contextlib.suppress(OSError):
        ticket.unlink()  # a waiter that died
    return False


class FileLock:
    _held: ClassVar[dict[Path, list[Any]]] = {}  # lock path -> [file, count]
    _guard = threading.Lock()
    _mine = threading.local()  # lock path -> connections this thread holds

    def __init__(self, path: Path):
        self.path = path
        self._open = True
        # the opening thread's counts: a connection closed on another thread (the web app's
        # warm one, let go by its keeper) must leave its opener's count, not the closer's
        self._owner = self._counts()
        self._owner[path] = self._owner.get(path, 0) + 1

    @classmethod
    def _counts(cls) -> dict[Path, int]:
        if not hasattr(cls._mine, "counts"):
            cls._mine.counts = {}
        counts: dict[Path, int] = cls._mine.counts
        return counts

    @staticmethod
    def lock_path(db_path: str) -> Path:
        path = Path(db_path).expanduser().resolve()
        return path.with_name(path.name + ".lock")

    @classmethod
    def wanted_elsewhere(cls, db_path: str) -> bool:
        """Whether another process waits for this file (a warm connection should let go)."""
        me = os.getpid()
        return any(_pid(t) != me and _alive(t) for t in _waiting(cls.lock_path(db_path)))

    @classmethod
    def take(cls, db_path: str, wait: float) -> FileLock:
        path = cls.lock_path(db_path)
        if cls._counts().get(path) and cls._join(path):  # this thread holds it: never wait
            return cls(path)
        if not cls.wanted_elsewhere(db_path) and cls._join(path):
            return cls(path)
        fh = open(path, "a+b")  # noqa: SIM115  (closed when the last connection closes)
        if not cls.wanted_elsewhere(db_path):  # no other process queued: try at once
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls._took(path, fh)
            except BlockingIOError:
                pass
        ticket = _Ticket(path)
        try:
            deadline = time.monotonic() + wait
            delay = 0.005
            while True:
                if ticket.first():
                    # flock conflicts between open files, so a thread of ours that took the
                    # lock meanwhile blocks us too until its last connection closes: join it
                    if cls._join(path):
                        fh.close()
                        return cls(path)
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        return cls._took(path, fh)
                    except BlockingIOError:
                        pass
                if time.monotonic() >= deadline:
                    fh.close()
                    raise BackendUnavailable(
                        f"the DuckDB file {db_path} is in use by another pqlkit process (for example "
                        f"`pql score`, or `pql serve` flushing) and stayed busy for {wait:.0f}s; "
                        "try again, or raise PQL_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            ticket.drop()

    @classmethod
    def _took(cls, path: Path, fh: IO[bytes]) -> FileLock:
        with cls._guard:
            held = cls._held.get(path)
            if held is not None:  # another thread of ours got there first
                held[1] += 1
                fh.close()
            else:
                cls._held[path] = [fh, 1]
        return cls(path)

    @classmethod
    def _join(cls, path: Path) -> bool:
        """Count one more connection on the lock if this process holds it already."""
        with cls._guard:
            held = cls._held.get(path)
            if held is None:
                return False
            held[1] += 1
            return True

    def sole(self) -> bool:
        """Whether this is the process's only connection to the file."""
        with self._guard:
            return bool(self._held.get(self.path, [None, 0])[1] == 1)

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._owner.get(self.path):
            self._owner[self.path] -= 1
        with self._guard:
            held = self._held[self.path]
            held[1] -= 1
            if held[1] == 0:
                del self._held[self.path]
                held[0].close()  # releases the flock
