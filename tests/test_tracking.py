"""Instrumentation health: the tracking plan a model implies and its JSON Schemas, the
collector's count of messages that break it (nothing refused), and the volume watch: each
event's count against its own baseline, an alert recorded and sent when one stops or falls,
and one when it recovers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from pqlkit.backends import connect
from pqlkit.collect.tables import EVENTS_SCHEMA
from pqlkit.errors import ModelValidationError
from pqlkit.model.instrumentation import Instrumentation
from pqlkit.model.load import parse_model
from pqlkit.tracking.check import MAX_UNKNOWN_NAMES, OTHER, Checker
from pqlkit.tracking.plan import DRAFT, schemas, tracking_plan
from pqlkit.tracking.volume import ALERTS, VolumeWatch, current_alerts, judge

MODEL = """
name: plan_test
plans: {paid: [pro], upgrade_events: [plan_upgraded]}
icp:
  profiles:
    - {id: mid, when: {all: [{field: account.employees, gte: 50}, {field: account.industry, in: [saas, fintech]}]}}
  exclusions:
    - {id: students, reason: student, when: {field: user.role, equals: student}}
fit_signals:
  - {id: big, points: 5, when: {field: user.days_since_signup, gte: 3}}
usage_signals:
  - {id: exports, kind: event_count, events: [feature_used], where: {feature: export, beta: true}, points: 10}
  - {id: features, kind: distinct_features, events: [feature_used], property: feature, points: 5}
  - {id: projects, kind: property_threshold, events: [project_saved], property: count, min: 3, points: 5}
  - {id: invites, kind: teammates_invited, events: [invite_sent], property: invitee, points: 20}
  - {id: days, kind: active_days, points: 2, per_unit: true}
