"""A realistic, seeded product-led SaaS: accounts, users, product and marketing events, and CRM
outcomes whose chances depend on behaviour and fit (so learning has real signal to find).

Pure data generation (numpy -> pyarrow); writing it anywhere is the caller's business. Who the
accounts and users are is drawn in `population`, what they do in `behaviour`; this module runs
the steps in order, decides the CRM outcomes and builds the tables.

Each user has a latent buying intent drawn from their fit (company size, industry, role) and
noise. Intent drives how often they are active, what they do (projects, invites, pricing,
upgrade clicks, hand-raises), whether they hit the free plan's limit and upgrade on their
own, and whether their account opens an opportunity and wins it. Marketing engagement is
only weakly tied to intent, as MQL signals are in practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from . import behaviour, population
from .population import Accounts, Array, Span, Users, sigmoid
from .vocabulary import COMPETITORS, COUNTRIES, COUNTRY_P


@dataclass(frozen=True)
class DemoSize:
    accounts: int = 5_000
    users: int = 20_000
    days: int = 90
    seed: int = 7


@dataclass
class DemoData:
    accounts: pa.Table
    users: pa.Table
    events: pa.Table
    outcomes: pa.Table
    start: datetime
    end: datetime


def generate(size: DemoSize = DemoSize(), end: datetime | None = None) -> DemoData:
    """Generate the whole demo world; deterministic for a given size, seed and end.

    Each step draws from the one generator in a fixed order, so the steps must run in this
    order for a seed to give the same world."""
    rng = np.random.default_rng(size.seed)
    end = end or datetime(2026, 11, 1)
    start = end - timedelta(days=size.days)
    span = Span(np.datetime64(start, "s"), np.datetime64(end, "s"), size.days)
    accounts = population.accounts(rng, size.accounts)
    users = population.users(rng, accounts, size.users, span)
    log = behaviour.Log()
    log.emit(np.arange(size.users), np.full(size.users, "signed_up"), users.signup_at)
    behaviour.onboarding(rng, users, log)
    eu, ename, ets = behaviour.product_events(rng, users, span, log)
    limited, first_hit = behaviour.limits(eu, ename, ets, size.users, log)
    raised, raise_ts = behaviour.hand_raises(rng, users, accounts, span, log)
    upgraded, up_ts = behaviour.upgrades(
        rng, users, limited, first_hit, raised, raise_ts, span, log
    )
    user_plan = np.where(upgraded, "paid", np.where(rng.random(size.users) < 0.08, "trial", "free"))
    behaviour.marketing(rng, users, span, log)
    ev_user, ev_name, ev_ts, ev_props = log.sorted_before(span.end)
    uid = np.char.add("u_", np.char.zfill(np.arange(size.users).astype(str), 6))
    aid = np.char.add("a_", np.char.zfill(np.arange(size.accounts).astype(str), 5))
    events = _events_table(ev_user, ev_name, ev_ts, ev_props, uid, aid[users.acct])
    used = np.isin(ev_name, ["feature_used", "project_created", "invite_sent"])
    usage_n = np.bincount(ev_user[used], minlength=size.users)
    outcomes = _outcomes(
        rng, accounts, users, usage_n, limited, raised, upgraded, up_ts, span, uid, aid
    )
    users_table = _users_table(rng, users, user_plan, uid, aid)
    accounts_table = _accounts_table(rng, accounts, aid)
    return DemoData(accounts_table, users_table, events, outcomes, start=start, end=end)


def _events_table(
    user: Array, name: Array, ts: Array, props: Array, uid: Array, user_aid: Array
) -> pa.Table:
    n_ev = user.size
    return pa.table(
        {
            "message_id": pa.array(np.char.add("m_", np.arange(n_ev).astype(str))),
            "user_id": pa.array(uid[user]),
            "anonymous_id": pa.nulls(n_ev, pa.string()),
            "account_id": pa.array(user_aid[user]),
            "event": pa.array(name.astype(str)),
            "timestamp": pa.array(ts.astype("datetime64[us]")),
            "properties": pa.array(props.astype(str)),
        }
    )


def _outcomes(
    rng: np.random.Generator,
    accounts: Accounts,
    users: Users,
    usage_n: Array,
    limited: Array,
    raised: Array,
    upgraded: Array,
    up_ts: Array,
    span: Span,
    uid: Array,
    aid: Array,
) -> pa.Table:
    """Opportunities and deals, likelier for accounts whose users show intent and use the
    product, and the self-serve upgrades as won deals of their own."""
    n_a, n_u, acct = accounts.employees.size, users.acct.size, users.acct
    act = np.log1p(usage_n)
    acct_intent = np.full(n_a, -9.0)
    np.maximum.at(
        acct_intent, acct, users.intent + 0.35 * act - 1.0 * users.personal - 2.0 * users.student
    )
    acct_raised = np.zeros(n_a, bool)
    acct_raised[acct[raised]] = True
    acct_limited = np.zeros(n_a, bool)
    acct_limited[acct[limited]] = True
    p_opp = sigmoid(1.1 * acct_intent - 5.2 + 1.5 * acct_raised + 0.7 * acct_limited)
    p_opp[np.isin(accounts.domains, COMPETITORS)] = 0.0
    has_opp = rng.random(n_a) < p_opp
    opp_accounts = np.flatnonzero(has_opp)
    first_user = np.full(n_a, -1)
    first_user[acct[::-1]] = np.arange(n_u)[::-1]
    champ_day = np.clip(
        users.signup_day[first_user[opp_accounts]] + rng.integers(10, 60, opp_accounts.size),
        0,
        span.days + 20,
    )
    opp_created = span.at(rng, champ_day)
    p_win = sigmoid(0.9 * acct_intent[opp_accounts] - 1.4 + 0.5 * accounts.fit[opp_accounts])
    cycle = rng.integers(14, 75, opp_accounts.size).astype("timedelta64[D]")
    closed_at = opp_created + cycle
    resolved = closed_at < span.end
    won = rng.random(opp_accounts.size) < p_win
    stage = np.where(resolved, np.where(won, "won", "lost"), "open")
    amount = np.round(
        np.where(accounts.employees[opp_accounts] >= 1000, 60_000, 12_000)
        * rng.uniform(0.5, 1.8, opp_accounts.size),
        -2,
    )
    opp_keep = opp_created < span.end
    n_o = int(opp_keep.sum())
    ss_users = np.flatnonzero(upgraded)
    return pa.table(
        {
            "outcome_id": pa.array(
                [f"o_{i:05d}" for i in range(n_o)] + [f"s_{i:05d}" for i in range(ss_users.size)],
                pa.string(),
            ),
            "account_id": pa.array(
                np.concatenate([aid[opp_accounts[opp_keep]], aid[acct[ss_users]]])
            ),
            "user_id": pa.array([None] * n_o + list(uid[ss_users]), pa.string()),
            "kind": pa.array(["opportunity"] * n_o + ["self_serve"] * ss_users.size, pa.string()),
            "created_at": pa.array(
                np.concatenate([opp_created[opp_keep], up_ts[ss_users]]).astype("datetime64[us]")
            ),
            "closed_at": pa.array(
                np.concatenate(
                    [
                        np.where(resolved[opp_keep], closed_at[opp_keep], np.datetime64("NaT")),
                        up_ts[ss_users],
                    ]
                ).astype("datetime64[us]")
            ),
            "stage": pa.array(np.concatenate([stage[opp_keep], np.full(ss_users.size, "won")])),
            "amount": pa.array(np.concatenate([amount[opp_keep], np.full(ss_users.size, 600.0)])),
        }
    )


def _users_table(
    rng: np.random.Generator, users: Users, plan: Array, uid: Array, aid: Array
) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(uid),
            "email": pa.array(users.emails.astype(str)),
            "account_id": pa.array(aid[users.acct]),
            "created_at": pa.array(users.signup_at.astype("datetime64[us]")),
            "plan": pa.array(plan.astype(str)),
            "role": pa.array(users.role.astype(str)),
            "country": pa.array(rng.choice(COUNTRIES, users.acct.size, p=COUNTRY_P).astype(str)),
        }
    )


def _accounts_table(rng: np.random.Generator, accounts: Accounts, aid: Array) -> pa.Table:
    return pa.table(
        {
            "account_id": pa.array(aid),
            "domain": pa.array(accounts.domains.astype(str)),
            "name": pa.array(accounts.names.astype(str)),
            "industry": pa.array(accounts.industry.astype(str)),
            "employees": pa.array(accounts.employees),
            "country": pa.array(rng.choice(COUNTRIES, aid.size, p=COUNTRY_P).astype(str)),
            "tech_stack": pa.array(accounts.tech, pa.list_(pa.string())),
            "plan": pa.array(accounts.plan.astype(str)),
            "seats": pa.array(accounts.seats),
        }
    )


def describe(data: DemoData) -> dict[str, int]:
    return {
        "accounts": data.accounts.num_rows,
        "users": data.users.num_rows,
        "events": data.events.num_rows,
        "opportunities": sum(
            1 for k in data.outcomes.column("kind").to_pylist() if k == "opportunity"
        ),
        "won": sum(
            1
            for k, s in zip(
                data.outcomes.column("kind").to_pylist(),
                data.outcomes.column("stage").to_pylist(),
                strict=True,
            )
            if k == "opportunity" and s == "won"
        ),
    }


__all__ = ["DemoData", "DemoSize", "describe", "generate"]
