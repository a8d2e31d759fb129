"""Deliver what the outbox holds: each (transition, destination) pair until it is delivered,
dead-lettered, or its destination is gone.

A delivery row is updated after each attempt in a transaction of its own. A worker that dies
between sending and recording sends again on its next pass: a receiver may see a retry with
the same webhook-id (the transition's id), never two ids for one transition. Retries follow the
Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h) until
``handoff.retry_for`` (3 days) has passed since the transition; 429 and 503 wait as long as
Retry-After says; 410 disables the destination; other 4xx are dead-lettered at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import pyarrow as pa

from ..backends import Backend
from ..destinations import (
    KINDS,
    Delivery,
    Gone,
    Ok,
    Outcome,
    Permanent,
    Registry,
    Retry,
    RetryAfter,
    Session,
    build,
    factory,
)
from ..errors import PqlkitError
from ..model.handoff import Handoff
from ..model.signals import duration_seconds
from .claims import LEASE, claim, due, groups, release, remaining
from .transitions import DELIVERIES, OUTBOX, ensure_tables

DESTINATIONS = "pql_destination_state"
#: The columns `pql deliveries` lists, most useful first.
LISTED = (
    "transition_id",
    "destination",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "kind",
    "entity_id",
    "created_at",
    "delivered_at",
    "entity",
)
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000)
"""Seconds before the next attempt after the 1st, 2nd... failure (the last repeats)."""
_DEST_SCHEMA = pa.schema(
    [("destination", pa.string()), ("disabled_at", pa.timestamp("us")), ("reason", pa.string())]
)


@dataclass
class Report:
    """What one pass did."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    disabled: int = 0
    remaining: int = 0
    """Due when the pass ended and not sent by it (due since it started, or claimed by another
    sender)."""
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def secrets_for(
    handoff: Handoff, env: dict[str, str] | None = None, kinds: Registry = KINDS
) -> dict[str, list[str]]:
    """Each destination's secrets (webhook signing secrets, a Slack or Teams URL, a CRM token)
    from the environment, as its kind reads them; a PqlkitError naming every one that is
    missing, and one for a kind ``kinds`` has no sender for."""
    env = dict(os.environ) if env is None else env
    values: dict[str, list[str]] = {}
    missing = []
    for d in handoff.destinations:
        values[d.id] = []
        for name in d.env_names():
            value = (env.get(name) or "").strip()
            if not value:
                missing.append(
                    f"handoff.destinations[{d.id}]: the environment variable {name} is not set"
                )
            values[d.id].append(value)
    if missing:
        raise PqlkitError(
            "; ".join(missing) + " (secrets live in the environment, never in the model file)"
        )
    out = {}
    for d in handoff.destinations:
        check = getattr(factory(kinds, d), "check_secrets", None)
        try:
            out[d.id] = values[d.id] if check is None else check(d, values[d.id])
        except ValueError as exc:
            raise PqlkitError(f"handoff.destinations[{d.id}]: {exc}") from None
    return out


def next_attempt(
    attempts: int,
    now: datetime,
    created: datetime,
    retry_for: timedelta,
    retry_after: float | None = None,
) -> datetime | None:
    """When to try again after ``attempts`` failures (None: give up, dead-letter)."""
    delay: float = SCHEDULE[min(attempts - 1, len(SCHEDULE) - 1)]
    if retry_after is not None:
        delay = max(retry_after, 1.0)
    when = now + timedelta(seconds=delay)
    return when if when <= created + retry_for else None


def deliver_due(
    backend: Backend,
    handoff: Handoff,
    now_fn: Callable[[], datetime],
    client: Any,
    *,
    env: dict[str, str] | None = None,
    limit: int = 500,
    sleep: Callable[[float], None] = time.sleep,
    kinds: Registry = KINDS,
    engine: Any = None,
) -> Report:
    """Send every delivery due when the pass starts, claimed ``limit`` at a time at most, each
    destination's concurrently within its bound (:mod:`pqlkit.handoff.dispatch`), built from
    ``kinds`` once for the pass (so a Retry-After pauses the whole destination). A kind that
    sends in batches (a CRM) gets each group of its due deliveries at once, with ``engine``
    (the scored state it reads)."""
    from .dispatch import Dispatcher

    secrets = secrets_for(handoff, env, kinds)
    session = Session(client, now_fn, sleep, backend, engine)
    built: dict[str, Any] = {}
    report = Report()
    start = now_fn()
    dispatcher = Dispatcher(handoff, secrets, client, kinds, now=now_fn, sleep=sleep)
    try:
        while True:
            rows = claimable(
                backend, handoff, now_fn(), limit, report, room=dispatcher.room, due_at=start
            )
            dispatcher.submit(r for r in rows if dispatcher.sends(r["destination"]))
            batched = [r for r in rows if not dispatcher.sends(r["destination"])]
            for dest_id, group in by_destination(batched).items():
                if dest_id not in built:
                    built[dest_id] = build(
                        kinds, destination(handoff, dest_id), secrets[dest_id], session
                    )
                outcomes = built[dest_id].send_batch([Delivery.of(r) for r in group])
                settle_all(
                    backend, handoff, list(zip(group, outcomes, strict=True)), now_fn(), report
                )
            if not rows and not dispatcher.in_flight:
                report.remaining = remaining(backend, now_fn())
                return report
            # record what comes back, a few hundred at a time (or every half second), until a
            # sender has room for a good many more
            done: list[Any] = []
            waited = time.monotonic()
            while dispatcher.in_flight and not (done and dispatcher.hungry()):
                done += dispatcher.finished(wait=0.1)
                if len(done) >= 256 or time.monotonic() - waited >= 0.5:
                    settle_all(backend, handoff, done, now_fn(), report)
                    done, waited = [], time.monotonic()
            settle_all(backend, handoff, done, now_fn(), report)
    finally:
        settle_all(backend, handoff, dispatcher.close(), now_fn(), report)


