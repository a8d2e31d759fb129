"""Deliveries at scale: a backlog goes out several at a time per destination, within its bound,
each transition once under its id, and two senders over one database never send the same
delivery (claims in the database decide). Not timed: bench/bench_deliver.py measures the rate."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import httpx
import pyarrow as pa
import pytest
from standardwebhooks import Webhook

from pqlkit.handoff import deliver as d
from pqlkit.handoff.transitions import (
    DELIVERIES,
    DELIVERIES_SCHEMA,
    OUTBOX,
    OUTBOX_SCHEMA,
    ensure_tables,
)
from pqlkit.model.handoff import Handoff

from .conftest import free_port
from .test_handoff import Server

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"PQL_TEST_HOOK_SECRET": SECRET}


class SlowReceiver:
    """Answers every signed POST after ``delay`` seconds (``answers`` first, in order), counting
    the requests in flight at once."""

    def __init__(
        self, delay: float = 0.03, answers: list[tuple[int, dict[str, str]]] | None = None
    ):
        self.delay = delay
        self.answers = list(answers or [])
        self.seen: list[str] = []
        self.unverified = 0
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.active += 1
                    receiver.peak = max(receiver.peak, receiver.active)
                    status, extra = receiver.answers.pop(0) if receiver.answers else (200, {})
                try:
                    Webhook(SECRET).verify(body, headers)
                except Exception:
                    receiver.unverified += 1
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.active -= 1
                    receiver.seen.append(headers["webhook-id"])
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow():
    r = SlowReceiver()
    yield r
    r.close()


def handoff(url: str, concurrency: int = 8, timeout: str = "5s") -> Handoff:
    return Handoff.model_validate(
        {
            "destinations": [
                {
                    "id": "hook",
                    "kind": "webhook",
                    "url": url,
                    "secret_env": "PQL_TEST_HOOK_SECRET",
                    "timeout": timeout,
                    "concurrency": concurrency,
                }
            ],
            "routes": [{"to": ["hook"]}],
        }
    )


def backlog(backend, n: int, now: datetime) -> list[str]:
    """``n`` transitions due to `hook` (as a run records them); their ids."""
    ensure_tables(backend)
    ids = [f"tr_{i:06d}" for i in range(n)]
    created = now - timedelta(seconds=10)
    outbox = [
        {
            "id": t,
            "kind": "became_pql",
            "entity": "user",
            "entity_id": f"u{i}",
            "payload": json.dumps({"type": "pql.became_pql", "id": t, "user": {"id": f"u{i}"}}),
            "created_at": created,
        }
        for i, t in enumerate(ids)
    ]
    backend.insert(OUTBOX, pa.Table.from_pylist(outbox, schema=OUTBOX_SCHEMA))
    rows = [
        {
            "transition_id": t,
            "destination": "hook",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": created,
            "created_at": created,
        }
        for t in ids
    ]
    backend.insert(DELIVERIES, pa.Table.from_pylist(rows, schema=DELIVERIES_SCHEMA))
    return ids


def statuses(backend) -> dict[str, int]:
    t = backend.table(DELIVERIES)
    return dict(backend.values(t.group_by("status").aggregate(n=t.count())))


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_a_backlog_goes_out_several_at_a_time_each_once(new_backend, slow):
    backend = new_backend()
    ids = backlog(backend, 200, now())
    with httpx.Client() as client:
        report = d.deliver_due(backend, handoff(slow.url), now, client, env=ENV, limit=60)
    assert report.delivered == 200 and report.remaining == 0
    assert sorted(slow.seen) == ids  # each transition once, under its own id
    assert slow.unverified == 0
    assert 1 < slow.peak <= 8  # concurrently, within the bound
    assert statuses(backend) == {"delivered": 200}


def test_the_bound_is_the_models(new_backend, slow):
    backend = new_backend()
    backlog(backend, 40, now())
    with httpx.Client() as client:
        d.deliver_due(backend, handoff(slow.url, concurrency=1), now, client, env=ENV)
    assert slow.peak == 1 and len(slow.seen) == 40


def test_a_claim_outlasts_a_long_timeout(new_backend, slow):
    """A claim lasts two minutes, or longer for a destination that waits longer for an answer:
    a send starts only when the claim outlasts it."""
    backend = new_backend()
    backlog(backend, 5, now())
    with httpx.Client() as client:
        report = d.deliver_due(backend, handoff(slow.url, timeout="5m"), now, client, env=ENV)
    assert report.delivered == 5 and len(slow.seen) == 5


def test_a_retry_after_stops_new_sends_to_the_destination(new_backend):
    """Once the window is full, a 429 with Retry-After: what was in flight finishes; nothing
    new starts; the rest wait as long as asked."""
    receiver = SlowReceiver(answers=[(200, {})] * 20 + [(429, {"Retry-After": "60"})])
    try:
        backend = new_backend()
        backlog(backend, 300, now())
        started = now()
        with httpx.Client() as client:
            report = d.deliver_due(backend, handoff(receiver.url), now, client, env=ENV)
    finally:
        receiver.close()
    assert receiver.peak > 1
    # nothing starts once the sender has read the 429: those already on their way (at most 7
    # beside it, the window being 8) arrive, and on a busy machine the sender may read up to a
    # window of other answers (each starting one more send) before it reads the 429's
    assert len(receiver.seen) <= 21 + 7 + 8
    assert report.delivered <= len(receiver.seen) - 1  # (one may time out on a busy machine)
    assert report.delivered + report.retrying == 300
    t = backend.table(DELIVERIES)
    unsent = t.filter(t.status == "failed", t.last_error.startswith("not sent"))
    waits = backend.values(unsent.select("next_attempt_at"))
    assert len(waits) >= 300 - 36  # the unsent wait the 60 s from the 429 on
    assert all(w[0] > started + timedelta(seconds=55) for w in waits)


def test_two_senders_that_read_the_same_deliveries_send_each_once(new_backend, backend_name):
    backend = new_backend()
    ids = backlog(backend, 30, now())
    first, second = d.due(backend, now(), 100), d.due(backend, now(), 100)
    assert len(first) == len(second) == 30
    held = d.claim(backend, first, now())
    assert len(held) == 30 and all(r["lease_until"] > now() for r in held)
    assert d.claim(backend, second, now()) == []  # read the same rows: it holds none
    assert d.due(backend, now(), 100) == []  # nor does a later reader while the claim holds
    report = d.Report()
    receiver = SlowReceiver()
    try:
        with httpx.Client() as client:  # a whole pass beside it sends none of them either
            report = d.deliver_due(backend, handoff(receiver.url), now, client, env=ENV)
            assert receiver.seen == [] and report.remaining == 30  # and says they remain
            later = lambda: now() + d.LEASE + timedelta(seconds=1)  # noqa: E731
            report = d.deliver_due(backend, handoff(receiver.url), later, client, env=ENV)
    finally:
        receiver.close()
    assert sorted(receiver.seen) == ids  # the first sender died: its claims lapsed
    assert report.delivered == 30 and statuses(backend) == {"delivered": 30}


def test_two_processes_draining_one_backlog_send_each_delivery_once(pg_server, slow):
    """Two senders at once over one PostgreSQL database (as two `pql deliver` would)."""
    from pqlkit.backends import connect

    url = pg_server.create_database()
    setup = connect(url)
    ids = backlog(setup, 400, now())
    reports: list[d.Report] = []
    together = threading.Barrier(2)

    def sender() -> None:
        backend = connect(url)
        try:
            with httpx.Client() as client:
                together.wait(30)  # both read the same due rows at first
                reports.append(
                    d.deliver_due(backend, handoff(slow.url), now, client, env=ENV, limit=50)
                )
        finally:
            backend.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(reports) == 2 and all(r.delivered > 0 for r in reports)  # both sent
    assert sorted(slow.seen) == ids  # never the same delivery twice
    assert sum(r.delivered for r in reports) == 400
    assert statuses(setup) == {"delivered": 400}
    setup.close()


def test_a_deliveries_table_from_before_claims_takes_its_column_in_place(new_backend, slow):
    backend = new_backend()
    made = new_backend()  # the rows as the previous release wrote them: no claim column
    ids = backlog(made, 3, now())
    before = pa.schema([f for f in DELIVERIES_SCHEMA if f.name != "claim"])
    rows = made.arrow(made.compile(made.table(DELIVERIES).drop("claim"))).cast(before)
    backend.ensure_table(OUTBOX, OUTBOX_SCHEMA, primary_key=["id"])
    backend.insert(OUTBOX, made.arrow(made.compile(made.table(OUTBOX))).cast(OUTBOX_SCHEMA))
    backend.ensure_table(DELIVERIES, rows.schema, primary_key=["transition_id", "destination"])
    backend.insert(DELIVERIES, rows)
    assert "claim" not in backend.table(DELIVERIES).columns
    with httpx.Client() as client:
        assert d.deliver_due(backend, handoff(slow.url), now, client, env=ENV).delivered == 3
    assert sorted(slow.seen) == ids
    assert "claim" in backend.table(DELIVERIES).columns
