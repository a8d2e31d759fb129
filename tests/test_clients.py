"""The real Segment and RudderStack client libraries against the collector, in this process:
their retries when the server sheds load (429, 503), identities they send, and the Sparkify
log replayed through the Segment client, stored exactly once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import duckdb
import pytest
import uvicorn

from pqlkit.server.app import Collector

from .conftest import free_port, shared_path
from .serve import METRICS_AUTH, METRICS_KEY


class Shedding:
    """Wraps the collector: answers the first requests with the given statuses (and
    Retry-After), as a server under load would, then lets requests through."""

    def __init__(self, app, statuses: list[int]):
        self.app = app
        self.statuses = list(statuses)
        self.refused: list[int] = []
        self.passed = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            if self.statuses:
                status = self.statuses.pop(0)
                while (await receive()).get("more_body"):
                    pass
                self.refused.append(status)
                body = json.dumps({"code": "overloaded", "message": "busy"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"retry-after", b"1"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            self.passed += 1
        await self.app(scope, receive, send)


class Running:
    """A collector (optionally wrapped) served by uvicorn on a thread."""

    def __init__(self, tmp_path: Path, statuses: list[int] | None = None):
        self.db = tmp_path / "c.duckdb"
        self.collector = Collector(
            str(self.db),
            tmp_path / "log",
            {"web": "wk_web"},
            resolve_interval=0,
            metrics_keys=[METRICS_KEY],
        )
        self.app = Shedding(self.collector, statuses or [])
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the collector did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql).fetchall()


def test_segment_client_retries_429_and_503_and_nothing_is_stored_twice(tmp_path):
    from segment.analytics.client import Client

    errors: list = []
    with Running(tmp_path, statuses=[503, 429, 503]) as running:
        client = Client(
            "wk_web",
            host=running.url,
            max_retries=6,
            upload_size=20,
            on_error=lambda e, batch: errors.append(e),
        )
        for i in range(50):
            client.track(f"u{i % 7}", "Project Created", {"n": i}, message_id=f"s-{i}")
        client.flush()
        client.join()
    assert errors == []
    assert running.app.refused == [503, 429, 503]  # the client met the shedding and tried again
    assert running.query("SELECT count(*), count(DISTINCT message_id) FROM events") == [(50, 50)]


def test_rudderstack_client_events_identities_and_retries(tmp_path):
    from rudderstack.analytics.client import Client

    errors: list = []
    with Running(tmp_path, statuses=[503, 429]) as running:
        client = Client(
            "wk_web", host=running.url, max_retries=6, on_error=lambda e, batch: errors.append(e)
        )
        client.track(anonymous_id="visitor-1", event="Pricing Viewed", message_id="r-1")
        client.identify(
            "u1",
            {"email": "u1@acme.io", "createdAt": "2026-09-01T00:00:00Z"},
            anonymous_id="visitor-1",
            message_id="r-2",
        )
        client.group("u1", "acc-9", {"name": "Acme", "employees": 300}, message_id="r-3")
        client.track("u1", "Project Created", {"template": "blank"}, message_id="r-4")
        client.flush()
        client.join()
    assert errors == [] and running.app.refused == [503, 429]
    assert running.query(
        "SELECT message_id, user_id, anonymous_id, event FROM events ORDER BY message_id"
    ) == [("r-1", None, "visitor-1", "Pricing Viewed"), ("r-4", "u1", None, "Project Created")]
    assert running.query("SELECT user_id, email, account_id FROM pql_users") == [
        ("u1", "u1@acme.io", "acc-9")
    ]
    assert running.query("SELECT account_id, name, employees FROM pql_accounts") == [
        ("acc-9", "Acme", 300.0)
    ]
    assert running.query("SELECT id, user_id FROM pql_identities") == [("visitor-1", "u1")]


@pytest.fixture(scope="module")
def sparkify_rows() -> list[tuple[str, int, dict]]:
    folder = shared_path("sparkify-eventsim", "log_data")
    rows = []
    for path in sorted(folder.rglob("*.json")):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                rows.append((f"{path.name}:{n}", n, json.loads(line)))
    assert len(rows) > 8000
    return rows


def test_sparkify_replayed_through_the_segment_client_is_stored_exactly_once(
    tmp_path, sparkify_rows
):
    from datetime import UTC, datetime

    from segment.analytics.client import Client

    def send(client, rows):
        for key, _, row in rows:
            user = row["userId"] or None
            client.track(
                user,
                row["page"],
                {"level": row["level"], "song": row.get("song")},
                timestamp=datetime.fromtimestamp(row["ts"] / 1000, UTC),
                anonymous_id=None if user else f"session-{row['sessionId']}",
                message_id=f"sparkify-{key}",
            )

    errors: list = []
    with Running(tmp_path) as running:
        client = Client(
            "wk_web",
            host=running.url,
            max_retries=6,
            upload_size=100,
            max_queue_size=50_000,
            on_error=lambda e, batch: errors.append(e),
        )
        send(client, sparkify_rows)
        send(client, sparkify_rows[:500])  # a client resending what it already sent
        client.flush()
        client.join()
    assert errors == []
    stored = {
        r[0]: r[1:]
        for r in running.query(
            "SELECT message_id, coalesce(user_id, anonymous_id), event, epoch_ms(timestamp) FROM events"
        )
    }
    expected = {
        f"sparkify-{key}": (row["userId"] or f"session-{row['sessionId']}", row["page"], row["ts"])
        for key, _, row in sparkify_rows
    }
    assert running.query("SELECT count(*) FROM events") == [(len(expected),)]  # each once
    assert stored.keys() == expected.keys()
    assert all(stored[k][:2] == expected[k][:2] for k in expected)
    # timestamps are corrected for clock skew (receivedAt - (sentAt - timestamp)): with one
    # clock on both sides the correction is only the request's transit time
    shifts = sorted(stored[k][2] - expected[k][2] for k in expected)
    assert shifts[0] >= 0 and shifts[-1] < 2_000
    assert running.collector.metrics()["deduplicated"] == 500


def test_the_collector_sheds_load_when_the_database_falls_behind(tmp_path):
    import httpx

    with Running(tmp_path) as running:
        running.collector.max_backlog_segments = -1  # as if the log were ahead of the database
        batch = {"batch": [{"type": "track", "userId": "u", "event": "A", "messageId": "x"}]}
        r = httpx.post(running.url + "/v1/batch", json=batch, auth=("wk_web", ""))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["code"] == "overloaded"
        running.collector.max_backlog_segments = 32
        assert (
            httpx.post(running.url + "/v1/batch", json=batch, auth=("wk_web", "")).status_code
            == 200
        )
        assert (
            httpx.get(running.url + "/metrics", headers=METRICS_AUTH).json()["backlog_segments"]
            == 0
        )
    assert running.query("SELECT message_id FROM events") == [("x",)]
