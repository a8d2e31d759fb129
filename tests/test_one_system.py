"""One running system: one schema for the demo, the importer and the collector (a table an
older pqlkit made is refused, naming table, columns and the fix, before anything is
acknowledged, and `pql migrate` upgrades it in place), and back-pressure when storing fails."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from pqlkit.backends import connect
from pqlkit.collect.tables import EVENTS_SCHEMA
from pqlkit.demo.generate import DemoSize, generate
from pqlkit.demo.load import load

from .conftest import DEMO_END
from .serve import Serve

SMALL = DemoSize(accounts=20, users=80, days=20, seed=5)


def pql(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pqlkit.cli", *args], capture_output=True, text=True, **kw
    )


def _old_demo(path) -> None:
    """A demo database as the previous release wrote it: events without source and
    received_at (what `pql serve --url pql-demo/demo.duckdb` acknowledged and never stored)."""
    data = generate(SMALL, end=DEMO_END)
    backend = connect(str(path))
    try:
        for name in ("accounts", "users", "outcomes"):
            backend.write_table(name, getattr(data, name), overwrite=True)
        backend.write_table("events", data.events, overwrite=True)  # the old layout
    finally:
        backend.close()


def _track(url: str, n: int) -> None:
    batch = [
        {"type": "track", "userId": "u_000001", "event": "report_created", "messageId": f"s{i}"}
        for i in range(n)
    ]
    r = httpx.post(url + "/v1/batch", json={"batch": batch}, auth=("wk_web", ""), timeout=30)
    assert r.status_code == 200, r.text


def test_the_demo_database_takes_the_collector_and_the_importer_as_it_is(tmp_path):
    db = tmp_path / "demo.duckdb"
    backend = connect(str(db))
    load(backend, generate(SMALL, end=DEMO_END))
    assert backend.table("events").columns == tuple(EVENTS_SCHEMA.names)
    backend.close()
    server = Serve(tmp_path, db="demo.duckdb")
    server.start()
    try:
        _track(server.url, 5)
        server.stop()
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM events WHERE source = 'web' AND message_id LIKE 's%'"
        ).fetchone()[0]
        demo = con.execute("SELECT count(*) FROM events WHERE source = 'demo'").fetchone()[0]
    assert stored == 5
    assert demo > 0


def test_an_older_database_is_refused_by_name_then_migrated_in_place(tmp_path):
    db = tmp_path / "old.duckdb"
    _old_demo(db)
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM events").fetchone()[0]

    server = pql("serve", "--url", str(db), "--log-dir", str(tmp_path / "log"), "--write-key",
                 "web=wk_web", "--port", "1", timeout=120)  # fmt: skip
    assert server.returncode == 1, server.stderr
    assert "table events has no column source, received_at" in server.stderr
    assert "pql migrate" in server.stderr
    assert "Traceback" not in server.stderr
    assert not (tmp_path / "log").exists() or not any((tmp_path / "log").iterdir())

    rows = tmp_path / "more.csv"
    rows.write_text("user_id,event,timestamp\nu_000001,report_created,2026-09-30T10:00:00Z\n")
    imported = pql("import", str(rows), "--url", str(db), timeout=120)
    assert imported.returncode == 1
    assert "table events has no column source, received_at" in imported.stderr

    migrated = pql("migrate", "--url", str(db), "--json", timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == {"added": {"events": ["source", "received_at"]}}
    again = pql("migrate", "--url", str(db), timeout=120)
    assert "Nothing to do" in again.stdout

    imported = pql("import", str(rows), "--url", str(db), timeout=120)
    assert imported.returncode == 0, imported.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        after = con.execute("SELECT count(*) FROM events").fetchone()[0]
        old_rows = con.execute("SELECT count(*) FROM events WHERE source IS NULL").fetchone()[0]
    assert after == before + 1
    assert old_rows == before  # the rows already there keep their values, new columns empty


@pytest.mark.parametrize("column", ["source", "received_at"])
def test_migrate_adds_exactly_what_is_missing(tmp_path, column):
    backend = connect(str(tmp_path / "x.duckdb"))
    try:
        backend.ensure_table("events", EVENTS_SCHEMA.remove(EVENTS_SCHEMA.get_field_index(column)))
        assert backend.missing_columns("events", EVENTS_SCHEMA) == [column]
        assert backend.add_columns("events", EVENTS_SCHEMA) == [column]
        assert backend.missing_columns("events", EVENTS_SCHEMA) == []
        assert backend.add_columns("events", EVENTS_SCHEMA) == []
    finally:
        backend.close()


def test_when_storing_fails_for_seconds_new_events_get_503_until_it_works_again(tmp_path):
    """Back-pressure: the database held by another process past the flusher's lock wait makes
    storing fail; after the grace the collector refuses (503, Retry-After) rather than
    acknowledge what it cannot store, says why in /health and /metrics, and takes events again
    once storing works. Nothing acknowledged is lost."""
    db = tmp_path / "c.duckdb"
    server = Serve(tmp_path, env={"PQL_LOCK_TIMEOUT": "0.5"})
    server.start()
    try:
        _track(server.url, 3)
        holder = connect(str(db), wait=30)  # holds the file (and its lock) from outside
        try:
            _track(server.url, 2)  # acknowledged: storing has not failed long yet
            refused = None
            for _ in range(200):
                r = httpx.post(
                    server.url + "/v1/track",
                    json={"userId": "u_2", "event": "x", "messageId": "late"},
                    auth=("wk_web", ""),
                    timeout=10,
                )
                if r.status_code == 503:
                    refused = r
                    break
                assert r.status_code == 200
                time.sleep(0.1)
            assert refused is not None, "never refused while storing failed"
            assert refused.json()["code"] == "storing_failed"
            assert refused.headers["retry-after"]
            health = httpx.get(server.url + "/health", timeout=10).json()
            assert health["refusing_events"] is True
        finally:
            holder.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            r = httpx.post(
                server.url + "/v1/track",
                json={"userId": "u_3", "event": "x", "messageId": "after"},
                auth=("wk_web", ""),
                timeout=10,
            )
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert r.status_code == 200
        server.stop()
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with duckdb.connect(str(db), read_only=True) as con:
        ids = {r[0] for r in con.execute("SELECT message_id FROM events").fetchall()}
    acknowledged = {f"s{i}" for i in range(3)} | {"after"}
    assert acknowledged <= ids  # s0/s1 of the second batch share ids with the first: stored once


def _signed_in(url: str, name: str, password: str) -> httpx.Client:
    import re

    c = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"csrf": token, "name": name, "password": password})
    assert r.status_code == 303, r.text
    return c


def test_writing_commands_take_their_turn_beside_a_busy_web_app(tmp_path):
    """A rep loads a page every 0.4 s from `pql ui` (its warm connection kept, as by default)
    while `pql score`, `pql import` and `pql forget` run on the same DuckDB file: each finishes
    within twice its time alone (plus a second of turn-taking), and no page fails."""
    import os
    import threading

    from .conftest import free_port
    from .serve import wait_healthy

    db, model = tmp_path / "d.duckdb", tmp_path / "pql.yml"
    backend = connect(str(db))
    load(backend, generate(DemoSize(accounts=200, users=1500, days=45, seed=3), end=DEMO_END))
    backend.close()
    from pqlkit.demo.load import write_model

    write_model(model)
    rows = tmp_path / "more.csv"
    rows.write_text("user_id,event,timestamp\nu_000001,report_created,2026-09-30T10:00:00Z\n")
    url = ["--url", str(db)]
    commands = {
        "score": ["score", "-m", str(model), *url, "--as-of", "2026-10-01", "--limit", "0"],
        "import": ["import", str(rows), *url],
        "forget": ["forget", "u_000002", "--yes", *url],
    }

    def timed(args: list[str]) -> float:
        started = time.monotonic()
        done = pql(*args, timeout=300)
        assert done.returncode == 0, done.stderr
        return time.monotonic() - started

    alone = {k: timed(v) for k, v in commands.items() if k != "forget"}
    assert (
        pql("users", "add", "rep", *url, "--password-stdin", input="pw-rep-123456\n").returncode
        == 0
    )

    port = free_port()
    env = {**os.environ, "PQL_UI_SECRET": "s" * 40, "PYTHONWARNINGS": "ignore"}
    err = tmp_path / "ui.err"
    with err.open("ab") as stderr:
        ui = subprocess.Popen(
            [sys.executable, "-m", "pqlkit.cli", "ui", "-m", str(model), *url, "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    statuses: list[int] = []
    stop = threading.Event()
    try:
        wait_healthy(f"http://127.0.0.1:{port}", ui, err)
        client = _signed_in(f"http://127.0.0.1:{port}", "rep", "pw-rep-123456")

        def browse() -> None:
            while not stop.is_set():
                statuses.append(client.get("/inbox").status_code)
                stop.wait(0.4)

        browser = threading.Thread(target=browse)
        browser.start()
        time.sleep(2)
        busy = {k: timed(v) for k, v in commands.items()}
        stop.set()
        browser.join(60)
        client.close()
    finally:
        stop.set()
        ui.kill()
        ui.wait(30)
    for name, seconds in alone.items():
        assert busy[name] <= 2 * seconds + 1.0, (name, seconds, busy[name])
    assert busy["forget"] < 60
    assert len(statuses) >= 5
    assert set(statuses) == {200}, statuses


def test_one_command_runs_collection_live_scoring_hand_off_and_the_web_app(tmp_path):
    """`pql serve --model pql.yml --ui`: the Segment client's events are stored, the user
    rescored live, the webhook sent (signed, once), and the same port serves the web app,
    where a signed-in rep finds the new PQL in the inbox."""
    from .test_handoff import Receiver
    from .test_live_serve import LiveServer, _send, _wait

    receiver = Receiver()
    server = LiveServer(tmp_path, receiver.url)
    server.args = (*server.args, "--ui")
    server.env = {**server.env, "PQL_UI_SECRET": "u" * 40}
    added = pql("users", "add", "rep", "--url", server.db, "--password-stdin",
                input="pw-rep-123456\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    server.start()
    try:
        _send(server.url, "ann", "ann@acme.io", ["pricing_viewed"])
        _wait(lambda: len(receiver.seen) >= 1, 60, "the webhook")
        assert receiver.seen[0]["verified"]
        assert receiver.seen[0]["body"]["user"]["id"] == "ann"
        assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
        rep = _signed_in(server.url, "rep", "pw-rep-123456")
        inbox = _wait(lambda: "ann" in (page := rep.get("/inbox").text) and page, 60, "the inbox")
        assert "ann@acme.io" in inbox or "ann" in inbox
        rep.close()
        # then the rep marks ann done: the product gets no upgrade prompt for her in the cooldown
        done = server.product(
            "POST", "/v1/feedback", json={"user_id": "ann", "action": "done", "by": "rep"}
        )
        assert done.status_code == 200, done.text
        _wait(lambda: (server.scored("ann") or {}).get("quiet_until"), 30, "the quiet copy")
        assert server.product("GET", "/v1/prompts/ann").json()["show"] is False
        server.stop()
        assert server.proc is not None and server.proc.returncode == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
        receiver.close()
    assert len({r["id"] for r in receiver.seen}) == 1


def test_pql_demo_then_the_one_command_serves_the_demo_as_it_is(tmp_path):
    """What the README's first lines promise: `pql demo`, then `pql serve --model ... --ui` on
    the demo's own database and model, nothing changed by hand."""
    demo = pql("demo", "--dir", str(tmp_path), "--accounts", "40", "--users", "200", "--days",
               "21", "--json", timeout=600)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    top = json.loads(demo.stdout)["top_pqls"]
    db, model = tmp_path / "demo.duckdb", tmp_path / "pql.yml"
    added = pql("users", "add", "admin", "--role", "admin", "--url", str(db), "--password-stdin",
                input="pw-admin-123456\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    server = Serve(tmp_path, db="demo.duckdb",
                   args=("--model", str(model), "--ui", "--product-key", "pk_demo"),
                   env={"PQL_UI_SECRET": "d" * 40})  # fmt: skip
    server.start()
    try:
        _track(server.url, 3)
        admin = _signed_in(server.url, "admin", "pw-admin-123456")
        assert admin.get("/inbox").status_code == 200
        assert admin.get("/deliveries").status_code == 200
        admin.close()
        if top:
            r = httpx.get(f"{server.url}/v1/prompts/{top[0]['user_id']}",
                          headers={"authorization": "Bearer pk_demo"}, timeout=30)  # fmt: skip
            assert r.status_code == 200
        server.stop()
        assert server.proc is not None and server.proc.returncode == 0, server.stderr.read_text()[
            -4000:
        ]
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events WHERE source = 'web'").fetchone()[0] == 3


