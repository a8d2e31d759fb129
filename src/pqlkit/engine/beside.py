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
from typing import Any

import ibis
import ibis.expr.types as ir

from ..features.build import account_scores, user_scores
from .core import ACCOUNT_SCORES, FEATURES, RUNS, USER_COLUMNS, USER_SCORES, Engine
from .observers import ACCOUNT_STATE, USER_STATE, WrittenRun, utc_now
from .results import RunResult

PASS_FEATURES = "pql_pass_features"
"""A pass's features, until its merge puts them in the place of :data:`FEATURES`."""
MOVES_ALONE = ("as_of",)
"""What moves with the as_of alone. A row that differs from the state's only there is not
written (rows at different dates already share the state: a rescore writes its users' at its
own). Nothing else may: the ranking's tie-break is the day the user was last seen, not the days
since (:mod:`pqlkit.scoring.decide`), or every row would differ at every pass."""
MERGED_USERS = "pql_pass_users"
MERGED_KEYS = "pql_pass_user_keys"
MERGED_ACCOUNTS = "pql_pass_accounts"
"""What a merge writes into the state (the users whose row changes, the ids of those whose row
is replaced or deleted, every account), before it does."""


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
    observers that keep the state (the hand-off records its transitions), and write the pass's
    row into the runs table. The users in ``forgotten`` (deleted by `pql forget` while the pass
    ran) are dropped from what it wrote.

    Only the users whose row the pass changes are written (with their features): a row equal
    but for :data:`MOVES_ALONE` stays as it is, still what a full run at its own as_of gives,
    since nothing of that user changed (a change is rescored). So the merge writes what time
    changed (a decay, a window), not every user; the accounts, fewer, are all written."""
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
        older = passed.filter(~passed.user_id.isin(newer.user_id))
        same = [older[c].identical_to(state[c]) for c in older.columns if c not in MOVES_ALONE]
        b.replace_table(MERGED_USERS, older.anti_join(state, same))
        # the state's users the pass has not (deleted since it began) go too
        vanished = state.filter(state.as_of <= at, ~state.user_id.isin(passed.user_id))
        users = b.table(MERGED_USERS)
        b.replace_table(MERGED_KEYS, users.select("user_id").union(vanished.select("user_id")))
        merged = older.union(_like(newer, passed))  # every user's row after the merge
        accounts = _merged_accounts(engine, done, merged, newer)
        b.replace_table(MERGED_ACCOUNTS, accounts)
        _move_features(b, users)
        account_state = b.table(ACCOUNT_STATE)
        written = WrittenRun(
            users=users,
            accounts=b.table(MERGED_ACCOUNTS),
            as_of=when,
            model_version=version,
            written_at=utc_now(),
            partial=True,
            users_affected=b.table(MERGED_KEYS),
            accounts_affected=account_state.select("account_id").union(
                b.table(MERGED_ACCOUNTS).select("account_id")
            ),
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


def _move_features(b: Any, users: ir.Table) -> None:
    """The features of the users the merge writes replace theirs in :data:`FEATURES` (every
    user's, when the kept ones are of another layout)."""
    fresh = b.table(PASS_FEATURES)
    if b.has_table(FEATURES) and b.table(FEATURES).schema() == fresh.schema():
        b.replace_keys(FEATURES, "user_id", fresh.filter(fresh.user_id.isin(users.user_id)))
    else:
        b.move_table(PASS_FEATURES, FEATURES)


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


__all__ = [
    "MERGED_ACCOUNTS",
    "MERGED_KEYS",
    "MERGED_USERS",
    "PASS_FEATURES",
    "Computed",
    "compute",
    "merge",
]
