"""A real `pql serve --model` with a short instrumentation window: while two events flow, no
alert; once one stops, its alert reaches a real local webhook receiver within the window (and
/metrics and /health say so), and the other keeps flowing without one. Messages that break the
tracking plan are acknowledged and counted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .serve import Serve
from .test_handoff import SECRET, Receiver

WINDOW, EVERY = 3.0, 0.5

MODEL = f"""
name: watched
sources:
  events: {{table: events}}
  users: {{table: pql_users}}
  accounts: {{table: pql_accounts}}
  outcomes: null
icp:
  profiles:
    - {{id: business, when: {{email: business}}}}
usage_signals:
  - {{id: saves, kind: property_threshold, events: [doc_saved], property: words, min: 1, points: 30}}
  - {{id: invites, kind: event_count, events: [invite_sent], points: 40}}
activation: {{signal: invites}}
handoff:
  destinations:
    - {{id: ops_hook, kind: webhook, url: "RECEIVER", secret_env: PQL_TEST_HOOK_SECRET, timeout: 5s}}
  routes: []
instrumentation:
  window: {WINDOW:g}s
  season: {WINDOW:g}s
  periods: 3
  drop: 0.5
  min_expected: 4
  every: {EVERY:g}s
  notify: [ops_hook]
"""


def _post(url: str, batch: list[dict], client: httpx.Client | None = None) -> None:
    r = (client or httpx).post(
        url + "/v1/batch", json={"batch": batch}, auth=("wk_web", ""), timeout=10
    )
    assert r.status_code == 200, r.text


def _alerts(receiver: Receiver) -> list[dict]:
    return [
        s["body"] for s in receiver.seen if s["body"].get("type", "").startswith("pql.tracking.")
    ]


def test_an_event_that_stops_arriving_is_alerted_within_the_window(tmp_path: Path):
    # about 45 s: a real server's first full pass, then four 3-second windows of baseline
    receiver = Receiver()
    model = tmp_path / "pql.yml"
    model.write_text(MODEL.replace("RECEIVER", receiver.url))
    server = Serve(
        tmp_path,
        db="watch.duckdb",
        args=("--model", str(model), "--product-key", "pk_test"),
        env={"PQL_TEST_HOOK_SECRET": SECRET},
    )
    server.start()
    sending = {"doc_saved": True, "invite_sent": True}
    stop = threading.Event()

    def send() -> None:  # about 10 of each event a second, each from its own user
        n, client = 0, httpx.Client()
        while not stop.is_set():
            batch = [
                {"type": "track", "userId": f"u{n % 7}", "event": e, "properties": {"words": 5}}
                for e, on in sending.items()
                if on
            ]
            _post(server.url, batch, client)
            n += 1
            time.sleep(0.1)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        # the first full pass, then the baseline fills (3 earlier windows and this one): both
        # flowing, both judged ok, and never an alert meanwhile
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            volume = (server.metrics()["tracking"]["volume"] or {}).get("events") or {}
            if [v["status"] for v in volume.values()] == ["ok", "ok"]:
                break
            assert _alerts(receiver) == []
            time.sleep(0.2)
        assert [v["status"] for v in volume.values()] == ["ok", "ok"], volume
        time.sleep(WINDOW)
        assert _alerts(receiver) == []

        sending["invite_sent"] = False
        stopped, stopped_at = time.monotonic(), datetime.now(UTC).replace(tzinfo=None)
        while not _alerts(receiver) and time.monotonic() - stopped < 60:
            time.sleep(0.05)
        took = time.monotonic() - stopped
        alerts = _alerts(receiver)
        assert [a["event"] for a in alerts] == ["invite_sent"], alerts
        assert alerts[0]["type"] in ("pql.tracking.event_dropped", "pql.tracking.event_stopped")
        assert receiver.seen[0]["verified"]  # signed like any webhook
        # judged within the window of the log's time: the watch judges up to what the flusher
        # has stored, so its lag (live rescoring on a loaded machine) adds wall time, not alerts
        judged = datetime.fromisoformat(alerts[0]["at"].removesuffix("Z"))
        detected = (judged - stopped_at).total_seconds()
        print(f"alert judged {detected:.2f} s after the stop (log time), received {took:.2f} s")
        assert detected <= WINDOW, f"judged {detected:.2f} s after the stop"
        assert took <= WINDOW + 40, f"the alert took {took:.2f} s"  # the flusher's lag, loaded

        time.sleep(WINDOW)  # doc_saved keeps flowing: still no alert for it
        assert [a["event"] for a in _alerts(receiver)] == ["invite_sent"]
        metrics = server.metrics()
        assert metrics["tracking"]["volume"]["alerting"] == ["invite_sent"]
        health = httpx.get(server.url + "/health", timeout=5).json()
        assert health["tracking"]["alerts"] == ["invite_sent"]
        text = httpx.get(
            server.url + "/metrics",
            headers={"authorization": "Bearer mk_test", "accept": "text/plain"},
            timeout=5,
        ).text
        assert 'pql_tracking_alert{event="invite_sent"} 1.0' in text
        assert 'pql_tracking_alert{event="doc_saved"} 0.0' in text

        # a message that breaks the plan is acknowledged and counted, not refused
        _post(
            server.url,
            [
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "doc_saved",
                    "properties": {"words": "five"},
                }
            ],
        )
        _post(server.url, [{"type": "track", "userId": "u1", "event": "doc_savd"}])
        broken = {
            (v["event"], v["property"], v["kind"]): v["count"]
            for v in server.metrics()["tracking"]["violations"]
        }
        assert broken == {
            ("doc_saved", "words", "wrong_type"): 1,
            ("doc_savd", None, "unknown_event"): 1,
        }
    finally:
        stop.set()
        sender.join(timeout=10)
        server.stop()
        receiver.close()


def test_a_collector_without_live_scoring_counts_against_a_tracking_plan(tmp_path: Path):
    model = tmp_path / "pql.yml"
    model.write_text(MODEL.replace("RECEIVER", "https://example.com/hook"))
    server = Serve(tmp_path, args=("--tracking-plan", str(model)))
    server.start()
    try:
        _post(
            server.url,
            [{"type": "track", "userId": "u1", "event": "doc_saved", "properties": {"words": 3}}],
        )
        _post(
            server.url, [{"type": "track", "userId": "u1", "event": "doc_saved", "properties": {}}]
        )
        _post(server.url, [{"type": "track", "userId": "u1", "event": "Doc Saved"}])
        refused = httpx.post(
            server.url + "/v1/batch",
            json={"batch": [{"type": "track", "userId": "u1", "event": "x"}, {"type": "track"}]},
            auth=("wk_web", ""),
            timeout=10,
        )
        assert refused.status_code == 400  # not acknowledged: not counted either
        tracking = server.metrics()["tracking"]
        assert tracking["seen"] == {"doc_saved": 2, "invite_sent": 0}
        assert {(v["event"], v["kind"]): v["count"] for v in tracking["violations"]} == {
            ("doc_saved", "missing_property"): 1,
            ("Doc Saved", "unknown_event"): 1,
        }
        assert tracking["volume"] == {}  # no live scoring: no volume watch
        health = httpx.get(server.url + "/health", timeout=5).json()
        assert health["tracking"] == {
            "violations": {"unknown_event": 1, "missing_property": 1, "wrong_type": 0},
            "alerts": [],
        }
    finally:
        server.stop()
    assert len(server.events()) == 3  # every acknowledged message stored, the broken ones too
