"""A lead's story and an account's page: the current state, every signal behind the score,
the score over stored runs, recent events, linked ids, teammates, feedback and owner."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ibis

from ..engine import ACCOUNT_SCORES, USER_SCORES, Engine, Explanation
from ..errors import PqlkitError
from ..handoff import feedback as fb
from ..handoff.transitions import FEEDBACK
from .inbox import _has, _one, owner_of, state


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


@dataclass
class Account:
    row: dict[str, Any]
    users: list[dict[str, Any]]
    history: list[dict[str, Any]]
    owner: str | None


# --- a lead ----------------------------------------------------------------------------------------


def lead(engine: Engine, user_id: str, *, events: int = 50) -> Lead | None:
    """A user's story: their current state, every signal behind it, their score over the
    stored runs, recent events, linked ids, account and teammates, feedback and owner."""
    b = engine.backend
    users, accounts, _state_key = state(engine)
    row = _one(engine, users, "user_id", user_id)
    if row is None:
        return None
    notes = []
    if row.get("model_version") != engine.loaded.version:
        notes.append(
            f"Scored by model version {row.get('model_version')}; the signals below are the "
            f"current model's ({engine.loaded.version}). Run `pql score` to score with it."
        )
    try:
        explanation: Explanation | None = engine.explain(user_id, row["as_of"])
    except PqlkitError as exc:  # no longer in the users table
        explanation, notes = None, [*notes, str(exc)]
    s = b.table(USER_SCORES)
    history = b.rows(
        s.filter(s.user_id == user_id)
        .select("as_of", "model_version", "score", "tier", "is_pql", "segment", "motion")
        .order_by("as_of")
    )
    bound = engine.bound
    ids = [user_id]
    identities: list[dict[str, Any]] = []
    if bound.identities is not None:
        i = bound.identities
        identities = b.rows(
            i.filter(i.user_id == user_id, i.id != user_id).order_by(i.id).limit(200)
        )
        ids += [r["id"] for r in identities]
    e = bound.events
    # events sent under the user's id, or under an id linked to them (an anonymous id)
    mine = e.user_id == user_id if len(ids) == 1 else e.user_id.isin(ids)
    if len(ids) > 1:
        mine = mine | e.anonymous_id.isin(ids[1:]).fill_null(False)
    recent = e.filter(mine)
    cols = ["timestamp", "event"] + (["properties"] if "properties" in e.columns else [])
    recent_rows = b.rows(recent.select(*cols).order_by(ibis.desc(recent.timestamp)).limit(events))
    for r in recent_rows:
        if r.get("properties") is not None and not isinstance(r["properties"], str):
            r["properties"] = json.dumps(r["properties"], default=str, sort_keys=True)
    attributes = _one(engine, bound.users, "user_id", user_id) or {}
    account = None
    teammates: list[dict[str, Any]] = []
    if row.get("account_id") is not None:
        account = _one(engine, accounts, "account_id", row["account_id"])
        u = users
        assert u is not None
        teammates = b.rows(
            u.filter(u.account_id == row["account_id"], u.user_id != user_id)
            .select("user_id", "score", "tier", "is_pql", "segment", "last_seen_at")
            .order_by([ibis.desc(u.score), u.user_id])
            .limit(25)
        )
    return Lead(
        row=row,
        explanation=explanation,
        history=history,
        events=recent_rows,
        identities=identities,
        attributes=attributes,
        account=account,
        teammates=teammates,
        feedback=fb.history(b, user_id) if _has(b, FEEDBACK) else [],
        owner=owner_of(engine, "user", user_id),
        notes=notes,
    )


def account(engine: Engine, account_id: str) -> Account | None:
    b = engine.backend
    u, accounts, _ = state(engine)
    row = _one(engine, accounts, "account_id", account_id)
    if row is None:
        return None
    assert u is not None
    users = b.rows(
        u.filter(u.account_id == account_id)
        .select(
            "user_id", "score", "tier", "is_pql", "segment", "motion", "activated", "last_seen_at"
        )
        .order_by([ibis.desc(u.score), u.user_id])
        .limit(200)
    )
    s = b.table(ACCOUNT_SCORES)
    history = b.rows(
        s.filter(s.account_id == account_id)
        .select("as_of", "model_version", "score", "tier", "is_pqa", "active_users", "pql_users")
        .order_by("as_of")
    )
    return Account(row, users, history, owner_of(engine, "account", account_id))