def by_destination(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["destination"], []).append(row)
    return out


def destination(handoff: Handoff, dest_id: str) -> Any:
    return next((d for d in handoff.destinations if d.id == dest_id), None)


def claimable(
    backend: Backend,
    handoff: Handoff,
    now: datetime,
    limit: int,
    report: Report,
    *,
    room: Callable[[str], int | None] | None = None,
    lease: timedelta = LEASE,
    due_at: datetime | None = None,
    owner: str = "c",
) -> list[dict[str, Any]]:
    """Claim the deliveries due at ``due_at`` (default: ``now``) to attempt now: for each
    destination of the model, as many as ``room`` says it takes (a sender's free places; None:
    a batch kind's), ``limit`` in all at most. Due deliveries whose destination left the model
    or was disabled (410) are marked so here and not returned. ``owner`` starts each claim's
    token (:func:`pqlkit.handoff.claims.release_owned`)."""
    due_at = now if due_at is None else due_at
    ensure_tables(backend)
    backend.ensure_table(DESTINATIONS, _DEST_SCHEMA, primary_key=["destination"])
    disabled = {r[0] for r in backend.values(backend.table(DESTINATIONS).select("destination"))}
    live = [d.id for d in handoff.destinations if d.id not in disabled]
    d = backend.table(DELIVERIES)
    stale = d.filter(
        d.status.isin(["pending", "failed", "sending"]),
        d.next_attempt_at <= ibis.timestamp(due_at),
        d.destination.notin(live) if live else ibis.literal(True),
    )
    stale_rows = backend.rows(stale.select("transition_id", "destination", "status"))
    for group in groups(stale_rows, "status"):
        gone = destination(handoff, group["destination"]) is None
        why = (
            "the destination is no longer in the model"
            if gone
            else "the destination is disabled (410)"
        )
        report.disabled += backend.update(
            DELIVERIES, {"status": "disabled", "last_error": why, "updated_at": now}, group
        )
    out: list[dict[str, Any]] = []
    for spec in handoff.destinations:
        if spec.id not in live:
            continue
        free = room(spec.id) if room is not None else None
        n = limit - len(out) if free is None else min(limit - len(out), free)
        if n <= 0:
            continue
        # a claim outlasts two of the destination's timeouts, however long they are
        held = max(lease, timedelta(seconds=2 * duration_seconds(spec.timeout) + 10))
        for _ in range(5):  # another sender claimed what this one read: read what is left
            read = due(backend, due_at, n, [spec.id])
            got = claim(backend, read, now, held, owner)
            if got or not read:
                break
        out += got
    return out


def settle_all(
    backend: Backend,
    handoff: Handoff,
    results: list[tuple[dict[str, Any], Any]],
    now: datetime,
    report: Report,
) -> None:
    """Record what sending came to: the deliveries delivered in one transaction (by groups),
    the rest one by one (:func:`settle`); rows not sent (see dispatch.Unsent) given back, or
    disabled after a 410."""
    from .dispatch import Unsent

    ok = [{**r, "last_status": o.status} for r, o in results if isinstance(o, Ok)]
    if ok:
        with backend.transaction():
            for where in groups(ok, "attempts", "last_status"):
                values = {"attempts": int(where.pop("attempts")) + 1, "updated_at": now}
                values.update(last_status=where.pop("last_status"), last_error=None)
                values.update(status="delivered", delivered_at=now)
                backend.update(DELIVERIES, values, where)
        report.delivered += len(ok)
    unsent = [r for r, o in results if isinstance(o, Unsent) and o.why != "gone"]
    release(backend, unsent, now)
    for row, outcome in results:
        if isinstance(outcome, Unsent) and outcome.why == "gone":
            disable(backend, row, outcome.error, now, report)
        elif not isinstance(outcome, Ok | Unsent):
            settle(backend, handoff, row, outcome, now, report)


