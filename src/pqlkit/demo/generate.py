"""A realistic, seeded product-led SaaS: accounts, users, product and marketing events, and CRM
outcomes whose chances depend on behaviour and fit (so learning has real signal to find).

Pure data generation (numpy -> pyarrow); writing it anywhere is the caller's business.

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

from .vocabulary import (
    COMPETITORS,
    CORE_INDUSTRIES,
    COUNTRIES,
    COUNTRY_P,
    FEATURES,
    FIRST,
    FREE_MAIL,
    FREE_PROJECT_QUOTA,
    INDUSTRIES,
    INDUSTRY_P,
    LAST,
    MARKETING_EVENTS,
    ONBOARDING,
    PRODUCT_EVENTS,
    ROLE_P,
    ROLES,
    SENIOR,
    STACK,
    STACK_P,
    SUFFIX,
    WORDS,
)


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


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def generate(size: DemoSize = DemoSize(), end: datetime | None = None) -> DemoData:
    """Generate the whole demo world; deterministic for a given size, seed and end."""
    rng = np.random.default_rng(size.seed)
    end = end or datetime(2026, 11, 1)
    start = end - timedelta(days=size.days)
    n_a, n_u = size.accounts, size.users

    # --- accounts ------------------------------------------------------------------------
    employees = np.clip(np.round(np.exp(rng.normal(3.6, 1.6, n_a))), 1, 50_000).astype(np.int64)
    industry = rng.choice(INDUSTRIES, n_a, p=INDUSTRY_P)
    w1, w2, sfx = rng.choice(WORDS, n_a), rng.choice(WORDS, n_a), rng.choice(SUFFIX, n_a)
    names = np.char.add(
        np.char.add(np.char.capitalize(w1), np.char.capitalize(w2)),
        np.char.add(" ", np.char.capitalize(sfx)),
    )
    domains = np.array([f"{a}{b}{i}.com" for i, (a, b) in enumerate(zip(w1, w2, strict=True))])
    competitor = rng.random(n_a) < 0.004
    domains[competitor] = rng.choice(COMPETITORS, int(competitor.sum()))
    acct_plan = np.where(
        rng.random(n_a) < np.where(employees >= 1000, 0.12, 0.005), "enterprise", "free"
    )
    seats = np.maximum(1, np.round(employees * rng.uniform(0.02, 0.2, n_a))).astype(np.int64)
    stack_mask = rng.random((n_a, len(STACK))) < STACK_P
    tech = [list(STACK[row]) for row in stack_mask]
    account_fit = (
        0.9 * ((employees >= 50) & (employees < 1000))
        + 0.5 * (employees >= 1000)
        + 0.6 * np.isin(industry, list(CORE_INDUSTRIES))
        + 0.3 * (stack_mask[:, 0] | stack_mask[:, 1])
        - 0.8 * (employees < 5)
    )

    # --- users -----------------------------------------------------------------------------
    weights = np.log1p(employees).astype(float)
    acct = rng.choice(n_a, n_u, p=weights / weights.sum())
    acct[: min(n_a, n_u)] = np.arange(min(n_a, n_u))  # every account has a user
    role = rng.choice(ROLES, n_u, p=ROLE_P)
    first, last = rng.choice(FIRST, n_u), rng.choice(LAST, n_u)
    local = np.char.add(np.char.add(first, "."), last)
    local = np.char.add(local, np.arange(n_u).astype(str))
    personal = rng.random(n_u) < 0.14
    email_domain = np.where(personal, rng.choice(FREE_MAIL, n_u), domains[acct])
    student = role == "Student"
    email_domain = np.where(student, "state-university.edu", email_domain)
    emails = np.char.add(np.char.add(local, "@"), email_domain)
    signup_day = rng.integers(-30, size.days - 2, n_u)
    base = np.datetime64(start, "s")
    signup_at = base + (signup_day * 86400 + rng.integers(0, 86400, n_u)).astype("timedelta64[s]")
    senior = np.isin(role, list(SENIOR))
    intent = (
        account_fit[acct]
        + 0.7 * senior
        - 1.5 * student
        - 0.7 * personal
        + rng.normal(0, 1.0, n_u)
        - 0.6
    )
    engagement = _sigmoid(intent + rng.normal(0, 0.6, n_u))

    # --- product events ----------------------------------------------------------------------
    rows_user: list[np.ndarray] = []
    rows_event: list[np.ndarray] = []
    rows_ts: list[np.ndarray] = []
    rows_props: list[np.ndarray] = []

    def emit(users, names, ts, props=None):
        rows_user.append(np.asarray(users))
        rows_event.append(np.asarray(names))
        rows_ts.append(np.asarray(ts, dtype="datetime64[s]"))
        rows_props.append(
            np.full(len(users), "{}", dtype=object)
            if props is None
            else np.asarray(props, dtype=object)
        )

    emit(np.arange(n_u), np.full(n_u, "signed_up"), signup_at)
    # onboarding steps in the first days, more likely for engaged users
    for k, step in enumerate(ONBOARDING):
        done = rng.random(n_u) < np.clip(0.35 + 0.6 * engagement - 0.12 * k, 0, 0.98)
        ts = signup_at + rng.integers(600, 3 * 86400, n_u).astype("timedelta64[s]") * (k + 1)
        emit(np.flatnonzero(done), np.full(int(done.sum()), step), ts[done])

    days_total = size.days
    day_idx = np.arange(-30, days_total)
    # activity probability per day, decaying for users whose interest fades
    fade = rng.uniform(0.0, 0.04, n_u) * (1.2 - engagement)
    u_grid, d_grid = np.meshgrid(np.arange(n_u), day_idx, indexing="ij")
    since = d_grid - signup_day[:, None]
    p_day = np.where(
        since >= 0, 0.08 + 0.5 * engagement[:, None] * np.exp(-fade[:, None] * since), 0.0
    )
    p_day = np.where(d_grid < days_total, p_day, 0.0)
    active = rng.random(p_day.shape) < p_day
    au, ad = u_grid[active], d_grid[active]
    n_events = rng.poisson(1.5 + 3.5 * engagement[au]) + 1
    eu = np.repeat(au, n_events)
    eday = np.repeat(ad, n_events)
    ets = base + (eday * 86400 + rng.integers(0, 86400, eu.size)).astype("timedelta64[s]")
    eng = engagement[eu]
    probs = np.stack(
        [
            np.full(eu.size, 0.30),
            0.45 + 0.1 * eng,
            0.015 + 0.05 * eng,
            0.005 + 0.035 * eng,
            0.005 + 0.03 * eng * eng,
            0.001 + 0.012 * eng * eng,
        ],
        axis=1,
    )
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    pick = (rng.random(eu.size)[:, None] > cum).sum(axis=1)
    ename = PRODUCT_EVENTS[np.minimum(pick, len(PRODUCT_EVENTS) - 1)]
    # features: engaged users explore more of the product
    breadth = np.clip((2 + 6 * eng).astype(int), 1, len(FEATURES))
    feat = FEATURES[(rng.random(eu.size) * breadth).astype(int)]
    props = np.full(eu.size, "{}", dtype=object)
    is_feat = ename == "feature_used"
    props[is_feat] = np.char.add(np.char.add('{"feature": "', feat[is_feat]), '"}')
    is_inv = ename == "invite_sent"
    invitee = np.char.add(
        np.char.add(rng.choice(FIRST, int(is_inv.sum())), "@"), email_domain[eu[is_inv]]
    )
    props[is_inv] = np.char.add(np.char.add('{"invitee": "', invitee), '"}')
    emit(eu, ename, ets, props)

    # --- limits, hand-raises, self-serve upgrades --------------------------------------------
    order = np.lexsort((ets, eu))
    proj = order[ename[order] == "project_created"]
    proj_user = eu[proj]
    rank = np.arange(proj.size) - np.searchsorted(proj_user, proj_user, side="left")
    hit = rank == FREE_PROJECT_QUOTA  # the attempt that exceeds the free quota
    hit_users, hit_ts = proj_user[hit], ets[proj][hit]
    emit(
        hit_users,
        np.full(hit_users.size, "limit_reached"),
        hit_ts + np.timedelta64(5, "s"),
        np.full(hit_users.size, '{"limit": "projects"}'),
    )
    limited = np.zeros(n_u, bool)
    limited[hit_users] = True

    p_raise = _sigmoid(intent * 1.1 - 3.6 + 0.8 * (employees[acct] >= 200))
    raised = rng.random(n_u) < p_raise
    raise_day = np.minimum(signup_day + rng.integers(2, 40, n_u), days_total - 1)
    raised &= raise_day >= np.maximum(signup_day, 0)
    raise_ts = base + (raise_day * 86400 + rng.integers(0, 86400, n_u)).astype("timedelta64[s]")
    kind = np.where(rng.random(n_u) < 0.5, "contact_sales_requested", "demo_requested")
    emit(np.flatnonzero(raised), kind[raised], raise_ts[raised])

    p_upgrade = _sigmoid(1.4 * intent - 4.0 + 1.6 * limited - 1.2 * raised)
    upgraded = (rng.random(n_u) < p_upgrade) & ~student
    first_hit = np.full(n_u, np.datetime64("NaT"), dtype="datetime64[s]")
    first_hit[hit_users] = hit_ts
    up_base = np.where(limited, first_hit, raise_ts)
    up_ts = up_base + rng.integers(3600, 21 * 86400, n_u).astype("timedelta64[s]")
    end64 = np.datetime64(end, "s")
    upgraded &= up_ts < end64
    emit(np.flatnonzero(upgraded), np.full(int(upgraded.sum()), "plan_upgraded"), up_ts[upgraded])
    user_plan = np.where(upgraded, "paid", np.where(rng.random(n_u) < 0.08, "trial", "free"))

    # --- marketing engagement (weakly tied to intent) -----------------------------------------
    mk_rate = rng.gamma(1.5, 3.0, n_u) * (0.8 + 0.4 * _sigmoid(intent))
    n_mk = rng.poisson(mk_rate)
    mu = np.repeat(np.arange(n_u), n_mk)
    mday = rng.integers(-30, days_total, mu.size)
    mts = base + (mday * 86400 + rng.integers(0, 86400, mu.size)).astype("timedelta64[s]")
    mp = np.array([0.5, 0.14, 0.07, 0.03, 0.04, 0.18, 0.04])
    mname = rng.choice(MARKETING_EVENTS, mu.size, p=mp)
    emit(mu, mname, mts)

    # --- assemble events ------------------------------------------------------------------------
    ev_user = np.concatenate(rows_user)
    ev_name = np.concatenate(rows_event)
    ev_ts = np.concatenate(rows_ts)
    ev_props = np.concatenate(rows_props)
    keep = ev_ts < end64
    ev_user, ev_name, ev_ts, ev_props = ev_user[keep], ev_name[keep], ev_ts[keep], ev_props[keep]
    srt = np.argsort(ev_ts, kind="stable")
    ev_user, ev_name, ev_ts, ev_props = ev_user[srt], ev_name[srt], ev_ts[srt], ev_props[srt]
    uid = np.char.add("u_", np.char.zfill(np.arange(n_u).astype(str), 6))
    aid = np.char.add("a_", np.char.zfill(np.arange(n_a).astype(str), 5))
    n_ev = ev_user.size
    events = pa.table(
        {
            "message_id": pa.array(np.char.add("m_", np.arange(n_ev).astype(str))),
            "user_id": pa.array(uid[ev_user]),
            "anonymous_id": pa.nulls(n_ev, pa.string()),
            "account_id": pa.array(aid[acct[ev_user]]),
            "event": pa.array(ev_name.astype(str)),
            "timestamp": pa.array(ev_ts.astype("datetime64[us]")),
            "properties": pa.array(ev_props.astype(str)),
        }
    )

    # --- outcomes: opportunities and deals ------------------------------------------------------
    usage_n = np.bincount(
        ev_user[np.isin(ev_name, ["feature_used", "project_created", "invite_sent"])], minlength=n_u
    )
    act = np.log1p(usage_n)
    acct_intent = np.full(n_a, -9.0)
    np.maximum.at(acct_intent, acct, intent + 0.35 * act - 1.0 * personal - 2.0 * student)
    acct_raised = np.zeros(n_a, bool)
    acct_raised[acct[raised]] = True
    acct_limited = np.zeros(n_a, bool)
    acct_limited[acct[limited]] = True
    p_opp = _sigmoid(1.1 * acct_intent - 5.2 + 1.5 * acct_raised + 0.7 * acct_limited)
    p_opp[np.isin(domains, COMPETITORS)] = 0.0
    has_opp = rng.random(n_a) < p_opp
    opp_accounts = np.flatnonzero(has_opp)
    first_user = np.full(n_a, -1)
    first_user[acct[::-1]] = np.arange(n_u)[::-1]
    champ_day = np.clip(
        signup_day[first_user[opp_accounts]] + rng.integers(10, 60, opp_accounts.size),
        0,
        days_total + 20,
    )
    opp_created = base + (champ_day * 86400 + rng.integers(0, 86400, opp_accounts.size)).astype(
        "timedelta64[s]"
    )
    p_win = _sigmoid(0.9 * acct_intent[opp_accounts] - 1.4 + 0.5 * account_fit[opp_accounts])
    cycle = rng.integers(14, 75, opp_accounts.size).astype("timedelta64[D]")
    closed_at = opp_created + cycle
    resolved = closed_at < end64
    won = rng.random(opp_accounts.size) < p_win
    stage = np.where(resolved, np.where(won, "won", "lost"), "open")
    amount = np.round(
        np.where(employees[opp_accounts] >= 1000, 60_000, 12_000)
        * rng.uniform(0.5, 1.8, opp_accounts.size),
        -2,
    )
    opp_keep = opp_created < end64
    n_o = int(opp_keep.sum())
    ss_users = np.flatnonzero(upgraded)
    outcomes = pa.table(
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

    users = pa.table(
        {
            "user_id": pa.array(uid),
            "email": pa.array(emails.astype(str)),
            "account_id": pa.array(aid[acct]),
            "created_at": pa.array(signup_at.astype("datetime64[us]")),
            "plan": pa.array(user_plan.astype(str)),
            "role": pa.array(role.astype(str)),
            "country": pa.array(rng.choice(COUNTRIES, n_u, p=COUNTRY_P).astype(str)),
        }
    )
    accounts = pa.table(
        {
            "account_id": pa.array(aid),
            "domain": pa.array(domains.astype(str)),
            "name": pa.array(names.astype(str)),
            "industry": pa.array(industry.astype(str)),
            "employees": pa.array(employees),
            "country": pa.array(rng.choice(COUNTRIES, n_a, p=COUNTRY_P).astype(str)),
            "tech_stack": pa.array(tech, pa.list_(pa.string())),
            "plan": pa.array(acct_plan.astype(str)),
            "seats": pa.array(seats),
        }
    )
    return DemoData(accounts, users, events, outcomes, start=start, end=end)


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
