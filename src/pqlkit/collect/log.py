"""A durable, append-only log with group commit: the collector acknowledges a request only
after its messages are written and fsync'ed here.

Appends from many requests queue up; one writer thread writes everything queued, calls fsync
once, and then completes every waiting append (group commit: one fsync for many requests).
Records are JSON lines in numbered segment files; after a crash, a torn last line is ignored
(it was never acknowledged). Readers see only what was made durable.

The log holds raw requests (e-mails, names, ids), so it keeps them no longer than storing
needs: a segment is closed when it reaches 64 MB or is ``rotate_seconds`` old (a minute),
whichever comes first, and a closed segment is deleted once the database holds every line of
it (the flusher's stored position, ``stored``). A person `pql forget` deletes is thus gone from
the log at most a minute (plus the flusher's lag) after their last request, idle or not.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

SEGMENT_BYTES = 64 * 1024 * 1024
#: A segment is closed this long after its first line (so that it can be deleted once stored).
ROTATE_SECONDS = 60.0


class DurableLog:
    """The writing side (the collector's HTTP process). ``on_durable(segment, offset)`` is
    called after each fsync, e.g. to publish the position to a flusher in another process;
    ``stored()`` gives the position up to which the database holds the log (closed segments
    before it are deleted)."""

    def __init__(
        self,
        directory: str | Path,
        segment_bytes: int = SEGMENT_BYTES,
        on_durable: Callable[[int, int], None] | None = None,
        *,
        rotate_seconds: float = ROTATE_SECONDS,
        stored: Callable[[], tuple[int, int]] | None = None,
    ):
        self.on_durable = on_durable
        self.rotate_seconds = rotate_seconds
        self.stored = stored
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._lock = threading.Condition()
        self._pending: list[tuple[list[bytes], Future, int]] = []
        self._closed = False
        segments = self.segments()
        self._segment = segments[-1] if segments else 1
        _truncate_torn_tail(self._path(self._segment))
        self._file = open(self._path(self._segment), "ab")  # noqa: SIM115  (closed in close())
        self._durable = (self._segment, self._file.tell())
        # when the segment got its first line (monotonic), None while it is empty
        self._first_line_at = time.monotonic() if self._durable[1] else None
        self._tidied_at = time.monotonic()
        if on_durable is not None:
            on_durable(*self._durable)
        self.pending_messages = 0
        self._writer = threading.Thread(target=self._run, name="pql-log-writer", daemon=True)
        self._writer.start()

    def _path(self, segment: int) -> Path:
        return self.dir / f"{segment:08d}.log"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.log") if p.stem.isdigit())

    @property
    def durable(self) -> tuple[int, int]:
        """(segment, offset) up to which everything is on disk."""
        with self._lock:
            return self._durable

    def append(self, lines: list[bytes], messages: int | None = None) -> Future:
        """Queue lines (each ending in a newline) holding ``messages`` messages (default: one a
        line); the future completes once they are durable."""
        future: Future = Future()
        n = len(lines) if messages is None else messages
        with self._lock:
            if self._closed:
                raise RuntimeError("the log is closed")
            self._pending.append((lines, future, n))
            self.pending_messages += n
            self._lock.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    if not self._lock.wait(min(1.0, self.rotate_seconds)):
                        break  # idle: time to close an old segment, delete stored ones
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, []
            if not batch:
                self._tidy()
                continue
            try:
                for lines, _, _ in batch:
                    self._file.write(b"".join(lines))
                self._file.flush()
                os.fsync(self._file.fileno())
                position = (self._segment, self._file.tell())
                if self._first_line_at is None:
                    self._first_line_at = time.monotonic()
                if position[1] >= self.segment_bytes or self._old():
                    self._rotate()
            except OSError as exc:
                for _, future, _ in batch:
                    future.set_exception(exc)
                continue
            with self._lock:
                self._durable = position
                self.pending_messages -= sum(n for _, _, n in batch)
            if self.on_durable is not None:
                self.on_durable(*position)
            for _, future, _ in batch:
                future.set_result(position)
            if time.monotonic() - self._tidied_at >= 1.0:  # busy: tidy about once a second
                self._tidy()

    def _old(self) -> bool:
        return (
            self._first_line_at is not None
            and time.monotonic() - self._first_line_at >= self.rotate_seconds
        )

    def _tidy(self) -> None:
        """Close the segment if it is old (the durable position stays at its end: nothing new
        is readable), and delete the closed segments the database holds whole."""
        self._tidied_at = time.monotonic()
        try:
            if self._old():
                self._rotate()
            if self.stored is not None:
                drop_stored(self.dir, self.stored(), self._segment)
        except OSError:  # a full or read-only disk: the next append reports it
            pass

    def _rotate(self) -> None:
        self._first_line_at = None
        self._file.close()
        self._segment += 1
        self._file = open(self._path(self._segment), "ab")  # noqa: SIM115
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new segment's name is durable too
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._writer.join()
        self._file.close()


class LogReader:
    """The reading side, in any process: sees lines up to ``durable()``, the position the
    writer has fsync'ed (published to it across processes)."""

    def __init__(self, directory: str | Path, durable: Callable[[], tuple[int, int]]):
        self.dir = Path(directory)
        self.durable_position = durable

    def _path(self, segment: int) -> Path:
        return self.dir / f"{segment:08d}.log"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.log") if p.stem.isdigit())

    def has_beyond(self, position: tuple[int, int]) -> bool:
        return self.durable_position() > position

    def read(self, start: tuple[int, int]) -> Iterator[tuple[tuple[int, int], bytes]]:
        """(position after the line, line) for every durable complete line after ``start``."""
        end = self.durable_position()
        segment, offset = start
        for seg in self.segments():
            if seg < segment or seg > end[0]:
                continue
            limit = end[1] if seg == end[0] else None
            try:
                fh = open(self._path(seg), "rb")  # noqa: SIM115  (closed by the with below)
            except FileNotFoundError:  # deleted by the writer meanwhile: it was stored whole
                continue
            with fh:
                fh.seek(offset if seg == segment else 0)
                while True:
                    if limit is not None and fh.tell() >= limit:
                        break
                    line = fh.readline()
                    if not line.endswith(b"\n"):
                        break  # a torn tail: never acknowledged
                    yield (seg, fh.tell()), line

    def batch(
        self, start: tuple[int, int], limit: int, limit_bytes: int
    ) -> list[tuple[tuple[int, int], bytes]]:
        """What :meth:`read` gives, up to ``limit`` lines or about ``limit_bytes`` bytes."""
        lines: list[tuple[tuple[int, int], bytes]] = []
        size = 0
        for item in self.read(start):
            lines.append(item)
            size += len(item[1])
            if len(lines) >= limit or size >= limit_bytes:
                break
        return lines

    def drop_before(self, segment: int) -> None:
        """Delete whole segments older than ``segment`` and than the one being written (they
        are stored in the database)."""
        current = self.durable_position()[0]
        for seg in self.segments():
            if seg < min(segment, current):
                self._path(seg).unlink(missing_ok=True)


def drop_stored(directory: Path, stored: tuple[int, int], current: int) -> list[int]:
    """Delete the closed segments (before ``current``) that the database holds every line of:
    those before the ``stored`` position's segment, and that one if stored to its end.
    Return the segments deleted."""
    dropped = []
    for path in sorted(directory.glob("*.log")):
        if not path.stem.isdigit() or int(path.stem) >= current:
            continue
        seg = int(path.stem)
        if seg < stored[0] or (seg == stored[0] and stored[1] >= path.stat().st_size):
            path.unlink(missing_ok=True)
            dropped.append(seg)
    return dropped


def _truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash (it was never acknowledged), so the next append
    starts on a line of its own."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                pos = pos - step + newline + 1
                break
            pos -= step
        if pos != size:
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())
