"""Move what the durable log holds into the database, exactly once.

Events (track, page, screen) go to the events table; identify, group and alias messages to
`pql_messages`, kept for identity resolution. A message id already stored for the same source
within the dedup window is not stored again. The rows and the log position they reach are
committed in one transaction, so after a crash the flusher resumes where the database says.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..backends import first_line
from . import identity
from .dedup import in_log_order, store_new
from .fastpath import FastBatch, FastPath, Parsed, ReadAhead, prefixed
from .log import LogReader
from .records import from_segment, parse_timestamp, text_or_none
from .schema import require_writable
from .seen import SeenKeys
from .segment_api import messages_from_body
from .subscriber import Subscriber
from .tables import (
    DEDUP_WINDOW,
    EVENTS_SCHEMA,
    FEEDBACK,
    FEEDBACK_SCHEMA,
    MESSAGES,
    MESSAGES_SCHEMA,
    OFFSETS,
    OFFSETS_SCHEMA,
    QUARANTINE,
    QUARANTINE_SCHEMA,
)

log = logging.getLogger("pqlkit.collect")


def ensure_table(backend, table: str, schema: pa.Schema) -> None:
    backend.ensure_table(table, schema)


def insert_new(backend, table: str, rows: pa.Table, window: timedelta | None = DEDUP_WINDOW) -> int:
    """Insert the rows whose (source, message_id) is not stored yet (within ``window`` of
    their received_at); return how many went in. Call inside a transaction."""
    return backend.insert_new(table, rows, window=window)


def quarantine_row(at: tuple[int, int], line: bytes, reason: str) -> dict[str, Any]:
    """A log line that cannot be stored, kept whole with the reason (raw bytes that are not
    UTF-8, and NUL, escaped so that any database's text can hold them)."""
    source, received = None, None
    with contextlib.suppress(Exception):
        entry = _loads(line)
        source = entry.get("s") if isinstance(entry.get("s"), str) else None
        received = parse_timestamp(entry["r"])
    raw = line.rstrip(b"\n").decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return {
        "segment": at[0],
        "offset": at[1],
        "source": source,
        "received_at": received,
        "reason": reason[:2000].replace("\x00", "\\x00"),
        "raw": raw,
        "quarantined_at": datetime.now(UTC).replace(tzinfo=None),
    }


def message_row(message: dict[str, Any], source: str) -> dict[str, Any]:
    traits = message.get("traits")
    context = message.get("context")
    if not traits and isinstance(context, dict):
        traits = context.get("traits")
    return {
        "message_id": message["messageId"],
        "source": source,
        "type": message["type"],
        "user_id": text_or_none(message.get("userId")),
        "anonymous_id": text_or_none(message.get("anonymousId")),
        "group_id": text_or_none(message.get("groupId")),
        "previous_id": text_or_none(message.get("previousId")),
        "timestamp": parse_timestamp(message["timestamp"]),
        "received_at": parse_timestamp(message["receivedAt"]),
        "traits": json.dumps(traits or {}, sort_keys=True, default=str),
    }


SUPPRESSIONS = "pql_suppressions"


def suppressed_ids(backend) -> set[str]:
    """Ids whose messages are dropped (written by `pql forget`)."""
    if not backend.has_table(SUPPRESSIONS):
        return set()
    return {row[0] for row in backend.values(backend.table(SUPPRESSIONS).select("id"))}


def is_suppressed(message: dict[str, Any], suppressed: set[str]) -> bool:
    return bool(suppressed) and any(
        message.get(k) in suppressed for k in ("userId", "anonymousId", "previousId")
    )


_loads: Callable[[bytes], Any]
try:  # the server extra brings orjson (several times faster on the flusher's every line)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the importer works without the server extra
    _loads = json.loads


def feedback_row(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": str(message["user_id"]),
        "action": str(message["action"]),
        "reason": message.get("reason"),
        "by": message.get("by"),
        "at": parse_timestamp(message["at"]),
        "quiet_until": parse_timestamp(message["quiet_until"]),
    }


def messages_of(line: bytes, position: tuple[int, int]) -> tuple[str, list[dict[str, Any]]]:
    """(source, normalised messages) of one log line. The collector logs each request as it
    came, validated, with its source and receive time; messages without an id get one from the
    line's position, so replaying the line gives the same ids."""
    entry = _loads(line)
    if entry.get("e") == "feedback":  # a rep's feedback (POST /v1/feedback), stored as it came
        return entry["s"], [{"type": "feedback", **entry["b"]}]
    if "message" in entry:  # one message a line (logs written before requests were logged whole)
        return entry["source"], [entry["message"]]
    received = parse_timestamp(entry["r"])
    return entry["s"], messages_from_body(
        entry["e"], entry["b"], 0, received, id_prefix=f"{position[0]}.{position[1]}"
    )


class Flusher:
    """Copies the log into the database every ``interval`` seconds; `pql serve` runs it in a
    process of its own (:mod:`background`), so storing never slows the HTTP side down.

    ``open_backend`` gives a connection. With ``hold=False`` (a DuckDB file) the flusher opens
    the database only while it writes and closes it after, so other pqlkit processes (`pql
    score`, `pql forget`) can use the file in between; the log keeps accepting meanwhile.
    Each flush reads the checkpoint the database holds, so two flushers never store a line
    twice. Identity tables (see :mod:`identity`) are updated with the rows, and the derived
    users and accounts are rebuilt at most every ``resolve_interval`` seconds when something
    changed.
    """

    def __init__(
        self,
        open_backend: Callable[[], Any],
        reader: LogReader,
        *,
        table: str = "events",
        name: str = "collector",
        interval: float = 0.25,
        hold: bool = True,
        resolve_interval: float = 5.0,
        subscriber: Subscriber | None = None,
        fast: bool = True,
    ):
        self.open_backend = open_backend
        self._fastpath = FastPath(EVENTS_SCHEMA) if fast else None
        # the fast path reads the next lines while these are stored
        self._ahead = ReadAhead(self._fastpath) if self._fastpath is not None else None
        # told of each stored batch and given the flusher's connection between flushes (live
        # scoring: see pqlkit.handoff.live.Live); collect knows nothing more of it
        self.subscriber: Subscriber | None = subscriber
        self.reader = reader
        self.table = table
        self.name = name
        self.interval = interval
        self.hold = hold
        self.resolve_interval = resolve_interval
        self.stored = 0
        self.duplicates = 0
        self.suppressed = 0
        self.quarantined = 0
        self.fast_lines = 0  # log lines stored by the fast path
        self.reference_lines = 0  # and by the reference path (quarantined ones included)
        self.resolved_at = 0.0
        self._dirty = False
        self._backend = None
        self._seen = SeenKeys()  # the window's stored keys, across flushes (see .seen)
        self._checkpoint = (0, 0)
        self.error: Exception | None = None
        with self._connection() as backend:
            require_writable(backend, table)  # nothing acknowledged that cannot be stored
            ensure_table(backend, table, EVENTS_SCHEMA)
            ensure_table(backend, MESSAGES, MESSAGES_SCHEMA)
            identity.ensure_tables(backend)
            backend.ensure_table(OFFSETS, OFFSETS_SCHEMA, primary_key=["name"])
            backend.ensure_table(QUARANTINE, QUARANTINE_SCHEMA)
            self._checkpoint = self._read_checkpoint(backend)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        backend = self._backend if self._backend is not None else self.open_backend()
        self._backend = backend
        try:
            yield backend
        finally:
            if not self.hold:
                backend.close()
                self._backend = None

    @property
    def checkpoint(self) -> tuple[int, int]:
        """How far the database has stored the log."""
        return self._checkpoint

    def _read_checkpoint(self, backend) -> tuple[int, int]:
        t = backend.table(OFFSETS)
        rows = backend.values(t.filter(t.name == self.name).select("segment", "offset"))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def flush_once(self, limit: int = 100_000, limit_bytes: int = 32 * 1024 * 1024) -> int:
        """Store what the log holds beyond the checkpoint (at most ``limit`` lines and about
        ``limit_bytes`` bytes a call, which bounds the flusher's memory); return how many lines
        were stored or quarantined."""
        now = datetime.now(UTC).replace(tzinfo=None)
        if not self.reader.has_beyond(self._checkpoint):
            self._stored_through(now)  # caught up: everything received before now is stored
            if self._dirty and time.monotonic() - self.resolved_at >= self.resolve_interval:
                self.resolve()
            elif self.subscriber is not None and self.subscriber.wants_tick():
                with self._connection() as backend:
                    self.subscriber.tick(backend)
            return 0
        with self._connection() as backend:
            self._checkpoint = self._read_checkpoint(backend)  # another flusher may have moved it
            lines, parsed = (
                self._ahead.take(self._checkpoint) if self._ahead is not None else (None, None)
            )
            if lines is None:
                lines, parsed = self.reader.batch(self._checkpoint, limit, limit_bytes), None
            if lines:
                # only behind a backlog (a full batch): read ahead of a live trickle, the next
                # flush would take the few lines there were then and leave those that came
                # during this store and tick for one more flush (it doubled event-to-webhook)
                if len(lines) >= limit or sum(len(x[1]) for x in lines) >= limit_bytes:
                    self._read_ahead(lines[-1][0], limit, limit_bytes)
                self._store_or_split(backend, self._checkpoint, lines, parsed)
                if self._dirty and time.monotonic() - self.resolved_at >= self.resolve_interval:
                    self._resolve(backend)
            if self.subscriber is not None and (lines or self.subscriber.wants_tick()):
                self.subscriber.tick(backend)
        if lines:
            self.reader.drop_before(lines[-1][0][0])
        return len(lines)

    def _read_ahead(self, start: tuple[int, int], limit: int, limit_bytes: int) -> None:
        """Read the lines after ``start`` and have the fast path read them meanwhile."""
        if self._ahead is None:
            return
        self._ahead.drop()
        if self.reader.has_beyond(start):
            self._ahead.submit(start, self.reader.batch(start, limit, limit_bytes))

    def _store_or_split(
        self,
        backend,
        start: tuple[int, int],
        lines: list[tuple[tuple[int, int], bytes]],
        parsed: Parsed | None = None,
    ) -> None:
        """Store the lines in one transaction; when the database refuses the data (a value it
        cannot hold), store each half on its own, down to the one line it refuses, which is
        quarantined. Errors that are not about the data (a lost connection, a full disk)
        propagate: the lines stay in the log and are tried again."""
        try:
            self._store(backend, start, lines, parsed)
        except (*backend.data_errors(), pa.ArrowException) as exc:
            if len(lines) == 1:
                self._quarantine_lines(
                    backend, start, lines, f"the database refused it: {first_line(exc)}"
                )
                return
            half = len(lines) // 2
            self._store_or_split(backend, start, lines[:half])
            self._store_or_split(backend, lines[half - 1][0], lines[half:])

    def _quarantine_lines(
        self,
        backend,
        start: tuple[int, int],
        lines: list[tuple[tuple[int, int], bytes]],
        reason: str,
    ) -> None:
        rows = []
        at = start
        for position, line in lines:
            rows.append(quarantine_row(at, line, reason))
            at = position
        with backend.transaction():
            backend.insert(QUARANTINE, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA))
            self._save_checkpoint(backend, lines[-1][0])
        self._checkpoint = lines[-1][0]
        self.quarantined += len(rows)
        log.warning("quarantined %d log line(s) at %s: %s", len(rows), start, reason)

    def _save_checkpoint(self, backend, last: tuple[int, int]) -> None:
        backend.upsert(
            OFFSETS,
            pa.table(
                {"name": [self.name], "segment": [last[0]], "offset": [last[1]]},
                schema=OFFSETS_SCHEMA,
            ),
            ["name"],
        )

    def _store(
        self,
        backend,
        start: tuple[int, int],
        lines: list[tuple[tuple[int, int], bytes]],
        parsed: Parsed | None = None,
    ) -> None:
        """Store the lines (the fast path's rows and the reference path's) in one transaction.

        Long because it stores one flush in one transaction: both paths' rows in log order,
        identities, feedback and the checkpoint; the loop over lines is the reference path's,
        kept whole so that a line is stored or quarantined whole."""
        events: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        order: list[int] = []  # each event's place in the log (the first of repeats wins)
        ids = identity.IdentityBatch()
        suppressed = suppressed_ids(backend)
        dropped = 0
        fast = self._fast(start, lines, suppressed, ids, parsed)
        taken = fast.taken if fast is not None else set()
        if fast is not None:
            dropped += fast.dropped
        for k, (position, line) in enumerate(lines):
            if k in taken:
                start = position
                continue
            try:
                source, messages = messages_of(line, start)
                # every message of the line is normalised before any is kept: a line is
                # stored whole or quarantined whole
                line_events, line_others, line_feedback = [], [], []
                for i, message in enumerate(messages):
                    if message.get("type") == "feedback":
                        line_feedback.append(feedback_row(message))
                        continue
                    if is_suppressed(message, suppressed):
                        dropped += 1
                        continue
                    record = from_segment(message, source, parse_timestamp(message["receivedAt"]))
                    if record is not None:
                        line_events.append((i, record))
                    else:
                        row = message_row(message, source)
                        line_others.append((message, {**row, "place": k * 10000 + i}))
            except Exception as exc:
                bad.append(
                    quarantine_row(
                        start, line, f"cannot be read as messages: {type(exc).__name__}: {exc}"
                    )
                )
                log.warning(
                    "quarantined the log line at %s: %s: %s", start, type(exc).__name__, exc
                )
                start = position
                continue
            start = position
            for i, record in line_events:
                events.append(record)
                order.append(k * 10000 + i)
                ids.event(record)
            for message, row in line_others:
                others.append(row)
                ids.message(message, row["source"])
            feedback.extend(line_feedback)
        last = lines[-1][0]
        mine = pa.Table.from_pylist(events, schema=EVENTS_SCHEMA)
        rows, places = in_log_order(mine, order, fast.events if fast else None, fast and fast.order)
        with backend.transaction():
            stored, duplicates = store_new(
                backend, self.table, rows, places, others, DEDUP_WINDOW, self._seen
            )
            identity.store(backend, ids)
            if feedback:
                backend.ensure_table(FEEDBACK, FEEDBACK_SCHEMA)
                backend.insert(FEEDBACK, pa.Table.from_pylist(feedback, schema=FEEDBACK_SCHEMA))
            if bad:
                backend.insert(QUARANTINE, pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA))
            self._save_checkpoint(backend, last)
        self._checkpoint = last
        self.stored += stored
        self.duplicates += duplicates
        self.suppressed += dropped
        self.quarantined += len(bad)
        self.fast_lines += len(taken)
        self.reference_lines += len(lines) - len(taken)
        self._dirty = self._dirty or bool(ids)
        if rows.num_rows:
            self._stored_through(pc.max(rows.column("received_at")).as_py())
        if self.subscriber is not None:
            # a rep's feedback counts as a change: the user is scored and served again (quiet)
            self.subscriber.note(_whos(rows) | {f["user_id"] for f in feedback}, ids)

    def _stored_through(self, at: datetime | None) -> None:
        """Tell a subscriber that keeps time by the log (the volume watch) how far it is stored:
        the receive time of the latest stored event, or now when nothing is left to store."""
        if at is not None and self.subscriber is not None and hasattr(self.subscriber, "stored"):
            self.subscriber.stored(at)

    def _fast(
        self,
        start: tuple[int, int],
        lines: list[tuple[tuple[int, int], bytes]],
        suppressed: set[str],
        ids: identity.IdentityBatch,
        parsed: Parsed | None = None,
    ) -> FastBatch | None:
        """The lines the fast path takes (see :mod:`fastpath`), their identities noted; read
        now unless read ahead (``parsed``). Suppressions are applied as they stand now."""
        if self._fastpath is None:
            return None
        if parsed is None:
            parsed = self._fastpath.read(prefixed(start, lines))
        if not parsed.ok:
            return None
        fast = self._fastpath.finish(parsed, suppressed)
        ids.seen_rows.append(fast.seen)
        ids.link_rows.append(fast.links)
        return fast

    def resolve(self) -> None:
        """Rebuild pql_identities, pql_users and pql_accounts now."""
        with self._connection() as backend:
            self._resolve(backend)
            if self.subscriber is not None:
                self.subscriber.tick(backend)

    def _resolve(self, backend) -> None:
        identity.materialize(backend)
        self.resolved_at = time.monotonic()
        self._dirty = False
        if self.subscriber is not None:
            self.subscriber.resolved()

    def run(self, stop: Callable[[], bool], on_progress: Callable[[], None] | None = None) -> None:
        """Flush until ``stop()``, then flush what is left."""
        while not stop():
            try:
                while self.flush_once():
                    if on_progress:
                        on_progress()
                self.error = None
            except Exception as exc:  # reported by /health; the log still holds everything
                self.error = exc
                if self._backend is not None and not self.hold:
                    self._backend.close()
                    self._backend = None
            if on_progress:
                on_progress()
            time.sleep(self.interval)
        self.finish()

    def finish(self) -> None:
        while self.flush_once():
            pass
        if self._ahead is not None:
            self._ahead.close()
        if self._dirty:
            self.resolve()
        if (
            self.subscriber is not None
        ):  # what was sent is recorded; what was not is sent next start
            with self._connection() as backend:
                self.subscriber.finish(backend)
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _whos(rows: pa.Table) -> set[str]:
    """The users (or anonymous ids) a batch of event rows is about."""
    who = pc.coalesce(rows.column("user_id"), rows.column("anonymous_id"))
    return {w for w in pc.unique(who).to_pylist() if w}


__all__ = [
    "EVENTS_SCHEMA",
    "MESSAGES_SCHEMA",
    "QUARANTINE",
    "SUPPRESSIONS",
    "Flusher",
    "ensure_table",
    "insert_new",
    "is_suppressed",
    "message_row",
    "messages_of",
    "suppressed_ids",
]
