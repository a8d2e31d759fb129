"""Records for a CRM, and what of them to send: plain Python, no database, no HTTP.

A record is what one CRM object (a contact, a company, a Lead, an Account) should hold: the
mapped fields, serialised the way that CRM takes them, and a digest of them. The ledger keeps,
per destination and record, the fields the CRM last acknowledged; only records whose digest
differs (or that failed last time) are sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..scoring.reasons import joined_by_weight

Flavour = Literal["hubspot", "salesforce"]
NOT_PROVIDED = "[not provided]"
"""What Salesforce's own web-to-lead writes in a required field it has no value for."""


@dataclass(frozen=True)
class Record:
    object: str
    """The CRM object type: contacts, companies, Lead, Contact, Account."""
    key: str
    """pqlkit's id of it (user_id or account_id)."""
    crm_key: str
    """The value it is upserted by (an e-mail, an external id, a domain)."""
    fields: dict[str, Any]
    """CRM field → value as sent."""
    digest: str


@dataclass(frozen=True)
class Skipped:
    key: str
    why: str


@dataclass(frozen=True)
class Plan:
    """What one object of one destination needs."""

    object: str
    send: list[Record]
    unchanged: int
    skipped: list[Skipped]
    previous: dict[str, dict[str, Any]]
    """key → the fields last acknowledged, for the records in ``send`` that had any."""


def derived(row: Mapping[str, Any]) -> dict[str, Any]:
    """The derived fields of a user row: a last name (the e-mail's local part) and a company."""
    email = row.get("email") or ""
    local = email.split("@", 1)[0] if "@" in email else ""
    return {
        "last_name": row.get("last_name") or local or NOT_PROVIDED,
        "company": row.get("company") or row.get("domain") or NOT_PROVIDED,
    }


def value(v: Any, kind: str, flavour: Flavour) -> Any:
    """One field's value as the CRM takes it. HubSpot takes strings ("" clears a property);
    Salesforce JSON types (null clears)."""
    if v is None:
        return "" if flavour == "hubspot" else None
    if kind == "bool":
        b = bool(v)
        return ("true" if b else "false") if flavour == "hubspot" else b
    if kind == "number":
        n = float(v)
        n_out: int | float = int(n) if n.is_integer() else round(n, 6)
        return str(n_out) if flavour == "hubspot" else n_out
    if kind == "datetime":
        if isinstance(v, datetime):
            t = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
            return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        return str(v)
    return str(v)


def digest(fields: Mapping[str, Any]) -> str:
    """A fingerprint of the fields (values are text, numbers, booleans or null, whose repr is
    exact and stable)."""
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()


def build(
    rows: Iterable[Mapping[str, Any]],
    *,
    object: str,
    key: str,
    crm_key: str,
    mapping: Mapping[str, str],
    kinds: Mapping[str, str],
    flavour: Flavour,
    fold_case: bool = False,
) -> tuple[list[Record], list[Skipped]]:
    """Records from rows (pqlkit field → value). ``crm_key`` is the pqlkit field upserted by;
    rows without it are skipped with a reason, and of several rows with one upsert key only the
    first (by pqlkit id) is written, the others skipped naming it: a CRM cannot hold two
    records with one key, and sending both would overwrite one with the other on every sync."""
    records: list[Record] = []
    skipped: list[Skipped] = []
    taken: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: str(r[key])):
        full = {**row, **derived(row)} if "last_name" in kinds else dict(row)
        upsert_key = full.get(crm_key)
        ident = str(row[key])
        if upsert_key is None or str(upsert_key).strip() == "":
            skipped.append(Skipped(ident, f"no {crm_key}: nothing to match the {object} record by"))
            continue
        k = str(upsert_key).strip()
        k = k.lower() if fold_case else k
        if k in taken:
            skipped.append(
                Skipped(ident, f"{crm_key} {k!r} is also {key} {taken[k]!r}'s (written instead)")
            )
            continue
        taken[k] = ident
        if full.get("reasons"):  # the largest contributions first, as everywhere a why shows
            full["reasons"] = joined_by_weight(full["reasons"])
        fields = {prop: value(full.get(f), kinds[f], flavour) for prop, f in mapping.items()}
        if fold_case:
            fields = {p: (k if mapping[p] == crm_key else v) for p, v in fields.items()}
        records.append(Record(object, ident, k, fields, digest(fields)))
    return records, skipped


def plan(
    object: str,
    records: list[Record],
    skipped: list[Skipped],
    ledger: Mapping[str, tuple[str | None, str | None]],
    *,
    full: bool = False,
) -> Plan:
    """Which records to send: those whose digest differs from the one last acknowledged (a
    record that failed keeps its old digest, so it is sent again), or all with ``full``.
    ``ledger``: key → (digest last acknowledged, fields JSON last acknowledged)."""
    send = []
    previous: dict[str, dict[str, Any]] = {}
    for r in records:
        acked, fields = ledger.get(r.key, (None, None))
        if full or acked != r.digest:
            send.append(r)
            if fields:
                previous[r.key] = json.loads(fields)
    return Plan(object, send, len(records) - len(send), skipped, previous)


def changes(record: Record, before: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """field → (before, after) for the fields a record changes (all of them for a new one)."""
    before = before or {}
    return {
        f: (before.get(f), v) for f, v in record.fields.items() if f not in before or before[f] != v
    }


def batches(records: list[Record], size: int) -> list[list[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]
