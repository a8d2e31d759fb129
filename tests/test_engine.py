"""Behaviour of a scoring run, written once and run on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from pqlkit.demo.load import canonical_events
from pqlkit.engine import ACCOUNT_SCORES, USER_SCORES, Engine
from pqlkit.errors import BackendError
from pqlkit.model.load import load_model
from pqlkit.scoring.decide import OUTPUT_FIELDS

from .conftest import DEMO_END


def _engine(model_file, backend) -> Engine:
    return Engine(load_model(model_file), backend)


def _rows(table) -> dict[str, dict]:
    return {r["user_id"]: r for r in table.to_pyarrow().to_pylist()}


def test_run_writes_scores_for_every_user(model_file, world_backend, small_world):
    engine = _engine(model_file, world_backend)
    result = engine.run(DEMO_END)
    assert result.users == small_world.users.num_rows
    rows = _rows(engine.stored_users(result.as_of, result.model_version))
    assert len(rows) == result.users
    assert 0 < result.pqls < result.users
    for r in rows.values():
        assert 0 <= r["score"] <= 100
        if r["is_pql"]:
            assert r["icp_profile"] and not r["excluded"] and r["activated"]
            assert r["score"] >= engine.model.thresholds.pql_score
        if r["excluded"]:
            assert r["exclusion_reason"] in {
                "competitor",
                "student",
                "personal_email",
                "too_small",
                "existing_customer",
            }
    segments = {r["segment"] for r in rows.values()}
    assert segments == {
        "converted_without_assistance",
        "asked_for_sales",
        "maxed_out_free",
        "free_user",
    }
    motions = {r["motion"] for r in rows.values()}
    assert motions == {"self_serve", "sales_assist", "enterprise", "expansion"}


def test_ibis_path_equals_plain_python_path(model_file, world_backend):
    """The decision logic computed in SQL equals the same logic run on plain Python values."""
    engine = _engine(model_file, world_backend)
    in_db = _rows(engine.scores(DEMO_END))
    in_python = {r["user_id"]: r for r in engine.python_scores(DEMO_END)}
    assert in_db.keys() == in_python.keys()
    mismatches = [
        (uid, f, in_db[uid][f], in_python[uid][f])
        for uid in in_db
        for f in OUTPUT_FIELDS
        if in_db[uid][f] != in_python[uid][f]
    ]
    assert mismatches == []


def test_events_after_as_of_change_nothing(model_file, world_backend, small_world):
    engine = _engine(model_file, world_backend)
    as_of = DEMO_END - timedelta(days=10)
    before = _rows(engine.scores(as_of))
    # Plant a burst of strong buying signals after as_of for every user.
    users = small_world.users.column("user_id").to_pylist()
    names = [
        "contact_sales_requested",
        "project_created",
        "invite_sent",
        "plan_upgraded",
        "feature_used",
        "onboarding_profile_completed",
    ]
    n = len(users) * len(names)
    future = pa.table(
        {
            "message_id": [f"future_{i}" for i in range(n)],
            "user_id": [u for u in users for _ in names],
            "anonymous_id": pa.nulls(n, pa.string()),
            "account_id": pa.nulls(n, pa.string()),
            "event": [e for _ in users for e in names],
            "timestamp": [as_of + timedelta(seconds=1 + i % 3600) for i in range(n)],
            "properties": ['{"feature": "x", "invitee": "z@y.com"}'] * n,
        }
    )
    world_backend.insert("events", canonical_events(future))
    after = _rows(engine.scores(as_of))
    assert after == before
    # ...and they do count once as_of moves past them.
    later = _rows(engine.scores(as_of + timedelta(hours=2)))
    assert later != before


def test_users_created_after_as_of_are_not_scored(model_file, world_backend, small_world):
    engine = _engine(model_file, world_backend)
    as_of = DEMO_END - timedelta(days=30)
    scored = set(_rows(engine.scores(as_of)))
    created = dict(
        zip(
            small_world.users.column("user_id").to_pylist(),
            small_world.users.column("created_at").to_pylist(),
            strict=True,
        )
    )
    assert scored == {u for u, c in created.items() if c < as_of}


def test_history_is_kept_and_a_rerun_replaces_only_its_own_rows(model_file, world_backend):
    engine = _engine(model_file, world_backend)
    first = engine.run(DEMO_END - timedelta(days=7))
    second = engine.run(DEMO_END)
    engine.run(DEMO_END)  # the same as_of again replaces, it does not duplicate
    t = world_backend.table(USER_SCORES)
    per = {
        r["as_of"]: r["n"]
        for r in t.group_by("as_of").aggregate(n=t.count()).to_pyarrow().to_pylist()
    }
    assert per == {first.as_of: first.users, second.as_of: second.users}


def test_a_failed_run_leaves_previous_results_intact(model_file, world_backend, monkeypatch):
    engine = _engine(model_file, world_backend)
    good = engine.run(DEMO_END)
    before = _rows(engine.stored_users(good.as_of, good.model_version))
    original = world_backend.insert

    def fail_on_accounts(table, rows, columns=None):
        if table == ACCOUNT_SCORES:  # a real driver error, half way through the run
            world_backend.run_sql("INSERT INTO no_such_table VALUES (1)")
        return original(table, rows, columns)

    monkeypatch.setattr(world_backend, "insert", fail_on_accounts)
    with pytest.raises(BackendError, match="rolled back"):
        engine.run(DEMO_END)
    monkeypatch.setattr(world_backend, "insert", original)
    assert _rows(engine.stored_users(good.as_of, good.model_version)) == before


def test_accounts_roll_up_users(model_file, world_backend):
    engine = _engine(model_file, world_backend)
    result = engine.run(DEMO_END)
    users = list(_rows(engine.stored_users(result.as_of, result.model_version)).values())
    accounts = {
        r["account_id"]: r
        for r in engine.stored_accounts(result.as_of, result.model_version).to_pyarrow().to_pylist()
    }
    by_account: dict[str, list[dict]] = {}
    for u in users:
        by_account.setdefault(u["account_id"], []).append(u)
    assert accounts.keys() == by_account.keys()
    for aid, members in by_account.items():
        a = accounts[aid]
        # the best score, a PQL first, then the ranking (uncapped points, the most recently
        # active first) breaks a tie at the same score, then the id
        best = sorted(
            members, key=lambda u: (-u["score"], not u["is_pql"], -u["ranking"], u["user_id"])
        )[0]
        assert a["users"] == len(members)
        assert a["pql_users"] == sum(u["is_pql"] for u in members)
        assert a["score"] == best["score"]  # the starter model rolls up by the best user
        assert a["champion_user_id"] == best["user_id"]
        assert a["is_pqa"] == (a["pql_users"] >= 1)


def test_explain_matches_stored_scores(model_file, world_backend):
    engine = _engine(model_file, world_backend)
    result = engine.run(DEMO_END)
    stored = _rows(engine.stored_users(result.as_of, result.model_version))
    pql = next(u for u, r in sorted(stored.items()) if r["is_pql"])
    e = engine.explain(pql, DEMO_END)
    assert e.outputs["score"] == stored[pql]["score"]
    assert e.outputs["reasons"] == stored[pql]["reasons"]
    fired = [s for s in e.signals if s.points != 0 and s.group != "mql"]
    assert fired and all(f"({s.points:+d})" in stored[pql]["reasons"] for s in fired)


def test_explain_unknown_user_says_so(model_file, world_backend):
    engine = _engine(model_file, world_backend)
    with pytest.raises(Exception, match="no user 'nobody' known as of"):
        engine.explain("nobody", DEMO_END)


def test_duckdb_and_postgres_agree(model_file, small_world, tmp_path, request):
    from pqlkit.backends import connect
    from pqlkit.demo.load import load

    server = request.getfixturevalue("pg_server")
    results = []
    for url in (str(tmp_path / "a.duckdb"), server.create_database()):
        backend = connect(url)
        load(backend, small_world)
        engine = Engine(load_model(model_file), backend)
        results.append(
            (
                _rows(engine.scores(DEMO_END)),
                _rows(engine.accounts(DEMO_END).rename(user_id="account_id")),
            )
        )
        backend.close()
    (duck_users, duck_accounts), (pg_users, pg_accounts) = results
    assert duck_users.keys() == pg_users.keys()
    diffs = [
        (u, f, duck_users[u][f], pg_users[u][f])
        for u in duck_users
        for f in duck_users[u]
        if duck_users[u][f] != pg_users[u][f]
    ]
    assert diffs == []
    assert duck_accounts == pg_accounts


def test_as_of_defaults_to_now_and_accepts_offsets(model_file, world_backend):
    from pqlkit.engine import as_utc

    assert as_utc("2026-10-01T02:00:00+02:00") == datetime(2026, 10, 1, 0, 0)
    assert (
        abs((as_utc(None) - datetime.now(UTC).replace(tzinfo=None, microsecond=0)).total_seconds())
        < 5
    )


def test_compiled_sql_is_reused_for_any_as_of_and_gives_the_same_rows(model_file, world_backend):
    from pqlkit.backends import Backend

    first = _engine(model_file, world_backend)
    first.run(DEMO_END - timedelta(days=20))
    assert world_backend.has_table(Backend.SQL_CACHE)
    # A new engine (as in a new process) finds the template and does not compile the scores.
    second = _engine(model_file, world_backend)
    second.scores = None  # type: ignore[assignment]  # would fail if called
    later = DEMO_END - timedelta(days=3, hours=5, microseconds=17)
    result = second.run(later)
    reused = _rows(second.stored_users(result.as_of, result.model_version))
    assert reused == _rows(first.scores(later))
    assert all(r["as_of"] == later for r in reused.values())


def test_a_changed_model_compiles_afresh(model_file, world_backend):
    engine = _engine(model_file, world_backend)
    engine.run(DEMO_END)
    model_file.write_text(model_file.read_text().replace("pql_score: 60", "pql_score: 95"))
    changed = _engine(model_file, world_backend)
    result = changed.run(DEMO_END)
    rows = _rows(changed.stored_users(result.as_of, result.model_version))
    assert all(r["score"] >= 95 for r in rows.values() if r["is_pql"])
    assert rows == _rows(changed.scores(DEMO_END))


def test_account_rollup_rules_from_the_model(model_file, world_backend):
    text = model_file.read_text().replace(
        "accounts:\n  score: max                      # best user\n  min_pql_users: 1\n  active_within: 14d\n",
        "accounts:\n  score: sum\n  min_pql_users: 2\n  active_within: 7d\n  min_active_seat_share: 0.5\n",
    )
    assert "score: sum" in text
    model_file.write_text(text)
    engine = _engine(model_file, world_backend)
    result = engine.run(DEMO_END)
    users = list(_rows(engine.stored_users(result.as_of, result.model_version)).values())
    accounts = engine.stored_accounts(result.as_of, result.model_version).to_pyarrow().to_pylist()
    assert accounts
    for a in accounts:
        members = [u for u in users if u["account_id"] == a["account_id"]]
        active = sum(
            1
            for u in members
            if u["last_seen_at"] and u["last_seen_at"] >= DEMO_END - timedelta(days=7)
        )
        assert a["active_users"] == active
        assert a["score"] == min(sum(u["score"] for u in members), 100)
        share = active / a["seats"] if a["seats"] else None
        assert a["seat_share_active"] == pytest.approx(share)
        assert a["is_pqa"] == (a["pql_users"] >= 2 and share is not None and share >= 0.5)
    assert any(a["is_pqa"] for a in accounts) and not all(a["is_pqa"] for a in accounts)