class _Load:
    """Batches of events with unique ids sent as fast as the server answers, from a thread;
    keeps the ids of every batch acknowledged (200). Users alternate, and every tenth message
    is a pricing view, so users become PQLs and transitions go out while the kills come."""

    def __init__(self, url: str, prefix: str):
        import threading

        self.url, self.prefix = url, prefix
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        with httpx.Client(auth=("wk_web", ""), timeout=10) as http:
            while not self.stop.is_set():
                batch = []
                for _ in range(20):
                    n += 1
                    user = f"k{n % 37}"
                    batch.append(
                        {"type": "identify", "userId": user, "messageId": f"{self.prefix}-i{n}",
                         "traits": {"email": f"{user}@acme{n % 5}.io"}}
                        if n % 7 == 0
                        else {"type": "track", "userId": user, "messageId": f"{self.prefix}-{n}",
                              "event": "pricing_viewed" if n % 10 == 0 else "feature_used"}
                    )  # fmt: skip
                try:
                    r = http.post(self.url + "/v1/batch", json={"batch": batch})
                except httpx.HTTPError:
                    return  # the server was killed under us: what was not answered is not ours
                if r.status_code == 200:
                    self.acknowledged += [m["messageId"] for m in batch if m["type"] == "track"]

    def finish(self) -> list[str]:
        self.stop.set()
        self.thread.join(30)
        return self.acknowledged


