"""The Segment-compatible collector: the API's rules, real clients, and no acknowledged event
lost when the server is killed."""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime, timedelta

import duckdb
import httpx
import pytest

from pqlkit.collect.segment_api import ApiError, messages_from_body

from .serve import Serve

NOW = datetime(2026, 11, 1, 12, 0, 0)


def test_clock_skew_is_corrected_and_batch_context_merged():
    body = {
        "batch": [
            {
                "type": "track",
                "event": "A",
                "userId": "u1",
                "messageId": "m1",
                "timestamp": "2026-11-01T11:59:00Z",
                "context": {"ip": "1"},
            }
        ],
        "sentAt": "2026-11-01T12:09:00Z",
        "context": {"library": {"name": "x"}},
    }
    [m] = messages_from_body("batch", body, 100, NOW)
    # by the client's clock it was sent 10 minutes after it happened, so it happened 10 minutes
    # before the server received it, whatever the client's clock says the time is
    assert m["timestamp"] == "2026-11-01T11:50:00Z" and m["receivedAt"] == "2026-11-01T12:00:00Z"
    assert m["originalTimestamp"] == "2026-11-01T11:59:00Z"
    assert m["context"] == {"library": {"name": "x"}, "ip": "1"}


@pytest.mark.parametrize(
    ("endpoint", "body", "message"),
    [
        ("track", {"event": "A"}, "a message needs userId or anonymousId"),
        ("track", {"userId": "u"}, "message.event: a track needs an event"),
        (
            "batch",
            {
                "batch": [
                    {"type": "track", "userId": "u", "event": "A"},
                    {"type": "nope", "userId": "u"},
                ]
            },
            "batch[1].type: must be one of",
        ),
        ("alias", {"userId": "u"}, "an alias needs userId and previousId"),
        (
            "batch",
            {"batch": [{"type": "track", "userId": "u", "event": "A"}] * 2501},
            "at most 2500 messages",
        ),
        (
            "track",
            {"userId": "u", "event": "A", "timestamp": "soon"},
            "message.timestamp: 'soon' is not a time",
        ),
    ],
)
def test_bad_messages_name_index_and_field(endpoint, body, message):
    with pytest.raises(ApiError, match=re.escape(message)) as info:
        messages_from_body(endpoint, body, 100, NOW)
    assert info.value.status == 400


def Server(tmp_path) -> Serve:
    return Serve(tmp_path, write_keys=("web=wk_web", "backend=wk_be"))


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    s.start()
    yield s
    if s.proc and s.proc.poll() is None:
        s.stop()


def test_real_segment_client_events_are_stored_once(server):
    from segment.analytics.client import Client

    client = Client("wk_web", host=server.url, sync_mode=True, max_retries=3)
    for i in range(25):
        client.track(f"u{i % 5}", "Project Created", {"n": i}, message_id=f"seg-{i}")
    client.identify("u1", {"email": "u1@acme.com", "plan": "free"})
    client.page("u2", name="Pricing", message_id="seg-page")
    client.track("u0", "Project Created", {"n": 0}, message_id="seg-0")  # a resend: stored once
    client.flush()
    metrics = server.metrics()
    assert metrics["accepted"] == 28 and metrics["rejected"] == 0
    deadline = time.monotonic() + 30
    while metrics["stored"] < 26 and time.monotonic() < deadline:
        time.sleep(0.1)
        metrics = server.metrics()
    # what the real client sends (its context, offsets, sentAt) is read by the fast path; the
    # identify call by the reference path
    assert metrics["log_lines"]["fast_path"] >= 25, metrics
    assert metrics["log_lines"]["reference_path"] >= 1, metrics
    server.stop()
    rows = server.events()
    assert len(rows) == 26 and len({r[1] for r in rows}) == 26
    assert ("web", "seg-page", "u2", "Page Viewed: Pricing") in rows
    with duckdb.connect(server.db, read_only=True) as con:
        assert con.execute("SELECT type, user_id FROM pql_messages").fetchall() == [
            ("identify", "u1")
        ]


