"""One message id names one message per source, whatever its type.

Events (track, page, screen) and identify, group and alias messages go to two tables (the
events table and `pql_messages`); a message id sent once as an event and once as an identify
(a client's bug, or a replay that changed the call) is still one message, as Segment counts
it: the kind that came first in the log is kept, and a stored message of either kind makes a
later copy of the other a duplicate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .seen import SeenKeys
from .tables import MESSAGES, MESSAGES_SCHEMA


def in_log_order(
    rows: pa.Table,
    order: list[int],
    fast: pa.Table | None = None,
    fast_order: pa.ChunkedArray | None = None,
) -> tuple[pa.Table, pa.ChunkedArray]:
    """The reference path's event ``rows`` and the fast path's (``fast``), each at its place
    in the log (line * 10000 + the message's place in it), as one table in log order, and
    their places."""
    places = pa.chunked_array([pa.array(order, pa.int64())])
    if fast is None or fast_order is None or not fast.num_rows:
        return rows, places
    if not rows.num_rows:
        return fast, fast_order
    rows = pa.concat_tables([fast, rows])
    places = pa.chunked_array([*fast_order.chunks, *places.chunks])
    by_place = pc.sort_indices(places)
    return rows.take(by_place), places.take(by_place)


def store_new(
    backend,
    table: str,
    rows: pa.Table,
    places: pa.ChunkedArray,
    others: list[dict[str, Any]],
    window: timedelta | None,
    seen: SeenKeys | None = None,
) -> tuple[int, int]:
    """Insert the event ``rows`` (in log order, each at its ``places``) into ``table`` and
    the identify, group and alias ``others`` (pql_messages rows, each with its "place") into
    pql_messages, each only when its (source, message_id) is neither among the batch's
    earlier messages nor stored in either table within ``window``; return how many events
    went in, and how many messages of either kind were duplicates. Call inside a transaction.

    With ``seen`` (the flusher keeps one across flushes), the stored keys are looked up in
    that index instead of read from the tables (see :mod:`.seen`), where the backend can."""
    incoming = rows.num_rows + len(others)
    rows, others = first_of_each_id(rows, places, others)
    messages = pa.Table.from_pylist(others, schema=MESSAGES_SCHEMA)
    times = [pc.min(x.column("received_at")).as_py() for x in (rows, messages)]
    if seen is None or window is None or backend.key_hash is None or times == [None, None]:
        seen = None  # the tables are read (PostgreSQL has no key_hash yet)
    else:
        seen.sync(backend, (table, MESSAGES), min(t for t in times if t is not None) - window)
    events = backend.insert_new(table, rows, window=window, also=(MESSAGES,), seen=seen)
    stored = backend.insert_new(MESSAGES, messages, window=window, also=(table,), seen=seen)
    if seen is not None and events + stored:
        seen.saw((events, stored))
    return events, incoming - events - stored


def first_of_each_id(
    rows: pa.Table, places: pa.ChunkedArray, others: list[dict[str, Any]]
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Of event rows and identify, group or alias rows sharing a (source, message_id), those
    of the kind that came first in the log (``places``): the two kinds go to two tables, and
    one id names one message. (Repeats of one kind are left to :func:`insert_new`.)"""
    if not others or not rows.num_rows:
        return rows, others
    theirs: dict[tuple[str, str], int] = {}
    for row in others:
        key = (row["source"], row["message_id"])
        theirs[key] = min(row["place"], theirs.get(key, row["place"]))
    shared = pc.is_in(rows.column("message_id"), value_set=pa.array([k[1] for k in theirs]))
    if not pc.any(shared).as_py():
        return rows, others
    keys = list(
        zip(rows.column("source").to_pylist(), rows.column("message_id").to_pylist(), strict=True)
    )
    mine: dict[tuple[str, str], int] = {}
    for key, place in zip(keys, places.to_pylist(), strict=True):
        if key in theirs:
            mine[key] = min(place, mine.get(key, place))
    events_first = {key for key, place in mine.items() if place < theirs[key]}
    keep = [key not in mine or key in events_first for key in keys]
    rows = rows.filter(pa.array(keep))
    others = [r for r in others if (r["source"], r["message_id"]) not in events_first]
    return rows, others


__all__ = ["first_of_each_id", "in_log_order", "store_new"]
