"""On PostgreSQL the parts of the system may run as separate processes on one database, as the
README's deployment section says: the collector (`pql serve`, no model), the web app (`pql
ui`), deliveries (`pql deliver --loop`) and scoring (`pql score`, as a scheduler would start
it). An event sent to the collector becomes a signed webhook, once, and the lead is in the web
app's inbox; every process was running the whole time and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from pqlkit.backends import connect

from .conftest import free_port
from .serve import Serve, wait_healthy
from .test_handoff import SECRET, Receiver
from .test_live_serve import MODEL, _send, _wait
from .test_one_system import _signed_in, pql

PQL = [sys.executable, "-m", "pqlkit.cli"]


def _rows(url: str, query: str) -> list[tuple]:
    backend = connect(url)
    try:
        return backend.run_sql(query)
    except Exception:
        return []  # not made yet
    finally:
        backend.close()


def _start(command: list[str], err, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*PQL, *command], env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
    )


# over 30 s on a busy machine: four pqlkit processes start (each imports the whole stack)
def test_collector_web_app_deliveries_and_scoring_as_separate_processes(pg_server, tmp_path):
    url = pg_server.create_database()
    receiver = Receiver()
    model = tmp_path / "pql.yml"
    model.write_text(MODEL.replace("RECEIVER", receiver.url))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PQL_TEST_HOOK_SECRET": SECRET,
           "PQL_UI_SECRET": "u" * 40}  # fmt: skip
    added = pql("users", "add", "rep", "--url", url, "--password-stdin",
                input="pw-rep-123456\n", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr

    collector = Serve(tmp_path)
    collector.db = url  # the collector alone: no model, no live scoring
    ui_port = free_port()
    ui_url = f"http://127.0.0.1:{ui_port}"
    err = (tmp_path / "parts.err").open("ab")
    deliver_err = (tmp_path / "deliver.err").open("ab")
    started: list[subprocess.Popen] = []
    try:
        collector.start()
        ui = _start(["ui", "-m", str(model), "--url", url, "--port", str(ui_port)], err, env)
        deliver = _start(
            ["deliver", "-m", str(model), "--url", url, "--loop", "--interval", "0.2"],
            deliver_err,
            {**env, "PQLKIT_LOG_FORMAT": "json"},  # a part of its own writes JSON lines too
        )
        started += [ui, deliver]
        wait_healthy(ui_url, ui, tmp_path / "parts.err")

        _send(collector.url, "ann", "ann@acme.io", ["signed_up", "pricing_viewed"])
        _wait(
            lambda: _rows(url, "select 1 from events where user_id = 'ann' and event = 'pricing_viewed'"),
            60, "the event stored",
        )  # fmt: skip
        _wait(lambda: _rows(url, "select 1 from pql_users where user_id = 'ann'"), 60, "ann")
        assert receiver.seen == []  # nothing scored yet: nothing to hand off

        scored = pql("score", "-m", str(model), "--url", url, "--limit", "0", env=env,
                     timeout=300)  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        _wait(lambda: receiver.seen, 60, "the webhook")
        hook = receiver.seen[0]
        assert hook["verified"] and hook["body"]["user"]["id"] == "ann"
        assert hook["body"]["type"] == "pql.became_pql" and hook["id"] == hook["body"]["id"]
        assert _rows(url, "select status from pql_deliveries") == [("delivered",)]

        rep = _signed_in(ui_url, "rep", "pw-rep-123456")
        inbox = rep.get("/inbox")
        assert inbox.status_code == 200 and "ann" in inbox.text
        rep.close()

        time.sleep(1.0)  # a few more passes of the delivery loop: sent once
        assert len(receiver.seen) == 1
        assert all(p.poll() is None for p in started), "a part stopped on its own"
        assert httpx.get(collector.url + "/health", timeout=10).json()["status"] == "ok"
    finally:
        collector.stop()
        for p in started:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in started:
            p.wait(timeout=60)
        err.close()
        deliver_err.close()
        receiver.close()
    assert collector.proc is not None and collector.proc.returncode == 0
    said = [json.loads(line) for line in (tmp_path / "deliver.err").read_text().splitlines()]
    assert {"part": "deliveries", "message": "1 delivered"}.items() <= said[0].items(), said
