"""Claims: which sender sends a delivery. A sender claims the due deliveries it is about to send
in the database, for a while (:data:`LEASE`); of two senders that read the same row (threads,
processes, `pql deliver` beside `pql serve`) only one holds it, and the other never sends it. A
sender that dies leaves its claims to lapse; another then takes them over, and may send again
what the dead one sent but did not record: the same transition under the same id, a retry to a
receiver, never two ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import ibis

from ..backends import Backend
from .transitions import DELIVERIES, OUTBOX

LEASE = timedelta(seconds=120)
"""How long a claim holds a delivery for its sender (a sender that dies mid-pass leaves its
claims to lapse; another sender then takes them over)."""


def due(
    backend: Backend, now: datetime, limit: int = 500, destinations: list[str] | None = None
) -> list[dict[str, Any]]:
    """The deliveries due at ``now`` (pending, failed, or claimed by a sender whose claim ran
    out), oldest first, with what a claim checks."""
    d, o = backend.table(DELIVERIES), backend.table(OUTBOX)
    rows = d.filter(
        d.status.isin(["pending", "failed", "sending"]), d.next_attempt_at <= ibis.timestamp(now)
    )
    if destinations is not None:
        rows = rows.filter(rows.destination.isin(destinations))
    j = rows.join(o, rows.transition_id == o.id).select(
        rows.transition_id,
        rows.destination,
        rows.attempts,
        rows.created_at,
        rows.status,
        rows.claim,
        o.payload,
    )
    return backend.rows(j.order_by([j.created_at, j.transition_id, j.destination]).limit(limit))


def claim(
    backend: Backend,
    rows: list[dict[str, Any]],
    now: datetime,
    lease: timedelta = LEASE,
    owner: str = "c",
) -> list[dict[str, Any]]:
    """Claim ``rows`` (read by :func:`due` a moment ago) for this sender until ``now + lease``:
    one update that takes a row only as it was read (status, attempts and claim unchanged), so
    of two senders that read the same row only one holds it. The rows held, each with its
    ``lease_until``; the database is the only judge, whatever runs beside (threads, processes).
    The claim's token starts with ``owner`` (see :func:`release_owned`)."""
    if not rows:
        return []
    token = f"{owner}#{uuid.uuid4().hex}"
    until = now + lease
    where: list[Mapping[str, Any]] = list(groups(rows, "status", "attempts", "claim"))
    values = {"status": "sending", "claim": token, "next_attempt_at": until, "updated_at": now}
    backend.update(DELIVERIES, values, where)
    d = backend.table(DELIVERIES)
    held = set(
        backend.values(
            d.filter(d.claim == token, d.status == "sending").select("transition_id", "destination")
        )
    )
    return [
        {**r, "claim": token, "lease_until": until}
        for r in rows
        if (r["transition_id"], r["destination"]) in held
    ]


def release(backend: Backend, rows: list[dict[str, Any]], now: datetime) -> None:
    """Give back claimed rows that were not sent: due again at once, their attempts unchanged."""
    for claimed in groups(rows, "claim", "attempts"):
        status = "failed" if claimed["attempts"] else "pending"
        backend.update(
            DELIVERIES,
            {"status": status, "next_attempt_at": now, "updated_at": now},
            {**claimed, "status": "sending"},
        )


def release_owned(backend: Backend, owner: str, now: datetime) -> int:
    """Give back every claim ``owner`` made: a sender that restarts (`pql serve` owns its log
    folder, one process at a time) knows that what it had claimed before is not being sent, and
    sends it again now rather than when the claims lapse. How many."""
    if not backend.has_table(DELIVERIES):
        return 0
    d = backend.table(DELIVERIES)
    mine = d.filter(d.status == "sending", d.claim.startswith(f"{owner}#"))
    rows = backend.rows(mine.select("transition_id", "destination", "claim", "attempts"))
    release(backend, rows, now)
    return len(rows)


def groups(rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    """``rows`` as conditions for a write: destination, ``columns`` and the transition ids."""
    found: dict[tuple[Any, ...], list[str]] = {}
    for r in rows:
        found.setdefault((r["destination"], *(r[c] for c in columns)), []).append(
            r["transition_id"]
        )
    return [
        {"destination": k[0], **dict(zip(columns, k[1:], strict=True)), "transition_id": ids}
        for k, ids in found.items()
    ]


def remaining(backend: Backend, now: datetime) -> int:
    """Deliveries due at ``now`` (or claimed by another sender) that no pass has settled."""
    if not backend.has_table(DELIVERIES):
        return 0
    d = backend.table(DELIVERIES)
    late = d.status.isin(["pending", "failed"]) & (d.next_attempt_at <= ibis.timestamp(now))
    left = d.filter((d.status == "sending") | late)
    return int(backend.rows(left.aggregate(n=left.count()))[0]["n"])
