"""The hand-off: transitions recorded with each run (an outbox in the run's transaction),
routed by the model, and delivered as signed webhooks to a real local receiver that verifies
them with the Standard Webhooks reference library, through failures, 429, 410 and crashes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks import Webhook

from pqlkit.destinations.slack import slack_message
from pqlkit.destinations.webhook import signature
from pqlkit.errors import BackendError, ModelValidationError, PqlkitError
from pqlkit.handoff import deliver as d
from pqlkit.handoff.transitions import DELIVERIES, OUTBOX
from pqlkit.model.load import load_model, parse_model
from pqlkit.usecases.session import Session

from .conftest import DEMO_END, free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "b2xkLXNlY3JldC1mb3Itcm90YXRpb24="


def test_signatures_reproduce_the_specification_test_vector():
    when = datetime.fromtimestamp(1614265330, UTC)
    assert signature([SECRET], "msg_p5jXN8AQM9LWM0D4loKWxJek", when, '{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    # during a key rotation both secrets sign; a receiver holding either verifies
    now = datetime.now(UTC).replace(microsecond=0)
    both = signature([SECRET, OLD_SECRET], "msg_1", now, "{}")
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": both,
    }
    for secret in (SECRET, OLD_SECRET):
        assert Webhook(secret).verify("{}", headers) == {}


class Server(ThreadingHTTPServer):
    request_queue_size = 64  # a webhook is sent up to 16 at a time; 5 (the default) resets some


class Receiver:
    """A local HTTP endpoint that verifies every request's signature and answers from a script."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None):
        self.script = list(script or [])
        self.seen: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = True
                if "webhook-signature" in headers:
                    try:
                        Webhook(SECRET).verify(body, headers)
                    except Exception:
                        verified = False
                receiver.seen.append(
                    {
                        "id": headers.get("webhook-id"),
                        "body": json.loads(body),
                        "verified": verified,
                    }
                )
                status, extra = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _handoff_model(model_file, url: str, extra_routes: str = "") -> None:
    model_file.write_text(
        model_file.read_text()
        + f"""
handoff:
  destinations:
    - {{id: sales_hook, kind: webhook, url: "{url}", secret_env: PQL_TEST_HOOK_SECRET, timeout: 5s}}
  routes:
    - {{when: {{transitions: [became_pql, tier_changed]}}, to: [sales_hook]}}
{extra_routes}"""
    )


def _demo_db(path) -> str:
    """A small demo world in a DuckDB file, for the command-line tests."""
    from pqlkit.backends import connect
    from pqlkit.demo.generate import DemoSize, generate
    from pqlkit.demo.load import load

    backend = connect(str(path))
    load(backend, generate(DemoSize(accounts=40, users=160, days=40, seed=2), end=DEMO_END))
    backend.close()
    return str(path)


def _count(backend, table: str) -> int:
    return backend.count(table)


def test_transitions_are_recorded_once_with_the_run_and_never_for_older_dates(
    model_file, world_backend, receiver
):
    _handoff_model(model_file, receiver.url)
    engine = Session(world_backend, load_model(model_file)).engine
    first = engine.run(DEMO_END - timedelta(days=7))
    # at the first run every PQL became one, and every PQA
    assert first.transitions == first.pqls + first.pqas and first.pqls > 0
    assert _count(world_backend, OUTBOX) == first.transitions
    assert (
        _count(world_backend, DELIVERIES) == first.pqls
    )  # the route takes became_pql (and tier changes)
    again = engine.run(DEMO_END - timedelta(days=7))  # the same date again: nothing new
    assert again.transitions == 0 and _count(world_backend, OUTBOX) == first.transitions
    later = engine.run(DEMO_END)
    kinds = {
        r[0] for r in world_backend.values(world_backend.table(OUTBOX).select("kind").distinct())
    }
    assert (
        later.transitions > 0
        and "became_pql" in kinds
        and kinds
        <= {
            "became_pql",
            "left_pql",
            "tier_changed",
            "segment_changed",
            "motion_changed",
            "became_pqa",
        }
    )
    recorded = _count(world_backend, OUTBOX)
    assert engine.run(DEMO_END - timedelta(days=20)).transitions == 0  # a backtest date is not news
    assert _count(world_backend, OUTBOX) == recorded
    # every user transition agrees with the stored scores of its run
    o = world_backend.table(OUTBOX)
    for row in world_backend.rows(o.filter(o.kind == "became_pql").limit(20)):
        user = json.loads(row["payload"])["user"]
        assert user["is_pql"] and user["score"] >= engine.model.thresholds.pql_score


