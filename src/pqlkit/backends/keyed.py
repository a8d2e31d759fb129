"""Deduplicating inserts that ask an index of the stored keys instead of the tables.

:meth:`Backend.insert_new` answers "is this (source, message_id) stored within the window?"
with an anti-join, which reads every message id of the window on every flush: its cost grows
with the window (1.33 s per 130k-event flush into an empty table, 2.36 s with 50M events in
the window). With a :class:`SeenKeys` index of the stored keys' 64-bit hashes and receive
times (``pqlkit.collect.seen``), the cost of a flush follows the batch alone:

1. the batch's first row of each key and the key's hash (``key_hash``, computed by the
   database so that the index and the batch hash alike);
2. the index says which of those hashes are stored within the window, and when (to the
   second); a hash alone never refuses a row (64 bits can collide);
3. only those rows are checked exactly against the tables, restricted to the receive times
   the index gave, so the database reads a few row groups by their zone maps, not the window.

Measured before choosing (DuckDB 1.5, 2 shared cores): a keys table with a PRIMARY KEY (an
ART index) took 117 s to build for 10M keys, 2.3 s per 130k-key ``INSERT ... ON CONFLICT DO
NOTHING`` into it and 5 s per checkpoint; a narrow keys table without an index still scans
the window on each flush. A sorted in-memory index costs 12 bytes a key (1.2 GB for 100M
events in the window) and a one-off load from the tables; its completeness is checked on
every flush against the tables' row counts (see ``pqlkit.collect.seen``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from . import _sql

SEQ = "_pql_seq"
HASH = "_pql_h"


class SeenKeys(Protocol):
    """An index of the stored keys (see ``pqlkit.collect.seen.SeenKeys``)."""

    def lookup(self, hashes: pa.Array, since: int) -> tuple[list[int], int, int]:
        """The places in ``hashes`` of those stored at a second >= ``since`` and the
        first and last such second."""
        ...

    def add(self, hashes: pa.Array, seconds: pa.Array) -> None: ...


def seconds(times: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps as whole seconds since 1970 (int64, floored; nulls stay null)."""
    unit = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[times.type.unit]
    ticks = pc.cast(times, pa.timestamp(times.type.unit)).cast(pa.int64())
    if isinstance(ticks, pa.ChunkedArray):
        ticks = ticks.combine_chunks()
    return pc.floor(pc.divide(pc.cast(ticks, pa.float64()), unit)).cast(pa.int64())


