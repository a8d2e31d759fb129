"""A full pass computed beside live rescoring (`pql serve --model`), so a rescore never waits for
one: what time alone changes (windows, decay) is caught without holding up the hand-off.

:func:`compute`, on a connection of its own, does the heavy part in one transaction: every
user's features (into :data:`PASS_FEATURES`), their scores and the accounts' under the pass's
key in the score tables (the history), and the observers that keep no state (the challengers).
The state, the kept features and the runs table are left alone, so the flusher goes on storing
and rescoring meanwhile.

:func:`merge`, on the flusher's connection between two rescores, moves the state on in one
short transaction. A user (an account) a rescore wrote since the pass's as_of keeps that newer
row: the pass's older row neither replaces it nor records a transition for it, so no
transition is recorded twice or undone. An account rescored meanwhile is rolled up again from
its users' merged rows, so every account's row stays the rollup of its users' rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.types as ir

from ..features.build import account_scores, user_scores
from .core import ACCOUNT_SCORES, FEATURES, RUNS, USER_COLUMNS, USER_SCORES, Engine
from .observers import ACCOUNT_STATE, USER_STATE, WrittenRun, utc_now
from .results import RunResult

PASS_FEATURES = "pql_pass_features"
"""A pass's features, until its merge puts them in the place of :data:`FEATURES`."""
MERGED_USERS = "pql_pass_users"
MERGED_ACCOUNTS = "pql_pass_accounts"
"""The state a merge moves to (the pass's rows, and those rescored since), before it does."""


@dataclass(frozen=True)
class Computed:
    """A pass computed and not merged yet."""

    as_of: datetime
    model_version: str
    seconds: float


def compute(engine: Engine, when: datetime) -> Computed:
    """Every user's features and scores and every account's as of ``when``, written as the
    pass's rows (see the module); tell the observers that keep no state. ``engine`` is opened
    on a connection of its own with only those observers."""
    started = time.perf_counter()
    b, loaded, version = engine.backend, engine.loaded, engine.loaded.version
    features_sql = engine.sql_at(
        "features", lambda w: engine.to_stored(engine.features(w), w), when
    )
    key = {"as_of": when, "model_version": version}
    with (
        b.errors("the full pass failed and was rolled back (the state is intact)"),
        b.transaction(),
    ):
        with b.uncompressed_writes():  # replaced by the next pass
            b.replace_table(PASS_FEATURES, features_sql)
        users_sql = engine.sql_at(
            "users-from-pass",
            lambda w: user_scores(engine.from_stored(b.table(PASS_FEATURES)), loaded, w),
            when,
        )
        b.replace_rows(USER_SCORES, key, users_sql, list(USER_COLUMNS))
        users = engine.stored_users(when, version)
        accounts = account_scores(
            users, engine.bound, loaded, when, ordered_first=b.ordered_first
        ).order_by("account_id")
        b.replace_rows(ACCOUNT_SCORES, key, accounts)
        written = WrittenRun(
            users=users,
            accounts=engine.stored_accounts(when, version),
            as_of=when,
            model_version=version,
            written_at=utc_now(),
        )
        for observer in engine.observers:
            if not getattr(observer, "keeps_state", False):
                observer.on_written(b, written)
    return Computed(when, version, time.perf_counter() - started)


def merge(engine: Engine, done: Computed, forgotten: Iterable[str] = ()) -> RunResult:
    """Move the state on to the pass ``done`` (see the module), all or nothing, telling the
    observers that keep the state (the hand-off records its transitions); the pass's features
    become the kept ones and its row goes into the runs table. The users in ``forgotten``
    (deleted by `pql forget` while the pass ran) are dropped from what it wrote."""
    started = time.perf_counter()
    b = engine.backend
    when, version = done.as_of, done.model_version
    key = {"as_of": when, "model_version": version}
    at = ibis.timestamp(when)
    gone = sorted(set(forgotten))
    with b.errors("merging the full pass failed and was rolled back"), b.transaction():
        if gone:
            for table in (USER_SCORES, PASS_FEATURES):
                b.delete(table, {"user_id": gone})
        engine.ensure_tables()
        passed, state = engine.stored_users(when, version), b.table(USER_STATE)
        newer = state.filter(state.as_of > at)
        b.replace_table(
            MERGED_USERS,
            passed.filter(~passed.user_id.isin(newer.user_id)).union(_like(newer, passed)),
        )
        users = b.table(MERGED_USERS)
        b.replace_table(MERGED_ACCOUNTS, _merged_accounts(engine, done, users, newer))
        fresh = users.filter(users.as_of > at)
        if b.has_table(FEATURES) and b.table(FEATURES).schema() == b.table(PASS_FEATURES).schema():
            f = b.table(FEATURES)  # the rescored users' features, newer than the pass's
            b.replace_keys(
                PASS_FEATURES, "user_id", f.filter(f.user_id.isin(fresh.user_id)), keys=fresh
            )
        b.move_table(PASS_FEATURES, FEATURES)
        written = WrittenRun(
            users=users,
            accounts=b.table(MERGED_ACCOUNTS),
            as_of=when,
            model_version=version,
            written_at=utc_now(),
            merged=True,
        )
        told = [
            n
            for o in engine.observers
            if getattr(o, "keeps_state", False) and (n := o.on_written(b, written)) is not None
        ]
        counts = engine._counts(when, version)
        b.replace_rows(RUNS, key, [engine._run_row(when, counts)])
    return RunResult(
        as_of=when,
        model_version=version,
        seconds=done.seconds + time.perf_counter() - started,
        users=counts["users"],
        pqls=counts["pqls"],
        accounts=counts["accounts"],
        pqas=counts["pqas"],
        transitions=sum(told) if told else None,
    )


def _merged_accounts(engine: Engine, done: Computed, users: ir.Table, newer: ir.Table) -> ir.Table:
    """The pass's accounts, those a rescore touched since rolled up again from ``users`` (the
    merged rows): those rescored since, and those the users rescored since (``newer``) were
    in then or are in now (a user who moved leaves an account the pass still has)."""
    b, at = engine.backend, ibis.timestamp(done.as_of)
    passed = engine.stored_users(done.as_of, done.model_version)
    accounts_passed = engine.stored_accounts(done.as_of, done.model_version)
    account_state = b.table(ACCOUNT_STATE)
    rolled = account_state.filter(account_state.as_of > at)
    touched = (
        rolled.select("account_id")
        .union(passed.filter(passed.user_id.isin(newer.user_id)).select("account_id"))
        .union(newer.select("account_id"))
    )
    touched = touched.filter(touched.account_id.notnull())  # NOT IN a NULL keeps nothing
    kept = accounts_passed.filter(~accounts_passed.account_id.isin(touched.account_id))
    latest = max(
        (v for t in (rolled, newer) if (v := b.values(t.aggregate(m=t.as_of.max()))[0][0])),
        default=None,
    )
    if latest is None:
        return kept
    again = account_scores(  # as of the latest rescore
        users.filter(users.account_id.isin(touched.account_id)),
        engine.bound,
        engine.loaded,
        latest,
        ordered_first=b.ordered_first,
    )
    return kept.union(_like(again, accounts_passed))


def _like(t: ir.Table, like: ir.Table) -> ir.Table:
    """``t``'s columns as ``like`` has them (names, order and types), to be united with it."""
    return t.select(*[t[c].cast(dtype).name(c) for c, dtype in like.schema().items()])


__all__ = ["MERGED_ACCOUNTS", "MERGED_USERS", "PASS_FEATURES", "Computed", "compute", "merge"]
