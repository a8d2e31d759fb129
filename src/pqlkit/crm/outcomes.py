"""`pql sync outcomes`: deals (HubSpot) and opportunities (Salesforce) read back into
``pql_crm_outcomes``, the outcomes table learning, evaluation and backtests read.

Incremental: each destination keeps a cursor (the latest modification time read); a sync reads
what changed at or after it (a repeat is an upsert by outcome id) and moves the cursor in the
same transaction as the rows, so a crash reads the same changes again and loses none. Each deal
is mapped to pqlkit's user and account by the external ids pqlkit wrote, else by e-mail and
domain (looked up in the model's users and accounts, in the database).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import ibis.expr.types as ir
import pyarrow as pa

from ..backends import Backend
from ..model.crm import CrmDestination, HubSpotDestination
from . import hubspot, ledger, salesforce


@dataclass
class ReadReport:
    destination: str
    sync_id: str
    read: int = 0
    mapped_users: int = 0
    mapped_accounts: int = 0
    unmapped: list[str] = field(default_factory=list)
    """Outcome ids that matched no user and no account (first 100)."""
    since: datetime | None = None
    cursor: datetime | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("since", "cursor"):
            d[k] = d[k].isoformat() if d[k] else None
        d["seconds"] = round(self.seconds, 3)
        return d


def domain_of(raw: Any) -> str | None:
    """``https://www.acme.com/x`` → ``acme.com``."""
    if not raw:
        return None
    text = str(raw).strip().lower()
    host = urlparse(text if "//" in text else "//" + text).hostname or ""
    return host.removeprefix("www.") or None


def _stage(closed: bool, won: bool) -> str:
    return "won" if won else ("lost" if closed else "open")


def _truthy(v: Any) -> bool:
    return str(v).lower() == "true" if not isinstance(v, bool) else v


def hubspot_rows(
    hs: hubspot.HubSpot, dest: HubSpotDestination, since: datetime | None
) -> list[dict[str, Any]]:
    deals = list(hs.deals(since))
    ids = [str(d["id"]) for d in deals]
    to_contacts = hs.associations("deals", "contacts", ids) if ids else {}
    to_companies = hs.associations("deals", "companies", ids) if ids else {}
    user_prop = next((p for p, f in (dest.contacts or {}).items() if f == "user_id"), None)
    account_prop = next((p for p, f in (dest.companies or {}).items() if f == "account_id"), None)
    contact_ids = sorted({c for cs in to_contacts.values() for c in cs})
    company_ids = sorted({c for cs in to_companies.values() for c in cs})
    contacts = hs.read("contacts", contact_ids, ["email", *([user_prop] if user_prop else [])])
    companies = hs.read(
        "companies", company_ids, ["domain", *([account_prop] if account_prop else [])]
    )
    out = []
    for d in deals:
        p = d.get("properties") or {}
        did = str(d["id"])
        contact = next((contacts[c] for c in to_contacts.get(did, []) if c in contacts), {})
        company = next((companies[c] for c in to_companies.get(did, []) if c in companies), {})
        closed = _truthy(p.get("hs_is_closed"))
        amount = p.get("amount")
        out.append(
            {
                "outcome_id": f"{dest.id}:deal:{did}",
                "crm_id": did,
                "crm_stage": p.get("dealstage"),
                "stage": _stage(closed, _truthy(p.get("hs_is_closed_won"))),
                "created_at": hubspot.parse_time(p.get("createdate")),
                "closed_at": hubspot.parse_time(p.get("closedate")) if closed else None,
                "amount": float(amount) if amount not in (None, "") else None,
                "email": (contact.get("email") or "").lower() or None,
                "user_id": (contact.get(user_prop) if user_prop else None) or None,
                "domain": domain_of(company.get("domain")),
                "account_id": (company.get(account_prop) if account_prop else None) or None,
                "modified_at": hubspot.parse_time(p.get("hs_lastmodifieddate")),
            }
        )
    return out


def salesforce_rows(sf: salesforce.Salesforce, since: datetime | None) -> list[dict[str, Any]]:
    d = sf.dest
    out = []
    for o in sf.query(sf.opportunities_soql(since)):
        account = o.get("Account") or {}
        roles = ((o.get("OpportunityContactRoles") or {}).get("records")) or []
        roles = sorted(roles, key=lambda r: not r.get("IsPrimary"))
        contact = next((r.get("Contact") or {} for r in roles if r.get("Contact")), {})
        closed = bool(o.get("IsClosed"))
        out.append(
            {
                "outcome_id": f"{d.id}:opportunity:{o['Id']}",
                "crm_id": o["Id"],
                "crm_stage": o.get("StageName"),
                "stage": _stage(closed, bool(o.get("IsWon"))),
                "created_at": salesforce.parse_time(o.get("CreatedDate")),
                "closed_at": salesforce.parse_time(o.get("CloseDate")) if closed else None,
                "amount": float(o["Amount"]) if o.get("Amount") is not None else None,
                "email": (contact.get("Email") or "").lower() or None,
                "user_id": contact.get(d.person_external_id) if d.person == "Contact" else None,
                "domain": domain_of(account.get("Website")),
                "account_id": account.get(d.account_external_id)
                if d.account_fields is not None
                else None,
                "modified_at": salesforce.parse_time(o.get("SystemModstamp")),
            }
        )
    return out


