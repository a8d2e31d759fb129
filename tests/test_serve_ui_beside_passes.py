"""`pql serve --model --ui` on a DuckDB file: a rep's pages beside the full passes and live
rescores the same process runs. A page reads the last committed state through its own
connection while a pass writes (DuckDB's MVCC: the flusher is a thread of the web app's
process), so no page fails and none waits for a pass to end."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx

from pqlkit.backends import connect
from pqlkit.demo.generate import DemoSize, generate
from pqlkit.demo.load import load, write_model

from .conftest import DEMO_END
from .serve import Serve
from .test_one_system import _signed_in

#: The slowest page a rep may wait for beside full passes (seconds); before, a page waited for
#: the flusher's process to let the file go: a whole full pass at times.
PAGE_BOUND = 3.0


def test_pages_neither_fail_nor_wait_for_the_full_passes_beside_them(tmp_path):
    db, model = tmp_path / "d.duckdb", tmp_path / "pql.yml"
    backend = connect(str(db))
    load(backend, generate(DemoSize(accounts=300, users=3000, days=30, seed=4), end=DEMO_END))
    backend.close()
    write_model(model, handoff=True)
    added = subprocess.run(
        [sys.executable, "-m", "pqlkit.cli", "users", "add", "rep", "--role", "admin",
         "--url", str(db), "--password-stdin"],
        input="pw-rep-123456\n", capture_output=True, text=True,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    server = Serve(tmp_path, db="d.duckdb",
                   args=("--model", str(model), "--ui", "--product-key", "pk",
                         "--full-every", "1s"),
                   env={"PQL_UI_SECRET": "p" * 40})  # fmt: skip
    server.start(timeout=120)
    stop = threading.Event()
    pages: list[tuple[str, int, float]] = []

    def events() -> None:  # a trickle, so flushes and live rescores run between the passes
        with httpx.Client(auth=("wk_web", ""), timeout=30) as c:
            i = 0
            while not stop.is_set():
                batch = [{"type": "track", "userId": f"u_{(i * 7 + k) % 3000 + 1:06d}",
                          "event": "report_created", "messageId": f"b{i}-{k}"}
                         for k in range(20)]  # fmt: skip
                c.post(server.url + "/v1/batch", json={"batch": batch})
                i += 1
                stop.wait(0.2)

    try:
        _wait_for_pass(server, 1)
        rep = _signed_in(server.url, "rep", "pw-rep-123456")
        sender = threading.Thread(target=events, daemon=True)
        sender.start()
        passes = _full_runs(server)
        paths = ["/inbox", "/deliveries", "/leads/u_000010", "/inbox?tier=hot"]
        began = time.monotonic()
        while time.monotonic() - began < 15:
            path = paths[len(pages) % len(paths)]
            t0 = time.monotonic()
            status = rep.get(path).status_code
            pages.append((path, status, time.monotonic() - t0))
            time.sleep(max(0.0, 0.4 - (time.monotonic() - t0)))
        passes = _full_runs(server) - passes
        rep.close()
        stop.set()
        sender.join(30)
        server.stop()
        assert server.proc is not None and server.proc.returncode == 0
    finally:
        stop.set()
        if server.proc and server.proc.poll() is None:
            server.kill()
    failed = [p for p in pages if p[1] != 200]
    slowest = max(pages, key=lambda p: p[2])
    print(f"{len(pages)} pages, {passes} full passes, slowest {slowest}", file=sys.stderr)
    assert passes >= 3, "the full passes did not run beside the pages"
    assert len(pages) >= 20 and not failed, failed
    assert slowest[2] < PAGE_BOUND, slowest


def _full_runs(server: Serve) -> int:
    return int((server.metrics().get("live") or {}).get("full_runs") or 0)


def _wait_for_pass(server: Serve, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _full_runs(server) < n:
        assert time.monotonic() < deadline, "no full pass finished"
        assert server.proc is not None and server.proc.poll() is None, server.stderr.read_text()
        time.sleep(0.2)