def test_a_failed_run_records_no_transition(model_file, world_backend, receiver, monkeypatch):
    _handoff_model(model_file, receiver.url)
    engine = Session(world_backend, load_model(model_file)).engine
    engine.run(DEMO_END - timedelta(days=7))
    before = _count(world_backend, OUTBOX)
    import pqlkit.handoff.transitions as tr

    original = tr._account_transitions

    def fail(*args, **kwargs):  # a database error after the user transitions were computed
        world_backend.run_sql("INSERT INTO no_such_table VALUES (1)")
        return original(*args, **kwargs)

    monkeypatch.setattr(tr, "_account_transitions", fail)
    with pytest.raises(BackendError, match="rolled back"):
        engine.run(DEMO_END)
    monkeypatch.undo()
    assert _count(world_backend, OUTBOX) == before
    assert engine.run(DEMO_END).transitions > 0  # and the retry records them


def _deliver(backend, model_file, clock, client, env=None):
    handoff = load_model(model_file).model.handoff
    return d.deliver_due(
        backend,
        handoff,
        clock,
        client,
        env=env or {"PQL_TEST_HOOK_SECRET": SECRET},
        sleep=lambda s: None,
    )


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_delivery_retries_with_the_same_id_until_the_receiver_takes_it(
    model_file, world_backend, receiver
):
    _handoff_model(model_file, receiver.url)
    Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    pending = _count(world_backend, DELIVERIES)
    receiver.script = [(500, {}), (429, {"Retry-After": "30"})]
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    with httpx.Client() as client:
        r = _deliver(world_backend, model_file, clock, client)
        assert r.delivered == 0 and r.retrying == pending
        assert len(receiver.seen) == 2  # after the 429 the whole destination waits, unsent
        rows = d.listing(world_backend, ["failed"], limit=10_000)
        waits = sorted((x["next_attempt_at"] - clock.now).total_seconds() for x in rows)
        assert waits[0] == 5 and waits[-1] == 30  # the schedule's first step; Retry-After
        assert all(20 < w <= 30 for w in waits[1:])  # the rest wait as long (less what the
        # pass took), not sent
        clock.now += timedelta(seconds=6)
        assert _deliver(world_backend, model_file, clock, client).delivered == 1
        receiver.script = [(503, {"Retry-After": "120"})]
        clock.now += timedelta(seconds=30)
        assert _deliver(world_backend, model_file, clock, client).delivered == 0
        clock.now += timedelta(seconds=121)
        assert _deliver(world_backend, model_file, clock, client).delivered == pending - 1
    assert not d.listing(world_backend, ["pending", "failed", "dead"])
    ids = [s["id"] for s in receiver.seen]
    assert len(set(ids)) == pending and len(ids) == pending + 3  # three retries, same ids
    assert all(s["verified"] for s in receiver.seen)
    body = receiver.seen[-1]["body"]
    assert body["type"] in ("pql.became_pql", "pql.tier_changed") and body["user"]["top_reasons"]