def _map(
    backend: Backend, rows: list[dict[str, Any]], users: ir.Table, accounts: ir.Table | None
) -> None:
    """Fill user_id and account_id from e-mail and domain where the CRM had no pqlkit id."""
    emails = sorted({r["email"] for r in rows if r["email"] and not r["user_id"]})
    if emails:
        found = users.filter(users.email.lower().isin(emails)).select(
            email=users.email.lower(), user_id=users.user_id, account_id=users.account_id
        )
        by_email: dict[str, tuple[str, str | None]] = {}
        for e, u, a in backend.values(found.order_by("user_id")):
            by_email.setdefault(e, (u, a))
        for r in rows:
            if r["email"] and not r["user_id"] and r["email"] in by_email:
                r["user_id"], account = by_email[r["email"]]
                r["account_id"] = r["account_id"] or account
    user_ids = sorted({r["user_id"] for r in rows if r["user_id"] and not r["account_id"]})
    if user_ids:
        found = users.filter(users.user_id.isin(user_ids)).select("user_id", "account_id")
        by_user = dict(backend.values(found))
        for r in rows:
            if r["user_id"] and not r["account_id"]:
                r["account_id"] = by_user.get(r["user_id"])
    domains = sorted({r["domain"] for r in rows if r["domain"] and not r["account_id"]})
    if domains and accounts is not None and "domain" in accounts.columns:
        found = accounts.filter(accounts.domain.lower().isin(domains)).select(
            domain=accounts.domain.lower(), account_id=accounts.account_id
        )
        by_domain: dict[str, str] = {}
        for dom, a in backend.values(found.order_by("account_id")):
            by_domain.setdefault(dom, a)
        for r in rows:
            if r["domain"] and not r["account_id"]:
                r["account_id"] = by_domain.get(r["domain"])


def read(
    backend: Backend,
    dest: CrmDestination,
    secrets: list[str],
    client: httpx.Client,
    users: ir.Table,
    accounts: ir.Table | None,
    *,
    now: Callable[[], datetime],
    full: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> ReadReport:
    started = time.perf_counter()
    ledger.ensure(backend)
    report = ReadReport(dest.id, "read_" + uuid.uuid4().hex[:20])
    obj = "deals" if isinstance(dest, HubSpotDestination) else "Opportunity"
    c = backend.table(ledger.CURSORS)
    found = backend.values(c.filter(c.destination == dest.id, c.object == obj).select("since"))
    since = None if full or not found else found[0][0]
    report.since = since
    if isinstance(dest, HubSpotDestination):
        rows = hubspot_rows(hubspot.HubSpot(dest, secrets[0], client, sleep=sleep), dest, since)
    else:
        rows = salesforce_rows(salesforce.Salesforce(dest, secrets, client, sleep=sleep), since)
    _map(backend, rows, users, accounts)
    for r in rows:
        r.update(kind="opportunity", source=dest.id)
    report.read = len(rows)
    report.mapped_users = sum(1 for r in rows if r["user_id"])
    report.mapped_accounts = sum(1 for r in rows if r["account_id"])
    report.unmapped = [r["outcome_id"] for r in rows if not r["user_id"] and not r["account_id"]][
        :100
    ]
    stamps = [r["modified_at"] for r in rows if r["modified_at"] is not None]
    cursor = max(stamps) if stamps else since
    report.cursor = cursor
    at = now()
    with backend.transaction():
        if rows:
            backend.upsert(
                ledger.OUTCOMES,
                pa.Table.from_pylist(rows, schema=ledger.OUTCOMES_SCHEMA),
                ["outcome_id"],
            )
        if cursor is not None:
            backend.upsert(
                ledger.CURSORS,
                pa.Table.from_pylist(
                    [{"destination": dest.id, "object": obj, "since": cursor, "updated_at": at}],
                    schema=ledger.CURSORS_SCHEMA,
                ),
                ["destination", "object"],
            )
        backend.insert(
            ledger.SYNCS,
            pa.Table.from_pylist(
                [
                    {
                        "sync_id": report.sync_id,
                        "destination": dest.id,
                        "direction": "read",
                        "mode": "full" if full else "changes",
                        "started_at": at,
                        "finished_at": at,
                        "sent": 0,
                        "created": report.read,
                        "updated": 0,
                        "failed": 0,
                        "skipped": len(report.unmapped),
                        "unchanged": 0,
                        "error": None,
                    }
                ],
                schema=ledger.SYNCS_SCHEMA,
            ),
        )
    report.seconds = time.perf_counter() - started
    return report
