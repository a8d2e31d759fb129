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
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge

from ..collect.tables import FEEDBACK
from ..engine import ACCOUNT_SCORES, ACCOUNT_STATE, RUNS, USER_SCORES, USER_STATE, Engine, utc_now
from ..errors import DataError
from ..handoff import feedback as fb
from ..handoff.current import latest_run as _latest_run
from ..handoff.current import since_expr, state
from ..handoff.transitions import OUTBOX
from ..model.playbooks import next_step
from ..scoring.reasons import top_reasons
from .people import name_people
from .session import Session

PAGE = 50
OWNERS = "pql_owners"
INBOX, INBOX_KEY = "pql_inbox", "pql_inbox_key"
#: How far the live state's rescores may move before the inbox's order follows them (between
#: transitions, which it follows at once).
LIVE_REFRESH = timedelta(seconds=10)
OWNERS_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("id", pa.string()),
        ("owner", pa.string()),
        ("assigned_at", pa.timestamp("us")),
    ]
)
OWNER_CHANGES = "pql_owner_changes"
OWNER_CHANGES_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("id", pa.string()),
        ("owner", pa.string()),
        ("previous", pa.string()),
        ("by", pa.string()),
        ("at", pa.timestamp("us")),
    ]
)
#: Each kind of inbox: its flag, its key and its entity (in owners, feedback and transitions).
_KINDS = {"users": ("is_pql", "user_id", "user"), "accounts": ("is_pqa", "account_id", "account")}
KINDS = tuple(_KINDS)
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


def _inbox_key(engine: Engine, state_key: list[Any]) -> str:
    """What the inbox table depends on: the model version, which state it reads, the runs,
    the transitions; and, for the live state (rescored without a run, its scores moving
    between transitions), the latest rescore's time to within LIVE_REFRESH."""
    b = engine.backend
    # "rank": the table's columns; a table an older version wrote is rebuilt
    parts = ["rank", engine.loaded.version, json.dumps(state_key, default=str)]
    tables = [(RUNS, "finished_at"), (OUTBOX, "created_at")]
    if state_key and state_key[0] == "live":
        tables += [(USER_STATE, "as_of"), (ACCOUNT_STATE, "as_of")]
    for table, col in tables:
        if _has(b, table):
            t = b.table(table)
            n, last = b.values(t.aggregate(n=t.count(), last=t[col].max()))[0]
            if table in (USER_STATE, ACCOUNT_STATE) and last is not None:
                last = (last - datetime(1970, 1, 1)) // LIVE_REFRESH
            parts += [str(n), str(last)]
    return "|".join(parts)


_REBUILD = threading.Lock()


def _inbox_table(
    engine: Engine, users: ir.Table | None, accounts: ir.Table | None, key: str
) -> ir.Table:
    """The inbox's rows, kept in the database (``pql_inbox``): every PQL and PQA with what the
    inbox filters, searches and orders by (facets, score, since, company, domain, e-mail).
    Computing them reads every stored run and the users' and accounts' names (hundreds of
    milliseconds with a million users); reading them, a few hundred thousand narrow rows. It
    is computed again only when its key changes (a run or a transition was written)."""
    b = engine.backend
    with _REBUILD:  # one rebuild at a time in this process (the rest wait, then read it)
        if not _fresh(b, key):
            parts = []
            for kind, base in (("users", users), ("accounts", accounts)):
                if base is None:
                    continue
                flag, id_, entity = _KINDS[kind]
                t = base.filter(base[flag])
                t = _names(engine, t, kind, accounts)
                if _has(b, USER_SCORES if entity == "user" else ACCOUNT_SCORES):
                    since = since_expr(engine, entity).select("id", "since")
                    t = t.left_join(since, t[id_] == since.id)
                else:  # the live state alone, no stored run yet
                    t = t.mutate(since=ibis.null("timestamp"))
                parts.append(
                    t.select(
                        entity=ibis.literal(entity),
                        id=t[id_].cast("string"),
                        since=t.since,
                        score=t.score.cast("float64"),
                        # equal scores rank by the ranking value (points, then recency)
                        rank=(t.ranking if "ranking" in t.columns else t.score).cast("float64"),
                        **{col: t[col].cast("string") for _, col in FACETS},
                        account_id=(t.account_id if kind == "users" else ibis.null("string")).cast(
                            "string"
                        ),
                        company=t.company.cast("string"),
                        domain=t.domain.cast("string"),
                        email=t.email.cast("string"),
                    )
                )
            both = parts[0].union(parts[1]) if len(parts) == 2 else parts[0]
            b.ensure_table(INBOX_KEY, ibis.schema({"key": "string"}))
            with b.transaction():
                b.replace_table(INBOX, both.order_by("entity", ibis.desc("since"), "id"))
                b.delete(INBOX_KEY, sge.true())
                b.insert(INBOX_KEY, pa.table({"key": [key]}))
    return b.table(INBOX)


def _fresh(b: Any, key: str) -> bool:
    if not _has(b, INBOX_KEY) or not _has(b, INBOX):
        return False
    k = b.table(INBOX_KEY)
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


