"""A lead's story and an account's page: the current state, every signal behind the score,
the score over stored runs, recent events, linked ids, teammates, feedback and owner."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from ..collect.tables import FEEDBACK
from ..engine import ACCOUNT_SCORES, USER_SCORES, Explanation
from ..errors import PqlkitError
from ..handoff import feedback as fb
from ..model.playbooks import next_step
from .inbox import PAGE, _has, _one, owner_of, state
from .people import name_people, people_of
from .session import Session


@dataclass
class Lead:
    row: dict[str, Any]
    explanation: Explanation | None
    history: list[dict[str, Any]]
    events: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    attributes: dict[str, Any]
    account: dict[str, Any] | None
    teammates: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    owner: str | None
    notes: list[str] = field(default_factory=list)
    events_since: Any = None
    """The events shown start here (None: all of them were searched)."""
    next_step: dict[str, Any] | None = None
    """The lead's play (the model's `playbooks`), None when none matches."""


@dataclass
class Account:
    row: dict[str, Any]
    users: list[dict[str, Any]]
    history: list[dict[str, Any]]
    owner: str | None
    champion: dict[str, Any] | None = None
    """The champion as a person (email, role), when the users source knows them."""
    next_step: dict[str, Any] | None = None
    """The account's play (by its champion's segment and motion)."""
    users_total: int = 0
    """How many users the account has (``users`` is one page of them)."""


# --- a lead ----------------------------------------------------------------------------------------


#: The timeline shows the latest events of the days up to the user's last event before the
#: score (and any since): an append-only events table (pqlkit's own, any log) is in time order,
#: so the database skips every block before the window, and the page reads a few days of
#: events, not all of them (100M events, 90 days: 45 ms against 1 s). The page offers a search
#: of all their events.
TIMELINE_WINDOW = timedelta(days=3)


def lead(
    session: Session, user_id: str, *, events: int = 50, all_events: bool = False
) -> Lead | None:
    """A user's story: their current state, every signal behind it, their score over the
    stored runs, recent events (those of the days up to their last one, or ``all_events``),
    linked ids, account and teammates, feedback and owner. Each query is compiled once and
    reused for any user (a page is a dozen small queries).

    Long because those dozen queries, each compiled once per shape by the local ``rows``, read
    best in the page's order."""
    engine = session.engine
    b = engine.backend
    users, accounts, state_key = state(engine)
    if users is None:
        return None

    def rows(kind: str, build: Callable[[Mapping[str, Any]], ir.Expr], **values: Any) -> list:
        key = json.dumps(["lead", kind, state_key, sorted(values)], default=str)
        return b.arrow(b.reusable_sql(engine.query_cache, key, build, values)).to_pylist()

    found = rows("row", lambda v: users.filter(users.user_id == v["id"]).limit(1), id=user_id)
    if not found:
        return None
    row = found[0]
    notes = []
    if row.get("model_version") != engine.loaded.version:
        notes.append(
            f"Scored by model version {row.get('model_version')}; the signals below are the "
            f"current model's ({engine.loaded.version}). Run `pql score` to score with it."
        )
    # the features the stored score came from, else computed again from the events
    explanation: Explanation | None = engine.stored_explanation(user_id, row["as_of"])
    if explanation is None:
        try:
            explanation = engine.explain(user_id, row["as_of"])
        except PqlkitError as exc:  # no longer in the users table
            explanation, notes = None, [*notes, str(exc)]
    s = b.table(USER_SCORES)
    history = rows(
        "history",
        lambda v: (
            s.filter(s.user_id == v["id"])
            .select("as_of", "model_version", "score", "tier", "is_pql", "segment", "motion")
            .order_by("as_of")
        ),
        id=user_id,
    )
    bound = engine.bound
    ids = [user_id]
    identities: list[dict[str, Any]] = []
    if bound.identities is not None:

        def linked(v: Mapping[str, Any]) -> ir.Table:
            i = bound.where("identities", "user_id", v["id"])
            return i.filter(i.id != v["id"]).order_by(i.id).limit(200)

        identities = rows("identities", linked, id=user_id)
        ids += [r["id"] for r in identities]
    e = bound.events
    cols = ["timestamp", "event"] + (["properties"] if "properties" in e.columns else [])

    def timeline(v: Mapping[str, Any]) -> ir.Table:
        # events sent under the user's id, or under an id linked to them (an anonymous id)
        mine = e.user_id.isin([v[f"id{n}"] for n in range(len(ids))])
        if len(ids) > 1:
            mine = mine | e.anonymous_id.isin([v[f"id{n}"] for n in range(1, len(ids))])
        t = e.filter(mine)  # NULL ids are not theirs
        if "since" in v:
            # two ranges, each of which the database finds by time alone (an OR of the two
            # would read the whole table): the days up to their last event as of the score,
            # and whatever came after the score
            near = t.filter(t.timestamp >= v["since"], t.timestamp <= v["until"]).select(*cols)
            t = near.union(t.filter(t.timestamp > v["scored"]).select(*cols), distinct=False)
        return t.select(*cols).order_by(ibis.desc(t.timestamp)).limit(events)

    anchor = row.get("last_seen_at") or row["as_of"]
    since = None if all_events else anchor - TIMELINE_WINDOW
    named = {f"id{n}": x for n, x in enumerate(ids)}
    extra = {} if since is None else {"since": since, "until": anchor, "scored": row["as_of"]}
    recent_rows = rows(f"events{len(ids)}:{events}", timeline, **named, **extra)
    for r in recent_rows:
        if r.get("properties") is not None and not isinstance(r["properties"], str):
            r["properties"] = json.dumps(r["properties"], default=str, sort_keys=True)
    attributes = rows(
        "attributes", lambda v: bound.where("users", "user_id", v["id"]).limit(1), id=user_id
    )
    account = None
    teammates: list[dict[str, Any]] = []
    if row.get("account_id") is not None and accounts is not None:
        a = accounts
        found = rows(
            "account",
            lambda v: a.filter(a.account_id == v["id"]).limit(1),
            id=row["account_id"],
        )
        account = found[0] if found else None
        u = users
        teammates = rows(
            "teammates",
            lambda v: (
                u.filter(u.account_id == v["account"], u.user_id != v["id"])
                .select("user_id", "score", "tier", "is_pql", "segment", "last_seen_at")
                .order_by([ibis.desc(u.score), u.user_id])
                .limit(25)
            ),
            account=row["account_id"],
            id=user_id,
        )
    return Lead(
        row=row,
        explanation=explanation,
        history=history,
        events=recent_rows,
        identities=identities,
        attributes=attributes[0] if attributes else {},
        account=account,
        teammates=name_people(session, teammates),
        feedback=fb.history(b, user_id) if _has(b, FEEDBACK) else [],
        owner=owner_of(engine, "user", user_id),
        notes=notes,
        events_since=since,
        next_step=next_step(engine.model.playbooks, row),
    )


