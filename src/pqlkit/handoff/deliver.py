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

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import pyarrow as pa

from ..errors import PqlkitError
from ..model.handoff import Handoff, WebhookDestination
from ..model.signals import duration_seconds
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
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def secrets_for(handoff: Handoff, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each destination's secret (webhook signing secrets, Slack URL) from the environment;
    a PqlkitError naming every one that is missing."""
    env = dict(os.environ) if env is None else env
    out: dict[str, list[str]] = {}
    missing = []
    for d in handoff.destinations:
        name = d.secret_env if isinstance(d, WebhookDestination) else d.url_env
        value = (env.get(name) or "").strip()
        if not value:
            missing.append(
                f"handoff.destinations[{d.id}]: the environment variable {name} is not set"
            )
            continue
        out[d.id] = value.split()
    if missing:
        raise PqlkitError(
            "; ".join(missing) + " (secrets live in the environment, never in the model file)"
        )
    for d in handoff.destinations:
        if isinstance(d, WebhookDestination):
            from standardwebhooks import Webhook

            for s in out[d.id]:
                try:
                    Webhook(s)
                except Exception as exc:
                    raise PqlkitError(
                        f"handoff.destinations[{d.id}]: {d.secret_env} is not a whsec_ secret ({exc})"
                    ) from None
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


def due(backend, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    d, o = backend.table(DELIVERIES), backend.table(OUTBOX)
    rows = d.filter(d.status.isin(["pending", "failed"]), d.next_attempt_at <= ibis.timestamp(now))
    j = rows.join(o, rows.transition_id == o.id).select(
        rows.transition_id, rows.destination, rows.attempts, rows.created_at, o.payload
    )
    return backend.rows(j.order_by([j.created_at, j.transition_id, j.destination]).limit(limit))


def deliver_due(
    backend,
    handoff: Handoff,
    now_fn: Callable[[], datetime],
    client: Any,
    *,
    env: dict[str, str] | None = None,
    limit: int = 500,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """One pass over the deliveries that are due."""
    from ..sinks import webhook

    secrets = secrets_for(handoff, env)
    ensure_tables(backend)
    backend.ensure_table(DESTINATIONS, _DEST_SCHEMA, primary_key=["destination"])
    disabled = {r[0] for r in backend.values(backend.table(DESTINATIONS).select("destination"))}
    by_id = {d.id: d for d in handoff.destinations}
    retry_for = timedelta(seconds=duration_seconds(handoff.retry_for))
    report = Report()
    last_slack: dict[str, float] = {}
    for row in due(backend, now_fn(), limit):
        key = {"transition_id": row["transition_id"], "destination": row["destination"]}
        dest = by_id.get(row["destination"])
        if dest is None or row["destination"] in disabled:
            why = (
                "the destination is no longer in the model"
                if dest is None
                else "the destination is disabled (410)"
            )
            backend.update(
                DELIVERIES, {"status": "disabled", "last_error": why, "updated_at": now_fn()}, key
            )
            report.disabled += 1
            continue
        timeout = duration_seconds(dest.timeout)
        if isinstance(dest, WebhookDestination):
            sent = webhook.send_webhook(
                client,
                dest.url,
                secrets[dest.id],
                row["transition_id"],
                row["payload"],
                timeout,
                now_fn(),
            )
        else:
            wait = 1.0 - (
                time.monotonic() - last_slack.get(dest.id, -10.0)
            )  # Slack: one message a second
            if wait > 0:
                sleep(wait)
            message = webhook.slack_message(json.loads(row["payload"]), dest.link)
            sent = webhook.post(
                client,
                secrets[dest.id][0],
                json.dumps(message),
                {"content-type": "application/json"},
                timeout,
            )
            last_slack[dest.id] = time.monotonic()
        now = now_fn()
        attempts = int(row["attempts"]) + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "updated_at": now,
            "last_status": sent.status,
            "last_error": sent.error,
        }
        if sent.ok:
            values.update(status="delivered", delivered_at=now)
            report.delivered += 1
        elif sent.gone:
            values.update(status="disabled")
            with backend.transaction():
                backend.upsert(
                    DESTINATIONS,
                    pa.table(
                        {
                            "destination": [dest.id],
                            "disabled_at": pa.array([now], pa.timestamp("us")),
                            "reason": [sent.error],
                        },
                        schema=_DEST_SCHEMA,
                    ),
                    ["destination"],
                    "ignore",
                )
                backend.update(DELIVERIES, values, key)
            disabled.add(dest.id)
            report.disabled += 1
            report.errors.append(f"{dest.id}: {sent.error}; the destination is disabled")
            continue
        else:
            later = (
                None
                if sent.permanent
                else next_attempt(attempts, now, row["created_at"], retry_for, sent.retry_after)
            )
            if later is None:
                values.update(status="dead")
                report.dead += 1
            else:
                values.update(status="failed", next_attempt_at=later)
                report.retrying += 1
            report.errors.append(f"{dest.id} {row['transition_id']}: {sent.error}")
        backend.update(DELIVERIES, values, key)
    return report


def listing(
    backend, statuses: list[str] | None = None, since: datetime | None = None, limit: int = 100
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
        cols.order_by([ibis.desc(cols.created_at), cols.transition_id]).limit(limit)
    )


def retry(backend, now: datetime, statuses: list[str], since: datetime | None = None) -> int:
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