def test_gone_disables_the_destination_and_other_4xx_dead_letter(
    model_file, world_backend, receiver
):
    _handoff_model(model_file, receiver.url)
    Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    receiver.script = [(400, {}), (410, {})]
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    with httpx.Client() as client:
        r = _deliver(world_backend, model_file, clock, client)
    assert r.dead == 1 and r.disabled >= 1 and r.delivered == 0
    statuses = {x["status"] for x in d.listing(world_backend, None, limit=10_000)}
    assert statuses <= {"dead", "disabled", "pending"} and "disabled" in statuses
    assert len(receiver.seen) == 2  # nothing more was sent to a destination that said 410
    with httpx.Client() as client:  # a retry marks them due; the 410 still holds
        d.retry(world_backend, clock.now, ["disabled"])
        assert _deliver(world_backend, model_file, clock, client).delivered == 0
        assert len(receiver.seen) == 2
        disabled = len(d.listing(world_backend, ["disabled"], limit=10_000))
        assert d.enable(world_backend, "sales_hook", clock.now) == disabled  # back in service
        r = _deliver(world_backend, model_file, clock, client)
    assert r.delivered == disabled and len(receiver.seen) == 2 + disabled
    assert {x["status"] for x in d.listing(world_backend, None, limit=10_000)} == {
        "dead",
        "delivered",
    }


def test_one_pass_sends_everything_due_whatever_its_batch_size(model_file, world_backend, receiver):
    _handoff_model(model_file, receiver.url)
    Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    pending = _count(world_backend, DELIVERIES)
    assert pending > 7
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    receiver.script = [(500, {})] * 3  # retried later, not again in this pass
    with httpx.Client() as client:
        r = d.deliver_due(
            world_backend,
            load_model(model_file).model.handoff,
            clock,
            client,
            env={"PQL_TEST_HOOK_SECRET": SECRET},
            limit=2,
        )
    assert (r.delivered, r.retrying) == (pending - 3, 3) and len(receiver.seen) == pending


def test_a_receiver_that_never_answers_is_retried_then_dead_lettered(model_file, world_backend):
    _handoff_model(model_file, f"http://127.0.0.1:{free_port()}/nobody")  # refused
    text = model_file.read_text().replace("handoff:\n", "handoff:\n  retry_for: 1h\n", 1)
    model_file.write_text(text)
    Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    with httpx.Client() as client:
        attempts = 0
        while d.listing(world_backend, ["pending", "failed"], limit=1):
            _deliver(world_backend, model_file, clock, client)
            clock.now += timedelta(hours=3)
            attempts += 1
            assert attempts < 10
    rows = d.listing(world_backend, ["dead"], limit=10_000)
    assert rows and all("ConnectError" in (x["last_error"] or "") for x in rows)
    # a person retries them: due again, same ids
    from pqlkit.handoff.deliver import retry

    assert retry(world_backend, clock.now, ["dead"]) == len(rows)


def test_a_worker_that_dies_after_sending_sends_again_with_the_same_id(
    model_file, world_backend, receiver, monkeypatch
):
    _handoff_model(model_file, receiver.url)
    Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    original = world_backend.update
    calls = {"n": 0}

    def die_on_the_third_record(table, values, where):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies between sending and recording
        return original(table, values, where)

    monkeypatch.setattr(world_backend, "update", die_on_the_third_record)
    with httpx.Client() as client, pytest.raises(KeyboardInterrupt):
        _deliver(world_backend, model_file, clock, client)
    monkeypatch.undo()
    stuck = d.listing(world_backend, ["sending"], limit=10_000)  # sent, never recorded
    assert stuck
    with httpx.Client() as client:
        _deliver(world_backend, model_file, clock, client)  # the dead worker's claims hold
        assert len(receiver.seen) == len({s["id"] for s in receiver.seen})
        clock.now += d.LEASE + timedelta(seconds=1)  # then lapse: another worker sends them
        _deliver(world_backend, model_file, clock, client)
    ids = [s["id"] for s in receiver.seen]
    total = _count(world_backend, DELIVERIES)
    assert len(set(ids)) == total and len(ids) == total + len(stuck)  # resent with their ids
    assert not d.listing(world_backend, ["pending", "failed", "sending"])