class _Rep:
    """A rep signed in to the web app, loading a page every 0.4 s while the kills come (the
    session is kept in the database: it outlives each process). Keeps every answer's status;
    a request the kill cut off has none."""

    def __init__(self, url: str, client: httpx.Client | None = None):
        import threading

        self.client = client or _signed_in(url, "rep", "pw-rep-123456")
        self.statuses: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        paths = ["/inbox", "/deliveries", "/inbox?tier=hot"]
        n = 0
        while not self.stop.is_set():
            path = paths[n % len(paths)]
            n += 1
            try:
                self.statuses.append((path, self.client.get(path).status_code))
            except httpx.HTTPError:
                return  # killed under us
            self.stop.wait(0.4)

    def finish(self) -> list[tuple[str, int]]:
        self.stop.set()
        self.thread.join(30)
        return self.statuses


def _kill(pid: int, target: str, rng) -> None:
    """SIGKILL as a crash comes: the whole group (server, flusher, web app at once: the OOM
    killer, a pulled plug), the server alone (its flusher, orphaned, must notice and stop while
    the next server starts beside it), or the flusher alone (the server starts it again, and is
    then killed mid-restart). With --ui on a DuckDB file the flusher is a thread of the server:
    the three are then one process killed mid-flush, mid-pass or mid-page."""
    import signal

    if target == "server":
        os.kill(pid, signal.SIGKILL)
        return
    if target == "flusher":
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        for child in children.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        time.sleep(rng.uniform(0.1, 1.5))
    os.killpg(pid, signal.SIGKILL)


