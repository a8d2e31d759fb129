"""The web app's warm DuckDB file: kept open between requests while the app is busy (its cache
warm, a request's own connection then cheap), let go after ``keep_open`` idle seconds or at once
when another process (`pql score`, the flusher) waits for the file, and closed with the app.

Its thread is not a daemon and :meth:`Warm.close` ends it: a daemon thread that is inside
DuckDB (closing the connection) when the interpreter finalizes is stopped there, and the
process aborts (`terminate called without an active exception`, exit -6).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Warm:
    def __init__(self, connect: Callable[[], Any], keep_open: float):
        self.connect = connect
        self.keep_open = keep_open
        self._keeper: Any = None
        self._last_use = 0.0
        self._closed = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def keep(self, backend: Any) -> None:
        """A request opened ``backend``: keep the file open beside it until the app is idle."""
        if backend.path is None or self.keep_open <= 0:
            return
        with self._lock:
            self._last_use = time.monotonic()
            if self._keeper is None and not self._closed and not backend.wanted_elsewhere():
                self._keeper = self.connect()
                self._thread = threading.Thread(target=self._let_go, name="pql-web-warm")
                self._thread.start()

    def _let_go(self) -> None:
        """Close the warm connection once the app is idle, or at once when another process
        waits for the file: it is served next, and this app's requests queue behind it (see
        pqlkit.backends.lock)."""
        while True:
            time.sleep(min(0.05, self.keep_open))
            with self._lock:
                keeper = self._keeper
                idle = time.monotonic() - self._last_use >= self.keep_open
                if keeper is None or idle or self._closed or keeper.wanted_elsewhere():
                    self._keeper = None
                    break
        if keeper is not None:
            keeper.close()

    def close(self) -> None:
        """Let the file go now and keep it no more (the app is shutting down)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join()


__all__ = ["Warm"]