def test_bad_hand_off_input_is_a_clear_error(model_file, tmp_path):
    base = model_file.read_text()
    bad = (
        base
        + """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "ftp://example.com/x", secret_env: PQL_HOOK}
    - {id: chat, kind: slack, url_env: lowercase_not_allowed}
  routes:
    - {when: {transitions: [became_pql]}, to: [hok]}
"""
    )
    with pytest.raises(ModelValidationError) as info:
        parse_model(bad, "pql.yml")
    text = str(info.value)
    assert (
        "is not an http(s) URL" in text
        and "unknown destination 'hok'" in text
        and "did you mean 'hook'" in text
    )
    assert "url_env" in text
    good = parse_model(
        base
        + """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "https://example.com/x", secret_env: PQL_HOOK}
  routes:
    - {to: [hook]}
""",
        "pql.yml",
    ).model.handoff
    with pytest.raises(PqlkitError, match="PQL_HOOK is not set"):
        d.secrets_for(good, {})
    with pytest.raises(PqlkitError, match="not a whsec_ secret"):
        d.secrets_for(good, {"PQL_HOOK": "not base64 !!"})


def test_slack_messages_are_readable_and_escaped():
    payload = {
        "type": "pql.became_pql",
        "user": {
            "id": "<script>alert(1)</script>",
            "account_id": "acme",
            "score": 82,
            "tier": "A",
            "segment": "free_user",
            "motion": "sales_assist",
            "top_reasons": ["Invited 9 teammates (+20)", "<@channel> & co"],
        },
    }
    m = slack_message(payload, "https://app.example.com/leads/{user_id}")
    assert "score 82 (tier A), sales_assist" in m["text"]
    mrkdwn = json.dumps(
        [b for b in m["blocks"] if b["type"] != "header"]
    )  # the header is plain text
    assert "<script>" not in mrkdwn and "<@channel>" not in mrkdwn
    assert "&lt;@channel&gt; &amp; co" in mrkdwn and "Invited 9 teammates (+20)" in mrkdwn
    assert "leads/%3Cscript%3Ealert%281%29%3C%2Fscript%3E|Open the lead>" in mrkdwn


