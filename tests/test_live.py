"""Live rescoring: after any sequence of batches (new events, new anonymous ids linked to users,
new users, account traits changed), rescoring only the users a batch touched leaves every user's
and account's state equal to what a full `pql score` gives at that state's as_of, and the touched
ones at the batch's as_of; every account's state is the rollup of its users' states; on DuckDB
and PostgreSQL, for generated models."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqlkit.backends import connect
from pqlkit.engine.rescore import rescore
from pqlkit.features.build import account_scores
from pqlkit.handoff.transitions import ACCOUNT_STATE, USER_STATE
from pqlkit.model.load import parse_model
from pqlkit.usecases.session import Session

from .conftest import EVENTS_SCHEMA, USERS_SCHEMA
from .test_signal_kinds import KEYS, NAMES, PROP_VALUES, signal

START = datetime(2026, 9, 1)
ACCOUNTS_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("name", pa.string()),
        ("domain", pa.string()),
        ("industry", pa.string()),
        ("seats", pa.float64()),
    ]
)
LINKS_SCHEMA = pa.schema(
    [("id", pa.string()), ("user_id", pa.string()), ("linked_at", pa.timestamp("us"))]
)
ACCOUNTS = ["a0", "a1", "a2"]


@st.composite
def live_model(draw) -> dict:
    signals = [draw(signal(i)) for i in range(draw(st.integers(1, 4)))]
    for s in signals:
        s["points"] = draw(st.sampled_from([10, 25, 40, -5]))
    return {
        "name": "live",
        "sources": {
            "events": {"table": "events"},
            "users": {"table": "users"},
            "accounts": {"table": "accounts"},
            "outcomes": None,
            "identities": {"table": "links"},
        },
        "plans": {"paid": ["team"]},
        "icp": {
            "profiles": [
                {"id": "saas", "when": {"field": "account.industry", "in": ["saas"]}},
                {"id": "any", "priority": 200, "when": {"email": "business"}},
            ]
        },
        "fit_signals": [
            {
                "id": "saas",
                "kind": "trait",
                "when": {"field": "account.industry", "in": ["saas"]},
                "points": draw(st.sampled_from([0, 20])),
            }
        ],
        "usage_signals": signals,
        "activation": {"signal": signals[0]["id"]},
        "thresholds": {"pql_score": draw(st.sampled_from([10, 30, 60]))},
        "accounts": {
            "score": draw(st.sampled_from(["max", "sum", "mean"])),
            "min_pql_users": draw(st.sampled_from([1, 2])),
            "active_within": draw(st.sampled_from(["3d", "14d"])),
        },
        "handoff": {
            "destinations": [
                {
                    "id": "hook",
                    "kind": "webhook",
                    "url": "http://127.0.0.1:9/x",
                    "secret_env": "PQL_TEST_SECRET",
                }
            ],
            "routes": [
                {
                    "when": {"transitions": ["became_pql", "became_pqa", "tier_changed"]},
                    "to": ["hook"],
                }
            ],
        },
    }


@st.composite
def batch(draw, k: int, known: list[str]) -> dict:
    """What arrives between two rescores: events (by users, some by anonymous ids), links,
    sign-ups, account changes; and which users and accounts the collector would name."""
    t0 = START + timedelta(days=3 * k)
    new_users = [f"n{k}_{i}" for i in range(draw(st.integers(0, 2)))]
    users = [
        {
            "user_id": u,
            "email": f"{u}@{draw(st.sampled_from(['acme.io', 'gmail.com']))}",
            "account_id": draw(st.sampled_from([*ACCOUNTS, None])),
            "created_at": t0 + timedelta(hours=draw(st.integers(0, 60))),
            "plan": draw(st.sampled_from(["free", "team", None])),
            "role": None,
        }
        for u in new_users
    ]
    everyone = known + new_users
    events, links, touched_users = [], [], set(new_users)
    for j in range(draw(st.integers(0, 10))):
        who = draw(st.sampled_from(everyone))
        anonymous = draw(st.booleans())
        anon_id = f"anon_{who}_{draw(st.integers(0, 1))}"  # a device seen before, or a new one
        at = t0 + timedelta(minutes=draw(st.integers(0, 3 * 1440 - 1)))
        events.append(
            {
                "message_id": f"m{k}_{j}",
                "user_id": None if anonymous else who,
                "anonymous_id": anon_id if anonymous else None,
                "account_id": None,
                "event": draw(st.sampled_from(NAMES)),
                "timestamp": at,
                "properties": json.dumps(
                    draw(st.dictionaries(st.sampled_from(KEYS), PROP_VALUES, max_size=2))
                ),
            }
        )
        # the collector names the id the event came with (an anonymous id names its user
        # once linked), and a link's user
        touched_users.add(anon_id if anonymous else who)
        if anonymous and draw(st.booleans()):  # the anonymous id is tied to its user
            links.append({"id": anon_id, "user_id": who, "linked_at": at})
            touched_users.add(who)
    changed_accounts = draw(st.lists(st.sampled_from(ACCOUNTS), max_size=1, unique=True))
    industry = {a: draw(st.sampled_from(["saas", "retail"])) for a in changed_accounts}
    return {
        "users": users,
        "events": events,
        "links": links,
        "industry": industry,
        "touched": sorted(touched_users),
        "accounts": changed_accounts,
        "as_of": t0 + timedelta(days=3),
    }


@st.composite
def story(draw):
    model = draw(live_model())
    known = [f"u{i}" for i in range(4)]
    batches = []
    for k in range(draw(st.integers(1, 4))):
        b = draw(batch(k, known))
        known = known + [u["user_id"] for u in b["users"]]
        batches.append(b)
    return model, batches


def _seed(backend) -> None:
    users = [
        {
            "user_id": f"u{i}",
            "email": f"u{i}@{'acme.io' if i % 2 else 'gmail.com'}",
            "account_id": ACCOUNTS[i % 3] if i < 3 else None,
            "created_at": START - timedelta(days=10 * i + 1),
            "plan": "free",
            "role": None,
        }
        for i in range(4)
    ]
    accounts = [
        {
            "account_id": a,
            "name": a.upper(),
            "domain": f"{a}.io",
            "industry": "retail",
            "seats": 3.0,
        }
        for a in ACCOUNTS
    ]
    backend.write_table("users", pa.Table.from_pylist(users, schema=USERS_SCHEMA), overwrite=True)
    earlier = [
        {
            "message_id": f"m_{i}",
            "user_id": f"u{i}",
            "anonymous_id": None,
            "account_id": None,
            "event": NAMES[i % len(NAMES)],
            "timestamp": START - timedelta(days=i + 1),
            "properties": json.dumps({KEYS[0]: i + 1}),
        }
        for i in range(4)
    ]
    backend.write_table(
        "events", pa.Table.from_pylist(earlier, schema=EVENTS_SCHEMA), overwrite=True
    )
    backend.write_table("links", pa.Table.from_pylist([], schema=LINKS_SCHEMA), overwrite=True)
    backend.write_table(
        "accounts", pa.Table.from_pylist(accounts, schema=ACCOUNTS_SCHEMA), overwrite=True
    )


def _apply(backend, b: dict) -> None:
    # like pql_identities, one user per id: the first link wins
    known = {r[0] for r in backend.values(backend.table("links").select("id"))}
    links = []
    for link in sorted(b["links"], key=lambda x: x["linked_at"]):
        if link["id"] not in known:
            known.add(link["id"])
            links.append(link)
    b = {**b, "links": links}
    with backend.transaction():
        backend.insert("users", pa.Table.from_pylist(b["users"], schema=USERS_SCHEMA))
        backend.insert("events", pa.Table.from_pylist(b["events"], schema=EVENTS_SCHEMA))
        backend.insert("links", pa.Table.from_pylist(b["links"], schema=LINKS_SCHEMA))
        for account, industry in b["industry"].items():
            backend.update("accounts", {"industry": industry}, {"account_id": account})


def _rows(backend, sql: str) -> list[dict]:
    return backend.arrow(sql).to_pylist()


def _check_story(backend, model: dict, batches: list[dict], monkeypatch) -> None:
    monkeypatch.setenv("PQL_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    loaded = parse_model(yaml.safe_dump(model), "live.yml")
    _seed(backend)
    engine = Session(backend, loaded).engine
    engine.run(START)  # the state starts from a full run
    for b in batches:
        _apply(backend, b)
        rescore(engine, b["touched"], b["accounts"], b["as_of"])
    check_state(backend, engine, loaded, batches[-1])


def check_state(backend, engine, loaded, last: dict) -> None:
    """What holds after any sequence of rescores (and full passes): see the module."""
    state = {r["user_id"]: r for r in backend.rows(backend.table(USER_STATE))}
    accounts = {r["account_id"]: r for r in backend.rows(backend.table(ACCOUNT_STATE))}
    full: dict[datetime, dict[str, dict]] = {}
    rollup: dict[datetime, dict[str, dict]] = {}
    users_state = backend.table(USER_STATE)
    for when in {r["as_of"] for r in [*state.values(), *accounts.values()]} | {last["as_of"]}:
        full[when] = {r["user_id"]: r for r in _rows(backend, engine.scores_sql(when))}
        expr = account_scores(users_state, engine.bound, loaded, when)
        rollup[when] = {r["account_id"]: r for r in backend.rows(expr)}
    # every user's state is what a full run gives at that state's date
    for user, row in state.items():
        assert row == full[row["as_of"]][user], (user, row["as_of"])
    # every account's is the rollup of its users' states at its date
    for account, row in accounts.items():
        assert row == rollup[row["as_of"]][account], (account, row["as_of"])
    assert set(accounts) == {r["account_id"] for r in state.values() if r["account_id"]}
    # the users the last batch named (an anonymous id names its user) are as of its date
    links = dict(backend.values(backend.table("links").select("id", "user_id")))
    now = full[last["as_of"]]
    named = {links.get(t, t) for t in last["touched"]}
    named |= {u for u, r in now.items() if r["account_id"] in set(last["accounts"])}
    for user in named & set(now):
        assert state[user] == now[user], user
    # each state row is explained from the features it was computed from, as from the events
    for user, row in state.items():
        stored = engine.stored_explanation(user, row["as_of"])
        assert stored is not None, user
        fresh = engine.explain(user, row["as_of"])
        assert stored.outputs == fresh.outputs, user
        assert [(x.id, x.points, x.fired) for x in stored.signals] == [
            (x.id, x.points, x.fired) for x in fresh.signals
        ], user
        for x, y in zip(stored.signals, fresh.signals, strict=True):  # sums: the last bit
            assert x.value == pytest.approx(y.value, rel=1e-12), (user, x.id)
    # after a full run, users and accounts are all as of one date, as a full run gives them
    engine.run(last["as_of"] + timedelta(hours=1))
    when = last["as_of"] + timedelta(hours=1)
    accounts_sql = engine.sql_at("accounts", engine.accounts, when)
    assert {r["account_id"]: r for r in backend.rows(backend.table(ACCOUNT_STATE))} == {
        r["account_id"]: r for r in _rows(backend, accounts_sql)
    }


SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@settings(max_examples=6, **SETTINGS)
@given(s=story())
def test_live_rescoring_equals_full_runs_on_duckdb(s, monkeypatch):
    """Long because a full run is computed beside every rescore of the story, to compare them
    (about 30 s)."""
    backend = connect(":memory:")
    try:
        _check_story(backend, *s, monkeypatch)
    finally:
        backend.close()


@settings(max_examples=3, **SETTINGS)
@given(s=story())
def test_live_rescoring_equals_full_runs_on_postgres(pg_server, s, monkeypatch):
    backend = connect(pg_server.create_database())
    try:
        _check_story(backend, *s, monkeypatch)
    finally:
        backend.close()