def account(session: Session, account_id: str, page: int = 1) -> Account | None:
    """An account's current state, one page of its users (the best scored first), owner and
    champion."""
    engine = session.engine
    b = engine.backend
    u, accounts, _ = state(engine)
    row = _one(engine, accounts, "account_id", account_id)
    if row is None:
        return None
    assert u is not None
    mine = u.filter(u.account_id == account_id)
    users = b.rows(
        mine.select(
            "user_id", "score", "tier", "is_pql", "segment", "motion", "activated", "last_seen_at"
        )
        .order_by([ibis.desc(mine.score), mine.user_id])
        .limit(PAGE, offset=(page - 1) * PAGE)
    )
    total = b.values(mine.aggregate(n=mine.count()))[0][0]
    s = b.table(ACCOUNT_SCORES)
    history = b.rows(
        s.filter(s.account_id == account_id)
        .select("as_of", "model_version", "score", "tier", "is_pqa", "active_users", "pql_users")
        .order_by("as_of")
    )
    champion = row.get("champion_user_id")
    return Account(
        row,
        name_people(session, users),
        history,
        owner_of(engine, "account", account_id),
        champion=people_of(session, [champion]).get(str(champion)) if champion else None,
        next_step=next_step(engine.model.playbooks, row),
        users_total=total,
    )