activation: {signal: invites}
"""


def _model(extra: str = ""):
    return parse_model(MODEL + extra).model


def test_the_plan_names_each_event_its_properties_types_and_readers():
    plan = tracking_plan(_model())
    assert list(plan.events) == ["feature_used", "project_saved", "invite_sent", "plan_upgraded"]
    used = plan.events["feature_used"]
    assert used.read_by == ["exports", "features"]
    # a where on text, one on a boolean, and a distinct count (text or number) on one property
    assert {p: f.types for p, f in used.properties.items()} == {
        "feature": ("number", "string"),
        "beta": ("boolean",),
    }
    assert plan.events["project_saved"].properties["count"].types == ("number",)
    assert plan.events["plan_upgraded"].read_by == ["plans.upgrade_events"]
    assert plan.any_event == ["days"]
    assert {k: t.types for k, t in plan.account_traits.items()} == {
        "employees": ("number",),
        "industry": ("string",),
    }
    # days_since_signup is derived by the engine, never sent: not a trait to send
    assert list(plan.user_traits) == ["role"]


def test_each_event_is_a_draft_2020_12_schema_requiring_what_the_model_reads():
    bundle = schemas(tracking_plan(_model()))
    assert sorted(bundle) == [
        "event.feature_used",
        "event.invite_sent",
        "event.plan_upgraded",
        "event.project_saved",
        "group",
        "identify",
    ]
    s = bundle["event.project_saved"]
    assert s["$schema"] == DRAFT == "https://json-schema.org/draft/2020-12/schema"
    assert s["properties"]["event"] == {"const": "project_saved"}
    assert s["properties"]["properties"]["required"] == ["count"]
    assert s["properties"]["properties"]["properties"]["count"]["type"] == "number"
    assert s["required"] == ["event", "properties"]
    assert bundle["event.plan_upgraded"]["required"] == ["event"]  # no property read
    traits = bundle["group"]["properties"]["traits"]["properties"]
    assert traits["employees"]["type"] == "number"
    assert "read by icp.profiles.mid" in traits["employees"]["description"]


def test_pql_tracking_plan_prints_json_and_writes_one_file_per_schema(tmp_path, capsys):
    from pqlkit.cli import main

    model = tmp_path / "pql.yml"
    model.write_text(MODEL)
    out = tmp_path / "plan"
    with pytest.raises(SystemExit) as done:
        main(["tracking-plan", "-m", str(model), "--out", str(out), "--json"])
    assert done.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in printed["plan"]["events"]] == list(tracking_plan(_model()).events)
    files = sorted(p.name for p in out.iterdir())
    assert "event.invite_sent.schema.json" in files and "identify.schema.json" in files
    written = json.loads((out / "event.invite_sent.schema.json").read_text())
    assert written == printed["schemas"]["event.invite_sent"]


def test_the_checker_counts_unknown_missing_and_wrong_types_and_refuses_nothing():
    c = Checker(tracking_plan(_model()))
    c.check(
        "batch",
        {
            "batch": [
                {
                    "type": "track",
                    "event": "feature_used",
                    "properties": {"feature": "export", "beta": True},
                },
                {"type": "track", "event": "feature_used", "properties": {"beta": "yes"}},
                {"type": "track", "event": "project_saved", "properties": {"count": "3"}},
                {"type": "track", "event": "invite_snt", "properties": {}},
                {"type": "identify", "traits": {"role": ["admin"]}},
                {"type": "group", "traits": {"employees": "fifty", "industry": "saas"}},
                {"type": "page", "name": "Home"},
            ]
        },
    )
    c.check("track", {"event": "invite_sent", "properties": {"invitee": None}})
    snap = c.snapshot()
    assert snap["seen"] == {
        "feature_used": 2,
        "project_saved": 1,
        "invite_sent": 1,
        "plan_upgraded": 0,
    }
    assert {(r["event"], r["property"], r["kind"]): r["count"] for r in snap["violations"]} == {
        ("feature_used", "feature", "missing_property"): 1,
        ("feature_used", "beta", "wrong_type"): 1,
        ("project_saved", "count", "wrong_type"): 1,  # a number the engine reads only as one
        ("invite_snt", None, "unknown_event"): 1,
        ("invite_sent", "invitee", "missing_property"): 1,  # null is missing
        ("identify", "role", "wrong_type"): 1,  # compared with equals: one text
        ("group", "employees", "wrong_type"): 1,
    }
    assert snap["totals"] == {"unknown_event": 1, "missing_property": 2, "wrong_type": 4}


def test_unknown_names_are_bounded_so_random_names_cannot_grow_the_counts():
    c = Checker(tracking_plan(_model()))
    c.check("batch", {"batch": [{"type": "track", "event": f"e{i}"} for i in range(500)]})
    names = {e for (e, _, _) in c.violations}
    assert len(names) == MAX_UNKNOWN_NAMES + 1 and OTHER in names
    assert sum(c.violations.values()) == 500


def test_instrumentation_is_validated_where_it_stands():
    with pytest.raises(
        ModelValidationError, match=r"instrumentation\.notify\[0\].*unknown destination 'nope'"
    ):
        _model("instrumentation: {notify: [nope]}\n")
    with pytest.raises(
        ModelValidationError, match=r"instrumentation.*window 2d is longer than season 1d"
    ):
        _model("instrumentation: {window: 2d}\n")
    with pytest.raises(ModelValidationError, match=r"instrumentation\.drop"):
        _model("instrumentation: {drop: 1.5}\n")
    spec = _model("instrumentation: {window: 30m, drop: 0.8}\n").instrumentation
    assert spec == Instrumentation(window="30m", drop=0.8)


def test_judging_an_event_against_its_baseline():
    spec = Instrumentation(periods=3, drop=0.5, min_expected=10)
    assert judge("a", [20, 20, 22, 18], spec).status == "ok"
    assert judge("a", [10, 20, 22, 18], spec).status == "dropped"  # half of 20
    assert judge("a", [11, 20, 22, 18], spec).status == "ok"
    assert judge("a", [0, 20, 22, 18], spec).status == "stopped"
    assert judge("a", [0, 5, 5, 5], spec).status == "unjudged"  # too rare to tell


def _events(rows: list[tuple[str, datetime]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "message_id": f"m{i}",
                "source": "web",
                "user_id": "u",
                "event": e,
                "timestamp": at,
                "received_at": at,
            }
            for i, (e, at) in enumerate(rows)
        ],
        schema=EVENTS_SCHEMA,
    )


def test_the_watch_alerts_once_when_an_event_stops_and_once_when_it_is_back(tmp_path):
    backend = connect(str(tmp_path / "w.duckdb"))
    backend.ensure_table("events", EVENTS_SCHEMA)
    t0 = datetime(2026, 12, 1, 12, 0)
    # four days of both events, 30 an hour, then `b` stops at noon on the fifth
    rows = []
    for minute in range(0, 5 * 24 * 60, 2):
        at = t0 - timedelta(days=4) + timedelta(minutes=minute)
        rows.append(("a", at))
        if at < t0:
            rows.append(("b", at))
    backend.insert("events", _events(rows))
    told: list[dict] = []
    clock = [t0 + timedelta(minutes=20)]
    spec = Instrumentation(window="1h", season="1d", periods=3, drop=0.5, min_expected=10)
    watch = VolumeWatch(
        spec, ["a", "b", "c"], notify=lambda p: told.append(p) or "hook: sent", now=lambda: clock[0]
    )
    judged = {v.event: v for v in watch.check(backend)}
    assert judged["a"].status == "ok" and judged["a"].count == 30 and judged["a"].expected == 30
    assert judged["b"].status == "ok" and judged["b"].count == 20  # 40 minutes of the hour
    assert judged["c"].status == "unjudged"  # never sent: nothing to compare with
    assert told == []
    clock[0] = t0 + timedelta(minutes=35)  # 25 minutes of the hour: 12, under half of 30
    judged = {v.event: v for v in watch.check(backend)}
    assert judged["b"].status == "dropped" and told[0]["type"] == "pql.tracking.event_dropped"
    # judged in steps of `every` (1m) since the last check: the alert holds from 12:29 (the
    # hour from 11:29 has b's 15 events of 11:30 to 11:58, half of 30), not the check's 12:35
    assert told[0]["at"] == "2026-12-01T12:29:00Z" and told[0]["count"] == 15
    clock[0] = t0 + timedelta(hours=2)
    assert {v.event: v.status for v in watch.check(backend)}["b"] == "stopped"
    assert len(told) == 1  # still the same alert
    assert [a["event"] for a in current_alerts(backend)] == ["b"]
    assert watch.tracking["alerting"] == ["b"]
    # a flusher started again remembers the alert: not told twice
    again = VolumeWatch(
        spec, ["a", "b"], notify=lambda p: told.append(p) or "", now=lambda: clock[0]
    )
    again.check(backend)
    assert len(told) == 1
    # b is back
    back = [("b", t0 + timedelta(hours=1, minutes=m)) for m in range(0, 60, 2)]
    backend.insert("events", _events(back))
    again.check(backend)
    assert told[-1]["type"] == "pql.tracking.event_recovered" and current_alerts(backend) == []
    stored = backend.rows(backend.table(ALERTS).order_by("at"))
    assert [(r["event"], r["status"]) for r in stored] == [("b", "dropped"), ("b", "recovered")]
    assert stored[0]["notified"] == "hook: sent"
    backend.close()


def test_the_slack_message_of_an_alert_is_its_sentence():
    from pqlkit.destinations.slack import slack_message

    message = slack_message(
        {"type": "pql.tracking.event_stopped", "text": "invite_sent stopped arriving <now>"}, None
    )
    assert message["text"] == "invite_sent stopped arriving &lt;now&gt;"
    assert message["blocks"][0]["text"]["text"] == message["text"]


def test_prometheus_lines_for_the_tracking_counts_and_the_watch():
    from pqlkit.server.prometheus import _tracking

    families = list(
        _tracking(
            {
                "seen": {"a": 3},
                "violations": [{"event": "a", "property": "p", "kind": "wrong_type", "count": 2}],
                "volume": {"events": {"a": {"count": 0, "expected": 12.0}}, "alerting": ["a"]},
            }
        )
    )
    got = {f.name: [(s.labels, s.value) for s in f.samples] for f in families}
    assert got["pql_tracking_violations"] == [
        ({"event": "a", "property": "p", "kind": "wrong_type"}, 2)
    ]
    assert got["pql_tracking_alert"] == [({"event": "a"}, 1)]
    assert got["pql_tracking_expected_events"] == [({"event": "a"}, 12.0)]


def test_pql_tracking_judges_every_event_now_and_lists_the_alerts(tmp_path, capsys):
    from pqlkit.cli import main

    model = tmp_path / "pql.yml"
    model.write_text(MODEL + "instrumentation: {window: 1h, periods: 2, min_expected: 5}\n")
    db = str(tmp_path / "t.duckdb")
    backend = connect(db)
    backend.ensure_table("events", EVENTS_SCHEMA)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (e, now - timedelta(days=d, minutes=m))
        for d in (0, 1, 2)
        for m in range(0, 60, 5)
        for e in ("feature_used", "invite_sent")
        if not (e == "invite_sent" and d == 0)  # invite_sent stopped today
    ]
    backend.insert("events", _events(rows))
    backend.close()
    with pytest.raises(SystemExit) as done:
        main(["tracking", "-m", str(model), "--url", db, "--json"])
    assert done.value.code == 0
    found = json.loads(capsys.readouterr().out)
    status = {e["event"]: (e["count"], e["expected"], e["status"]) for e in found["events"]}
    assert status["feature_used"] == (12, 12.0, "ok")
    assert status["invite_sent"] == (0, 12.0, "stopped")
    assert status["project_saved"][2] == "unjudged"
    assert found["declared"] is True and found["alerts"] == []  # none recorded by a server


def test_alerts_go_to_webhook_or_slack_destinations_only(tmp_path, monkeypatch):
    from pqlkit.errors import PqlkitError
    from pqlkit.usecases.tracking import watch_factory

    handoff = """handoff:
  destinations:
    - {id: team_chat, kind: teams, url_env: PQL_TEST_TEAMS_URL}
    - {id: ops_hook, kind: webhook, url: "https://example.com/h", secret_env: PQL_TEST_SECRET}
"""
    model = tmp_path / "pql.yml"
    model.write_text(MODEL + handoff + "instrumentation: {notify: [team_chat]}\n")
    with pytest.raises(
        PqlkitError, match=r"notify: team_chat is a teams destination; .*webhook or slack"
    ):
        watch_factory(str(model))
    model.write_text(MODEL + handoff + "instrumentation: {notify: [ops_hook]}\n")
    monkeypatch.setenv("PQL_TEST_TEAMS_URL", "https://example.com/t")
    monkeypatch.delenv("PQL_TEST_SECRET", raising=False)
    with pytest.raises(PqlkitError, match=r"PQL_TEST_SECRET is not set"):
        watch_factory(str(model))  # stops `pql serve` at start, not at the first alert
    monkeypatch.setenv("PQL_TEST_SECRET", "whsec_" + "A" * 32)
    assert watch_factory(str(model)) is not None
    model.write_text(MODEL)
    assert watch_factory(str(model)) is None  # no instrumentation section: no watch