def test_pql_deliver_and_deliveries_from_the_command_line(
    model_file, tmp_path, receiver, monkeypatch
):
    from click.testing import CliRunner

    from pqlkit.cli import cli

    db = _demo_db(tmp_path / "h.duckdb")
    _handoff_model(model_file, receiver.url)
    runner = CliRunner()
    scored = runner.invoke(
        cli,
        ["score", "-m", str(model_file), "--url", db, "--as-of", DEMO_END.isoformat(), "--json"],
    )
    assert scored.exit_code == 0, scored.output
    pqls = json.loads(scored.output)["pqls"]
    missing = runner.invoke(cli, ["deliver", "-m", str(model_file), "--url", db])
    assert missing.exit_code == 1 and "PQL_TEST_HOOK_SECRET is not set" in missing.output
    monkeypatch.setenv("PQL_TEST_HOOK_SECRET", SECRET)
    receiver.script = [(503, {})]
    sent = runner.invoke(cli, ["deliver", "-m", str(model_file), "--url", db, "--json"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.output)["delivered"] == pqls - 1
    listed = runner.invoke(cli, ["deliveries", "--url", db, "--json"])
    [failed] = json.loads(listed.output)["deliveries"]
    assert failed["status"] == "failed" and failed["last_status"] == 503 and failed["attempts"] == 1
    again = runner.invoke(cli, ["deliveries", "--url", db, "--retry", "--status", "failed"])
    assert again.exit_code == 0 and "1 deliveries are due again" in again.output
    assert (
        json.loads(
            runner.invoke(cli, ["deliver", "-m", str(model_file), "--url", db, "--json"]).output
        )["delivered"]
        == 1
    )
    assert len({s["id"] for s in receiver.seen}) == pqls and all(
        s["verified"] for s in receiver.seen
    )
    enabled = runner.invoke(cli, ["deliveries", "--url", db, "--enable", "sales_hook", "--json"])
    assert enabled.exit_code == 0 and json.loads(enabled.output) == {
        "enabled": "sales_hook",
        "due": 0,  # nothing was disabled
    }


def test_feedback_silences_a_user_during_the_cooldown(model_file, world_backend, receiver):
    from pqlkit.handoff.feedback import record_feedback

    _handoff_model(model_file, receiver.url)
    engine = Session(world_backend, load_model(model_file)).engine
    early, late = DEMO_END - timedelta(days=21), DEMO_END
    engine.run(early)
    was = {
        r["user_id"]: r["is_pql"]
        for r in world_backend.rows(engine.stored_users(early, engine.loaded.version))
    }
    now = {r["user_id"]: r["is_pql"] for r in world_backend.rows(engine.scores(late))}
    newcomers = sorted(u for u, p in now.items() if p and not was.get(u))
    assert len(newcomers) >= 2
    quiet, loud = newcomers[0], newcomers[1]
    fb = record_feedback(
        world_backend,
        quiet,
        "disqualify",
        reason="student project",
        by="ana",
        now=early,
        cooldown=timedelta(days=30),
    )
    assert fb.quiet_until == early + timedelta(days=30)
    engine.run(late)
    o, dl = world_backend.table(OUTBOX), world_backend.table(DELIVERIES)
    became = {r["entity_id"]: r["id"] for r in world_backend.rows(o.filter(o.kind == "became_pql"))}
    delivered_to = {r["transition_id"] for r in world_backend.rows(dl.select("transition_id"))}
    assert quiet in became and became[quiet] not in delivered_to  # recorded, not re-alerted
    assert became[loud] in delivered_to
    with pytest.raises(PqlkitError, match="disqualify needs a reason"):
        record_feedback(
            world_backend,
            loud,
            "disqualify",
            reason=" ",
            by=None,
            now=late,
            cooldown=timedelta(days=1),
        )
    with pytest.raises(PqlkitError, match="no scored user 'nobody'"):
        record_feedback(
            world_backend,
            "nobody",
            "done",
            reason=None,
            by=None,
            now=late,
            cooldown=timedelta(days=1),
        )


def test_pql_feedback_from_the_command_line(model_file, tmp_path, receiver):
    from click.testing import CliRunner

    from pqlkit.cli import cli

    db = _demo_db(tmp_path / "f.duckdb")
    _handoff_model(model_file, receiver.url)
    runner = CliRunner()
    scored = runner.invoke(
        cli,
        [
            "score",
            "-m",
            str(model_file),
            "--url",
            db,
            "--as-of",
            DEMO_END.isoformat(),
            "--json",
            "--limit",
            "1",
        ],
    )
    user = json.loads(scored.output)["rows"][0]["user_id"]
    ok = runner.invoke(
        cli,
        [
            "feedback",
            user,
            "disqualify",
            "--reason",
            "a competitor",
            "--by",
            "ana",
            "-m",
            str(model_file),
            "--url",
            db,
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["reason"] == "a competitor"
    bad = runner.invoke(cli, ["feedback", "nobody", "done", "-m", str(model_file), "--url", db])
    assert bad.exit_code == 1 and "no scored user 'nobody'" in bad.output


def test_slack_destinations_get_block_kit_messages_at_most_one_a_second(
    model_file, world_backend, receiver
):
    model_file.write_text(
        model_file.read_text()
        + """
handoff:
  destinations:
    - {id: sales_channel, kind: slack, url_env: PQL_TEST_SLACK_URL, link: "https://app.example.com/leads/{user_id}"}
  routes:
    - {when: {transitions: [became_pqa]}, to: [sales_channel]}
"""
    )
    result = Session(world_backend, load_model(model_file)).engine.run(DEMO_END - timedelta(days=7))
    assert result.pqas > 1
    handoff = load_model(model_file).model.handoff
    waits: list[float] = []
    clock = Clock(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    with httpx.Client() as client:
        report = d.deliver_due(
            world_backend,
            handoff,
            clock,
            client,
            env={"PQL_TEST_SLACK_URL": receiver.url},
            sleep=waits.append,
        )
    assert report.delivered == result.pqas
    assert len(waits) == result.pqas - 1 and all(
        0 < w <= 1.0 for w in waits
    )  # one message a second
    first = receiver.seen[0]
    assert first["id"] is None  # Slack gets no webhook signature headers
    assert "became pqa" in first["body"]["text"] and first["body"]["blocks"][0]["type"] == "header"
