"""What a rep works from: the inbox of PQLs and PQAs, a lead's story, an account, owners.

Read by the web app (`pql ui`); every query is an Ibis expression run in the database, cut to
one page (or one user) there, so a page costs the same with a thousand users or a million.
"The current state" is the live state `pql serve --model` keeps (the hand-off's state tables)
when there is one, else the latest stored run of `pql score`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge

from ..engine import ACCOUNT_SCORES, RUNS, USER_SCORES, Engine, utc_now
from ..errors import DataError
from ..handoff import feedback as fb
from ..handoff.current import latest_run, since_expr, state
from ..handoff.transitions import FEEDBACK, OUTBOX
from ..scoring.decide import REASON_SEPARATOR

PAGE = 50
OWNERS = "pql_owners"
SINCE, SINCE_KEY = "pql_inbox_since", "pql_inbox_since_key"
OWNERS_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("id", pa.string()),
        ("owner", pa.string()),
        ("assigned_at", pa.timestamp("us")),
    ]
)
KINDS = ("users", "accounts")
STATUSES = ("open", "worked", "all")
UNASSIGNED = "-"
FACETS = (
    ("motion", "motion"),
    ("segment", "segment"),
    ("tier", "tier"),
    ("profile", "icp_profile"),
)


@dataclass(frozen=True)
class Filters:
    """An inbox query. ``owner`` is a user name, or ``-`` for nobody's; ``status`` open hides
    users a rep marked done or disqualified while their cooldown runs, worked shows only them."""

    kind: str = "users"
    motion: str | None = None
    segment: str | None = None
    tier: str | None = None
    profile: str | None = None
    owner: str | None = None
    q: str | None = None
    status: str = "open"
    page: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"inbox kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.status not in STATUSES:
            raise DataError(f"inbox status {self.status!r}: use one of {', '.join(STATUSES)}")
        if self.page < 1:
            raise DataError(f"inbox page {self.page}: pages count from 1")


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    filters: Filters
    options: dict[str, list[str]]
    scored_as_of: datetime | None
    notice: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE))


# --- the current state ---------------------------------------------------------------------------


def _has(b: Any, name: str) -> bool:
    return name in b.known_tables()


def _since_expr(engine: Engine, entity: str) -> ir.Table:
    return since_expr(engine, entity)


def _since_key(engine: Engine) -> str:
    """What the since table depends on: the runs, the transitions, the model version."""
    b = engine.backend
    parts = [engine.loaded.version]
    for table, col in ((RUNS, "finished_at"), (OUTBOX, "created_at")):
        if _has(b, table):
            t = b.table(table)
            n, last = b.values(t.aggregate(n=t.count(), last=t[col].max()))[0]
            parts += [str(n), str(last)]
    return "|".join(parts)


_REBUILD = threading.Lock()


def _since(engine: Engine, entity: str) -> ir.Table | None:
    """The since table, kept in the database (``pql_inbox_since``) and computed again only
    when a run or a transition has been written since: computing it reads every stored run
    (hundreds of milliseconds with a million users), reading it a few thousand rows. None when
    nothing is stored yet."""
    b = engine.backend
    if not (_has(b, USER_SCORES) or _has(b, ACCOUNT_SCORES)):
        return None
    key = _since_key(engine)
    with _REBUILD:  # one rebuild at a time in this process (the rest wait, then read it)
        if not _fresh(b, key):
            parts = [
                _since_expr(engine, e)
                for e, table in (("user", USER_SCORES), ("account", ACCOUNT_SCORES))
                if _has(b, table)
            ]
            both = parts[0].union(parts[1]) if len(parts) == 2 else parts[0]
            b.ensure_table(SINCE_KEY, ibis.schema({"key": "string"}))
            with b.transaction():
                b.replace_table(SINCE, both)
                b.delete(SINCE_KEY, sge.true())
                b.insert(SINCE_KEY, pa.table({"key": [key]}))
    t = b.table(SINCE)
    return t.filter(t.entity == entity).select("id", "since")


def _fresh(b: Any, key: str) -> bool:
    if not _has(b, SINCE_KEY) or not _has(b, SINCE):
        return False
    k = b.table(SINCE_KEY)
    return bool(b.values(k.filter(k.key == key).select("key").limit(1)))


def _owners(engine: Engine, entity: str) -> ir.Table | None:
    b = engine.backend
    if not _has(b, OWNERS):
        return None
    o = b.table(OWNERS)
    return o.filter(o.entity == entity).select(id=o.id, owner=o.owner)


def _quiet(engine: Engine) -> ir.Table | None:
    b = engine.backend
    if not _has(b, FEEDBACK):
        return None
    f = b.table(FEEDBACK)
    return f.select(id=f.user_id, quiet_until=f.quiet_until)


def _contains(col: ir.Value, needle: str) -> ir.BooleanValue:
    return col.cast("string").lower().contains(needle)


# --- the inbox -------------------------------------------------------------------------------------


def inbox(engine: Engine, filters: Filters, now: datetime | None = None) -> Page:
    """One page of PQLs (or PQAs), newest first, with the facets to filter by."""
    now = now or utc_now()
    users, accounts, state_key = state(engine)
    base = users if filters.kind == "users" else accounts
    if base is None:
        return Page(
            [],
            0,
            filters,
            {},
            None,
            "Nothing is scored yet: run `pql score` (or `pql serve --model`) first.",
        )
    b = engine.backend
    flag, key, entity = (
        ("is_pql", "user_id", "user")
        if filters.kind == "users"
        else ("is_pqa", "account_id", "account")
    )
    t = base.filter(base[flag])
    facets = b.rows(t.group_by(["motion", "segment", "tier", "icp_profile"]).aggregate(n=t.count()))
    options = {
        name: sorted({str(r[col]) for r in facets if r[col] is not None}) for name, col in FACETS
    }
    searching = bool(filters.q and filters.q.strip())
    values: dict[str, str | int | datetime] = {
        name: str(getattr(filters, name)) for name, _ in FACETS if getattr(filters, name)
    }
    values["offset"] = (filters.page - 1) * PAGE
    if filters.owner and filters.owner != UNASSIGNED:
        values["owner"] = filters.owner
    if searching:
        values["q"] = str(filters.q).strip().lower()
    quiet, owners, since = _quiet(engine), _owners(engine, entity), _since(engine, entity)
    if quiet is not None and filters.kind == "users" and filters.status != "all":
        values["now"] = now

    def build(p: Mapping[str, Any]) -> ir.Table:
        # the candidates narrow (ids, score, facets): only the page's 50 rows are read whole
        whole = base.filter(base[flag])
        narrow = [key, "score", *(col for _, col in FACETS)]
        if filters.kind == "users":
            narrow.append("account_id")
        else:
            narrow += ["name", "domain"]
        t = whole.select(*dict.fromkeys(narrow))
        for name, col in FACETS:
            if name in p:
                t = t.filter(t[col] == p[name])
        if searching:  # the search reads names and e-mails of every candidate
            t = _names(engine, t, filters.kind, accounts)
        if quiet is not None and filters.kind == "users" and filters.status != "all":
            q = quiet.filter(quiet.quiet_until > p["now"]).select("id").distinct()
            t = (
                t.anti_join(q, t.user_id == q.id)
                if filters.status == "open"
                else t.semi_join(q, t.user_id == q.id)
            )
        elif filters.status == "worked":
            t = t.filter(ibis.literal(False))
        if owners is not None:
            t = t.left_join(owners, t[key] == owners.id).drop("id")
        else:
            t = t.mutate(owner=ibis.null("string"))
        if filters.owner:
            t = t.filter(t.owner.isnull() if filters.owner == UNASSIGNED else t.owner == p["owner"])
        if searching:
            cols = [t[key], t.company, t.domain, t.email]
            if filters.kind == "users":
                cols.append(t.account_id)
            hit = _contains(cols[0], p["q"])
            for c in cols[1:]:
                hit = hit | _contains(c, p["q"]).fill_null(False)
            t = t.filter(hit)
        if since is not None:
            t = t.left_join(since, t[key] == since.id).drop("id")
        else:
            t = t.mutate(since=ibis.null("timestamp"))
        # one query: the page and, on each row, how many match
        t = t.mutate(_total=t[key].count().over(ibis.window()))
        order = [t.since.desc(nulls_first=False), ibis.desc(t.score), t[key]]
        top = t.order_by(order).limit(PAGE, offset=p["offset"])
        extra = [c for c in top.columns if c not in whole.columns or c == key]
        top = top.select(*extra).rename({"_key": key})
        paged = whole.join(top, whole[key] == top["_key"]).drop("_key")
        if not searching:  # names for the page's rows alone
            paged = _names(engine, paged, filters.kind, accounts)
        return paged.order_by(
            [paged.since.desc(nulls_first=False), ibis.desc(paged.score), paged[key]]
        )

    shape = [
        filters.kind,
        filters.status,
        sorted(values),
        filters.owner == UNASSIGNED,
        quiet is not None,
        owners is not None,
        state_key,
    ]
    sql = b.reusable_sql(engine.query_cache, json.dumps(shape, default=str), build, values)
    rows = b.arrow(sql).to_pylist()
    if rows:
        total = int(rows[0]["_total"])
    else:  # a page past the end
        values["offset"] = 0
        first = b.arrow(
            b.reusable_sql(engine.query_cache, json.dumps(shape, default=str), build, values)
        )
        total = int(first.column("_total")[0].as_py()) if first.num_rows else 0
    for r in rows:
        r.pop("_total", None)
        r["top_reasons"] = top_reasons(r.get("reasons"))
    as_of = max((r["as_of"] for r in rows if r.get("as_of")), default=None)
    return Page(rows, total, filters, options, as_of)


def _names(engine: Engine, t: ir.Table, kind: str, accounts: ir.Table | None) -> ir.Table:
    """``t`` with company, domain and email: the account's name and domain, the user's e-mail."""
    if kind != "users":
        return t.mutate(company=t.name, email=ibis.null("string"))
    if accounts is not None:
        names = accounts.select(
            a_id=accounts.account_id, company=accounts.name, domain=accounts.domain
        )
        t = t.left_join(names, t.account_id == names.a_id).drop("a_id")
    else:
        t = t.mutate(company=ibis.null("string"), domain=ibis.null("string"))
    people = engine.bound.users
    if "email" in people.columns:
        mails = people.select(m_id=people.user_id, email=people.email.cast("string"))
        return t.left_join(mails, t.user_id == mails.m_id).drop("m_id")
    return t.mutate(email=ibis.null("string"))


def _one(engine: Engine, t: ir.Table | None, col: str, value: str) -> dict[str, Any] | None:
    if t is None:
        return None
    rows = engine.backend.rows(t.filter(t[col] == value).limit(1))
    return rows[0] if rows else None


def top_reasons(reasons: str | None, n: int = 3) -> list[str]:
    return [r for r in (reasons or "").split(REASON_SEPARATOR) if r][:n]


# --- owners and feedback ---------------------------------------------------------------------------


def owner_of(engine: Engine, entity: str, id_: str) -> str | None:
    o = _owners(engine, entity)
    if o is None:
        return None
    found = engine.backend.values(o.filter(o.id == id_).select("owner").limit(1))
    return found[0][0] if found else None


def assign(engine: Engine, entity: str, id_: str, owner: str | None) -> None:
    """Make ``owner`` the owner of a scored user or account (None: nobody's)."""
    b = engine.backend
    current = state(engine)[0 if entity == "user" else 1]
    key = "user_id" if entity == "user" else "account_id"
    if _one(engine, current, key, id_) is None:
        raise DataError(f"no scored {entity} {id_!r}: only scored {entity}s have owners")
    b.ensure_table(OWNERS, OWNERS_SCHEMA, primary_key=["entity", "id"])
    with b.transaction():
        b.delete(OWNERS, {"entity": entity, "id": id_})
        if owner:
            row = {"entity": entity, "id": id_, "owner": owner, "assigned_at": utc_now()}
            b.insert(OWNERS, pa.Table.from_pylist([row], schema=OWNERS_SCHEMA))


def feedback(
    engine: Engine, user_id: str, action: str, *, reason: str | None, by: str
) -> fb.Feedback:
    """A rep's done or disqualify on a scored user, with the model's cooldown (30 days when
    the model has no `handoff:`)."""
    from ..model.handoff import Handoff
    from .common import duration

    handoff = engine.model.handoff
    cooldown = handoff.cooldown if handoff is not None else Handoff.model_fields["cooldown"].default
    return fb.record_feedback(
        engine.backend,
        user_id,
        action,
        reason=reason,
        by=by,
        now=utc_now(),
        cooldown=duration("cooldown", cooldown),
    )


__all__ = [
    "PAGE",
    "Filters",
    "Page",
    "assign",
    "feedback",
    "inbox",
    "latest_run",
    "owner_of",
]