def inbox(session: Session, filters: Filters, now: datetime | None = None) -> Page:
    """One page of PQLs (or PQAs), newest first, with the facets to filter by.

    Long because its one query is built from whichever filters are set, compiled once per
    shape, and its facets are read in the same pass."""
    engine = session.engine
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
    flag, key, entity = _KINDS[filters.kind]
    box = _inbox_table(engine, users, accounts, _inbox_key(engine, state_key))
    mine = box.filter(box.entity == entity)
    facets = b.rows(mine.group_by([col for _, col in FACETS]).aggregate(n=mine.count()))
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
    quiet, owners = _quiet(engine), _owners(engine, entity)
    if quiet is not None and filters.kind == "users" and filters.status != "all":
        values["now"] = now

    def build(p: Mapping[str, Any]) -> ir.Table:
        # the inbox table is narrow (ids, facets, score, since, names): only the page's 50
        # rows are read whole, from the current state
        t = box.filter(box.entity == entity).drop("entity")
        for name, col in FACETS:
            if name in p:
                t = t.filter(t[col] == p[name])
        if quiet is not None and filters.kind == "users" and filters.status != "all":
            q = quiet.filter(quiet.quiet_until > p["now"]).select("id").distinct()
            q = q.rename(q_id="id")
            t = (
                t.anti_join(q, t.id == q.q_id)
                if filters.status == "open"
                else t.semi_join(q, t.id == q.q_id)
            )
        elif filters.status == "worked":
            t = t.filter(ibis.literal(False))
        if owners is not None:
            o = owners.rename(o_id="id")
            t = t.left_join(o, t.id == o.o_id).drop("o_id")
        else:
            t = t.mutate(owner=ibis.null("string"))
        if filters.owner:
            t = t.filter(t.owner.isnull() if filters.owner == UNASSIGNED else t.owner == p["owner"])
        if searching:  # e-mail, company, domain, id and (for users) the account's id
            hit = _contains(t.id, p["q"])
            for c in (t.company, t.domain, t.email, t.account_id):
                hit = hit | _contains(c, p["q"]).fill_null(False)
            t = t.filter(hit)
        # one query: the page and, on each row, how many match
        t = t.mutate(_total=t.id.count().over(ibis.window()))
        top = t.order_by([t.since.desc(nulls_first=False), ibis.desc(t.rank), t.id])
        top = top.limit(PAGE, offset=p["offset"])
        top = top.select(
            _key=top.id, since=top.since, _rank=top.rank, owner=top.owner, company=top.company,
            domain=top.domain, email=top.email, _total=top._total,
        )  # fmt: skip
        whole = base.filter(base[flag])
        whole = whole.drop(*(c for c in top.columns if c in whole.columns))
        paged = whole.join(top, whole[key] == top._key).drop("_key")
        return paged.order_by(
            [paged.since.desc(nulls_first=False), ibis.desc(paged._rank), paged[key]]
        ).drop("_rank")

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
    plays = engine.model.playbooks
    for r in rows:
        r.pop("_total", None)
        r["top_reasons"] = top_reasons(r.get("reasons"))
        r["next_step"] = next_step(plays, r)
    if filters.kind == "users":  # people as people: e-mail (already there) and role
        name_people(session, rows)
    else:
        name_people(session, rows, "champion_user_id", "champion")
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


def latest_run(session: Session) -> tuple[datetime, str] | None:
    """(as_of, model version) of the latest stored run (of the current model if it has one)."""
    return _latest_run(session.engine)


# --- owners and feedback ---------------------------------------------------------------------------


def owner_of(engine: Engine, entity: str, id_: str) -> str | None:
    o = _owners(engine, entity)
    if o is None:
        return None
    found = engine.backend.values(o.filter(o.id == id_).select("owner").limit(1))
    return found[0][0] if found else None


def assign(
    session: Session,
    entity: str,
    id_: str,
    owner: str | None,
    *,
    by: str | None = None,
    take_over: bool = False,
) -> str | None:
    """Make ``owner`` the owner of a scored user or account (None: nobody's), as ``by`` asks;
    taking it from another owner needs ``take_over``. Every change of owner is recorded in
    ``pql_owner_changes`` (who had it, who has it, who asked, when). Returns the owner before."""
    engine = session.engine
    b = engine.backend
    current = state(engine)[0 if entity == "user" else 1]
    key = "user_id" if entity == "user" else "account_id"
    if _one(engine, current, key, id_) is None:
        raise DataError(f"no scored {entity} {id_!r}: only scored {entity}s have owners")
    before = owner_of(engine, entity, id_)
    if before == owner:
        return before
    if before is not None and before != by and not take_over:
        raise DataError(
            f"{id_} is {before}'s; take it over from the {entity}'s page (it asks first)"
        )
    b.ensure_table(OWNERS, OWNERS_SCHEMA, primary_key=["entity", "id"])
    b.ensure_table(OWNER_CHANGES, OWNER_CHANGES_SCHEMA)
    now = utc_now()
    change = {"entity": entity, "id": id_, "owner": owner, "previous": before, "by": by, "at": now}
    with b.transaction():
        b.delete(OWNERS, {"entity": entity, "id": id_})
        if owner:
            row = {"entity": entity, "id": id_, "owner": owner, "assigned_at": now}
            b.insert(OWNERS, pa.Table.from_pylist([row], schema=OWNERS_SCHEMA))
        b.insert(OWNER_CHANGES, pa.Table.from_pylist([change], schema=OWNER_CHANGES_SCHEMA))
    return before


def owner_changes(session: Session, entity: str, id_: str, n: int = 20) -> list[dict[str, Any]]:
    """The latest ``n`` changes of owner of a user or account, newest first."""
    b = session.engine.backend
    if not _has(b, OWNER_CHANGES):
        return []
    c = b.table(OWNER_CHANGES)
    found = c.filter((c.entity == entity) & (c.id == id_))
    return b.rows(found.order_by(ibis.desc(found.at)).limit(n))


def feedback(
    session: Session, user_id: str, action: str, *, reason: str | None, by: str
) -> fb.Feedback:
    """A rep's done or disqualify on a scored user, with the model's cooldown (30 days when
    the model has no `handoff:`)."""
    engine = session.engine
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
    "owner_changes",
    "owner_of",
]