def disable(backend: Backend, row: dict[str, Any], why: str, now: datetime, report: Report) -> None:
    key = {"transition_id": row["transition_id"], "destination": row["destination"]}
    backend.update(DELIVERIES, {"status": "disabled", "last_error": why, "updated_at": now}, key)
    report.disabled += 1


def settle(
    backend: Backend,
    handoff: Handoff,
    row: dict[str, Any],
    outcome: Outcome,
    now: datetime,
    report: Report,
) -> None:
    """Record what an attempt came to: delivered, retried later, dead, or the destination
    disabled (410)."""
    key = {"transition_id": row["transition_id"], "destination": row["destination"]}
    dest_id = row["destination"]
    retry_for = timedelta(seconds=duration_seconds(handoff.retry_for))
    attempts = int(row["attempts"]) + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "updated_at": now,
        "last_status": outcome.status,
        "last_error": outcome.error,
    }
    later: datetime | None = None
    match outcome:
        case Ok():
            values.update(status="delivered", delivered_at=now)
            report.delivered += 1
            backend.update(DELIVERIES, values, key)
            return
        case Gone():
            values.update(status="disabled")
            with backend.transaction():
                backend.upsert(
                    DESTINATIONS,
                    pa.table(
                        {
                            "destination": [dest_id],
                            "disabled_at": pa.array([now], pa.timestamp("us")),
                            "reason": [outcome.error],
                        },
                        schema=_DEST_SCHEMA,
                    ),
                    ["destination"],
                    "ignore",
                )
                backend.update(DELIVERIES, values, key)
            report.disabled += 1
            report.errors.append(f"{dest_id}: {outcome.error}; the destination is disabled")
            return
        case RetryAfter(seconds=wait):
            later = next_attempt(attempts, now, row["created_at"], retry_for, wait)
        case Retry():
            later = next_attempt(attempts, now, row["created_at"], retry_for)
        case Permanent():
            later = None
    if later is None:
        values.update(status="dead")
        report.dead += 1
    else:
        values.update(status="failed", next_attempt_at=later)
        report.retrying += 1
    report.errors.append(f"{dest_id} {row['transition_id']}: {outcome.error}")
    backend.update(DELIVERIES, values, key)


def listing(
    backend: Backend,
    statuses: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    ensure_tables(backend)
    d, o = backend.table(DELIVERIES), backend.table(OUTBOX)
    j = d.join(o, d.transition_id == o.id)
    if statuses:
        j = j.filter(j.status.isin(statuses))
    if since is not None:
        j = j.filter(j.created_at >= ibis.timestamp(since))
    cols = j.select(*LISTED)
    return backend.rows(
        cols.order_by([ibis.desc(cols.created_at), cols.transition_id, cols.destination]).limit(
            limit, offset=offset
        )
    )


def retry(
    backend: Backend, now: datetime, statuses: list[str], since: datetime | None = None
) -> int:
    """Make failed, dead (and with `delivered`, delivered) deliveries due again now; a replay
    keeps each transition's id, so receivers can tell a replay from news."""
    ensure_tables(backend)
    d = backend.table(DELIVERIES)
    rows = d.filter(d.status.isin(statuses))
    if since is not None:
        rows = rows.filter(rows.created_at >= ibis.timestamp(since))
    keys = backend.values(rows.select("transition_id", "destination"))
    with backend.transaction():
        for tid, dest in keys:
            backend.update(
                DELIVERIES,
                {"status": "pending", "next_attempt_at": now, "updated_at": now},
                {"transition_id": tid, "destination": dest},
            )
    return len(keys)


def enable(backend: Backend, destination: str, now: datetime) -> int:
    """Enable a destination a 410 disabled: forget the 410 and make its disabled deliveries
    due now; how many there are (the destination must be back in service, or the next 410
    disables it again)."""
    ensure_tables(backend)
    backend.ensure_table(DESTINATIONS, _DEST_SCHEMA, primary_key=["destination"])
    with backend.transaction():
        backend.delete(DESTINATIONS, {"destination": destination})
        return backend.update(
            DELIVERIES,
            {"status": "pending", "next_attempt_at": now, "updated_at": now},
            {"destination": destination, "status": "disabled"},
        )


def retry_one(backend: Backend, now: datetime, transition_id: str, destination: str) -> int:
    """Make one delivery that is not pending due again now (1), or nothing (0)."""
    ensure_tables(backend)
    d = backend.table(DELIVERIES)
    key = {"transition_id": transition_id, "destination": destination}
    found = backend.values(
        d.filter(
            d.transition_id == transition_id, d.destination == destination, d.status != "pending"
        ).select("status")
    )
    if not found:
        return 0
    with backend.transaction():
        backend.update(
            DELIVERIES, {"status": "pending", "next_attempt_at": now, "updated_at": now}, key
        )
    return 1
