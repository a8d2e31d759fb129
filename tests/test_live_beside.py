"""A full pass computed beside live rescoring (pqlkit.engine.beside), then merged: after any
story of batches, with the pass begun at any point of it and rescores going on meanwhile, every
user's and account's state is still what a full run gives at that row's as_of (and each account
the rollup of its users' rows), a user rescored after the pass began keeps the rescored row, and
the merge records no transition for them: nothing is recorded twice or undone. On DuckDB and
PostgreSQL, for generated models (the stories of tests/test_live.py)."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pqlkit.backends import connect
from pqlkit.cli import cli
from pqlkit.engine import FEATURES, RUNS, Engine
from pqlkit.engine.beside import compute, merge
from pqlkit.engine.rescore import rescore
from pqlkit.handoff.transitions import OUTBOX, USER_STATE
from pqlkit.model.load import parse_model
from pqlkit.usecases.session import Session

from .test_live import SETTINGS, START, _apply, _seed, check_state, story


def _check_beside(backend, model: dict, batches: list[dict], begin: int, monkeypatch) -> None:
    monkeypatch.setenv("PQL_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    loaded = parse_model(yaml.safe_dump(model), "live.yml")
    _seed(backend)
    engine = Session(backend, loaded).engine
    engine.run(START)
    begin = min(begin, len(batches))
    done = None
    for k, b in enumerate(batches):
        if k == begin:  # the pass begins after the rescores before the batch, as of then
            done = compute(Engine(loaded, backend), b["as_of"] - timedelta(days=3) + SECOND)
        _apply(backend, b)
        rescore(engine, b["touched"], b["accounts"], b["as_of"])
    if done is None:  # as of just before the last rescore, which it then keeps
        done = compute(Engine(loaded, backend), batches[-1]["as_of"] - SECOND)
    state = backend.table(USER_STATE)
    before = {r["user_id"]: r for r in backend.rows(state)}
    newer = {u for u, r in before.items() if r["as_of"] > done.as_of}
    merge(engine, done)
    after = {r["user_id"]: r for r in backend.rows(backend.table(USER_STATE))}
    for user in newer:  # rescored since the pass began: the rescored row stays
        assert after[user] == before[user], user
    for user, row in after.items():  # the others: as of the pass, or as they were
        if user not in newer and row["as_of"] != done.as_of:
            assert row == before[user], user
    o = backend.table(OUTBOX)
    merged = backend.rows(o.filter(o.as_of == done.as_of, o.entity == "user"))
    assert not {t["entity_id"] for t in merged} & newer
    check_state(backend, engine, loaded, batches[-1])


BEGIN = st.integers(0, 4)
SECOND = timedelta(seconds=1)
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)  # a failure shrinks for many minutes


@settings(max_examples=8, phases=PHASES, **SETTINGS)
@given(s=story(), begin=BEGIN)
def test_a_pass_merged_after_rescores_equals_full_runs_on_duckdb(s, begin, monkeypatch):
    backend = connect(":memory:")
    try:
        _check_beside(backend, *s, begin, monkeypatch)
    finally:
        backend.close()


@settings(max_examples=3, phases=PHASES, **SETTINGS)
@given(s=story(), begin=BEGIN)
def test_a_pass_merged_after_rescores_equals_full_runs_on_postgres(
    pg_server, s, begin, monkeypatch
):
    backend = connect(pg_server.create_database())
    try:
        _check_beside(backend, *s, begin, monkeypatch)
    finally:
        backend.close()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(
        cli, ["demo", "--dir", str(folder), "--accounts", "150", "--users", "600", "--days", "90"]
    )
    assert result.exit_code == 0, result.output
    return folder


def test_live_rescores_while_a_full_pass_runs_beside_and_records_nothing_twice(
    demo_dir, tmp_path, monkeypatch
):
    """Live.tick begins a due full pass on a connection of its own and goes on rescoring; a
    later tick merges it. The pass is held inside its thread until a rescore has recorded a
    transition, so the merge meets a user it must leave alone."""
    import pqlkit.engine.beside as beside
    from pqlkit.handoff.live import Live

    for name in ("demo.duckdb", "pql.yml"):
        shutil.copy(demo_dir / name, tmp_path / name)
    entered, gate = threading.Event(), threading.Event()
    real = beside.compute

    def held(engine, when):
        entered.set()
        assert gate.wait(60)
        return real(engine, when)

    monkeypatch.setattr(beside, "compute", held)
    live = Live(tmp_path / "pql.yml", env={}, serving=tmp_path / "serving.sqlite")
    backend = connect(str(tmp_path / "demo.duckdb"))
    try:
        live.tick(backend)  # the first full pass, here: there is no state yet
        assert live.stats.full_runs == 1 and live.passing is None
        live.full_every = 0.0
        live.tick(backend)  # due again: begun beside
        assert entered.wait(30)
        passing = live.passing
        assert passing is not None and passing.is_alive()
        s = backend.table(USER_STATE)
        user = backend.values(s.filter(s.segment == "free_user").select("user_id").limit(1))[0][0]
        live.full_every = 3600.0
        now = datetime.now(UTC).replace(tzinfo=None)
        event = {"message_id": "m_hand", "source": "test", "user_id": user, "anonymous_id": None,
                 "account_id": None, "event": "contact_sales_requested", "timestamp": now,
                 "received_at": now, "properties": "{}"}  # fmt: skip
        schema = backend.table("events").schema().to_pyarrow()
        backend.insert("events", pa.Table.from_pylist([event], schema=schema))
        live.note([user], SimpleNamespace(link_pairs=list, traits=[]))
        live.tick(backend)  # rescored while the pass is held: it does not wait for it
        assert live.stats.rescores == 1 and passing.is_alive()
        rescored = backend.rows(s.filter(s.user_id == user))[0]
        assert rescored["segment"] == "asked_for_sales"
        o = backend.table(OUTBOX)
        mine = backend.rows(o.filter(o.entity_id == user))
        assert "segment_changed" in {t["kind"] for t in mine if t["as_of"] == rescored["as_of"]}
        gate.set()
        passing.join(60)
        assert passing.computed is not None, passing.error
        before = {r["user_id"]: r for r in backend.rows(backend.table(USER_STATE))}
        live.tick(backend)  # merged
        assert live.stats.full_runs == 2 and live.passing is None
        when = passing.computed.as_of
        state = {r["user_id"]: r for r in backend.rows(backend.table(USER_STATE))}
        assert state[user] == rescored  # the newer row stays, and no transition for it
        assert backend.rows(o.filter(o.entity_id == user)) == mine
        moved = {u for u, r in state.items() if r["as_of"] == when}
        assert user not in moved  # the others: those time moved on (a window, a decay)
        assert all(r == before[u] for u, r in state.items() if u not in moved)
        runs = backend.table(RUNS)
        assert when in {r[0] for r in backend.values(runs.select("as_of"))}
        f = backend.table(FEATURES)
        kept = dict(backend.values(f.select("user_id", "as_of")))  # behind each user's row
        assert kept == {u: r["as_of"] for u, r in state.items()}
    finally:
        gate.set()
        live.finish(backend)
        backend.close()
