"""Move what the durable log holds into the database, exactly once.

Events (track, page, screen) go to the events table; identify, group and alias messages to
`pql_messages`, kept for identity resolution. A message id already stored for the same source
within the dedup window is not stored again. The rows and the log position they reach are
committed in one transaction, so after a crash the flusher resumes where the database says.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa

from . import identity
from .log import DurableLog
from .records import RowError, from_segment, parse_timestamp

OFFSETS = "pql_collector_offsets"
MESSAGES = "pql_messages"
DEDUP_WINDOW = timedelta(days=7)

EVENTS_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()), ("source", pa.string()), ("user_id", pa.string()),
        ("anonymous_id", pa.string()), ("account_id", pa.string()), ("event", pa.string()),
        ("timestamp", pa.timestamp("us")), ("received_at", pa.timestamp("us")), ("properties", pa.string()),
    ]
)
MESSAGES_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()), ("source", pa.string()), ("type", pa.string()),
        ("user_id", pa.string()), ("anonymous_id", pa.string()), ("group_id", pa.string()),
        ("previous_id", pa.string()), ("timestamp", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")), ("traits", pa.string()),
    ]
)


def ensure_table(backend, table: str, schema: pa.Schema) -> None:
    if not backend.has_table(table):
        backend.con.create_table(table, schema=schema)
        backend.tables()


def insert_new(backend, table: str, rows: pa.Table, window: timedelta | None = DEDUP_WINDOW) -> int:
    """Insert the rows whose (source, message_id) is not stored yet (within ``window`` of
    their received_at); return how many went in. Call inside a transaction."""
    if rows.num_rows == 0:
        return 0
    cols = ", ".join(f'"{c}"' for c in rows.column_names)
    with backend.staged(rows) as stage:
        recent = ""
        if window is not None:
            oldest = min(v for v in rows.column("received_at").to_pylist() if v is not None) - window
            recent = f"AND e.received_at >= TIMESTAMP '{oldest.isoformat(sep=' ')}' "
        before = _count(backend, table)
        backend.execute_sql(
            f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM (SELECT *, row_number() OVER '
            f'(PARTITION BY source, message_id ORDER BY received_at) AS _n FROM "{stage}") s '
            f'WHERE s._n = 1 AND NOT EXISTS (SELECT 1 FROM "{table}" e WHERE e.message_id = s.message_id '
            f"AND e.source IS NOT DISTINCT FROM s.source {recent})"
        )
        return _count(backend, table) - before


def _count(backend, table: str) -> int:
    return int(backend.fetch_one(f'SELECT count(*) FROM "{table}"')[0])


def message_row(message: dict[str, Any], source: str) -> dict[str, Any]:
    traits = message.get("traits")
    context = message.get("context")
    if not traits and isinstance(context, dict):
        traits = context.get("traits")
    return {
        "message_id": message["messageId"], "source": source, "type": message["type"],
        "user_id": message.get("userId"), "anonymous_id": message.get("anonymousId"),
        "group_id": message.get("groupId"), "previous_id": message.get("previousId"),
        "timestamp": parse_timestamp(message["timestamp"]),
        "received_at": parse_timestamp(message["receivedAt"]),
        "traits": json.dumps(traits or {}, sort_keys=True, default=str),
    }


SUPPRESSIONS = "pql_suppressions"


def suppressed_ids(backend) -> set[str]:
    """Ids whose messages are dropped (written by `pql forget`)."""
    if not backend.has_table(SUPPRESSIONS):
        return set()
    return {row[0] for row in backend.fetch_all(f'SELECT id FROM "{SUPPRESSIONS}"')}


def is_suppressed(message: dict[str, Any], suppressed: set[str]) -> bool:
    return bool(suppressed) and any(
        message.get(k) in suppressed for k in ("userId", "anonymousId", "previousId")
    )


class Flusher:
    """Copies the log into the database, in a thread, every ``interval`` seconds.

    ``open_backend`` gives a connection. With ``hold=False`` (a DuckDB file) the flusher opens
    the database only while it writes and closes it after, so other pqlkit processes (`pql
    score`, `pql forget`) can use the file in between; the log keeps accepting meanwhile.
    Identity tables (see :mod:`identity`) are updated with the rows, and the derived users and
    accounts are rebuilt at most every ``resolve_interval`` seconds when something changed.
    """

    def __init__(self, open_backend: Callable[[], Any], log: DurableLog, *, table: str = "events",
                 name: str = "collector", interval: float = 0.25, hold: bool = True,
                 resolve_interval: float = 5.0):
        self.open_backend = open_backend
        self.log = log
        self.table = table
        self.name = name
        self.interval = interval
        self.hold = hold
        self.resolve_interval = resolve_interval
        self.stored = 0
        self.duplicates = 0
        self.suppressed = 0
        self.resolved_at = 0.0
        self._dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend = None
        self._checkpoint: tuple[int, int] | None = None
        self.error: Exception | None = None
        with self._connection() as backend:
            ensure_table(backend, table, EVENTS_SCHEMA)
            ensure_table(backend, MESSAGES, MESSAGES_SCHEMA)
            identity.ensure_tables(backend)
            if not backend.has_table(OFFSETS):
                backend.execute_sql(
                    f'CREATE TABLE "{OFFSETS}" (name VARCHAR PRIMARY KEY, segment BIGINT, "offset" BIGINT)'
                )
                backend.tables()
            self._checkpoint = self._read_checkpoint(backend)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._backend is None:
            self._backend = self.open_backend()
        try:
            yield self._backend
        finally:
            if not self.hold:
                self._backend.close()
                self._backend = None

    def _read_checkpoint(self, backend) -> tuple[int, int]:
        row = backend.fetch_one(f"SELECT segment, \"offset\" FROM \"{OFFSETS}\" WHERE name = '{self.name}'")
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def checkpoint(self) -> tuple[int, int]:
        """How far the database has stored the log."""
        if self._checkpoint is None:
            with self._connection() as backend:
                self._checkpoint = self._read_checkpoint(backend)
        return self._checkpoint

    def flush_once(self, limit: int = 200_000) -> int:
        """Store what the log holds beyond the checkpoint; return how many lines were read."""
        lines: list[tuple[tuple[int, int], bytes]] = []
        for item in self.log.read(self.checkpoint()):
            lines.append(item)
            if len(lines) >= limit:
                break
        if not lines:
            if self._dirty and time.monotonic() - self.resolved_at >= self.resolve_interval:
                self.resolve()
            return 0
        with self._connection() as backend:
            self._store(backend, lines)
        self.log.drop_before(lines[-1][0][0])
        return len(lines)

    def _store(self, backend, lines: list[tuple[tuple[int, int], bytes]]) -> None:
        events: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        ids = identity.IdentityBatch()
        suppressed = suppressed_ids(backend)
        dropped = 0
        for _, line in lines:
            entry = json.loads(line)
            source, message = entry["source"], entry["message"]
            if is_suppressed(message, suppressed):
                dropped += 1
                continue
            try:
                record = from_segment(message, source, parse_timestamp(message["receivedAt"]))
            except RowError:
                record = None  # validated on the way in; a message that became unreadable is kept below
            if record is not None:
                events.append(record)
                ids.event(record)
            else:
                others.append(message_row(message, source))
                ids.message(message, source)
        last = lines[-1][0]
        with backend.transaction():
            stored = insert_new(backend, self.table, pa.Table.from_pylist(events, schema=EVENTS_SCHEMA))
            insert_new(backend, MESSAGES, pa.Table.from_pylist(others, schema=MESSAGES_SCHEMA))
            identity.store(backend, ids)
            backend.execute_sql(f"DELETE FROM \"{OFFSETS}\" WHERE name = '{self.name}'")
            backend.execute_sql(f"INSERT INTO \"{OFFSETS}\" VALUES ('{self.name}', {last[0]}, {last[1]})")
        self._checkpoint = last
        self.stored += stored
        self.duplicates += len(events) - stored
        self.suppressed += dropped
        self._dirty = self._dirty or bool(ids)
        if self._dirty and time.monotonic() - self.resolved_at >= self.resolve_interval:
            self._resolve(backend)

    def resolve(self) -> None:
        """Rebuild pql_identities, pql_users and pql_accounts now."""
        with self._connection() as backend:
            self._resolve(backend)

    def _resolve(self, backend) -> None:
        identity.materialize(backend)
        self.resolved_at = time.monotonic()
        self._dirty = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pql-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.flush_once():
                    pass
                self.error = None
            except Exception as exc:  # kept for /health; the log still holds everything
                self.error = exc
                self._checkpoint = None  # read it again from the database next time
                if self._backend is not None and not self.hold:
                    self._backend.close()
                    self._backend = None
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        while self.flush_once():
            pass
        if self._dirty:
            self.resolve()
        if self._backend is not None:
            self._backend.close()
            self._backend = None


__all__ = ["EVENTS_SCHEMA", "MESSAGES_SCHEMA", "SUPPRESSIONS", "Flusher", "ensure_table", "insert_new", "is_suppressed", "message_row", "suppressed_ids"]
