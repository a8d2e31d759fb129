"""Benchmark: the flusher's store step (:func:`pqlkit.collect.dedup.store_new`, the code the
flusher runs in its transaction) into an empty store and into one already holding N events in
its deduplication window, with the old deduplicating query and with the keyed path, in the
same run.

    python bench/bench_ingest.py                           # 100M events in the window
    python bench/bench_ingest.py --window-events 10M       # a quick check

The big store (N events over the 7 days before the batches, in log order, as the collector
writes them) is generated once inside DuckDB and kept in bench/data/ (git-ignored). Each
flush is ~130k new events with a few retried copies of recent ones (they must be refused);
each path runs several flushes, medians are printed as events/s with the ratio. The first
flush of the keyed path also loads the window's keys: that one-off cost is printed apart.
Batches append to the store, so it grows by a few million events a run. The run fails if a
retried copy is stored or a new event is refused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
#: The window's events end here; batches are received after it.
END = datetime(2026, 10, 1)


def parse_count(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KMB")) * mult)


def generate(path: Path, n_events: int) -> None:
    """``n_events`` events spread over the 7 days before END, in log order, with message ids
    like a Segment library's (random UUIDs), inside DuckDB; identity tables left empty."""
    import duckdb

    tmp = path.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    start = (END - timedelta(days=7)).isoformat(sep=" ")
    step_us = 7 * 86400 * 1_000_000 // max(n_events, 1)
    con.execute("SET memory_limit = '3GB'")
    con.execute(
        "CREATE TABLE events (message_id VARCHAR, source VARCHAR, user_id VARCHAR, "
        'anonymous_id VARCHAR, account_id VARCHAR, event VARCHAR, "timestamp" TIMESTAMP, '
        "received_at TIMESTAMP, properties VARCHAR)"
    )
    chunk = 5_000_000
    for low in range(0, n_events, chunk):
        # in chunks, in order (insertion order is kept): memory stays bounded
        con.execute(f"""
          INSERT INTO events SELECT gen_random_uuid()::VARCHAR, 'web',
            'u_' || (hash(i) % 1000000), NULL, NULL, 'feature_used',
            TIMESTAMP '{start}' + to_microseconds(i * {step_us}),
            TIMESTAMP '{start}' + to_microseconds(i * {step_us}),
            '{{"feature": "f' || hash(i * 19) % 8 || '"}}'
          FROM range({low}, {min(low + chunk, n_events)}) t(i)
        """)
    con.execute("CHECKPOINT")
    con.close()
    tmp.rename(path)


def batch(n: int, at: datetime, retried: list[tuple[str, str]]):
    """``n`` new events received from ``at`` on (10 microseconds apart), then copies of the
    ``retried`` (source, message_id) pairs, in log order."""
    import pyarrow as pa

    from pqlkit.collect.tables import EVENTS_SCHEMA

    # random ids, as Segment's libraries send: they fall across the stored ids' whole range,
    # so no zone map of message_id can skip the stored rows for the old query
    ids = [str(uuid.uuid4()) for _ in range(n)] + [m for _, m in retried]
    sources = ["web"] * n + [s for s, _ in retried]
    times = [at + timedelta(microseconds=i * 10) for i in range(len(ids))]
    rows = pa.table(
        {
            "message_id": ids,
            "source": sources,
            "user_id": [f"u_{i % 50_000}" for i in range(len(ids))],
            "anonymous_id": pa.nulls(len(ids), pa.string()),
            "account_id": pa.nulls(len(ids), pa.string()),
            "event": ["feature_used"] * len(ids),
            "timestamp": times,
            "received_at": times,
            "properties": ['{"feature": "f1"}'] * len(ids),
        },
        schema=EVENTS_SCHEMA,
    )
    places = pa.chunked_array([pa.array(range(len(ids)), pa.int64())])
    return rows, places


def flushes(backend, n: int, size: int, clock: datetime, seen) -> tuple[list, datetime]:
    """``n`` timed flushes of ``size`` new events (and a few retried copies of the previous
    batch's) through the flusher's store step; the seconds of each, and the clock after."""
    from pqlkit.collect.dedup import store_new
    from pqlkit.collect.tables import DEDUP_WINDOW

    took = []
    t = backend.table("events")
    recent = backend.values(
        t.filter(t.received_at >= clock - timedelta(seconds=5))
        .select("source", "message_id")
        .limit(20)
    )
    for _ in range(n):
        rows, places = batch(size, clock, [tuple(r) for r in recent])
        start = time.perf_counter()
        with backend.transaction():
            stored, duplicates = store_new(backend, "events", rows, places, [], DEDUP_WINDOW, seen)
        took.append(time.perf_counter() - start)
        if stored != size or duplicates != len(recent):
            sys.exit(f"wrong: {stored} stored of {size} new, {duplicates} refused of {len(recent)}")
        ids = rows.column("message_id").to_pylist()
        recent = [("web", ids[i]) for i in range(0, size, size // 20)][:20]
        clock += timedelta(seconds=2)
    return took, clock


def measure(path: Path, label: str, size: int, runs: int) -> None:
    from pqlkit.backends import connect
    from pqlkit.collect.seen import SeenKeys
    from pqlkit.collect.tables import EVENTS_SCHEMA, MESSAGES, MESSAGES_SCHEMA

    backend = connect(str(path))
    backend.ensure_table("events", EVENTS_SCHEMA)
    backend.ensure_table(MESSAGES, MESSAGES_SCHEMA)
    held = backend.count("events")
    t = backend.table("events")
    latest = backend.values(t.aggregate(m=t.received_at.max()))[0][0] or END
    clock = max(latest, END) + timedelta(seconds=1)
    old, clock = flushes(backend, runs, size, clock, None)
    seen = SeenKeys()
    load, clock = flushes(backend, 1, size, clock, seen)
    new, clock = flushes(backend, runs, size, clock, seen)
    backend.close()
    o, n = statistics.median(old), statistics.median(new)
    print(
        f"{label} ({held:,} events held): old query {size / o:,.0f} events/s ({o:.2f} s a flush), "
        f"keyed {size / n:,.0f} events/s ({n:.2f} s a flush), {o / n:.1f}x; first keyed flush "
        f"{load[0]:.2f} s (loads {len(seen):,} keys, {len(seen) * 12 / 1e6:,.0f} MB)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-events", default="100M", help="events already in the window")
    parser.add_argument("--batch", type=int, default=130_000, help="new events a flush")
    parser.add_argument("--runs", type=int, default=5, help="timed flushes per path")
    args = parser.parse_args()
    n = parse_count(args.window_events)
    DATA.mkdir(exist_ok=True)
    big = DATA / f"window_{args.window_events}.duckdb"
    if not big.exists():
        print(f"generating {n:,} events into {big} (once) ...", flush=True)
        generate(big, n)
    with tempfile.TemporaryDirectory() as folder:
        measure(Path(folder) / "empty.duckdb", "empty store", args.batch, args.runs)
    measure(big, f"{args.window_events} in the window", args.batch, args.runs)


if __name__ == "__main__":
    main()
