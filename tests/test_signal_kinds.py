"""One conformance suite over every signal kind: each is registered, computes in SQL exactly
what a plain-Python reference computes from the docs (generated models and events, hypothesis),
on DuckDB and PostgreSQL, agrees with the plain-Python decision path, and round-trips through
a learned proposal; plus hand-computed cases for options no other test runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqlkit.backends import connect
from pqlkit.engine import Engine
from pqlkit.features.signals import PLANS
from pqlkit.model import signals as s
from pqlkit.model.load import parse_model
from pqlkit.scoring.decide import OUTPUT_FIELDS
from pqlkit.scoring.ops import PyOps

from .conftest import EVENTS_SCHEMA, USERS_SCHEMA
from .signal_reference import value as reference

AS_OF = datetime(2026, 10, 1)
NAMES = ["a", "b", "c"]
KEYS = ["p", "q"]
PROP_VALUES = st.one_of(st.sampled_from(["x", "y"]), st.integers(1, 5), st.booleans())
DURATIONS = st.sampled_from(["1d", "3d", "10d", "12h", "70d", "200d"])


def test_every_kind_is_registered_and_documented():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text()
    for cls in s.EVENT_SIGNAL_CLASSES:
        assert cls in PLANS, f"{cls.__name__} has no value in features/signals.PLANS"
    for kind in s.EVENT_SIGNAL_KINDS:
        assert f"`{kind}`" in docs, f"docs/model.md does not describe {kind}"


# --- generated models ------------------------------------------------------------------------------

names = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True)
where = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(KEYS), PROP_VALUES, min_size=1, max_size=1)
)
window = st.one_of(st.none(), DURATIONS)


@st.composite
def signal(draw, i: int) -> dict:
    kind = draw(st.sampled_from(s.EVENT_SIGNAL_KINDS))
    d: dict = {
        "id": f"k{i}",
        "kind": kind,
        "points": draw(st.sampled_from([1, 5, -3])),
        "label": f"k{i} {{value}}",
    }
    if kind in (
        "event_count",
        "hand_raise",
        "teammates_invited",
        "active_days",
        "distinct_features",
        "property_threshold",
    ):
        d["events"] = (
            draw(st.one_of(names, st.just(["*"]))) if kind != "property_threshold" else draw(names)
        )
        if (w := draw(where)) is not None:
            d["where"] = w
        if (wd := draw(window)) is not None:
            d["window"] = wd
        d["min"] = draw(st.sampled_from([1, 2, 0.5]))
    if kind in ("event_count", "hand_raise") and draw(st.booleans()):
        d["half_life"] = draw(DURATIONS)
    if kind == "teammates_invited":
        if draw(st.booleans()):
            d["property"] = draw(st.sampled_from(KEYS))
        elif draw(st.booleans()):
            d["half_life"] = draw(DURATIONS)
    if kind == "distinct_features" and draw(st.booleans()):
        d["property"] = draw(st.sampled_from(KEYS))
    if kind == "property_threshold":
        d["property"] = draw(st.sampled_from(KEYS))
        d["agg"] = draw(st.sampled_from(["max", "sum", "last"]))
    if kind == "onboarding_completed":
        d["steps"] = draw(names)
        if (wd := draw(window)) is not None:
            d["window"] = wd
    if kind == "limit_reached":
        if draw(st.booleans()):
            d["events"] = draw(names)
        else:
            usage = {"events": draw(names), "agg": draw(st.sampled_from(["count", "sum", "max"]))}
            if usage["agg"] != "count" or draw(st.booleans()):
                usage["property"] = draw(st.sampled_from(KEYS))
            d["usage"] = usage
            d["quotas"] = {"free": draw(st.sampled_from([1, 3])), "team": 10}
        if (wd := draw(window)) is not None:
            d["window"] = wd
    if kind == "recency":
        d["events"] = draw(st.one_of(names, st.just(["*"])))
        if draw(st.booleans()):
            d["within"] = draw(DURATIONS)
        else:
            d["older_than"] = draw(DURATIONS)
    if kind not in ("onboarding_completed", "limit_reached", "recency") and draw(st.booleans()):
        d["per_unit"] = True
        if draw(st.booleans()):
            d["cap"] = 7
    return d


@st.composite
def world(draw) -> tuple[list[dict], list[dict], list[dict]]:
    n_signals = draw(st.integers(1, 6))
    signals = [draw(signal(i)) for i in range(n_signals)]
    users = []
    events = []
    for u in range(draw(st.integers(1, 5))):
        users.append(
            {
                "user_id": f"u{u}",
                "email": f"u{u}@acme.io",
                "account_id": None,
                "created_at": AS_OF - timedelta(days=draw(st.integers(1, 300))),
                "plan": draw(st.sampled_from(["free", "team", None])),
                "role": None,
            }
        )
        for j in range(draw(st.integers(0, 8))):
            props = draw(st.dictionaries(st.sampled_from(KEYS), PROP_VALUES, max_size=2))
            # distinct times per user, some after as_of (they must not count)
            at = AS_OF - timedelta(minutes=draw(st.integers(-3000, 300 * 1440)) * 7 + j)
            events.append(
                {
                    "message_id": f"m{u}-{j}",
                    "user_id": f"u{u}",
                    "anonymous_id": None,
                    "account_id": None,
                    "event": draw(st.sampled_from(NAMES)),
                    "timestamp": at,
                    "properties": json.dumps(props),
                }
            )
    return signals, users, events


def _model(signals: list[dict]) -> dict:
    return {
        "name": "kinds",
        "sources": {
            "events": {"table": "events"},
            "users": {"table": "users"},
            "accounts": None,
            "outcomes": None,
        },
        "plans": {"paid": ["team"]},
        "icp": {"profiles": [{"id": "any", "when": {"email": "business"}}]},
        "usage_signals": signals,
        "activation": {"signal": signals[0]["id"]},
    }


def _check(backend, signals, users, events) -> None:
    loaded = parse_model(yaml.safe_dump(_model(signals)), "kinds.yml")
    backend.write_table("users", pa.Table.from_pylist(users, schema=USERS_SCHEMA), overwrite=True)
    backend.write_table(
        "events", pa.Table.from_pylist(events, schema=EVENTS_SCHEMA), overwrite=True
    )
    engine = Engine(loaded, backend)
    rows = {r["user__user_id"]: r for r in backend.rows(engine.features(AS_OF))}
    for u in users:
        mine = [
            {"event": e["event"], "timestamp": e["timestamp"], "props": json.loads(e["properties"])}
            for e in events
            if e["user_id"] == u["user_id"]
        ]
        days = (AS_OF - u["created_at"]).total_seconds() / 86400.0
        for sig in loaded.model.usage_signals:
            want = reference(sig, mine, AS_OF, plan=u["plan"], days_since_signup=days)
            got = rows[u["user_id"]][f"signal__{sig.id}"]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (sig, u["user_id"], mine)
    # the decisions computed in SQL equal the plain-Python path on the same features
    in_db = {r["user_id"]: r for r in backend.rows(engine.scores(AS_OF))}
    for r in engine.python_scores(AS_OF):
        assert {f: in_db[r["user_id"]][f] for f in OUTPUT_FIELDS} == {
            f: r[f] for f in OUTPUT_FIELDS
        }


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(world())
def test_every_kind_equals_its_reference_on_duckdb(w):
    backend = connect(":memory:")
    try:
        _check(backend, *w)
    finally:
        backend.close()


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(w=world())
def test_every_kind_equals_its_reference_on_postgres(pg_server, w):
    backend = connect(pg_server.create_database())
    try:
        _check(backend, *w)
    finally:
        backend.close()


# --- a learned threshold written back ------------------------------------------------------------------


@pytest.mark.parametrize("kind", s.EVENT_SIGNAL_KINDS)
def test_a_learned_threshold_round_trips_through_a_model(kind):
    base = {
        "event_count": {"events": ["a"]},
        "hand_raise": {"events": ["a"]},
        "teammates_invited": {"events": ["a"]},
        "active_days": {},
        "distinct_features": {"events": ["a", "b"]},
        "property_threshold": {"events": ["a"], "property": "p"},
        "onboarding_completed": {"steps": ["a", "b"]},
        "limit_reached": {"events": ["a"]},
        "recency": {"older_than": "5d"},
    }[kind]
    original = parse_model(
        yaml.safe_dump(_model([{"id": "k0", "kind": kind, "points": 1, **base}])), "m.yml"
    )
    sig = original.model.usage_signals[0]
    for t in (2.0, 7.5):
        learned = {
            k: v
            for k, v in {"id": "k0", "kind": kind, "points": 1, **base}.items()
            if k not in ("min", "within", "older_than")
        }
        learned.update(sig.at_threshold(t))
        copy = parse_model(yaml.safe_dump(_model([learned])), "m.yml").model.usage_signals[0]
        ops = PyOps()
        if kind == "recency":  # fires once the user has been quiet longer than t days
            assert copy.fires(t + 0.01, ops) and not copy.fires(t, ops)
        else:
            assert copy.fires(t, ops) and not copy.fires(t - 0.01, ops)


# --- hand-computed cases for options nothing else runs ----------------------------------------------


def _one_user(backend, events: list[tuple[str, float, dict]], plan: str = "free") -> None:
    users = [
        {
            "user_id": "u",
            "email": "u@acme.io",
            "account_id": None,
            "created_at": AS_OF - timedelta(days=400),
            "plan": plan,
            "role": None,
        }
    ]
    rows = [
        {
            "message_id": f"m{i}",
            "user_id": "u",
            "anonymous_id": None,
            "account_id": None,
            "event": e,
            "timestamp": AS_OF - timedelta(days=days_ago),
            "properties": json.dumps(p),
        }
        for i, (e, days_ago, p) in enumerate(events)
    ]
    backend.write_table("users", pa.Table.from_pylist(users, schema=USERS_SCHEMA), overwrite=True)
    backend.write_table("events", pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA), overwrite=True)


def _values(backend, signals: list[dict]) -> dict[str, float]:
    engine = Engine(parse_model(yaml.safe_dump(_model(signals)), "m.yml"), backend)
    [row] = backend.rows(engine.features(AS_OF))
    return {k.removeprefix("signal__"): v for k, v in row.items() if k.startswith("signal__")}


def test_hand_computed_values(new_backend):
    backend = new_backend()
    _one_user(
        backend,
        [
            ("proj", 1, {"n": 4, "plan": "pro"}),
            ("proj", 2, {"n": 1, "plan": "free"}),
            ("proj", 40, {"n": 9}),
            ("inv", 3, {}),
            ("inv", 4, {}),
            ("lim", 5, {}),
            ("lim", 100, {}),
            ("x", 65, {}),
            ("x", 64, {}),
            ("x", 130, {}),
            ("x", 1.5, {}),
            ("proj", 0.5, {"n": "7"}),
        ],
    )
    v = _values(
        backend,
        [
            {
                "id": "pmax",
                "kind": "property_threshold",
                "events": ["proj"],
                "property": "n",
                "agg": "max",
                "points": 1,
            },
            {
                "id": "psum",
                "kind": "property_threshold",
                "events": ["proj"],
                "property": "n",
                "agg": "sum",
                "points": 1,
            },
            {
                "id": "plast",
                "kind": "property_threshold",
                "events": ["proj"],
                "property": "n",
                "agg": "last",
                "points": 1,
            },
            {
                "id": "pro",
                "kind": "event_count",
                "events": ["proj"],
                "where": {"plan": "pro"},
                "points": 1,
            },
            {
                "id": "notpro",
                "kind": "event_count",
                "events": ["proj"],
                "where": {"n": 1},
                "points": 1,
            },
            {"id": "invites", "kind": "teammates_invited", "events": ["inv"], "points": 1},
            {
                "id": "limits",
                "kind": "limit_reached",
                "events": ["lim"],
                "window": "30d",
                "points": 1,
            },
            {"id": "days", "kind": "active_days", "events": ["x"], "window": "140d", "points": 1},
            {"id": "recent", "kind": "recency", "events": ["x"], "within": "2d", "points": 1},
        ],
    )
    assert v["pmax"] == 9 and v["psum"] == 14  # "7" is text, not a number
    assert v["plast"] == 4  # the latest numeric value (the text "7" half a day ago is not a number)
    assert v["pro"] == 1 and v["notpro"] == 1
    assert v["invites"] == 2
    assert v["limits"] == 1  # one limit event within 30 days
    assert (
        v["days"] == 4
    )  # 1.5, 64, 65 and 130 days ago: four distinct days, over three 63-day words
    assert v["recent"] == pytest.approx(1.5)


def test_the_docs_table_lists_exactly_the_keys_each_kind_takes():
    import re
    import typing

    docs = (Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text()
    common = {"id", "kind", "points", "label", "description"}
    for cls in [*s.EVENT_SIGNAL_CLASSES, s.TraitSignal]:
        kind = typing.get_args(cls.model_fields["kind"].annotation)[0]
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{kind}`"))
        listed = set(re.findall(r"`([a-z_]+)`", row.rsplit("|", 2)[1]))
        takes = set(cls.model_fields) - common
        if issubclass(cls, s._FixedPoints):
            takes -= {"per_unit", "cap"}  # accepted only as `false` / absent
        assert listed == takes, (kind, listed ^ takes)