def test_wrong_or_missing_write_key_gets_401_and_nothing_is_stored(server):
    batch = {"batch": [{"type": "track", "userId": "u", "event": "A", "messageId": "x"}]}
    assert httpx.post(server.url + "/v1/batch", json=batch, auth=("nope", "")).status_code == 401
    no_key = httpx.post(server.url + "/v1/batch", json=batch)
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthorized"
    ok = httpx.post(server.url + "/v1/batch", json={**batch, "writeKey": "wk_be"})
    assert ok.status_code == 200 and ok.json() == {"success": True}
    bad = httpx.post(server.url + "/v1/track", json={"userId": "u"}, auth=("wk_be", ""))
    assert bad.status_code == 400 and "message.event" in bad.json()["message"]
    server.stop()
    assert server.events() == [("backend", "x", "u", "A")]


def test_acknowledged_events_survive_sigkill(server, tmp_path):
    import gzip

    acknowledged = []
    with httpx.Client(auth=("wk_web", "")) as http:
        for b in range(40):
            batch = [
                {
                    "type": "track",
                    "userId": f"u{j}",
                    "event": "Feature Used",
                    "messageId": f"k{b}-{j}",
                    "timestamp": (NOW + timedelta(seconds=b)).isoformat() + "Z",
                }
                for j in range(50)
            ]
            body = gzip.compress(json.dumps({"batch": batch}).encode())
            r = http.post(
                server.url + "/v1/batch",
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            assert r.status_code == 200
            acknowledged.extend(m["messageId"] for m in batch)
    server.stop(signal.SIGKILL)  # no shutdown, no final flush
    server.start()  # replays what the log holds beyond the database's checkpoint
    server.stop()
    stored = [r[1] for r in server.events()]
    assert sorted(stored) == sorted(acknowledged)  # every acknowledged event, exactly once


def _wait_for(server, key: str, at_least: int) -> None:
    deadline = time.time() + 30
    while server.metrics()[key] < at_least:
        assert time.time() < deadline, f"{key} never reached {at_least}"
        time.sleep(0.05)


def test_score_and_forget_while_the_collector_runs(server, tmp_path):
    """The collector opens the DuckDB file only to flush, so `pql score` and `pql forget` use
    the same file while it runs; a forgotten user's later events are dropped."""
    from click.testing import CliRunner
    from segment.analytics.client import Client

    from pqlkit.cli import cli

    from .test_identity import MODEL

    model = tmp_path / "pql.yml"
    model.write_text(MODEL)
    client = Client("wk_web", host=server.url, sync_mode=True)
    for i in range(3):
        client.track(
            anonymous_id="anon-1",
            event="Pricing Viewed",
            timestamp=NOW - timedelta(days=3, hours=i),
        )
    client.identify(
        "u1",
        {
            "email": "ann@acme.io",
            "company": {"id": "acc-1", "employees": 300, "industry": "software"},
        },
        anonymous_id="anon-1",
        timestamp=NOW - timedelta(days=2),
    )
    client.track("u1", "Project Created", timestamp=NOW - timedelta(days=1))
    client.identify("u2", {"email": "bo@gmail.com"}, timestamp=NOW - timedelta(days=2))
    _wait_for(server, "stored", 4)

    runner = CliRunner()
    scored = runner.invoke(
        cli, ["score", "-m", str(model), "--url", server.db, "--as-of", NOW.isoformat(), "--json"]
    )
    assert scored.exit_code == 0, scored.output
    rows = {r["user_id"]: r for r in json.loads(scored.output)["rows"]}
    assert rows["u1"]["score"] == 10 + 15 + 20  # fit, three pre-signup pricing views, one project

    forgot = runner.invoke(cli, ["forget", "u1", "--url", server.db, "--yes"])
    assert forgot.exit_code == 0, forgot.output
    assert "Forgot u1 (ids: anon-1, u1)" in forgot.output
    client.track("u1", "Project Created", timestamp=NOW)
    client.track(anonymous_id="anon-1", event="Pricing Viewed", timestamp=NOW)
    _wait_for(server, "suppressed", 2)
    server.stop()
    with duckdb.connect(server.db, read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM events WHERE user_id = 'u1' OR anonymous_id = 'anon-1'"
        ).fetchone() == (0,)
        assert con.execute("SELECT user_id FROM pql_users").fetchall() == [("u2",)]
    data = b"".join(p.read_bytes() for p in tmp_path.glob("c.duckdb*") if p.is_file())
    assert b"ann@acme.io" not in data and b"bo@gmail.com" in data
