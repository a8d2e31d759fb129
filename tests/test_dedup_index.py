"""The collector's deduplication through the index of stored keys (pqlkit.collect.seen): the
same messages stored as the anti-join stores them, whatever the hashes, the upgrades, the other
writers and the rolled-back flushes (issue 29 item 3)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from pqlkit.backends import connect
from pqlkit.backends.duckdb import DuckDBBackend
from pqlkit.collect import seen as seen_module
from pqlkit.collect.dedup import store_new
from pqlkit.collect.seen import SeenKeys
from pqlkit.collect.tables import DEDUP_WINDOW, EVENTS_SCHEMA, MESSAGES, MESSAGES_SCHEMA

T0 = datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture
def db(tmp_path):
    opened = []

    def make(name: str = "a"):
        b = connect(str(tmp_path / f"{name}.duckdb"))
        b.ensure_table("events", EVENTS_SCHEMA)
        b.ensure_table(MESSAGES, MESSAGES_SCHEMA)
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


def events(*items: tuple[str, str, datetime]) -> tuple[pa.Table, pa.ChunkedArray]:
    """Event rows of (source, message_id, received_at), in log order, and their places."""
    rows = [
        {"source": s, "message_id": m, "user_id": "u", "event": "A", "received_at": at}
        for s, m, at in items
    ]
    table = pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)
    return table, pa.chunked_array([pa.array(range(len(rows)), pa.int64())])


def identify(source: str, mid: str, at: datetime, place: int = 0) -> dict:
    return {
        "source": source,
        "message_id": mid,
        "type": "identify",
        "user_id": "u",
        "received_at": at,
        "place": place,
    }


def store(backend, items, others=(), seen=None) -> tuple[int, int]:
    rows, places = events(*items)
    with backend.transaction():
        return store_new(backend, "events", rows, places, list(others), DEDUP_WINDOW, seen)


def stored(backend) -> list[tuple]:
    return sorted(
        backend.run_sql("SELECT source, message_id, received_at FROM events")
        + backend.run_sql("SELECT source, message_id, received_at FROM pql_messages"),
        key=lambda r: (r[1], r[0] or "", r[2]),
    )


def test_a_copy_in_a_later_flush_is_refused_without_reading_the_index_again(db):
    backend, seen = db(), SeenKeys()
    assert store(backend, [("web", "a", T0), ("web", "b", T0)], seen=seen) == (2, 0)
    later = T0 + timedelta(hours=1)
    assert store(backend, [("web", "a", later), ("web", "c", later)], seen=seen) == (1, 1)
    assert store(backend, [("app", "a", later), ("web", "b", later)], seen=seen) == (1, 1)
    assert [m for _, m, _ in stored(backend)] == ["a", "a", "b", "c"]
    assert seen.loads == 1 and len(seen) == 4


def test_one_id_across_the_events_and_the_messages_tables_is_one_message(db):
    backend, seen = db(), SeenKeys()
    store(backend, [("web", "e1", T0)], [identify("web", "i1", T0)], seen=seen)
    later = T0 + timedelta(minutes=5)
    # an identify of a stored event's id, and an event of a stored identify's id
    assert store(backend, [("web", "i1", later)], [identify("web", "e1", later)], seen=seen) == (
        0,
        2,
    )
    assert backend.run_sql("SELECT message_id FROM pql_messages") == [("i1",)]
    assert backend.run_sql("SELECT message_id FROM events") == [("e1",)]


def test_a_hash_shared_by_every_key_never_refuses_a_distinct_message(db, monkeypatch):
    """64 bits can collide: the index only points, the tables decide."""
    monkeypatch.setattr(DuckDBBackend, "key_hash", "CAST(42 AS UBIGINT)")
    backend, seen = db(), SeenKeys()
    assert store(backend, [("web", f"m{i}", T0) for i in range(5)], seen=seen) == (5, 0)
    later = T0 + timedelta(seconds=30)
    assert store(
        backend,
        [("web", "m2", later), ("web", "n1", later), (None, "m1", later)],
        [identify("web", "n2", later, place=5), identify("web", "m4", later, place=6)],
        seen=seen,
    ) == (2, 2)
    assert [m for _, m, _ in stored(backend)] == ["m0", "m1", "m1", "m2", "m3", "m4", "n1", "n2"]
    assert backend.run_sql("SELECT message_id FROM events WHERE source IS NULL") == [("m1",)]


def test_a_database_written_before_the_index_refuses_its_stored_messages(db):
    """An older database (rows stored with no index) needs no upgrade step: the index is read
    from the tables on the first flush."""
    backend = db()
    rows, _ = events(("web", "old-1", T0), ("web", "old-2", T0 - timedelta(days=3)))
    backend.insert("events", rows)
    backend.insert(MESSAGES, pa.Table.from_pylist([identify("web", "old-3", T0)], MESSAGES_SCHEMA))
    seen = SeenKeys()
    later = T0 + timedelta(days=1)
    items = [("web", "old-1", later), ("web", "old-2", later), ("web", "old-3", later)]
    assert store(backend, [*items, ("web", "new", later)], seen=seen) == (1, 3)
    assert seen.loads == 1


def test_rows_another_writer_stores_are_seen_and_a_rolled_back_flush_is_not(db):
    backend, seen = db(), SeenKeys()
    store(backend, [("web", "a", T0)], seen=seen)
    # pql import (another process) stores rows the index never saw: the counts tell
    rows, _ = events(("web", "imported", T0))
    backend.insert("events", rows)
    later = T0 + timedelta(minutes=1)
    assert store(backend, [("web", "imported", later)], seen=seen) == (0, 1)
    assert seen.loads == 2
    # a flush that rolls back leaves its keys in the index but not in the tables
    with pytest.raises(RuntimeError), backend.transaction():
        rows, places = events(("web", "lost", later))
        store_new(backend, "events", rows, places, [], DEDUP_WINDOW, seen)
        raise RuntimeError("the flush failed after the insert")
    assert store(backend, [("web", "lost", later)], seen=seen) == (1, 0)
    assert ("web", "lost", later) in stored(backend)


def test_the_index_stores_what_the_anti_join_stores(db, monkeypatch):
    """Random flushes with copies near and far (some older than the window, some in the same
    flush, across the two tables and sources), small merges: the same rows both ways."""
    monkeypatch.setattr(seen_module, "MERGE_AT", 7)
    rng = random.Random(29)
    plain, keyed, seen = db("plain"), db("keyed"), SeenKeys()
    clock = T0
    ids = [f"m{i}" for i in range(60)]
    for _ in range(40):
        clock += timedelta(hours=rng.choice([1, 6, 30]))
        items = [
            (rng.choice(["web", "app"]), rng.choice(ids), clock + timedelta(seconds=rng.random()))
            for _ in range(rng.randint(1, 8))
        ]
        others = [
            identify(rng.choice(["web", "app"]), rng.choice(ids), clock, place=rng.randint(0, 9))
            for _ in range(rng.randint(0, 3))
        ]
        assert store(plain, items, others) == store(keyed, items, others, seen=seen)
    assert stored(plain) == stored(keyed)
    assert seen.loads == 1
    assert len(stored(keyed)) > 60  # ids came back after the window: stored again


def test_the_flusher_keeps_one_index_across_its_flushes(tmp_path):
    import orjson

    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import Flusher

    def line(mid: str) -> bytes:
        body = {"batch": [{"type": "track", "event": "A", "userId": "u", "messageId": mid}]}
        return orjson.dumps({"s": "web", "r": "2026-11-01T12:00:00Z", "e": "batch", "b": body})

    backend = connect(str(tmp_path / "f.duckdb"))
    log = DurableLog(tmp_path / "log")
    flusher = Flusher(lambda: backend, LogReader(tmp_path / "log", lambda: log.durable))
    log.append([line("x") + b"\n", line("y") + b"\n"]).result()
    while flusher.flush_once(limit=1):
        pass
    log.append([line("x") + b"\n", line("z") + b"\n"]).result()
    while flusher.flush_once():
        pass
    log.close()
    assert sorted(backend.run_sql("SELECT message_id FROM events")) == [("x",), ("y",), ("z",)]
    assert flusher.duplicates == 1 and flusher._seen.loads == 1
    backend.close()


def test_a_table_made_by_hand_with_number_ids_refuses_their_copies(tmp_path):
    """An events table whose ids are numbers (made by hand, not by pqlkit): the index hashes
    ids as text, as the batch has them, so their copies are still refused."""
    backend = connect(str(tmp_path / "n.duckdb"))
    backend.run_sql(
        "CREATE TABLE events (message_id BIGINT, source VARCHAR, user_id VARCHAR, "
        'anonymous_id VARCHAR, account_id VARCHAR, event VARCHAR, "timestamp" TIMESTAMP, '
        "received_at TIMESTAMP, properties VARCHAR)"
    )
    backend.run_sql(
        f"INSERT INTO events (message_id, source, received_at) VALUES (7, 'web', '{T0}')"
    )
    backend.ensure_table(MESSAGES, MESSAGES_SCHEMA)
    seen = SeenKeys()
    later = T0 + timedelta(minutes=1)
    assert store(backend, [("web", "7", later), ("web", "8", later)], seen=seen) == (1, 1)
    backend.close()
