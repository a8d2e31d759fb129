"""`pql serve --model`: a real collector process scores live. A user's decisive event, sent
with the real Segment client, reaches a real local webhook receiver (signature verified)
within seconds, once; the product's prompt API answers with a cap and without telling who
exists; rep feedback is acknowledged only once durable and lands in pql_feedback; a server
killed with SIGKILL mid-delivery resends the same webhook-id after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from .serve import Serve
from .test_handoff import SECRET, Receiver

MODEL = """
name: live
sources:
  events: {table: events}
  users: {table: pql_users}
  accounts: {table: pql_accounts}
  outcomes: null
icp:
  profiles:
    - {id: business, when: {email: business}}
usage_signals:
  - {id: pricing, kind: event_count, events: [pricing_viewed], min: 1, points: 70}
activation: {signal: pricing}
thresholds: {pql_score: 60}
handoff:
  destinations:
    - {id: sales_hook, kind: webhook, url: "RECEIVER", secret_env: PQL_TEST_HOOK_SECRET, timeout: 8s}
  routes:
    - {when: {transitions: [became_pql]}, to: [sales_hook]}
  prompts:
    cooldown: 1h
    cap: 2
    rules:
      - {id: upgrade_team, when: {pql: true}, data: {plan: team}}
"""


class LiveServer(Serve):
    def __init__(self, tmp_path: Path, receiver_url: str):
        self.model = tmp_path / "pql.yml"
        self.model.write_text(MODEL.replace("RECEIVER", receiver_url))
        super().__init__(
            tmp_path,
            db="live.duckdb",
            args=("--model", str(self.model), "--product-key", "pk_test"),
            env={"PQL_TEST_HOOK_SECRET": SECRET},
        )

    def product(self, method: str, path: str, key: str = "pk_test", **kw) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=5, **kw)

    def scored(self, user_id: str) -> dict | None:
        """The user's live state as the prompt API reads it."""
        from pqlkit.backends.serving import StateReader

        reader = StateReader(self.log)
        try:
            return reader.get(user_id)
        finally:
            reader.close()


def _send(url: str, user: str, email: str, events: list[str]) -> None:
    import segment.analytics as analytics

    client = analytics.Client("wk_web", host=url, sync_mode=True, max_retries=2)
    client.identify(user, {"email": email, "company": {"id": f"acct_{user}", "name": "Acme"}})
    for e in events:
        client.track(user, e)
    client.flush()


def _delivered(server: LiveServer) -> int | None:
    """Deliveries recorded as delivered, once the flusher has published its counters."""
    return ((server.metrics().get("live") or {}).get("by_status") or {}).get("delivered")


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_decisive_event_reaches_the_receiver_within_seconds_once(tmp_path, receiver):
    server = LiveServer(tmp_path, receiver.url)
    server.start()
    try:
        _send(server.url, "u1", "ann@acme.io", ["signed_up"])
        _send(server.url, "u2", "bob@gmail.com", ["pricing_viewed"])  # not an ICP fit
        _wait(lambda: server.scored("u1") and server.scored("u2"), 30, "the first scores")
        assert receiver.seen == []  # nobody is a PQL yet
        # the prompt API: nothing to show yet, the same answer as for a user nobody knows
        known = server.product("GET", "/v1/prompts/u1").json()
        unknown = server.product("GET", "/v1/prompts/nobody").json()
        assert known == {"user_id": "u1", "show": False, "prompt": None}
        assert unknown == {"user_id": "nobody", "show": False, "prompt": None}

        _send(server.url, "u1", "ann@acme.io", ["pricing_viewed"])  # the decisive event
        _wait(lambda: receiver.seen, 10, "the webhook")  # (its latency: bench/bench_live.py)
        (hook,) = receiver.seen
        assert hook["verified"] and hook["body"]["type"] == "pql.became_pql"
        assert hook["body"]["user"]["id"] == "u1" and hook["id"] == hook["body"]["id"]

        # the prompt: shown now, then not again within the cooldown
        first = server.product("GET", "/v1/prompts/u1").json()
        assert first["show"] is True and first["prompt"] == {
            "id": "upgrade_team",
            "data": {"plan": "team"},
        }
        assert first["user"]["is_pql"] is True
        assert server.product("GET", "/v1/prompts/u1").json()["show"] is False
        assert server.product("GET", "/v1/prompts/u1", key="wrong").status_code == 401
        assert server.product("GET", "/v1/prompts/u1", key="").status_code == 401

        # feedback: unknown users and bad bodies are refused; a good one acknowledged
        bad = server.product("POST", "/v1/feedback", json={"user_id": "nobody", "action": "done"})
        assert bad.status_code == 404 and "no scored user" in bad.json()["message"]
        no_reason = server.product(
            "POST", "/v1/feedback", json={"user_id": "u1", "action": "disqualify"}
        )
        assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
        extra = server.product(
            "POST", "/v1/feedback", json={"user_id": "u1", "action": "done", "x": 1}
        )
        assert extra.status_code == 400
        ok = server.product(
            "POST", "/v1/feedback", json={"user_id": "u1", "action": "done", "by": "rep@acme.io"}
        )
        assert ok.status_code == 200, ok.text

        # more events: no second webhook for the same transition
        _send(server.url, "u1", "ann@acme.io", ["pricing_viewed"])
        _wait(lambda: _delivered(server) == 1, 10, "metrics")
        metrics = server.metrics()
        assert metrics["live"]["delivered"] == 1 and metrics["prompts"]["shown"] == 1
        assert metrics["feedback"] == 1
        time.sleep(1)
        assert len(receiver.seen) == 1
    finally:
        server.stop()
    with duckdb.connect(server.db, read_only=True) as con:
        assert con.execute('SELECT user_id, action, "by" FROM pql_feedback').fetchall() == [
            ("u1", "done", "rep@acme.io")
        ]
        assert con.execute("SELECT status FROM pql_deliveries").fetchall() == [("delivered",)]


