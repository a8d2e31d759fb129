"""Assemble the per-user features table and the scores expression, as of a timestamp.

users known before as_of
  LEFT JOIN (events before as_of -> one GROUP BY user_id with filtered aggregates)
  LEFT JOIN accounts
-> features: user__*, account__*, signal__* columns
-> scores:   decide(model, features, IbisOps)  (the same function `pql explain` runs in Python)
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir

from ..model.defaults import free_mail_domains
from ..model.load import LoadedModel
from ..model.signals import duration_seconds, reads_every_event, signal_events
from ..model.spec import CANONICAL_COLUMNS
from ..scoring.decide import OUTPUT_FIELDS, decide
from .ibis_ops import IbisOps
from .names import ACCOUNT, SIGNAL, USER, env_of
from .signals import AsOf, EventContext, JsonAccess, epoch, plan_signal
from .sources import Bound, default_type


def count_true(x: ir.BooleanValue) -> ir.IntegerScalar:
    """How many rows have ``x`` true (portable: PostgreSQL cannot cast boolean to bigint)."""
    return x.count(where=x)


def resolve_identities(events: ir.Table, identities: ir.Table, as_of_lit: ir.Scalar) -> ir.Table:
    """Events with user_id resolved through the links known before as_of: an event sent under
    an anonymous id (or an old user id) linked to a user counts for that user."""
    links = identities.filter(identities.linked_at < as_of_lit).select(
        _link_id=identities.id, _link_user=identities.user_id
    )
    joined = events.left_join(
        links, ibis.coalesce(events.user_id, events.anonymous_id) == links._link_id
    )
    return joined.mutate(user_id=ibis.coalesce(joined._link_user, joined.user_id)).drop(
        "_link_id", "_link_user"
    )


def restrict(bound: Bound, touched: ir.Table) -> Bound:
    """The sources cut down to the users a live rescore must score again: the users named in
    ``touched`` (columns user_id, account_id) and every user of the accounts it names (their
    attributes changed), with the events that can resolve to them. Scoring the result gives,
    for these users, exactly the rows a full run gives: a user's features read only their own
    events, their row, their account and the outcomes. A named id may be an anonymous id or an
    old user id: it names its user."""
    u = bound.users
    named = touched.filter(touched.user_id.notnull()).select("user_id")
    if bound.identities is not None:  # an anonymous (or old) id stands for its user
        links = bound.identities
        named = named.union(links.filter(links.id.isin(named.user_id)).select("user_id"))
    named_accounts = touched.filter(touched.account_id.notnull()).account_id
    keep = u.filter(u.user_id.isin(named.user_id) | u.account_id.isin(named_accounts))
    ids = keep.select(id=keep.user_id)
    if bound.identities is not None:  # ids linked to them: their anonymous and old user ids
        links = bound.identities
        ids = ids.union(links.filter(links.user_id.isin(keep.user_id)).select(id=links.id))
    e = bound.events
    events = e.filter(e.user_id.isin(ids.id) | e.anonymous_id.isin(ids.id))
    return dataclasses.replace(bound, users=keep, events=events)


def user_features(
    bound: Bound, loaded: LoadedModel, as_of: datetime, *, bitmask_days: bool, json: JsonAccess
) -> ir.Table:
    """One row per user known before ``as_of``: attributes, derived fields and signal values."""
    model = loaded.model
    point = AsOf(as_of)
    as_of_lit = point.lit
    users = bound.users.filter(
        bound.users.user_id.notnull(),
        bound.users.created_at.isnull() | (bound.users.created_at < as_of_lit),
    )
    events = bound.events.filter(bound.events.timestamp < as_of_lit)
    if bound.identities is not None:
        events = resolve_identities(events, bound.identities, as_of_lit)
    events = events.filter(events.user_id.notnull())
    needed = sorted(
        {n for s in [*model.usage_signals, *model.mql_signals] for n in signal_events(s)}
    )
    any_event = any(reads_every_event(s) for s in [*model.usage_signals, *model.mql_signals])
    upgrade_events = list(model.plans.upgrade_events)
    if needed and not any_event:
        events = events.filter(events.event.isin(sorted({*needed, *upgrade_events})))
    ctx = EventContext(events=events, as_of=point, bitmask_days=bitmask_days, json=json)

    # One GROUP BY for every signal; an aggregate two signals share is computed once.
    aggregates: dict[str, ir.Scalar] = {"last_seen_at": events.timestamp.max()}
    if upgrade_events:
        aggregates["a__upgraded"] = events.count(where=events.event.isin(upgrade_events))
    first_name = {agg.op(): name for name, agg in aggregates.items()}
    same_as: dict[str, str] = {}
    plans = {}
    for s in [*model.usage_signals, *model.mql_signals]:
        plan = plan_signal(s, ctx, f"a__{s.id}")
        plans[s.id] = plan
        for name, agg in plan.aggregates.items():
            if agg.op() in first_name:
                same_as[name] = first_name[agg.op()]
            else:
                first_name[agg.op()] = name
                aggregates[name] = agg
    per_user = events.group_by("user_id").aggregate(**aggregates)

    u = users.rename({f"{USER}{c}": c for c in users.columns})
    joined = u.left_join(per_user, u[f"{USER}user_id"] == per_user.user_id).drop("user_id")
    if bound.accounts is not None:
        a = bound.accounts.rename({f"{ACCOUNT}{c}": c for c in bound.accounts.columns})
        joined = joined.left_join(a, joined[f"{USER}account_id"] == a[f"{ACCOUNT}account_id"])
    else:  # a product without accounts: account.* fields are empty
        joined = joined.mutate(
            **{
                f"{ACCOUNT}{c}": ibis.null(default_type("accounts", c))
                for c in CANONICAL_COLUMNS["accounts"]
            }
        )

    at = joined[f"{USER}email"].find(
        "@"
    )  # portable; split()[1] indexes arrays differently on PostgreSQL
    joined = joined.mutate(
        **{
            f"{USER}email_domain": ibis.ifelse(
                at >= 0, joined[f"{USER}email"].lower().substr(at + 1), ibis.null("string")
            )
        }
    )
    derived = _derived_user_fields(joined, bound, loaded, as_of)
    joined = joined.mutate(**derived)
    view = {f: joined[c] for c, f in env_of(joined.columns).items()}
    view.update(
        {k: joined[k] for k in joined.columns if k.startswith("a__") or k == "last_seen_at"}
    )
    view.update({name: joined[target] for name, target in same_as.items()})
    signal_cols = {
        f"{SIGNAL}{sid}": plan.finish(view).cast("float64") for sid, plan in plans.items()
    }
    keep = [c for c in joined.columns if c.startswith((USER, ACCOUNT)) or c == "last_seen_at"]
    return joined.select(*keep, **signal_cols)


def _derived_user_fields(
    joined: ir.Table, bound: Bound, loaded: LoadedModel, as_of: datetime
) -> dict[str, ir.Value]:
    model = loaded.model
    domain = joined[f"{USER}email_domain"]
    business = domain.notnull() & ~domain.isin(sorted(free_mail_domains()))
    plan = joined[f"{USER}plan"]
    paid_values = list(model.plans.paid)
    if model.plans.upgrade_events:
        upgraded = joined["a__upgraded"].fill_null(0) > 0
        is_paid = upgraded
        # Point in time: a plan that is paid today but was not yet paid as of the date is free.
        plan_as_of = ibis.ifelse(
            upgraded,
            ibis.ifelse(plan.isin(paid_values), plan, paid_values[0]),
            ibis.ifelse(plan.isin(paid_values), "free", plan),
        )
    else:
        is_paid = plan.isin(paid_values).fill_null(False)
        plan_as_of = plan
    created = joined[f"{USER}created_at"]
    days_since_signup = (AsOf(as_of).epoch - epoch(created)) / 86400.0
    days_since_seen = (AsOf(as_of).epoch - epoch(joined.last_seen_at)) / 86400.0
    seen_day = epoch(joined.last_seen_at) / 86400.0  # the ranking's tie-break: not as of a date
    touched = _sales_touched(joined, bound, as_of)
    return {
        f"{USER}plan": plan_as_of,
        f"{USER}is_business_email": business.fill_null(False),
        f"{USER}is_paid": is_paid.fill_null(False),
        f"{USER}days_since_signup": days_since_signup,
        f"{USER}days_since_seen": days_since_seen,
        f"{USER}seen_day": seen_day,
        f"{USER}sales_touched": touched,
    }


def _sales_touched(joined: ir.Table, bound: Bound, as_of: datetime) -> ir.BooleanValue:
    """An opportunity existed for the user or their account before as_of."""
    if bound.outcomes is None:
        return ibis.literal(False)
    o = bound.outcomes
    before = o.filter(o.created_at < AsOf(as_of).lit, o.kind.isnull() | (o.kind != "self_serve"))
    by_account = before.filter(before.account_id.notnull()).account_id
    by_user = before.filter(before.user_id.notnull()).user_id
    return (
        joined[f"{ACCOUNT}account_id"].isin(by_account) | joined[f"{USER}user_id"].isin(by_user)
    ).fill_null(False)


def user_scores(features: ir.Table, loaded: LoadedModel, as_of: datetime) -> ir.Table:
    """The scores expression: every output of :func:`decide`, computed in the database."""
    env = {field: features[col] for col, field in env_of(features.columns).items()}
    ops = IbisOps(features)
    out = decide(loaded.model, env, ops)
    staged = ops.table
    assert staged is not None  # IbisOps was given the features table
    cols = {
        "as_of": AsOf(as_of).lit,
        "model_version": ibis.literal(loaded.version),
        "user_id": staged[f"{USER}user_id"],
        "account_id": staged[f"{USER}account_id"],
    }
    for name in OUTPUT_FIELDS:
        cols[name] = _typed(name, out[name])
    cols["last_seen_at"] = staged.last_seen_at
    return staged.select(**cols)


_TYPES = {
    "fit_score": "int64",
    "usage_score": "int64",
    "mql_score": "int64",
    "score": "int64",
    "excluded": "boolean",
    "activated": "boolean",
    "is_pql": "boolean",
    "is_mql": "boolean",
    "points": "int64",
    "likelihood": "float64",
    "ranking": "float64",
}


def read_columns(expr: ir.Table, base: ir.Table) -> list[str]:
    """The columns of ``base`` that ``expr`` reads, in ``base``'s order, when ``expr`` is a
    chain of projections over it (what :func:`user_scores` builds): a column a step carries
    along but no later step reads is not read. Anything else over ``base`` (a join, a filter)
    reads every column, to be safe."""
    root, base_op = expr.op(), base.op()
    if not isinstance(root, ops.Project):
        return list(base.columns)
    read: set[str] = set()
    seen: set[ops.Field] = set()
    todo: list[ops.Node] = list(root.values.values())
    while todo:  # a field of a step is read only if a later step reads it
        for field in todo.pop().find(ops.Field, filter=lambda n: not isinstance(n, ops.Relation)):
            if field in seen:
                continue
            seen.add(field)
            if field.rel == base_op:
                read.add(field.name)
            elif isinstance(field.rel, ops.Project):
                todo.append(field.rel.values[field.name])
            else:
                return list(base.columns)
    return [c for c in base.columns if c in read]


def _typed(name: str, value: object) -> ir.Value:
    dtype = _TYPES.get(name, "string")
    expr = value if isinstance(value, ir.Value) else ibis.literal(value, type=dtype)
    return expr.cast(dtype)


#: What an account takes from its champion, the user who ranks first in it.
_CHAMPION_FIELDS = {
    "champion_user_id": "user_id",
    "tier": "tier",
    "segment": "segment",
    "motion": "motion",
    "icp_profile": "icp_profile",
}


def account_scores(
    user_scores_table: ir.Table,
    bound: Bound,
    loaded: LoadedModel,
    as_of: datetime,
    *,
    ordered_first: bool = False,
) -> ir.Table:
    """Roll users up to accounts: score by the model's rule, PQL users, seats active, champion.

    The champion is the first user by score, PQL, ranking and id: with ``ordered_first`` (a
    database whose ``first(x ORDER BY ...)`` keeps NULLs, see Backend.ordered_first) taken in
    the rollup's one GROUP BY, three times cheaper on DuckDB; else by a window and a join.
    Both give the same rows (tests/test_scoring.py)."""
    rollup = loaded.model.accounts
    s = user_scores_table.filter(user_scores_table.account_id.notnull())
    point = AsOf(as_of)
    active_since = point.minus(duration_seconds(rollup.active_within))
    order = [ibis.desc(s.score), s.is_pql.desc(), ibis.desc(s.ranking), s.user_id]
    aggregates = {
        "users": s.count(),
        "active_users": count_true((s.last_seen_at >= active_since).fill_null(False)),
        "pql_users": count_true(s.is_pql),
        "best_score": s.score.max(),
        "sum_score": s.score.sum(),
        "mean_score": s.score.mean(),
    }
    if ordered_first:
        picks = {
            name: s[column].first(order_by=order, include_null=True)
            for name, column in _CHAMPION_FIELDS.items()
        }
        joined = s.group_by("account_id").aggregate(**aggregates, **picks)
    else:
        ranked = s.mutate(_rank=ibis.row_number().over(group_by=s.account_id, order_by=order))
        champion = ranked.filter(ranked._rank == 0).select(
            account_id=ranked.account_id,
            **{name: ranked[column] for name, column in _CHAMPION_FIELDS.items()},
        )
        agg = s.group_by("account_id").aggregate(**aggregates)
        joined = agg.inner_join(champion, "account_id")
    if bound.accounts is not None:
        acc = bound.accounts.select("account_id", "name", "domain", "seats")
        joined = joined.left_join(acc, "account_id").drop("account_id_right")
    else:
        joined = joined.mutate(
            name=ibis.null("string"), domain=ibis.null("string"), seats=ibis.null("float64")
        )
    score = {
        "max": joined.best_score,
        "sum": joined.sum_score.clip(upper=100),
        "mean": (joined.mean_score + 0.5).floor(),
    }[rollup.score].cast("int64")
    share = ibis.ifelse(
        joined.seats > 0, joined.active_users.cast("float64") / joined.seats, ibis.null("float64")
    )
    share_ok = (share >= rollup.min_active_seat_share).fill_null(rollup.min_active_seat_share <= 0)
    is_pqa = (joined.pql_users >= rollup.min_pql_users) & (score >= rollup.min_score) & share_ok
    return joined.select(
        as_of=point.lit,
        model_version=ibis.literal(loaded.version),
        account_id=joined.account_id,
        name=joined.name,
        domain=joined.domain,
        users=joined.users.cast("int64"),
        active_users=joined.active_users.cast("int64"),
        pql_users=joined.pql_users.cast("int64"),
        seats=joined.seats.cast("float64"),
        seat_share_active=share.cast("float64"),
        score=score,
        best_score=joined.best_score.cast("int64"),
        champion_user_id=joined.champion_user_id,
        icp_profile=joined.icp_profile,
        tier=joined.tier,
        segment=joined.segment,
        motion=joined.motion,
        is_pqa=is_pqa,
    )
