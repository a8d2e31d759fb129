"""What the demo world's users do, each step drawn from the generator in turn: onboarding,
everyday product use, the free plan's limit, hand-raises, self-serve upgrades and marketing
engagement. Intent drives all of it but marketing, which is only weakly tied to it, as MQL
signals are in practice."""

from __future__ import annotations

import numpy as np

from .population import Accounts, Array, Span, Users, sigmoid
from .vocabulary import (
    FEATURES,
    FIRST,
    FREE_PROJECT_QUOTA,
    MARKETING_EVENTS,
    ONBOARDING,
    PRODUCT_EVENTS,
)


class Log:
    """The events of the world as they are made, one array per column per kind of event."""

    def __init__(self) -> None:
        self.users: list[Array] = []
        self.names: list[Array] = []
        self.ts: list[Array] = []
        self.props: list[Array] = []

    def emit(self, users, names, ts, props=None) -> None:
        self.users.append(np.asarray(users))
        self.names.append(np.asarray(names))
        self.ts.append(np.asarray(ts, dtype="datetime64[s]"))
        self.props.append(
            np.full(len(users), "{}", dtype=object)
            if props is None
            else np.asarray(props, dtype=object)
        )

    def sorted_before(self, end: np.datetime64) -> tuple[Array, Array, Array, Array]:
        """User, name, timestamp and properties of every event before `end`, in time order (ties
        in the order they were emitted)."""
        user, name = np.concatenate(self.users), np.concatenate(self.names)
        ts, props = np.concatenate(self.ts), np.concatenate(self.props)
        keep = ts < end
        user, name, ts, props = user[keep], name[keep], ts[keep], props[keep]
        srt = np.argsort(ts, kind="stable")
        return user[srt], name[srt], ts[srt], props[srt]


def onboarding(rng: np.random.Generator, users: Users, log: Log) -> None:
    """Onboarding steps in the first days, more likely for engaged users."""
    n_u = users.acct.size
    for k, step in enumerate(ONBOARDING):
        done = rng.random(n_u) < np.clip(0.35 + 0.6 * users.engagement - 0.12 * k, 0, 0.98)
        ts = users.signup_at + rng.integers(600, 3 * 86400, n_u).astype("timedelta64[s]") * (k + 1)
        log.emit(np.flatnonzero(done), np.full(int(done.sum()), step), ts[done])


def product_events(
    rng: np.random.Generator, users: Users, span: Span, log: Log
) -> tuple[Array, Array, Array]:
    """Everyday product use on the days each user is active (user, name, timestamp of each)."""
    n_u, engagement = users.acct.size, users.engagement
    day_idx = np.arange(-30, span.days)
    # activity probability per day, decaying for users whose interest fades
    fade = rng.uniform(0.0, 0.04, n_u) * (1.2 - engagement)
    u_grid, d_grid = np.meshgrid(np.arange(n_u), day_idx, indexing="ij")
    since = d_grid - users.signup_day[:, None]
    p_day = np.where(
        since >= 0, 0.08 + 0.5 * engagement[:, None] * np.exp(-fade[:, None] * since), 0.0
    )
    p_day = np.where(d_grid < span.days, p_day, 0.0)
    active = rng.random(p_day.shape) < p_day
    au, ad = u_grid[active], d_grid[active]
    n_events = rng.poisson(1.5 + 3.5 * engagement[au]) + 1
    eu = np.repeat(au, n_events)
    ets = span.at(rng, np.repeat(ad, n_events))
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
        np.char.add(rng.choice(FIRST, int(is_inv.sum())), "@"), users.email_domain[eu[is_inv]]
    )
    props[is_inv] = np.char.add(np.char.add('{"invitee": "', invitee), '"}')
    log.emit(eu, ename, ets, props)
    return eu, ename, ets


def limits(eu: Array, ename: Array, ets: Array, n_u: int, log: Log) -> tuple[Array, Array]:
    """The free plan's project limit, reached by the attempt past the quota: which users reached
    it, and when first (NaT for the others)."""
    order = np.lexsort((ets, eu))
    proj = order[ename[order] == "project_created"]
    proj_user = eu[proj]
    rank = np.arange(proj.size) - np.searchsorted(proj_user, proj_user, side="left")
    hit = rank == FREE_PROJECT_QUOTA  # the attempt that exceeds the free quota
    hit_users, hit_ts = proj_user[hit], ets[proj][hit]
    log.emit(
        hit_users,
        np.full(hit_users.size, "limit_reached"),
        hit_ts + np.timedelta64(5, "s"),
        np.full(hit_users.size, '{"limit": "projects"}'),
    )
    limited = np.zeros(n_u, bool)
    limited[hit_users] = True
    first_hit = np.full(n_u, np.datetime64("NaT"), dtype="datetime64[s]")
    first_hit[hit_users] = hit_ts
    return limited, first_hit


def hand_raises(
    rng: np.random.Generator, users: Users, accounts: Accounts, span: Span, log: Log
) -> tuple[Array, Array]:
    """Contact-sales and demo requests: who raised a hand, and when each user would have."""
    n_u = users.acct.size
    p_raise = sigmoid(users.intent * 1.1 - 3.6 + 0.8 * (accounts.employees[users.acct] >= 200))
    raised = rng.random(n_u) < p_raise
    raise_day = np.minimum(users.signup_day + rng.integers(2, 40, n_u), span.days - 1)
    raised &= raise_day >= np.maximum(users.signup_day, 0)
    raise_ts = span.at(rng, raise_day)
    kind = np.where(rng.random(n_u) < 0.5, "contact_sales_requested", "demo_requested")
    log.emit(np.flatnonzero(raised), kind[raised], raise_ts[raised])
    return raised, raise_ts


def upgrades(
    rng: np.random.Generator,
    users: Users,
    limited: Array,
    first_hit: Array,
    raised: Array,
    raise_ts: Array,
    span: Span,
    log: Log,
) -> tuple[Array, Array]:
    """Self-serve upgrades, likelier after the limit and rarer after a hand-raise (sales takes
    those): who upgraded, and when each user would have."""
    n_u = users.acct.size
    p_upgrade = sigmoid(1.4 * users.intent - 4.0 + 1.6 * limited - 1.2 * raised)
    upgraded = (rng.random(n_u) < p_upgrade) & ~users.student
    up_base = np.where(limited, first_hit, raise_ts)
    up_ts = up_base + rng.integers(3600, 21 * 86400, n_u).astype("timedelta64[s]")
    upgraded &= up_ts < span.end
    log.emit(
        np.flatnonzero(upgraded), np.full(int(upgraded.sum()), "plan_upgraded"), up_ts[upgraded]
    )
    return upgraded, up_ts


def marketing(rng: np.random.Generator, users: Users, span: Span, log: Log) -> None:
    """Marketing engagement, only weakly tied to intent."""
    n_u = users.acct.size
    mk_rate = rng.gamma(1.5, 3.0, n_u) * (0.8 + 0.4 * sigmoid(users.intent))
    n_mk = rng.poisson(mk_rate)
    mu = np.repeat(np.arange(n_u), n_mk)
    mts = span.at(rng, rng.integers(-30, span.days, mu.size))
    mp = np.array([0.5, 0.14, 0.07, 0.03, 0.04, 0.18, 0.04])
    mname = rng.choice(MARKETING_EVENTS, mu.size, p=mp)
    log.emit(mu, mname, mts)