def test_a_server_killed_mid_delivery_resends_the_same_id_after_a_restart(tmp_path):
    release = threading.Event()

    class Stalling(Receiver):
        pass

    receiver = Stalling()
    original = receiver.server.RequestHandlerClass.do_POST

    def stall(handler):
        if len(receiver.seen) == 0:
            # the first request is read, then never answered: the sender is killed meanwhile
            handler.rfile.read(int(handler.headers["content-length"]))
            receiver.seen.append({"id": handler.headers["webhook-id"], "stalled": True})
            release.wait(30)
            return
        original(handler)

    receiver.server.RequestHandlerClass.do_POST = stall
    server = LiveServer(tmp_path, receiver.url)
    try:
        server.start()
        _send(server.url, "u1", "ann@acme.io", ["pricing_viewed"])
        _wait(lambda: receiver.seen, 20, "the first attempt")
        server.kill()
        release.set()
        server.start()
        _wait(lambda: len(receiver.seen) >= 2, 30, "the resend")
        ids = {s["id"] for s in receiver.seen}
        assert len(ids) == 1  # one transition, one webhook-id, however many attempts
        _wait(lambda: _delivered(server) == 1, 10, "recorded")
    finally:
        release.set()
        server.stop()
        receiver.close()


def test_serve_with_a_model_says_clearly_what_is_missing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pqlkit.cli import cli

    monkeypatch.delenv("PQL_PRODUCT_KEY", raising=False)
    monkeypatch.delenv("PQL_TEST_HOOK_SECRET", raising=False)
    model = tmp_path / "pql.yml"
    base = ["serve", "--url", str(tmp_path / "x.duckdb"), "--write-key", "web=wk"]
    model.write_text(MODEL.split("handoff:")[0])
    for args, env, message in (
        ([], {}, "has no `handoff:` section"),
        ([], {"X": "1"}, None),
        (["--product-key", "pk"], {}, "PQL_TEST_HOOK_SECRET is not set"),
        ([], {"PQL_TEST_HOOK_SECRET": SECRET}, "give a product key"),
        (["--full-every", "soon"], {"PQL_TEST_HOOK_SECRET": SECRET}, "--full-every"),
    ):
        if message is None:  # from here on, a model with a hand-off
            model.write_text(MODEL.replace("RECEIVER", "http://127.0.0.1:9/x"))
            continue
        result = CliRunner().invoke(cli, [*base, "--model", str(model), *args], env=env)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output, result.output
