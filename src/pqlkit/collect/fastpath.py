"""The flusher's fast path: DuckDB reads the logged requests and normalises their events.

:func:`store.messages_of` and :func:`records.from_segment` are the reference: they normalise
any message the collector accepts. :mod:`pqlkit.backends.segment_lines` computes the same
event rows in DuckDB, over a batch of log lines at once, for the messages whose shape it can
read *exactly*: track, page and screen messages whose ids are text, whose times are plain ISO
8601, and whose properties are a flat object. Every other line (identify, group and alias
calls, numeric ids, epoch times, nested properties, repeated keys, anything odd) is left to
the reference path, line by line, in the same transaction. A line is taken whole by one path
or the other.

``tests/test_fastpath.py`` generates request bodies the collector accepts and checks that this
path gives the reference's rows for every line it takes.
"""

from __future__ import annotations

import contextlib
import re
import threading
from array import array
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..backends.segment_lines import SegmentLines
from .segment_api import EARLIEST, LATEST

#: About how many bytes of lines DuckDB reads in one piece: the pieces its two threads share,
#: each near one vector (2,048 rows) of messages whatever the lines' sizes. Measured with
#: bench_flusher.py against pieces of 64 lines: 1.28x with batches of 100 messages, 1.19x with
#: batches of 10 (pieces of 16 lines were 1.2x with 100 but 0.95x with 10).
_CHUNK_BYTES = 400_000
#: A batch request's endpoint in a log line's header (other lines hold one message).
_BATCH = re.compile(rb'"e"\s*:\s*"(?:batch|import)"')


def _is_batch(line: bytes) -> bool:
    return _BATCH.search(line, 0, 1024) is not None  # the header comes before the body


@dataclass
class FastBatch:
    """What the fast path took from a batch of lines."""

    events: pa.Table  #: event rows (the events table's columns), suppressed ids dropped
    line_index: pa.ChunkedArray  #: the line each event row came from
    order: pa.ChunkedArray  #: line * 10000 + the message's place in it
    seen: pa.Table  #: user_id, first_seen, last_seen
    links: pa.Table  #: id, user_id, linked_at (an anonymous id and its user)
    taken: set[int] = field(default_factory=set)  #: indexes of the lines it took whole
    dropped: int = 0  #: messages of suppressed ids


@dataclass
class Parsed:
    """What DuckDB read of a batch of lines, before suppressions (see :meth:`FastPath.finish`,
    which makes the event rows and identities of them on the flush's own thread: the thread
    that reads ahead is the one the flusher waits for)."""

    rows: pa.Table  #: the rows of the lines it takes whole
    taken: set[int]
    ok: bool = True  #: False: DuckDB could not read the batch (the reference reads every line)

    @classmethod
    def unread(cls) -> Parsed:
        return cls(pa.table({}), set(), ok=False)


