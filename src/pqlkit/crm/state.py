"""The rows a CRM record is built from: the current state of users and accounts (live, else
the latest run) with the e-mail, company and domain each record can carry, as Ibis tables."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ..engine import Engine
from ..handoff.current import since_expr, state
from ..scoring.reasons import REASON_SEPARATOR


def tables(
    engine: Engine, ids: dict[str, list[str]] | None = None
) -> tuple[ir.Table | None, ir.Table | None]:
    """(users, accounts) as they stand now, with every field a CRM record can carry."""
    users, accounts, _ = state(engine)
    if users is None or accounts is None:
        return None, None
    bound = engine.bound
    people = bound.users.select(_uid=bound.users.user_id, email=bound.users.email)
    a = accounts.select(_aid=accounts.account_id, company=accounts.name, domain=accounts.domain)
    u_since = since_expr(engine, "user", None if ids is None else ids.get("user", []))
    a_since = since_expr(engine, "account", None if ids is None else ids.get("account", []))
    j = users.left_join(people, users.user_id == people._uid)
    j = j.left_join(a, j.account_id == a._aid)
    j = j.left_join(u_since, j.user_id == u_since.id)
    u = j.select(
        "user_id", "email", "account_id", "company", "domain", "is_pql", "score", "fit_score",
        "usage_score", "mql_score", "tier", "segment", "motion", "as_of", "model_version",
        "points", "likelihood", "grade",
        profile=j.icp_profile,
        reasons=j.reasons,
        became_pql_at=ibis.ifelse(j.is_pql, j.since, ibis.null("timestamp")),
    )  # fmt: skip
    k = accounts.left_join(a_since, accounts.account_id == a_since.id)
    acc = k.select(
        "account_id", "name", "domain", "is_pqa", "score", "best_score", "users", "active_users",
        "pql_users", "champion_user_id", "tier", "segment", "motion", "as_of", "model_version",
        profile=k.icp_profile,
        became_pqa_at=ibis.ifelse(k.is_pqa, k.since, ibis.null("timestamp")),
    )  # fmt: skip
    assert REASON_SEPARATOR == "; "  # reasons are stored "a; b; c"; records order them by weight
    return u, acc
