"""The CRM kinds of destination, and the registry of every kind (HTTP and CRM) the shells pass
to the hand-off.

A transition routed to HubSpot or Salesforce is delivered by syncing its user (or account)
record, diffed against the ledger like `pql sync crm`, in one batch for every due delivery of
that destination: these kinds send in batches (``batch = True``), on the database's thread,
through the session's engine.

A delivery is done when its record was written or already held those values (or is not one the
destination writes: a non-PQL with `sync: pqls` that was never written); a record the CRM
refused is retried on the hand-off's schedule with the CRM's error; a record that cannot be
written (no e-mail to match a HubSpot contact by) is dead-lettered with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from ..destinations import KINDS as HTTP_KINDS
from ..destinations import Delivery, Factory, Ok, Outcome, Permanent, Retry, Session
from ..errors import PqlkitError
from ..model.crm import CrmDestination
from .state import tables
from .sync import sync
from .transport import CrmError


def _entity(delivery: Delivery) -> tuple[str, str] | None:
    payload = json.loads(delivery.payload)
    for entity in ("user", "account"):
        if isinstance(payload.get(entity), dict) and payload[entity].get("id") is not None:
            return entity, str(payload[entity]["id"])
    return None


class CrmKind:
    """A CRM destination: ``send_batch`` runs the sync restricted to the deliveries' records."""

    kind: ClassVar[str]
    batch: ClassVar[bool] = True
    give_up_after: ClassVar[float] = 30.0
    """Seconds of CRM rate limits or outages a batch waits through before it stops (its
    deliveries are retried on the hand-off's schedule)."""

    def __init__(self, spec: CrmDestination, secrets: list[str], session: Session):
        self.spec = spec
        self.secrets = secrets
        self.session = session

    def send(self, delivery: Delivery) -> Outcome:
        return self.send_batch([delivery])[0]

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        engine = self.session.engine
        if engine is None:
            raise PqlkitError(
                f"handoff.destinations[{self.spec.id}]: a {self.kind} delivery syncs a record "
                "and needs the scored state: pass engine= to deliver_due"
            )
        dest = self.spec
        wanted: dict[str, list[str]] = {"user": [], "account": []}
        for delivery in deliveries:
            found = _entity(delivery)
            if found is not None:
                wanted[found[0]].append(found[1])
        users, accounts = tables(engine, wanted)
        try:
            report = sync(
                engine.backend, dest, self.secrets, self.session.client, users, accounts,
                now=self.session.now, entities=wanted, sleep=None,
                give_up_after=self.give_up_after,
            )  # fmt: skip
        except CrmError as exc:
            return [Retry(str(exc)) for _ in deliveries]
        outcome: dict[tuple[str, str], tuple[str, str | None]] = {}
        for part, side_entity in zip(report.objects, _entities(dest), strict=False):
            for key, result in part.by_key.items():
                old = outcome.get((side_entity, key))
                if old is None or old[0] in ("written", "unchanged"):
                    outcome[(side_entity, key)] = result
        out: list[Outcome] = []
        for delivery in deliveries:
            found = _entity(delivery)
            status, error = outcome.get(found, ("absent", None)) if found else ("absent", None)
            if status in ("written", "unchanged"):
                out.append(Ok(200))
            elif status == "failed":
                out.append(Retry(f"{dest.kind}: {error}"))
            elif status == "skipped":
                out.append(Permanent(f"{dest.kind}: {error}"))
            elif report.stopped:
                out.append(Retry(report.stopped))
            else:  # not a record this destination writes (e.g. a non-PQL with sync: pqls)
                out.append(Ok(204))
        return out


class HubSpot(CrmKind):
    """HubSpot contacts and companies."""

    kind: ClassVar[str] = "hubspot"

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A declaration writing to the HubSpot API at ``url``, and its environment."""
        return (
            {"id": "crm", "kind": "hubspot", "token_env": "HS_TOKEN", "base_url": url},
            {"HS_TOKEN": "pat-test"},
        )


class Salesforce(CrmKind):
    """Salesforce leads (or contacts) and accounts."""

    kind: ClassVar[str] = "salesforce"

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A declaration logging in at ``url``, and its environment."""
        decl = {"id": "crm", "kind": "salesforce", "login_url": url, "client_id_env": "SF_ID"}
        return decl | {"client_secret_env": "SF_SECRET"}, {"SF_ID": "cid", "SF_SECRET": "cs"}


KINDS: dict[str, Factory] = {**HTTP_KINDS, "hubspot": HubSpot, "salesforce": Salesforce}
"""Every kind of destination: the registry `pql deliver` and `pql serve --model` pass to the
hand-off."""


def _entities(dest: CrmDestination) -> list[str]:
    """The entity of each object the sync reports, in its order (accounts first)."""
    return [
        e for e, m in (("account", dest.account_mapping()), ("user", dest.person_mapping())) if m
    ]
