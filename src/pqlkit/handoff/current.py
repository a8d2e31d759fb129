"""The current state of users and accounts: the live state `pql serve --model` keeps (the
hand-off's state tables) when there is one, else the latest stored run of `pql score`; and
since when each has been a PQL (PQA). Read by the inbox, the lead pages and the CRM sync."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from ..engine import ACCOUNT_SCORES, ACCOUNT_STATE, RUNS, USER_SCORES, USER_STATE
from .transitions import OUTBOX

if TYPE_CHECKING:
    from ..engine import Engine


def _has(b: Any, name: str) -> bool:
    return name in b.known_tables()


def state(engine: Engine) -> tuple[ir.Table | None, ir.Table | None, list[Any]]:
    """(users, accounts) as they stand now: the live state, else the latest run; and a key
    saying which (for compiled SQL)."""
    b = engine.backend
    if _has(b, USER_STATE) and _has(b, ACCOUNT_STATE):
        key: list[Any] = ["live", engine.loaded.version]
        return b.table(USER_STATE), b.table(ACCOUNT_STATE), key
    run = latest_run(engine)
    key = ["run", engine.loaded.version, *(run or ())]
    if run is None:
        return None, None, key
    return engine.stored_users(*run), engine.stored_accounts(*run), key


def latest_run(engine: Engine) -> tuple[datetime, str] | None:
    """(as_of, model version) of the latest stored run: of the current model if it has one."""
    b = engine.backend
    if not _has(b, RUNS):
        return None
    r = b.table(RUNS)
    for runs in (r.filter(r.model_version == engine.loaded.version), r):
        found = b.values(
            runs.order_by([ibis.desc(runs.as_of), ibis.desc(runs.finished_at)])
            .select("as_of", "model_version")
            .limit(1)
        )
        if found:
            return found[0][0], found[0][1]
    return None


def since_expr(engine: Engine, entity: str, ids: Iterable[str] | None = None) -> ir.Table:
    """(entity, id, since): when each user (account) last became a PQL (PQA): the hand-off's
    latest transition into it, else the first stored run of the current streak."""
    b = engine.backend
    flag, key, table = (
        ("is_pql", "user_id", USER_SCORES)
        if entity == "user"
        else ("is_pqa", "account_id", ACCOUNT_SCORES)
    )
    s = b.table(table)
    s = s.filter(s.model_version == engine.loaded.version)
    wanted = None if ids is None else sorted(set(ids))
    if wanted is not None:
        s = s.filter(s[key].isin(wanted))
    no = s.filter(~s[flag]).group_by(key).aggregate(last_no=s.as_of.max())
    yes = s.filter(s[flag]).select(key, "as_of")
    j = yes.left_join(no, yes[key] == no[key]).select(yes[key], yes.as_of, no.last_no)
    j = j.filter(j.last_no.isnull() | (j.as_of > j.last_no))
    streak = j.group_by(key).aggregate(since=j.as_of.min()).rename(id=key)
    if _has(b, OUTBOX):
        o = b.table(OUTBOX)
        if wanted is not None:
            o = o.filter(o.entity_id.isin(wanted))
        kind = "became_pql" if entity == "user" else "became_pqa"
        became = (
            o.filter(o.kind == kind, o.entity == entity)
            .group_by(id=o.entity_id)
            .aggregate(became=o.as_of.max())
        )
        both = streak.outer_join(became, streak.id == became.id)
        streak = both.select(
            id=ibis.coalesce(both.id, both.id_right), since=ibis.coalesce(both.became, both.since)
        )
    return streak.select(entity=ibis.literal(entity), id=streak.id, since=streak.since)
