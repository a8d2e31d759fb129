"""Move what the durable log holds into the database, exactly once.

Events (track, page, screen) go to the events table; identify, group and alias messages to
`pql_messages`, kept for identity resolution. A message id already stored for the same source
within the dedup window is not stored again. The rows and the log position they reach are
committed in one transaction, so after a crash the flusher resumes where the database says.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pyarrow as pa

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


def _ensure(backend, table: str, schema: pa.Schema) -> None:
    if not backend.has_table(table):
        backend.con.create_table(table, schema=schema)
        backend.tables()


def insert_new(backend, table: str, rows: pa.Table, window: timedelta | None = DEDUP_WINDOW) -> int:
    """Insert the rows whose (source, message_id) is not stored yet (within ``window`` of
    their received_at); return how many went in. Call inside a transaction."""
    if rows.num_rows == 0:
        return 0
    stage = f"_pql_stage_{uuid.uuid4().hex[:10]}"
    cols = ", ".join(f'"{c}"' for c in rows.column_names)
    backend.con.create_table(stage, schema=rows.schema, temp=True)
    try:
        backend.con.insert(stage, rows)
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
    finally:
        backend.execute_sql(f'DROP TABLE IF EXISTS "{stage}"')


def _count(backend, table: str) -> int:
    return int(backend.fetch_one(f'SELECT count(*) FROM "{table}"')[0])


def _message_row(message: dict[str, Any], source: str) -> dict[str, Any]:
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


class Flusher:
    """Copies the log into the database, in a thread, every ``interval`` seconds."""

    def __init__(self, backend, log: DurableLog, *, table: str = "events", name: str = "collector",
                 interval: float = 0.25):
        self.backend = backend
        self.log = log
        self.table = table
        self.name = name
        self.interval = interval
        self.stored = 0
        self.duplicates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None
        _ensure(backend, table, EVENTS_SCHEMA)
        _ensure(backend, MESSAGES, MESSAGES_SCHEMA)
        if not backend.has_table(OFFSETS):
            backend.execute_sql(f'CREATE TABLE "{OFFSETS}" (name VARCHAR PRIMARY KEY, segment BIGINT, "offset" BIGINT)')
            backend.tables()

    def checkpoint(self) -> tuple[int, int]:
        row = self.backend.fetch_one(f"SELECT segment, \"offset\" FROM \"{OFFSETS}\" WHERE name = '{self.name}'")
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def flush_once(self, limit: int = 200_000) -> int:
        """Store what the log holds beyond the checkpoint; return how many lines were read."""
        events: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        last = None
        n = 0
        for position, line in self.log.read(self.checkpoint()):
            entry = json.loads(line)
            source, message = entry["source"], entry["message"]
            try:
                record = from_segment(message, source, parse_timestamp(message["receivedAt"]))
            except RowError:
                record = None  # validated on the way in; a message that became unreadable is kept below
            if record is not None:
                events.append(record)
            else:
                others.append(_message_row(message, source))
            last = position
            n += 1
            if n >= limit:
                break
        if last is None:
            return 0
        with self.backend.transaction():
            stored = insert_new(self.backend, self.table, pa.Table.from_pylist(events, schema=EVENTS_SCHEMA))
            insert_new(self.backend, MESSAGES, pa.Table.from_pylist(others, schema=MESSAGES_SCHEMA))
            self.backend.execute_sql(f"DELETE FROM \"{OFFSETS}\" WHERE name = '{self.name}'")
            self.backend.execute_sql(f"INSERT INTO \"{OFFSETS}\" VALUES ('{self.name}', {last[0]}, {last[1]})")
        self.stored += stored
        self.duplicates += len(events) - stored
        self.log.drop_before(last[0])
        return n

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pql-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.flush_once():
                    pass
            except Exception as exc:  # kept for /health; the log still holds everything
                self.error = exc
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        while self.flush_once():
            pass


__all__ = ["EVENTS_SCHEMA", "MESSAGES_SCHEMA", "Flusher", "insert_new"]
