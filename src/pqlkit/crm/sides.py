"""The objects a CRM destination writes (HubSpot companies and contacts, Salesforce accounts and
a person object): for each, how its records are keyed and mapped, and the calls that prepare the
CRM and send a batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from ..model.crm import ACCOUNT_FIELDS, USER_FIELDS, CrmDestination, HubSpotDestination
from . import hubspot, salesforce
from .hubspot import Result
from .records import Flavour, Record


@dataclass
class Side:
    """One object of one destination: how its records are built and sent."""

    object: str
    entity: str
    """user or account"""
    key: str
    crm_key: str
    mapping: dict[str, str]
    flavour: Flavour
    fold_case: bool
    batch: int
    prepare: Callable[[], Any]
    upsert: Callable[[list[Record]], list[Result]]
    transport: Any = None

    @property
    def kinds(self) -> dict[str, str]:
        return USER_FIELDS if self.entity == "user" else ACCOUNT_FIELDS

    @property
    def flag(self) -> str:
        return "is_pql" if self.entity == "user" else "is_pqa"


def sides(
    dest: CrmDestination,
    secrets: list[str],
    client: httpx.Client,
    *,
    sleep: Callable[[float], None] | None = None,
    give_up_after: float = 300.0,
) -> list[Side]:
    """The objects a destination writes, accounts first."""
    out: list[Side] = []
    accounts, people = dest.account_mapping(), dest.person_mapping()
    if isinstance(dest, HubSpotDestination):
        hs = hubspot.HubSpot(dest, secrets[0], client, sleep=sleep, give_up_after=give_up_after)
        unique = dest.company_id_property
        if accounts:
            by = accounts[unique]
            out.append(
                Side(
                    "companies", "account", "account_id", by, accounts, "hubspot",
                    by == "domain", hubspot.BATCH,
                    partial(hs.ensure_properties, "companies", accounts, ACCOUNT_FIELDS, unique),
                    partial(hs.upsert, "companies", unique),
                    hs.http,
                )
            )  # fmt: skip
        if people:
            out.append(
                Side(
                    "contacts", "user", "user_id", "email", people, "hubspot", True, hubspot.BATCH,
                    partial(hs.ensure_properties, "contacts", people, USER_FIELDS, None),
                    partial(hs.upsert, "contacts", "email"),
                    hs.http,
                )
            )  # fmt: skip
        return out
    sf = salesforce.Salesforce(dest, secrets, client, sleep=sleep, give_up_after=give_up_after)
    if accounts:
        ext = dest.account_external_id
        out.append(
            Side(
                "Account", "account", "account_id", "account_id", accounts, "salesforce", False,
                salesforce.BATCH,
                partial(sf.check_fields, "Account", list(accounts), ext),
                partial(sf.upsert, "Account", ext),
                sf.http,
            )
        )  # fmt: skip
    if people:
        ext = dest.person_external_id
        out.append(
            Side(
                dest.person, "user", "user_id", "user_id", people, "salesforce", False,
                salesforce.BATCH,
                partial(sf.check_fields, dest.person, list(people), ext),
                partial(sf.upsert, dest.person, ext),
                sf.http,
            )
        )  # fmt: skip
    return out
