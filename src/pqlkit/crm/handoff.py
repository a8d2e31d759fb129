"""CRM destinations in the hand-off's routes: a transition routed to HubSpot or Salesforce is
delivered by syncing its user (or account) record, diffed against the ledger like `pql sync
crm`, in one batch for every due delivery of that destination.

A delivery is done when its record was written or already held those values (or is not one the
destination writes: a non-PQL with `sync: pqls` that was never written); a record the CRM
refused is retried on the hand-off's schedule with the CRM's error; a record that cannot be
written (no e-mail to match a HubSpot contact by) is dead-lettered with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from ..engine import Engine
from ..model.crm import CrmDestination
from ..sinks.webhook import Sent
from .state import tables
from .sync import sync
from .transport import CrmError


def _entity(row: dict[str, Any]) -> tuple[str, str] | None:
    payload = json.loads(row["payload"])
    for entity in ("user", "account"):
        if isinstance(payload.get(entity), dict) and payload[entity].get("id") is not None:
            return entity, str(payload[entity]["id"])
    return None


def deliver(
    engine: Engine,
    dest: CrmDestination,
    secrets: list[str],
    client: httpx.Client,
    rows: list[dict[str, Any]],
    now: Callable[[], datetime],
    *,
    sleep: Callable[[float], None] | None = None,
    give_up_after: float = 30.0,
) -> list[tuple[dict[str, Any], Sent]]:
    """Deliver ``rows`` (due deliveries of one CRM destination); what each came to."""
    wanted: dict[str, list[str]] = {"user": [], "account": []}
    for row in rows:
        found = _entity(row)
        if found is not None:
            wanted[found[0]].append(found[1])
    users, accounts = tables(engine, wanted)
    try:
        report = sync(
            engine.backend, dest, secrets, client, users, accounts, now=now,
            entities=wanted, sleep=sleep, give_up_after=give_up_after,
        )  # fmt: skip
    except CrmError as exc:
        return [(row, Sent(False, error=str(exc))) for row in rows]
    outcome: dict[tuple[str, str], tuple[str, str | None]] = {}
    for part, side_entity in zip(report.objects, _entities(dest), strict=False):
        for key, result in part.by_key.items():
            old = outcome.get((side_entity, key))
            if old is None or old[0] in ("written", "unchanged"):
                outcome[(side_entity, key)] = result
    out = []
    for row in rows:
        found = _entity(row)
        status, error = outcome.get(found, ("absent", None)) if found else ("absent", None)
        if status in ("written", "unchanged"):
            out.append((row, Sent(True, 200)))
        elif status == "failed":
            out.append((row, Sent(False, error=f"{dest.kind}: {error}")))
        elif status == "skipped":
            out.append((row, Sent(False, error=f"{dest.kind}: {error}", permanent=True)))
        elif report.stopped:
            out.append((row, Sent(False, error=report.stopped)))
        else:  # not a record this destination writes (e.g. a non-PQL with sync: pqls)
            out.append((row, Sent(True, 204)))
    return out


def _entities(dest: CrmDestination) -> list[str]:
    """The entity of each object the sync reports, in its order (accounts first)."""
    return [
        e for e, m in (("account", dest.account_mapping()), ("user", dest.person_mapping())) if m
    ]
