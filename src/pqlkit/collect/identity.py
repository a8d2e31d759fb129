"""Identity resolution: who an anonymous id is, what users and accounts are like now.

Three small tables grow as messages are stored (by the collector's flusher and by `pql import`),
in the same transaction as the events:

``pql_identity_links``  (id, user_id, linked_at, via): an anonymous id, or an old user id, that
    a message tied to a user id: an event or identify carrying both ids, or an alias.
``pql_traits``  (source, message_id, entity, id, key, value, kind, timestamp): every trait of
    every identify and group call, one row per trait. This is the history; nothing is updated.
``pql_seen``  (user_id, first_seen, last_seen): when each user id was first and last seen.

:func:`materialize` derives from them, inside the database:

``pql_identities``  (id, user_id, linked_at): each id's user, first link wins, chains followed
    (anonymous id -> old user id -> new user id). The engine joins it to the events, so that
    what a person did before signing up counts, as of any date after the link was made.
``pql_users``  one row per user: user_id, created_at, first_seen, last_seen and one column per
    trait, latest value wins (traits sent under an anonymous id count for its user).
``pql_accounts``  one row per account: account_id and one column per group trait.

Trait names become snake_case columns (``createdAt`` -> ``created_at``, ``firstName`` ->
``first_name``); a group's ``website`` also gives ``domain``; identify's ``company`` object
links the user to ``company.id`` with the other company fields as account traits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from .records import RowError, parse_timestamp

LINKS, TRAITS, SEEN = "pql_identity_links", "pql_traits", "pql_seen"
IDENTITIES, USERS, ACCOUNTS = "pql_identities", "pql_users", "pql_accounts"
APPEND_ONLY = (LINKS, TRAITS, SEEN)

LINKS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("linked_at", pa.timestamp("us")),
        ("via", pa.string()),
    ]
)
TRAITS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("message_id", pa.string()),
        ("entity", pa.string()),
        ("id", pa.string()),
        ("key", pa.string()),
        ("value", pa.string()),
        ("kind", pa.string()),
        ("timestamp", pa.timestamp("us")),
    ]
)
SEEN_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("first_seen", pa.timestamp("us")),
        ("last_seen", pa.timestamp("us")),
    ]
)
#: Table -> primary key (every key column is NOT NULL too).
_KEYS = {
    LINKS: (LINKS_SCHEMA, ("id", "user_id"), ("linked_at",)),
    TRAITS: (TRAITS_SCHEMA, ("source", "message_id", "entity", "id", "key"), ("kind", "timestamp")),
    SEEN: (SEEN_SCHEMA, ("user_id",), ("first_seen", "last_seen")),
}
#: Trait names that are not traits (they name the row).
_RESERVED = {"user": {"id", "user_id", "first_seen", "last_seen"}, "account": {"id", "account_id"}}


def column_name(key: str) -> str:
    """A trait name as a snake_case column name: ``createdAt`` -> ``created_at``."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.strip())
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()
    return name or "_"


def _value(key: str, value: Any) -> tuple[str | None, str]:
    """(text, kind) of a trait value."""
    if value is None:
        return None, "null"
    if key == "created_at":
        try:
            return parse_timestamp(value, key).isoformat(sep=" "), "timestamp"
        except RowError:
            return str(value), "string"
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value), "number"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str), "json"
    return str(value), "string"