class KeyedInsert:
    """:meth:`insert_new`, by the anti-join or by an index (a mixin of ``Backend``)."""

    #: A 64-bit hash of a key in the dialect, over ``{scope}`` and ``{ident}`` (quoted
    #: columns); None: this backend deduplicates with the anti-join only.
    key_hash: ClassVar[str | None] = None

    #: The same key's receive time as whole seconds since 1970, clipped to 0..2**32-1.
    key_second: ClassVar[str | None] = None

    def insert_new(
        self,
        table: str,
        rows: pa.Table,
        *,
        key: tuple[str, str] = ("source", "message_id"),
        window: timedelta | None = None,
        time_column: str = "received_at",
        also: tuple[str, ...] = (),
        seen: SeenKeys | None = None,
    ) -> int:
        """Insert the rows whose ``key`` is not stored yet (for stored rows no older than
        ``window`` before the oldest new row's ``time_column``; None: all), in ``table`` or
        in any table of ``also`` (which have the key's and the time's columns too); of
        several new rows with one key, the first by ``time_column`` and then by their order
        in ``rows`` wins. Return how many went in. Call in a transaction.

        With ``seen``, an index of every key stored in those tables within the window (see
        above), the tables are read only where the index points, when the backend has a
        ``key_hash``; the rows that go in are added to the index."""
        if rows.num_rows == 0:
            return 0
        cols = ", ".join(_q(c) for c in rows.column_names)
        rows = rows.append_column(SEQ, pa.array(range(rows.num_rows), pa.int64()))
        scope, ident = key
        first = pc.min(rows.column(time_column)).as_py() if window is not None else None
        if seen is not None and self.key_hash is not None and first is not None:
            return self._insert_seen(
                table,
                rows,
                key=key,
                cutoff=first - window,
                time_column=time_column,
                also=also,
                seen=seen,
            )
        with self.staged(rows) as stage:  # type: ignore[attr-defined]
            recent = ""
            if window is not None and first is not None:
                oldest = first - window
                recent = f"AND e.{_q(time_column)} >= {self._literal(oldest)} "
            before = self.count(table)  # type: ignore[attr-defined]
            stored = "".join(
                f"AND NOT EXISTS (SELECT 1 FROM {_q(t)} e WHERE e.{_q(ident)} = s.{_q(ident)} "
                f"AND e.{_q(scope)} IS NOT DISTINCT FROM s.{_q(scope)} {recent}) "
                for t in (table, *also)
            )
            self._execute(  # type: ignore[attr-defined]
                f"INSERT INTO {_q(table)} ({cols}) SELECT {cols} FROM (SELECT *, row_number() OVER "
                f"(PARTITION BY {_q(scope)}, {_q(ident)} ORDER BY {_q(time_column)}, _pql_seq) AS _pql_n "
                f"FROM {_q(stage)}) s WHERE s._pql_n = 1 {stored}"
            )
            return int(self.count(table) - before)  # type: ignore[attr-defined]

    def stored_keys(
        self,
        table: str,
        since: datetime,
        *,
        key: tuple[str, str] = ("source", "message_id"),
        time: str = "received_at",
    ) -> pa.RecordBatchReader:
        """The hashes of the keys stored in ``table`` at ``since`` or later and their receive
        seconds (columns h, uint64, and t, uint32), sorted by hash, streamed."""
        assert self.key_hash is not None and self.key_second is not None  # callers check
        h = self.key_hash.format(scope=_q(key[0]), ident=_q(key[1]))
        t = self.key_second.format(time=_q(time))
        return self._stream(  # type: ignore[attr-defined]
            f"SELECT {h} AS h, {t} AS t FROM {_q(table)} "
            f"WHERE {_q(time)} >= {self._literal(since)} ORDER BY h"
        )

    def _insert_seen(
        self,
        table: str,
        rows: pa.Table,
        *,
        key: tuple[str, str],
        cutoff: datetime,
        time_column: str,
        also: tuple[str, ...],
        seen: SeenKeys,
    ) -> int:
        """:meth:`Backend.insert_new` with an index of the stored keys (rows carry SEQ)."""
        assert self.key_hash is not None
        scope, ident = key
        with self.staged(rows) as stage:  # type: ignore[attr-defined]
            h = self.key_hash.format(scope=_q(scope), ident=_q(ident))
            firsts = self.arrow(f"SELECT {SEQ}, {h} AS {HASH} FROM {_q(stage)}")  # type: ignore[attr-defined]
            if pc.count_distinct(firsts.column(HASH)).as_py() < rows.num_rows:
                # a key repeats in the batch (or two share a hash): the first of each wins
                firsts = self.arrow(  # type: ignore[attr-defined]
                    f"SELECT {SEQ}, {h} AS {HASH} FROM (SELECT *, row_number() OVER (PARTITION "
                    f"BY {_q(scope)}, {_q(ident)} ORDER BY {_q(time_column)}, {SEQ}) AS _pql_n "
                    f"FROM {_q(stage)}) s WHERE s._pql_n = 1"
                )
        firsts = firsts.sort_by(SEQ)
        seqs = firsts.column(SEQ).combine_chunks()
        hashes = firsts.column(HASH).combine_chunks()
        since = int(seconds(pa.array([cutoff], pa.timestamp("us")))[0].as_py())
        hits, first, last = seen.lookup(hashes, since)
        if hits:
            # the index keeps seconds from 1970 to 2106; beyond them, only the cutoff bounds
            epoch = datetime(1970, 1, 1)
            lo = max(cutoff, epoch + timedelta(seconds=first)) if first > 0 else cutoff
            hi = epoch + timedelta(seconds=last + 1) if last < 2**32 - 1 else datetime.max
            suspects = rows.take(pc.take(seqs, pa.array(hits, pa.int64())))
            stored = self._stored_of(suspects, key, time_column, (table, *also), lo, hi)
            fresh = pc.invert(pc.is_in(seqs, value_set=pa.array(sorted(stored), pa.int64())))
            seqs, hashes = seqs.filter(fresh), hashes.filter(fresh)
        new = rows if len(seqs) == rows.num_rows else rows.take(seqs)
        self.insert(table, new.drop_columns([SEQ]))  # type: ignore[attr-defined]
        seen.add(hashes, seconds(new.column(time_column)))
        return int(new.num_rows)

    def _stored_of(
        self,
        suspects: pa.Table,
        key: tuple[str, str],
        time_column: str,
        tables: tuple[str, ...],
        lo: datetime,
        hi: datetime,
    ) -> set[int]:
        """The SEQ of the ``suspects`` whose key is stored in any of ``tables`` at a time in
        [lo, hi): the exact check, bounded in time so that zone maps skip the rest."""
        scope, ident = key
        t = _q(time_column)
        lit = self._literal
        out: set[int] = set()
        with self.staged(suspects.select([SEQ, scope, ident])) as stage:  # type: ignore[attr-defined]
            for name in tables:
                _, found = self._fetch(  # type: ignore[attr-defined]
                    f"SELECT s.{SEQ} FROM {_q(stage)} s WHERE EXISTS (SELECT 1 FROM {_q(name)} e "
                    f"WHERE e.{t} >= {lit(lo)} AND e.{t} < {lit(hi)} "
                    f"AND e.{_q(ident)} = s.{_q(ident)} "
                    f"AND e.{_q(scope)} IS NOT DISTINCT FROM s.{_q(scope)})"
                )
                out.update(int(r[0]) for r in found)
        return out

    def _literal(self, value: Any) -> str:
        return _sql.sql(_sql.literal(value), self._sqlglot)  # type: ignore[attr-defined]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


__all__ = ["HASH", "SEQ", "KeyedInsert", "SeenKeys", "seconds"]
