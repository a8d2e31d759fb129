"""The flusher's index of the message keys stored within the deduplication window.

A flush asks it which of its keys may be stored already (see :mod:`pqlkit.backends.keyed`):
each stored (source, message_id) is one 64-bit hash (computed by the database) and the
second it was received, kept sorted in two numpy arrays (12 bytes a key) plus a small sorted
delta that the flushes append to and that is merged in when it reaches a twentieth of the
whole; keys received before the window are dropped at that merge. A lookup is a binary
search per key: its cost follows the batch, not the window.

The index is loaded from the tables themselves (events and pql_messages) the first time, so
a database written by an older pqlkit needs no upgrade step. It must hold every stored key
of the window, or a duplicate would go in unseen: before each flush the tables' row counts
are compared with those it saw after its last one, and any difference (`pql import`, `pql
forget`, a second flusher, a rolled-back flush) reloads it. Keys it holds that the tables do
not (a rolled-back flush, a forgotten user) cost only an exact check that finds nothing.
Writers that bypass pqlkit and leave the counts equal (deleting as many rows as they add)
are not seen. Nothing is kept on disk, so a crash cannot leave the index and the rows apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from ..backends.keyed import seconds

#: The delta is merged into the whole once it holds this many keys, or a twentieth of it.
MERGE_AT = 1_000_000
#: Keys are dropped a day after they leave the window: a batch whose oldest event is a little
#: older than the last one's must not reload the whole index.
MARGIN = 86_400
_U32 = 2**32 - 1


class SeenKeys:
    """The stored keys of some tables, from ``since`` (a second since 1970) on."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self.tables: tuple[str, ...] = ()
        self.since: int | None = None
        self.loads = 0  # how many times the index was read from the tables
        self._counts: tuple[int, ...] = ()
        self._prune_at = 0
        empty = (np.empty(0, np.uint64), np.empty(0, np.uint32))
        self._whole, self._delta = empty, empty

    def __len__(self) -> int:
        return len(self._whole[0]) + len(self._delta[0])

    def sync(self, backend: Any, tables: tuple[str, ...], cutoff: datetime) -> None:
        """Make the index whole for ``tables`` from ``cutoff`` on: read it from the tables
        unless it holds those tables from that second on and their row counts are those it
        saw last."""
        since = _second(cutoff)
        self._prune_at = max(self._prune_at, since)
        counts = tuple(backend.count(t) for t in tables)
        if (
            tables == self.tables
            and counts == self._counts
            and self.since is not None
            and self.since <= since
        ):
            return
        np = self._np
        whole = (np.empty(0, np.uint64), np.empty(0, np.uint32))
        for table, rows in zip(tables, counts, strict=True):
            # filled in place (no second copy of the window's keys); sorted by the database
            keys, times, n = np.empty(rows, np.uint64), np.empty(rows, np.uint32), 0
            for batch in backend.stored_keys(table, cutoff):
                m = batch.num_rows
                keys[n : n + m] = batch.column(0).to_numpy(zero_copy_only=False)
                times[n : n + m] = batch.column(1).to_numpy(zero_copy_only=False)
                n += m
            whole = _merged(
                np, whole, (keys[:n].copy(), times[:n].copy()) if n < rows else (keys, times)
            )
        self._whole = whole
        self._delta = (np.empty(0, np.uint64), np.empty(0, np.uint32))
        self.tables, self.since, self._counts = tables, since, counts
        self._prune_at = since
        self.loads += 1

    def saw(self, added: tuple[int, ...]) -> None:
        """Note the rows this process added to each table since :meth:`sync` (their keys
        went in by :meth:`add`)."""
        self._counts = tuple(c + n for c, n in zip(self._counts, added, strict=True))

    def lookup(self, hashes: pa.Array, since: int) -> tuple[list[int], int, int]:
        """The places in ``hashes`` of those stored at a second >= ``since``, and the first
        and last such second (0, 0 when none is)."""
        np = self._np
        query = hashes.to_numpy(zero_copy_only=False).astype(np.uint64)
        order = np.argsort(query, kind="stable")
        query = query[order]  # sorted needles: each binary search starts where the last ended
        hits: set[int] = set()
        first, last = _U32, 0
        for keys, times in (self._whole, self._delta):
            if not len(keys):
                continue
            left = np.searchsorted(keys, query, "left")
            found = np.nonzero(keys[np.minimum(left, len(keys) - 1)] == query)[0]
            right = np.searchsorted(keys, query[found], "right")
            for j, end in zip(found.tolist(), right.tolist(), strict=True):
                at = times[left[j] : end]
                at = at[at >= since]
                if len(at):
                    hits.add(int(order[j]))
                    first, last = min(first, int(at.min())), max(last, int(at.max()))
        return sorted(hits), (first if hits else 0), last

    def add(self, hashes: pa.Array, seconds_: pa.Array) -> None:
        """Index keys just stored (their hashes and receive seconds; a null time is never
        within a window, so it is left out)."""
        np = self._np
        valid = seconds_.is_valid().to_numpy(zero_copy_only=False)
        keys = hashes.to_numpy(zero_copy_only=False).astype(np.uint64)[valid]
        times = np.clip(seconds_.fill_null(0).to_numpy(zero_copy_only=False), 0, _U32)
        new = self._sorted(keys, times.astype(np.uint32)[valid])
        self._delta = _merged(np, self._delta, new)
        if len(self._delta[0]) >= max(MERGE_AT, len(self._whole[0]) // 20):
            whole = _merged(np, self._whole, self._delta)
            since = max(self.since or 0, self._prune_at - MARGIN)
            keep = whole[1] >= since
            self._whole = (whole[0][keep], whole[1][keep]) if not keep.all() else whole
            self._delta = (np.empty(0, np.uint64), np.empty(0, np.uint32))
            self.since = since

    def _sorted(self, keys: Any, times: Any) -> tuple[Any, Any]:
        order = self._np.argsort(keys, kind="stable")
        return keys[order], times[order]


def _merged(np: Any, a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """Two sorted (keys, times) pairs as one."""
    if not len(b[0]):
        return a
    if not len(a[0]):
        return b
    at = np.searchsorted(a[0], b[0], "right")
    return np.insert(a[0], at, b[0]), np.insert(a[1], at, b[1])


def _second(at: datetime) -> int:
    return int(seconds(pa.array([at], pa.timestamp("us")))[0].as_py())


__all__ = ["MARGIN", "MERGE_AT", "SeenKeys"]