def _domain(website: Any) -> str | None:
    if not isinstance(website, str) or not website.strip():
        return None
    text = website.strip()
    host = urlparse(text if "//" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.") or None


@dataclass
class IdentityBatch:
    """What one batch of messages says about identities, gathered in Python as the batch is
    read (the rows are in hand already), then stored with :func:`store`."""

    links: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)
    traits: dict[tuple[str, str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, list[datetime]] = field(default_factory=dict)
    #: The same gathered by Arrow (the flusher's fast path): (user_id, first_seen, last_seen)
    #: and (id, user_id, linked_at) of events, merged with the dicts when stored.
    seen_rows: list[pa.Table] = field(default_factory=list)
    link_rows: list[pa.Table] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.links
            or self.traits
            or self.seen
            or any(t.num_rows for t in self.seen_rows)
            or any(t.num_rows for t in self.link_rows)
        )

    def link_pairs(self) -> Iterator[tuple[str, str]]:
        """Every (id, user) pair linked in the batch."""
        yield from self.links
        for rows in self.link_rows:
            yield from zip(
                rows.column("id").to_pylist(), rows.column("user_id").to_pylist(), strict=True
            )

    def link(self, other: str | None, user_id: str | None, when: datetime, via: str) -> None:
        if not other or not user_id or other == user_id:
            return
        known = self.links.get((other, user_id))
        if known is None or when < known[0]:
            self.links[(other, user_id)] = (when, via)

    def saw(self, user_id: str | None, when: datetime) -> None:
        if not user_id:
            return
        span = self.seen.get(user_id)
        if span is None:
            self.seen[user_id] = [when, when]
        else:
            span[0] = min(span[0], when)
            span[1] = max(span[1], when)

    def event(self, record: dict[str, Any]) -> None:
        """An event row (canonical columns)."""
        self.saw(record["user_id"], record["timestamp"])
        self.link(record["anonymous_id"], record["user_id"], record["timestamp"], "event")

    def message(self, message: dict[str, Any], source: str) -> None:
        """An identify, group or alias message (Segment shape)."""
        kind = message.get("type")
        user_id = _text(message.get("userId"))
        anonymous_id = _text(message.get("anonymousId"))
        when = parse_timestamp(
            message.get("timestamp")
            or message.get("originalTimestamp")
            or message.get("receivedAt")
        )
        self.saw(user_id, when)
        self.link(anonymous_id, user_id, when, kind or "message")
        who = user_id or anonymous_id
        traits = message.get("traits")
        context = message.get("context")
        if not traits and isinstance(context, dict):
            traits = context.get("traits")
        traits = traits if isinstance(traits, dict) else {}
        message_id = str(message.get("messageId") or "")
        if kind == "alias":
            self.link(_text(message.get("previousId")), user_id, when, "alias")
        elif kind == "identify" and who:
            company = traits.get("company")
            if isinstance(company, dict) and _text(company.get("id")):
                account_id = _text(company.get("id"))
                self._trait(source, message_id, "user", who, "account_id", account_id, when)
                self._traits(
                    source,
                    message_id,
                    "account",
                    account_id,
                    {k: v for k, v in company.items() if k != "id"},
                    when,
                )
                traits = {k: v for k, v in traits.items() if k != "company"}
            self._traits(source, message_id, "user", who, traits, when)
        elif kind == "group":
            group_id = _text(message.get("groupId"))
            if group_id:
                if who:
                    self._trait(source, message_id, "user", who, "account_id", group_id, when)
                if "website" in traits and "domain" not in traits and _domain(traits["website"]):
                    traits = {**traits, "domain": _domain(traits["website"])}
                self._traits(source, message_id, "account", group_id, traits, when)

    def _traits(self, source, message_id, entity, id_, traits: dict[str, Any], when) -> None:
        for key, value in traits.items():
            self._trait(source, message_id, entity, id_, column_name(str(key)), value, when)

    def _trait(self, source, message_id, entity, id_, key, value, when) -> None:
        if key in _RESERVED[entity]:
            return
        text, kind = _value(key, value)
        self.traits[(source, message_id, entity, id_, key)] = {
            "source": source,
            "message_id": message_id,
            "entity": entity,
            "id": id_,
            "key": key,
            "value": text,
            "kind": kind,
            "timestamp": when,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --- storing a batch ------------------------------------------------------------------------------


def table_specs() -> dict[str, tuple[pa.Schema, tuple[str, ...], tuple[str, ...]]]:
    """The identity tables: name -> (schema, primary key, not-null columns)."""
    return dict(_KEYS)


def ensure_tables(backend) -> None:
    for name, (schema, key, not_null) in _KEYS.items():
        backend.ensure_table(name, schema, primary_key=key, not_null=not_null)


def store(backend, batch: IdentityBatch) -> None:
    """Add a batch to the link, trait and seen tables; call inside the caller's transaction."""
    if not batch:
        return
    ensure_tables(backend)
    links = pa.Table.from_pylist(
        [
            {"id": i, "user_id": u, "linked_at": w, "via": via}
            for (i, u), (w, via) in batch.links.items()
        ],
        schema=LINKS_SCHEMA,
    )
    if batch.link_rows:  # one row a pair: the earliest link, and what made it
        events = [
            t.append_column("via", pa.array(["event"] * t.num_rows, pa.string()))
            .select(LINKS_SCHEMA.names)
            .cast(LINKS_SCHEMA)
            for t in batch.link_rows
        ]
        links = pa.concat_tables([links, *events])
        links = links.take(pc.sort_indices(links, [("linked_at", "ascending")]))
        links = (
            links.group_by(["id", "user_id"], use_threads=False)
            .aggregate([("linked_at", "min"), ("via", "first")])
            .select(["id", "user_id", "linked_at_min", "via_first"])
            .rename_columns(LINKS_SCHEMA.names)
            .cast(LINKS_SCHEMA)
        )
    backend.upsert(LINKS, links, _KEYS[LINKS][1], {"linked_at": "min"})
    backend.upsert(
        TRAITS,
        pa.Table.from_pylist(list(batch.traits.values()), schema=TRAITS_SCHEMA),
        _KEYS[TRAITS][1],
        "ignore",
    )
    seen = pa.Table.from_pylist(
        [{"user_id": u, "first_seen": a, "last_seen": b} for u, (a, b) in batch.seen.items()],
        schema=SEEN_SCHEMA,
    )
    if batch.seen_rows:  # one row a user: the first and last times of both
        seen = pa.concat_tables([seen, *(t.cast(SEEN_SCHEMA) for t in batch.seen_rows)])
        seen = (
            seen.group_by("user_id")
            .aggregate([("first_seen", "min"), ("last_seen", "max")])
            .select(["user_id", "first_seen_min", "last_seen_max"])
            .rename_columns(SEEN_SCHEMA.names)
        )
    backend.upsert(SEEN, seen, _KEYS[SEEN][1], {"first_seen": "min", "last_seen": "max"})


# --- deriving the current state -------------------------------------------------------------------


@dataclass
class Resolved:
    identities: int
    users: int
    accounts: int


def materialize(backend) -> Resolved:
    """Rebuild pql_identities, pql_users and pql_accounts from the link, trait and seen tables,
    in one transaction, inside the database."""
    ensure_tables(backend)
    kinds = _trait_kinds(backend)
    identities = identities_expr(backend.table(LINKS))
    with backend.transaction():
        backend.replace_table(IDENTITIES, identities)
        ident = backend.table(IDENTITIES)
        users = users_expr(backend.table(SEEN), backend.table(TRAITS), ident, kinds.get("user", {}))
        backend.replace_table(USERS, users)
        accounts = accounts_expr(
            backend.table(TRAITS), backend.table(USERS), kinds.get("account", {})
        )
        backend.replace_table(ACCOUNTS, accounts)
    backend.analyze([IDENTITIES, USERS, ACCOUNTS])
    return Resolved(*(backend.count(t) for t in (IDENTITIES, USERS, ACCOUNTS)))


def _trait_kinds(backend) -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for entity, key, kind in backend.values(
        backend.table(TRAITS).select("entity", "key", "kind").distinct()
    ):
        out.setdefault(entity, {}).setdefault(key, set()).add(kind)
    return out


def identities_expr(links: ir.Table, hops: int = 4) -> ir.Table:
    """Each linked id's user: the earliest link wins; chains are followed ``hops`` deep."""
    ranked = links.filter(links.id != links.user_id).mutate(
        _n=ibis.row_number().over(group_by=links.id, order_by=[links.linked_at, links.user_id])
    )
    first = ranked.filter(ranked._n == 0).select("id", "user_id", "linked_at")
    current = first
    for _ in range(hops - 1):
        step = first.select(_sid=first.id, _suser=first.user_id, _sat=first.linked_at).view()
        joined = current.left_join(step, current.user_id == step._sid)
        current = joined.select(
            id=joined.id,
            user_id=ibis.coalesce(joined._suser, joined.user_id),
            linked_at=ibis.greatest(joined.linked_at, ibis.coalesce(joined._sat, joined.linked_at)),
        ).view()  # a boundary: ibis folds a join's projection into the join otherwise
    return current.filter(current.id != current.user_id)


def _resolve(table: ir.Table, column: str, ident: ir.Table) -> ir.Table:
    ids = ident.select(_id=ident.id, _to=ident.user_id)
    joined = table.left_join(ids, table[column] == ids._id)
    return joined.mutate(_rid=ibis.coalesce(joined._to, joined[column])).drop("_id", "_to")


def _column_type(key: str, kinds: set[str]) -> str:
    real = kinds - {"null"}
    if key == "created_at":
        return "timestamp" if real <= {"timestamp"} else "skip"
    if real and real <= {"number"}:
        return "float64"
    if real and real <= {"boolean"}:
        return "boolean"
    return "string"


def _latest_traits(
    traits: ir.Table, entity: str, kinds: dict[str, set[str]], ident: ir.Table | None
) -> tuple[ir.Table, list[str]]:
    t = traits.filter(traits.entity == entity)
    t = _resolve(t, "id", ident) if ident is not None else t.mutate(_rid=t.id)
    ranked = t.mutate(
        _n=ibis.row_number().over(
            group_by=[t._rid, t.key], order_by=[t.timestamp.desc(), t.message_id.desc()]
        )
    )
    latest = ranked.filter(ranked._n == 0)
    columns: dict[str, ir.Scalar] = {}
    for key in sorted(kinds):
        kind = _column_type(key, kinds[key])
        if kind == "skip":
            continue
        value = latest.value.max(where=latest.key == key)
        columns[key] = value if kind == "string" else value.cast(kind)
    if not columns:
        return latest.select(_rid=latest._rid).distinct(), []
    return latest.group_by("_rid").aggregate(**columns), list(columns)


def users_expr(
    seen: ir.Table, traits: ir.Table, ident: ir.Table, kinds: dict[str, set[str]]
) -> ir.Table:
    base = (
        _resolve(seen, "user_id", ident)
        .group_by("_rid")
        .aggregate(first_seen=seen.first_seen.min(), last_seen=seen.last_seen.max())
    )
    latest, keys = _latest_traits(traits, "user", kinds, ident)
    joined = base.left_join(latest, base._rid == latest._rid)
    created = (
        joined.first_seen
        if "created_at" not in keys
        else ibis.coalesce(joined.created_at, joined.first_seen)
    )
    others = {k: joined[k] for k in keys if k != "created_at"}
    return joined.select(
        user_id=joined._rid,
        created_at=created,
        **others,
        first_seen=joined.first_seen,
        last_seen=joined.last_seen,
    )


def accounts_expr(traits: ir.Table, users: ir.Table, kinds: dict[str, set[str]]) -> ir.Table:
    from_traits = traits.filter(traits.entity == "account").select(
        account_id=traits.id.cast("string")
    )
    ids = from_traits
    if "account_id" in users.columns:
        ids = from_traits.union(
            users.filter(users.account_id.notnull()).select(
                account_id=users.account_id.cast("string")
            )
        )
    ids = ids.distinct()
    latest, keys = _latest_traits(traits, "account", kinds, None)
    joined = ids.left_join(latest, ids.account_id == latest._rid)
    return joined.select("account_id", *keys)


def ids_for(backend, user_id: str) -> list[str]:
    """The user id and every id linked to it, directly or through a chain (anonymous ids, old
    user ids). Links are followed towards the user only: an anonymous id shared with another
    user does not bring that user in."""
    ensure_tables(backend)
    found = {user_id}
    frontier: Iterable[str] = [user_id]
    while frontier:
        links = backend.table(LINKS)
        rows = backend.values(links.filter(links.user_id.isin(list(frontier))).select("id"))
        new = {row[0] for row in rows} - found
        found |= new
        frontier = list(new)
    return sorted(found)


__all__ = [
    "ACCOUNTS",
    "IDENTITIES",
    "LINKS",
    "SEEN",
    "TRAITS",
    "USERS",
    "IdentityBatch",
    "Resolved",
    "column_name",
    "ensure_tables",
    "ids_for",
    "materialize",
    "store",
]
