"""Live rescoring: score again only the users whose data changed, and move the hand-off's state
on, all or nothing (used by `pql serve --model` after each flush; see :mod:`.live`).

What holds after any sequence of rescores (tests/test_live.py): each user's state row is what a
full run at that row's as_of gives, and each account's row is the rollup of its users' state
rows as of the account row's as_of. What time alone changes (windows, decay) waits for a full
pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge

from ..features.build import account_scores, count_true, restrict, user_features, user_scores
from .core import ACCOUNT_SCORES, FEATURES, USER_COLUMNS, USER_SCORES, Engine
from .observers import USER_STATE, WrittenRun, as_utc, utc_now
from .results import RunResult

TOUCHED = "pql_live_touched"
"""The users (and accounts) a live rescore scores again; replaced by each rescore."""
RESCORED = "pql_live_scored"
"""The rows a live rescore computed, before they move into the state; replaced by each."""
RESCORED_ACCOUNTS = "pql_live_scored_accounts"
RESCORED_FEATURES = "pql_live_features"
"""The rescored users' features (stored layout), before they replace theirs in FEATURES."""
AFFECTED = "pql_live_accounts"
"""The accounts a live rescore rolls up again; replaced by each rescore."""
AFFECTED_SCHEMA = ibis.schema({"account_id": "string"})
TOUCHED_SCHEMA = ibis.schema({"user_id": "string", "account_id": "string"})

TOUCHED_ARROW = pa.schema([("user_id", pa.string()), ("account_id", pa.string())])


def rescore(
    engine: Engine,
    user_ids: Iterable[str] = (),
    account_ids: Iterable[str] = (),
    as_of: datetime | str | None = None,
) -> RunResult:
    """Score again, as of ``as_of`` (now), only the named users and every user of the
    named accounts; roll up again the accounts they are in (or were in), from the state of
    each of their users; move the state on and tell the observers (the hand-off records
    its transitions), all or nothing. The other users keep their state.

    What holds after any sequence of rescores (tests/test_live.py): each user's state row
    is what a full run at that row's as_of gives, and each account's row is the rollup of
    its users' state rows as of the account row's as_of. What time alone changes (windows,
    decay) waits for a full pass. Without a state yet, this is a full run.

    Long because it is one transaction's steps in order (touched, features, scores, accounts,
    observers), as :meth:`Engine.run`."""
    started = time.perf_counter()
    engine.require_state_keeper("live rescoring")

    when = as_utc(as_of)
    version = engine.loaded.version
    touched = [{"user_id": str(u), "account_id": None} for u in dict.fromkeys(user_ids)]
    touched += [{"user_id": None, "account_id": str(a)} for a in dict.fromkeys(account_ids)]
    if not touched:
        return RunResult(when, version, 0, 0, 0, 0, 0.0, transitions=0)
    if not engine.backend.has_table(USER_STATE):
        return engine.run(when, checks=False)
    engine.ensure_tables()
    engine.backend.ensure_table(TOUCHED, TOUCHED_SCHEMA)
    engine.backend.ensure_table(AFFECTED, AFFECTED_SCHEMA)
    for scratch, like in ((RESCORED, USER_SCORES), (RESCORED_ACCOUNTS, ACCOUNT_SCORES)):
        # the scores' own column types, so the rescored rows and the state's compare
        template = engine.backend.table(like)
        if (
            not engine.backend.has_table(scratch)
            or engine.backend.table(scratch).schema() != template.schema()
        ):
            engine.backend.replace_table(scratch, template.limit(0))
    b = engine.backend
    features_sql = engine.sql_at("live-features", lambda w: _live_features(engine, w), when)
    with (
        engine.backend.errors("the live rescore failed and was rolled back"),
        engine.backend.transaction(),
    ):
        for scratch in (TOUCHED, RESCORED, AFFECTED, RESCORED_ACCOUNTS):
            engine.backend.delete(scratch, sge.true())
        engine.backend.insert(TOUCHED, pa.Table.from_pylist(touched, schema=TOUCHED_ARROW))
        b.replace_table(RESCORED_FEATURES, features_sql)
        scored = engine.sql_at(
            "live-users-from-stored",
            lambda w: user_scores(engine.from_stored(b.table(RESCORED_FEATURES)), engine.loaded, w),
            when,
        )
        b.insert(RESCORED, scored, list(USER_COLUMNS))
        _keep_features(engine)
        engine.backend.insert(AFFECTED, _affected_accounts(engine))
        engine.backend.insert(
            RESCORED_ACCOUNTS,
            engine.sql_at("live-accounts", lambda w: _live_accounts(engine, w), when),
            list(engine.backend.table(ACCOUNT_SCORES).columns),
        )
        users = engine.backend.table(RESCORED)
        accounts = engine.backend.table(RESCORED_ACCOUNTS)
        n = engine.tell(
            WrittenRun(
                users=users,
                accounts=accounts,
                as_of=when,
                model_version=version,
                written_at=utc_now(),
                partial=True,
                accounts_affected=engine.backend.table(AFFECTED),
            )
        )
        counts = engine.backend.rows(
            users.aggregate(users=users.count(), pqls=count_true(users.is_pql))
        )[0]
        accts = engine.backend.rows(
            accounts.aggregate(accounts=accounts.count(), pqas=count_true(accounts.is_pqa))
        )[0]
    return RunResult(
        as_of=when,
        model_version=version,
        users=int(counts["users"] or 0),
        pqls=int(counts["pqls"] or 0),
        accounts=int(accts["accounts"] or 0),
        pqas=int(accts["pqas"] or 0),
        seconds=time.perf_counter() - started,
        transitions=n,
    )


def _affected_accounts(engine: Engine) -> ir.Table:
    """The accounts a rescore rolls up again: those its users are in now, those they were
    in (a user who moved), and those named."""
    new, state = engine.backend.table(RESCORED), engine.backend.table(USER_STATE)
    touched = engine.backend.table(TOUCHED)
    ids = (
        new.select("account_id")
        .union(state.filter(state.user_id.isin(new.user_id)).select("account_id"))
        .union(touched.select("account_id"))
    )
    return ids.filter(ids.account_id.notnull()).distinct()


def _live_accounts(engine: Engine, when: datetime) -> ir.Table:
    """The affected accounts rolled up from their users' state, the rescored rows in place
    of the old."""
    new, state = engine.backend.table(RESCORED), engine.backend.table(USER_STATE)
    affected = engine.backend.table(AFFECTED)
    others = state.filter(
        state.account_id.isin(affected.account_id), ~state.user_id.isin(new.user_id)
    )
    merged = new.select(*USER_COLUMNS).union(others.select(*USER_COLUMNS))
    return account_scores(
        merged, engine.bound, engine.loaded, when, ordered_first=engine.backend.ordered_first
    )


def _live_features(engine: Engine, when: datetime) -> ir.Table:
    part = restrict(engine.bound, engine.backend.table(TOUCHED))
    features = user_features(
        part,
        engine.loaded,
        when,
        bitmask_days=engine.backend.bitmask_days,
        json=type(engine.backend),
    )
    return engine.to_stored(features, when)


def _keep_features(engine: Engine) -> None:
    """The rescored users' features replace theirs in FEATURES (a table of another layout,
    from another model, starts again empty: its users' lead pages compute theirs)."""
    b = engine.backend
    fresh = b.table(RESCORED_FEATURES)
    if not b.has_table(FEATURES) or b.table(FEATURES).schema() != fresh.schema():
        b.replace_table(FEATURES, fresh.limit(0))
    b.replace_keys(FEATURES, "user_id", fresh)