class FastPath:
    """Normalises log lines with a DuckDB of its own (one per flusher). :meth:`read` may run in
    another thread than :meth:`finish` (the flusher reads the next lines while it stores);
    one read at a time."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.reader = SegmentLines(EARLIEST, LATEST)
        self.failures = 0
        self._lock = threading.Lock()
        # the first read pays for imports and planning; a flusher pays it when it starts
        self.read([("0.0", b'{"s":"","r":"","e":"batch","b":{"batch":[]}}')])

    def close(self) -> None:
        with self._lock:
            self.reader.close()

    def take(
        self, lines: list[tuple[str, bytes]], suppressed: set[str] | frozenset[str] = frozenset()
    ) -> FastBatch | None:
        """Normalise what it can of ``lines`` (each with its id prefix, the position the
        line starts at); None when DuckDB could not read the batch (the reference then reads
        every line)."""
        parsed = self.read(lines)
        return self.finish(parsed, suppressed) if parsed.ok else None

    def read(self, lines: list[tuple[str, bytes]]) -> Parsed:
        """The rows of the lines this path takes whole (not ``ok`` when DuckDB could not read
        them: it is not tried again)."""
        table = pa.table(
            {
                "k": pa.array(range(len(lines)), pa.int64()),
                "prefix": pa.array([prefix for prefix, _ in lines], pa.string()),
                "line": _texts([line for _, line in lines]),
            }
        )
        table = pa.Table.from_batches(
            _pieces(table, [len(line) for _, line in lines]), table.schema
        )
        singles = [k for k, (_, line) in enumerate(lines) if not _is_batch(line)]
        with self._lock:
            try:
                rows = self.reader.read(table, table.take(singles) if singles else None)
            except self.reader.errors():
                self.failures += 1
                return Parsed.unread()
        k = rows.column("k")
        slow = pc.unique(pc.filter(k, pc.invert(rows.column("fast"))))
        rows = rows.filter(pc.invert(pc.is_in(k, value_set=slow)))
        return Parsed(rows, set(pc.unique(rows.column("k")).to_pylist()))

    def finish(
        self, parsed: Parsed, suppressed: set[str] | frozenset[str] = frozenset()
    ) -> FastBatch:
        """The batch, the messages of suppressed ids (`pql forget`, read as it stands now)
        dropped."""
        rows, dropped = parsed.rows, 0
        if suppressed and rows.num_rows:
            values = pa.array(sorted(suppressed), pa.string())
            hit = pc.or_(
                pc.or_(
                    pc.fill_null(pc.is_in(rows.column("user_id"), value_set=values), False),
                    pc.fill_null(pc.is_in(rows.column("anonymous_id"), value_set=values), False),
                ),
                pc.fill_null(pc.is_in(rows.column("previous_id"), value_set=values), False),
            )
            dropped = pc.sum(hit).as_py() or 0
            if dropped:
                rows = rows.filter(pc.invert(hit))
        events = rows.select(list(self.schema.names)).cast(self.schema)
        seen, links = _identities(events)
        return FastBatch(
            events, rows.column("k"), rows.column("seq"), seen, links, parsed.taken, dropped
        )


Lines = list[tuple[tuple[int, int], bytes]]  #: (position after the line, line), from the log


class ReadAhead:
    """The fast path reading the next lines in a thread of its own while the flusher stores
    these (DuckDB leaves Python's lock while it works, so the two share the cores). What it
    read is used only by a flush that starts where those lines start; suppressions are
    applied when they are stored (:meth:`FastPath.finish`)."""

    def __init__(self, fastpath: FastPath):
        self.fastpath = fastpath
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pql-fastpath")
        self._ahead: tuple[tuple[int, int], Lines, Future] | None = None
        self._closed = False
        self.used = 0  #: batches a flush took as read ahead

    def submit(self, start: tuple[int, int], lines: Lines) -> None:
        self.drop()
        if lines and not self._closed:
            future = self._pool.submit(self.fastpath.read, prefixed(start, lines))
            self._ahead = (start, lines, future)

    def take(self, start: tuple[int, int]) -> tuple[Lines | None, Parsed | None]:
        """The lines read ahead and what the fast path made of them, if they start at
        ``start`` (not when a store failed, or another flusher moved the checkpoint)."""
        if self._ahead is None:
            return None, None
        at, lines, future = self._ahead
        self._ahead = None
        if at != start:
            with contextlib.suppress(Exception):
                future.result()
            return None, None
        try:
            parsed = future.result()
        except Exception:  # read again by the flush itself, which reports its errors
            return lines, None
        self.used += 1
        return lines, parsed

    def drop(self) -> None:
        if self._ahead is not None:
            with contextlib.suppress(Exception):
                self._ahead[2].result()
            self._ahead = None

    def close(self) -> None:
        """Wait for the reading under way; read nothing more ahead (the flush reads itself)."""
        self.drop()
        self._closed = True
        self._pool.shutdown(wait=True)


def prefixed(start: tuple[int, int], lines: Lines) -> list[tuple[str, bytes]]:
    """Each line with the position it starts at (the id prefix of its messages without one)."""
    prefixes = [start] + [position for position, _ in lines[:-1]]
    return [(f"{p[0]}.{p[1]}", line) for p, (_, line) in zip(prefixes, lines, strict=True)]


def _pieces(table: pa.Table, sizes: list[int]) -> list[pa.RecordBatch]:
    """The table cut where each piece reaches _CHUNK_BYTES of lines."""
    pieces, start, held = [], 0, 0
    for k, size in enumerate(sizes):
        held += size
        if held >= _CHUNK_BYTES or k == len(sizes) - 1:
            pieces.extend(table.slice(start, k + 1 - start).to_batches())
            start, held = k + 1, 0
    return pieces


def _identities(events: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Per user the first and last event time, and each (anonymous id, user) pair's first
    time: what IdentityBatch.event gathers row by row, aggregated by Arrow."""
    users = events.filter(pc.is_valid(events.column("user_id")))
    seen = (
        users.group_by("user_id")
        .aggregate([("timestamp", "min"), ("timestamp", "max")])
        .select(["user_id", "timestamp_min", "timestamp_max"])
        .rename_columns(["user_id", "first_seen", "last_seen"])
    )
    both = users.filter(
        pc.and_(
            pc.is_valid(users.column("anonymous_id")),
            pc.not_equal(users.column("anonymous_id"), users.column("user_id")),
        )
    )
    links = (
        both.group_by(["anonymous_id", "user_id"])
        .aggregate([("timestamp", "min")])
        .select(["anonymous_id", "user_id", "timestamp_min"])
        .rename_columns(["id", "user_id", "linked_at"])
    )
    return seen, links


def _texts(lines: list[bytes]) -> pa.Array:
    """The lines as Arrow text; a line that is not UTF-8 becomes empty (the reference path
    then reads it and quarantines it)."""
    offsets = array("i", [0])
    at = 0
    for line in lines:
        at += len(line)
        offsets.append(at)
    try:
        texts = pa.StringArray.from_buffers(
            len(lines), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(lines))
        )
        texts.validate(full=True)  # UTF-8
        return texts
    except pa.ArrowInvalid:
        return pa.array([_utf8_or_empty(line) for line in lines], pa.string())


def _utf8_or_empty(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return ""


__all__ = ["FastBatch", "FastPath", "Parsed", "ReadAhead", "prefixed"]