def _kill_loop(tmp_path, kills: int) -> None:
    import random

    from .test_handoff import Receiver
    from .test_live_serve import LiveServer

    rng = random.Random(kills)
    receiver = Receiver()
    server = LiveServer(tmp_path, receiver.url)
    plain = (*server.args, "--full-every", "2s")  # kills land in full passes beside rescores
    server.env = {**server.env, "PQL_UI_SECRET": "k" * 40}
    added = pql("users", "add", "rep", "--role", "admin", "--url", server.db,
                "--password-stdin", input="pw-rep-123456\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    acknowledged: list[str] = []
    pages: list[tuple[str, int]] = []
    rep: httpx.Client | None = None
    try:
        for k in range(kills):
            # mostly the whole system in one process (--ui); one round in four without the web
            # app, where the flusher is a process of its own that can die alone
            ui = rng.random() < 0.75
            server.args = (*plain, "--ui") if ui else plain
            server.start(timeout=120)
            load = _Load(server.url, f"r{k}")
            if ui:
                rep = rep or _signed_in(server.url, "rep", "pw-rep-123456")
                browsing = _Rep(server.url, rep)
            time.sleep(rng.uniform(0.3, 2.5))
            _kill(
                server.proc.pid, rng.choice(["group", "group", "group", "server", "flusher"]), rng
            )
            server.proc.wait(30)
            acknowledged += load.finish()
            if ui:
                pages += browsing.finish()
        server.args = (*plain, "--ui")
        server.start(timeout=120)  # stores what the log holds beyond the checkpoint
        health = httpx.get(server.url + "/health", timeout=10).json()
        assert health["status"] == "ok", health
        server.stop()
        assert server.proc.returncode == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
        receiver.close()
        if rep is not None:
            rep.close()
    with duckdb.connect(server.db, read_only=True) as con:  # opens: not corrupt
        stored = [r[0] for r in con.execute("SELECT message_id FROM events").fetchall()]
        transitions = con.execute(
            "SELECT entity_id, kind, new_value, count(DISTINCT id) FROM pql_outbox "
            "GROUP BY ALL HAVING count(DISTINCT id) > 1"
        ).fetchall()
    assert len(acknowledged) > 0
    # every page the web app answered between kills was served: none refused, none an error
    assert pages and {status for _, status in pages} == {200}, pages
    assert len(stored) == len(set(stored)), "a message stored twice"
    assert set(acknowledged) <= set(stored), f"{len(set(acknowledged) - set(stored))} lost"
    assert transitions == []
    assert receiver.seen, "no transition went out: the loop proves nothing about ids"
    sent: dict[str, set[str]] = {}
    for r in receiver.seen:
        user = r["body"].get("user", {}).get("id")
        sent.setdefault(f"{user}:{r['body'].get('type')}:{r['body'].get('as_of')}", set()).add(
            r["id"]
        )
    assert all(len(ids) == 1 for ids in sent.values()), "a transition sent under two ids"


def test_the_whole_system_survives_sigkill_ten_times(tmp_path):
    """Collector, flusher, live rescoring, deliveries and the web app under load, killed at
    random moments: nothing acknowledged is lost, nothing stored twice, the database opens, and
    no transition goes out under two ids. Long because each of the eleven starts loads the
    model and runs a full pass (about a minute on a quiet machine); 200 kills behind `long`."""
    _kill_loop(tmp_path, 10)


@pytest.mark.long
def test_the_whole_system_survives_sigkill_two_hundred_times(tmp_path):
    _kill_loop(tmp_path, 200)


def test_metrics_in_prometheus_format_for_a_scraper_and_json_for_everyone_else(tmp_path):
    """A Prometheus scraper's Accept header gets the text format (parsed here by
    prometheus-client's own parser) with every part's numbers: ingest, the log backlog, live
    rescoring and deliveries by destination; other clients keep the JSON."""
    from prometheus_client.parser import text_string_to_metric_families

    from .serve import METRICS_AUTH
    from .test_handoff import Receiver
    from .test_live_serve import LiveServer, _send, _wait

    receiver = Receiver()
    server = LiveServer(tmp_path, receiver.url)
    server.start()
    try:
        _send(server.url, "ann", "ann@acme.io", ["pricing_viewed"])
        _wait(lambda: len(receiver.seen) >= 1, 60, "the webhook")
        _wait(
            lambda: (
                ((server.metrics().get("live") or {}).get("by_destination") or {})
                .get("sales_hook", {})
                .get("delivered")
            ),
            30,
            "the delivery recorded",
        )
        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        r = httpx.get(server.url + "/metrics", headers={**METRICS_AUTH, "accept": "text/plain"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        assert families["pql_collector_accepted"].samples[0].value >= 2
        assert "pql_collector_backlog_segments" in families
        assert families["pql_live_full_runs"].samples[0].value >= 1
        assert "pql_live_last_full_pass_at" in families
        delivered = [s for s in families["pql_deliveries"].samples
                     if s.labels == {"destination": "sales_hook", "status": "delivered"}]  # fmt: skip
        assert delivered and delivered[0].value >= 1
        open_metrics = httpx.get(
            server.url + "/metrics", headers={**METRICS_AUTH, "accept": accept}
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.rstrip().endswith("# EOF")
        assert httpx.get(server.url + "/metrics", headers=METRICS_AUTH).json()["accepted"] >= 2
        assert (
            httpx.get(server.url + "/metrics", headers={"accept": "text/plain"}).status_code == 401
        )
        server.stop()
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
        receiver.close()


def test_doctor_reads_every_block_and_says_how_to_rebuild(tmp_path):
    """`pql doctor`: a whole database passes; one laid out by the previous release is named
    with `pql migrate`; a file with damaged blocks (bytes overwritten, as a crash in the middle
    of a write can leave it) fails with the table, DuckDB's checksum error and what to do."""
    import pyarrow as pa

    whole = tmp_path / "whole.duckdb"
    backend = connect(str(whole))
    n = 300_000
    backend.write_table(
        "t", pa.table({"a": list(range(n)), "b": [f"user-{i}@x.io" for i in range(n)]})
    )
    backend.close()
    ok = pql("doctor", "--url", str(whole), "--json", timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tables"] == [{"table": "t", "rows": n, "error": None}]

    old = tmp_path / "old.duckdb"
    _old_demo(old)
    report = pql("doctor", "--url", str(old), "--json", timeout=120)
    assert report.returncode == 1
    found = json.loads(report.stdout)
    assert found["lacking"] == {"events": ["source", "received_at"]}
    assert any("pql migrate" in a for a in found["advice"])

    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(whole.read_bytes())
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:
        for offset in range(3 * 262_144, size - 262_144, 262_144):  # past the header blocks
            f.seek(offset + 1000)
            f.write(b"\x55" * 64)
    broken = pql("doctor", "--url", str(damaged), "--json", timeout=120)
    assert broken.returncode == 1
    found = json.loads(broken.stdout)
    assert "Corrupt database file" in found["tables"][0]["error"]
    assert any("rebuild" in a for a in found["advice"])


def test_a_flusher_that_dies_is_started_again_and_health_says_so(tmp_path):
    """The flusher process killed on its own (out of memory, a crash): the server starts it
    again, it resumes from the database's checkpoint, events acknowledged before and after
    are stored once, and /health and /metrics count the restart."""
    import signal

    from .serve import METRICS_AUTH

    server = Serve(tmp_path)
    server.start()
    try:
        _track(server.url, 3)
        children = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
        )
        flusher = [int(p) for p in children.stdout.split()]
        assert flusher, "no flusher process found"
        for pid in flusher:
            os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 60
        health = {}
        while time.time() < deadline:
            health = httpx.get(server.url + "/health", timeout=10).json()
            if health["flusher_restarts"] >= 1 and health["status"] == "ok":
                break
            time.sleep(0.2)
        assert health["flusher_restarts"] >= 1 and health["status"] == "ok", health
        deadline = time.time() + 30
        while time.time() < deadline:
            r = httpx.post(server.url + "/v1/track", auth=("wk_web", ""), timeout=10,
                           json={"userId": "u_9", "event": "x", "messageId": "after-restart"})  # fmt: skip
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert r.status_code == 200
        metrics = httpx.get(server.url + "/metrics", headers=METRICS_AUTH, timeout=10).json()
        assert metrics["flusher_restarts"] >= 1 and "exit code -9" in metrics["flusher_last_death"]
        server.stop()
        assert server.proc.returncode == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with duckdb.connect(server.db, read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT message_id FROM events").fetchall()]
    assert sorted(ids) == sorted([*(f"s{i}" for i in range(3)), "after-restart"])


def test_sigterm_to_the_whole_group_drains_everything_acknowledged(tmp_path):
    """A service manager stops the whole process group with SIGTERM (systemd's default
    KillMode): the flusher must not die with it, but store everything acknowledged and record
    what was sent, after the server has drained; then the process exits 0."""
    import signal

    server = Serve(tmp_path)
    server.start()
    try:
        with httpx.Client(auth=("wk_web", ""), timeout=30) as http:
            acknowledged = []
            for b in range(20):
                batch = [
                    {"type": "track", "userId": f"u{j}", "event": "x", "messageId": f"t{b}-{j}"}
                    for j in range(50)
                ]
                assert http.post(server.url + "/v1/batch", json={"batch": batch}).status_code == 200
                acknowledged += [m["messageId"] for m in batch]
        os.killpg(server.proc.pid, signal.SIGTERM)  # everyone in the group, as systemd does
        assert server.proc.wait(60) == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with duckdb.connect(server.db, read_only=True) as con:
        stored = [r[0] for r in con.execute("SELECT message_id FROM events").fetchall()]
    assert sorted(stored) == sorted(acknowledged)  # stored before exit, not on a next start


def test_the_demo_never_prints_its_database_password(pg_server, tmp_path):
    url = pg_server.create_database().replace("postgres@", "postgres:s3cret-pw@")
    done = pql("demo", "--dir", str(tmp_path), "--url", url, "--accounts", "10", "--users",
               "40", "--days", "7", "--json", timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert json.loads(done.stdout)["database"].startswith("postgresql://postgres:***@")
