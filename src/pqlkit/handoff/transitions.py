"""Transitions: what changed for a user or an account since the last run, written in the same
transaction as the run (an outbox), so a crash can neither lose nor invent one.

Each transition has a stable id (from what changed, for whom, and as of when): a rerun of the
same date records nothing new, and every delivery of a transition carries that id as its
idempotency key (the `webhook-id`). Only a run at least as late as the last one compares: a
backtest at an older date records nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from ..backends import Backend
from ..collect.tables import FEEDBACK, FEEDBACK_SCHEMA
from ..engine import ACCOUNT_STATE, USER_STATE
from ..model.handoff import Handoff, HandoffRoute
from ..model.playbooks import Play, next_step
from ..scoring.reasons import top_reasons

OUTBOX = "pql_outbox"
DELIVERIES = "pql_deliveries"

OUTBOX_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("kind", pa.string()),
        ("entity", pa.string()),
        ("entity_id", pa.string()),
        ("account_id", pa.string()),
        ("old_value", pa.string()),
        ("new_value", pa.string()),
        ("as_of", pa.timestamp("us")),
        ("model_version", pa.string()),
        ("payload", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
DELIVERIES_SCHEMA = pa.schema(
    [
        ("transition_id", pa.string()),
        ("destination", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int64()),
        ("next_attempt_at", pa.timestamp("us")),
        ("created_at", pa.timestamp("us")),
        ("updated_at", pa.timestamp("us")),
        ("delivered_at", pa.timestamp("us")),
        ("last_status", pa.int64()),
        ("last_error", pa.string()),
        ("claim", pa.string()),
    ]
)
"""A delivery's ``status``: pending, sending (claimed by a sender until ``next_attempt_at``),
failed (to retry at ``next_attempt_at``), delivered, dead or disabled. ``claim``: the token of
the last sender that claimed it (see :func:`pqlkit.handoff.deliver.claim`)."""


@dataclass(frozen=True)
class Transition:
    id: str
    kind: str
    entity: str
    entity_id: str
    account_id: str | None
    old: str | None
    new: str | None
    payload: dict[str, Any]


def transition_id(
    kind: str, entity: str, entity_id: str, old: Any, new: Any, as_of: datetime
) -> str:
    key = json.dumps([kind, entity, entity_id, old, new, as_of.isoformat()], default=str)
    return "tr_" + hashlib.sha256(key.encode()).hexdigest()[:29]


def ensure_tables(backend: Backend) -> None:
    """The outbox, deliveries and feedback tables (the state tables take the shape of the
    scores: :func:`ensure_state`)."""
    backend.ensure_table(OUTBOX, OUTBOX_SCHEMA, primary_key=["id"])
    backend.ensure_table(
        DELIVERIES, DELIVERIES_SCHEMA, primary_key=["transition_id", "destination"]
    )
    if backend.missing_columns(DELIVERIES, DELIVERIES_SCHEMA):  # a table made before claims
        backend.add_columns(DELIVERIES, DELIVERIES_SCHEMA)
    backend.ensure_table(FEEDBACK, FEEDBACK_SCHEMA)


def ensure_state(backend: Backend, users: ir.Table, accounts: ir.Table) -> None:
    """The last known state of every user and account: the latest scores row of each, the
    columns of ``users`` and ``accounts``. A state table from an older version (fewer columns)
    keeps its rows, the new columns empty until the user is scored again."""
    for name, expr in ((USER_STATE, users), (ACCOUNT_STATE, accounts)):
        schema = expr.schema()
        if not backend.has_table(name):
            backend.ensure_table(name, schema)
            continue
        old = backend.table(name)
        if list(old.columns) != list(schema.names):
            backend.replace_table(
                name,
                old.select(
                    *[
                        (old[c].cast(t) if c in old.columns else ibis.null(t)).name(c)
                        for c, t in schema.items()
                    ]
                ),
            )


def quiet_users(backend: Backend, as_of: datetime) -> set[str]:
    """Users a rep marked done or disqualified whose cooldown runs past ``as_of``."""
    f = backend.table(FEEDBACK)
    active = f.filter(f.quiet_until > ibis.timestamp(as_of)).select("user_id").distinct()
    return {r[0] for r in backend.values(active)}


def _changed(new: ir.Table, state: ir.Table) -> ir.Table:
    s = state.select(
        _u=state.user_id, _pql=state.is_pql, _tier=state.tier, _seg=state.segment, _mot=state.motion
    )
    j = new.left_join(s, new.user_id == s._u)
    first = j._u.isnull() & j.is_pql
    moved = j._u.notnull() & (
        ~j._pql.identical_to(j.is_pql)
        | ~j._tier.identical_to(j.tier)
        | ~j._seg.identical_to(j.segment)
        | ~j._mot.identical_to(j.motion)
    )
    return j.filter(first | moved)


def user_transitions(
    rows: list[dict[str, Any]],
    as_of: datetime,
    version: str,
    playbooks: list[Play] | None = None,
) -> list[Transition]:
    """Transitions of the changed users (one row each: the new state and the old, `_`-prefixed,
    and the person's ``email`` and ``role`` when known)."""
    out = []
    for r in rows:
        seen = r["_u"] is not None
        changes = []
        if bool(r["is_pql"]) != bool(r["_pql"]) and (r["is_pql"] or seen):
            changes.append(
                (
                    "became_pql" if r["is_pql"] else "left_pql",
                    r["_pql"] if seen else None,
                    r["is_pql"],
                )
            )
        if seen:
            for kind, old, new in (
                ("tier_changed", r["_tier"], r["tier"]),
                ("segment_changed", r["_seg"], r["segment"]),
                ("motion_changed", r["_mot"], r["motion"]),
            ):
                if old != new:
                    changes.append((kind, old, new))
        for kind, old, new in changes:
            tid = transition_id(kind, "user", r["user_id"], old, new, as_of)
            payload = {
                "type": f"pql.{kind}",
                "id": tid,
                "as_of": as_of.isoformat() + "Z",
                "model_version": version,
                "user": {
                    "id": r["user_id"],
                    "email": r.get("email"),
                    "role": r.get("role"),
                    "account_id": r["account_id"],
                    "score": r["score"],
                    "tier": r["tier"],
                    "segment": r["segment"],
                    "motion": r["motion"],
                    "icp_profile": r["icp_profile"],
                    "is_pql": bool(r["is_pql"]),
                    "points": r.get("points"),
                    "likelihood": r.get("likelihood"),
                    "grade": r.get("grade"),
                    "top_reasons": top_reasons(r.get("reasons")),
                    "next_step": next_step(playbooks, r),
                },
                "change": {"from": old, "to": new},
            }
            out.append(
                Transition(
                    tid,
                    kind,
                    "user",
                    r["user_id"],
                    r["account_id"],
                    _text(old),
                    _text(new),
                    payload,
                )
            )
    return out


def _text(v: Any) -> str | None:
    return None if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _matches(route: HandoffRoute, t: Transition) -> bool:
    w = route.when
    if t.kind not in w.transitions:
        return False
    return w.admits(t.payload.get("user") or t.payload.get("account") or {})


def route(handoff: Handoff, transitions: list[Transition]) -> list[tuple[str, str]]:
    """(transition id, destination) pairs: every route a transition matches, each destination once."""
    pairs: dict[tuple[str, str], None] = {}
    for t in transitions:
        for r in handoff.routes:
            if _matches(r, t):
                for dest in r.to:
                    pairs[(t.id, dest)] = None
    return list(pairs)


def record(
    backend: Backend,
    handoff: Handoff,
    users: ir.Table,
    accounts: ir.Table,
    as_of: datetime,
    version: str,
    now: datetime,
    *,
    partial: bool = False,
    accounts_affected: ir.Table | None = None,
    playbooks: list[Play] | None = None,
    people: ir.Table | None = None,
    merged: bool = False,
    users_affected: ir.Table | None = None,
) -> int:
    """Compare the run's users and accounts with the last known state, write the transitions and
    their deliveries, and move the state on; call inside the run's transaction. Returns the
    number of transitions recorded. Each carries its lead's next step from ``playbooks`` and,
    given ``people`` (the users source: user_id, email, role), who the people it names are.

    A full run (`pql score`) replaces the state; a ``partial`` one (live rescoring of the users
    whose data changed) replaces the rows of its users and accounts (or of
    ``users_affected`` and ``accounts_affected``) and keeps the others. A
    ``merged`` one (a full pass computed beside live rescoring) replaces the state, and holds
    the rows rescored since its as_of as they stand: it compares though the state is later.

    Long because it is one transaction's steps in order (compare, build, route, write the outbox
    and deliveries, move the state on)."""
    ensure_tables(backend)
    ensure_state(backend, users, accounts)
    state = backend.table(USER_STATE)
    latest = backend.values(state.aggregate(m=state.as_of.max()))[0][0]
    if latest is not None and as_of < latest and not merged:
        return 0  # an older date (a backtest, a replay): not news
    new = users.select(
        "user_id",
        "account_id",
        "is_pql",
        "tier",
        "segment",
        "motion",
        "score",
        "icp_profile",
        "reasons",
        *(c for c in ("points", "likelihood", "grade") if c in users.columns),
    )
    changed = _with_people(_changed(new, state), "user_id", people, "")
    transitions = user_transitions(backend.rows(changed), as_of, version, playbooks)
    transitions += _account_transitions(backend, accounts, as_of, version, playbooks, people)
    if transitions:
        rows = [
            {
                "id": t.id,
                "kind": t.kind,
                "entity": t.entity,
                "entity_id": t.entity_id,
                "account_id": t.account_id,
                "old_value": t.old,
                "new_value": t.new,
                "as_of": as_of,
                "model_version": version,
                "payload": json.dumps(t.payload, sort_keys=True, default=str),
                "created_at": now,
            }
            for t in transitions
        ]
        backend.upsert(OUTBOX, pa.Table.from_pylist(rows, schema=OUTBOX_SCHEMA), ["id"], "ignore")
        quiet = quiet_users(backend, as_of)  # recorded, for the audit; not delivered
        audible = [t for t in transitions if not (t.entity == "user" and t.entity_id in quiet)]
        deliveries = [
            {
                "transition_id": tid,
                "destination": dest,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "delivered_at": None,
                "last_status": None,
                "last_error": None,
            }
            for tid, dest in route(handoff, audible)
        ]
        if deliveries:
            backend.upsert(
                DELIVERIES,
                pa.Table.from_pylist(deliveries, schema=DELIVERIES_SCHEMA),
                ["transition_id", "destination"],
                "ignore",
            )
    if partial:
        backend.replace_keys(USER_STATE, "user_id", users, keys=users_affected)
        backend.replace_keys(ACCOUNT_STATE, "account_id", accounts, keys=accounts_affected)
    else:
        backend.replace_table(USER_STATE, users)
        backend.replace_table(ACCOUNT_STATE, accounts)
    return len(transitions)


def _with_people(t: ir.Table, key: str, people: ir.Table | None, prefix: str) -> ir.Table:
    """``t`` with the e-mail and role of the user in ``t[key]`` (``{prefix}email``,
    ``{prefix}role``; null when the users source has no such column)."""
    if people is None:
        return t.mutate(
            **{f"{prefix}email": ibis.null("string"), f"{prefix}role": ibis.null("string")}
        )
    p = people.mutate(_p_id=people.user_id.cast("string"))
    # only the users ``t`` names, before grouping: a live rescore's few changed users would
    # otherwise group the whole users source on every flush (a quarter of a second at 100k)
    p = p.filter(p._p_id.isin(t[key].cast("string")))
    p = p.group_by("_p_id").aggregate(  # one row a user, whatever the source holds
        **{
            f"{prefix}{c}": (p[c].cast("string").max() if c in p.columns else ibis.null("string"))
            for c in ("email", "role")
        }
    )
    return t.left_join(p, t[key] == p._p_id).drop("_p_id")


def _account_transitions(
    backend: Backend,
    accounts: ir.Table,
    as_of: datetime,
    version: str,
    playbooks: list[Play] | None = None,
    people: ir.Table | None = None,
) -> list[Transition]:
    state = backend.table(ACCOUNT_STATE)
    s = state.select(_a=state.account_id, _pqa=state.is_pqa)
    j = accounts.left_join(s, accounts.account_id == s._a)
    became = j.filter(j.is_pqa & ~j._pqa.fill_null(False))
    became = _with_people(became, "champion_user_id", people, "champion_")
    out = []
    for r in backend.rows(
        became.select(
            "account_id",
            "name",
            "domain",
            "score",
            "tier",
            "segment",
            "motion",
            "icp_profile",
            "pql_users",
            "champion_user_id",
            "champion_email",
            "champion_role",
        )
    ):
        tid = transition_id("became_pqa", "account", r["account_id"], False, True, as_of)
        payload = {
            "type": "pql.became_pqa",
            "id": tid,
            "as_of": as_of.isoformat() + "Z",
            "model_version": version,
            "account": {
                "id": r["account_id"],
                "name": r["name"],
                "domain": r["domain"],
                "score": r["score"],
                "tier": r["tier"],
                "segment": r["segment"],
                "motion": r["motion"],
                "icp_profile": r["icp_profile"],
                "pql_users": r["pql_users"],
                "champion_user_id": r["champion_user_id"],
                "champion": {
                    "id": r["champion_user_id"],
                    "email": r["champion_email"],
                    "role": r["champion_role"],
                }
                if r["champion_user_id"] is not None
                else None,
                "next_step": next_step(playbooks, r),
            },
            "change": {"from": False, "to": True},
        }
        out.append(
            Transition(
                tid,
                "became_pqa",
                "account",
                r["account_id"],
                r["account_id"],
                "false",
                "true",
                payload,
            )
        )
    return out


def erase_transitions(backend: Backend, ids: list[str], result: Any) -> None:
    """`pql forget`'s eraser for the hand-off: the transitions about them (their payloads
    name them) and their deliveries deleted, an account's that names them as its champion
    blanked; counted into ``result`` (a :class:`pqlkit.collect.forget.Forgotten`)."""
    if not backend.has_table(OUTBOX):
        return
    outbox = backend.table(OUTBOX)
    theirs = {"entity": "user", "entity_id": ids}
    if backend.has_table(DELIVERIES):
        of_theirs = outbox.filter((outbox.entity == "user") & outbox.entity_id.isin(ids))
        transitions = [row[0] for row in backend.values(of_theirs.select("id"))]
        n = backend.delete(DELIVERIES, {"transition_id": transitions}) if transitions else 0
        if n:
            result.deleted[DELIVERIES] = n
    n = backend.delete(OUTBOX, theirs)
    if n:
        result.deleted[OUTBOX] = n
    # an account's transition names its champion: blanked, like champion_user_id elsewhere
    mentions = ibis.or_(
        *(outbox.payload.contains(f'"champion_user_id": {json.dumps(i)}') for i in ids)
    )
    found = backend.values(
        outbox.filter((outbox.entity == "account") & mentions).select("id", "payload")
    )
    for tid, payload in found:
        data = json.loads(payload)
        if data.get("account", {}).get("champion_user_id") in ids:
            data["account"]["champion_user_id"] = None
            if data["account"].get("champion") is not None:
                data["account"]["champion"] = None
            backend.update(OUTBOX, {"payload": json.dumps(data, sort_keys=True)}, {"id": tid})
            result.blanked[OUTBOX] = result.blanked.get(OUTBOX, 0) + 1
