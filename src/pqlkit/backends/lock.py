"""Turn-taking between pqlkit processes on one DuckDB file: an exclusive flock on
``<db>.lock``, shared by the connections of one process (DuckDB shares one database instance
within a process too)."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path
from typing import ClassVar

from ..errors import BackendError


class FileLock:
    _held: ClassVar[dict[Path, list]] = {}  # lock path -> [file, count]
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self._open = True

    @classmethod
    def take(cls, db_path: str, wait: float) -> FileLock:
        path = Path(db_path).expanduser().resolve()
        path = path.with_name(path.name + ".lock")
        if cls._join(path):
            return cls(path)
        fh = open(path, "a+b")  # noqa: SIM115  (closed when the last connection closes)
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # flock conflicts between open files, so a thread of ours that took the lock
                # while we slept blocks us too until its last connection closes: join it instead
                if cls._join(path):
                    fh.close()
                    return cls(path)
                if time.monotonic() >= deadline:
                    fh.close()
                    raise BackendError(
                        f"the DuckDB file {db_path} is in use by another pqlkit process (for example "
                        f"`pql score`, or `pql serve` flushing) and stayed busy for {wait:.0f}s; "
                        "try again, or raise PQL_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
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
            return self._held.get(self.path, [None, 0])[1] == 1

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        with self._guard:
            held = self._held[self.path]
            held[1] -= 1
            if held[1] == 0:
                del self._held[self.path]
                held[0].close()  # releases the flock
