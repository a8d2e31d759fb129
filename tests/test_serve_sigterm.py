"""`pql serve --model pql.yml --ui` exits 0 on SIGTERM, whenever it comes (issue 30: graceful
shutdown drains, then exits 0), and stores every message it acknowledged.

The abort this guards against (exit -6, `terminate called without an active exception`): a
daemon thread inside DuckDB as the interpreter finalizes (the model page's findings, the web
app's warm connection closing, a flusher the watchdog started after the stop) is stopped
there by the interpreter and the C++ runtime aborts the process. Every thread that may be
inside DuckDB is now joined before the interpreter finalizes; bench/stress_sigterm.py hunts for
the abort at random moments, many times."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import duckdb
import httpx
import pytest

from pqlkit.access import accounts
from pqlkit.backends import connect

from .serve import Serve

PASSWORD = "pw-admin-123456"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`pql demo`'s database and model (made once), with an admin who may open the model page."""
    folder = tmp_path_factory.mktemp("demo")
    made = subprocess.run(
        [sys.executable, "-m", "pqlkit.cli", "demo", "--dir", str(folder), "--accounts", "40",
         "--users", "200", "--days", "21", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    backend = connect(str(folder / "demo.duckdb"))
    try:
        accounts.add(backend, "admin", "admin", PASSWORD)
    finally:
        backend.close()
    return folder


def _server(demo, tmp_path) -> Serve:
    shutil.copy(demo / "demo.duckdb", tmp_path / "demo.duckdb")
    shutil.copy(demo / "pql.yml", tmp_path / "pql.yml")
    return Serve(tmp_path, db="demo.duckdb",
                 args=("--model", str(tmp_path / "pql.yml"), "--ui", "--product-key", "pk"),
                 env={"PQL_UI_SECRET": "d" * 40, "PYTHONFAULTHANDLER": "1"})  # fmt: skip


def _signed_in(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    assert (
        c.post("/login", data={"csrf": token, "name": "admin", "password": PASSWORD}).status_code
        == 303
    )
    return c


class _Events:
    """Batches of track calls with unique ids from a thread until stopped; keeps the ids the
    server acknowledged (200)."""

    def __init__(self, url: str, prefix: str):
        self.url, self.prefix, self.acknowledged = url, prefix, []
        self.stop, self.first = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        with httpx.Client(auth=("wk_web", ""), timeout=30) as http:
            while not self.stop.is_set():
                ids = [f"{self.prefix}-{n + i}" for i in range(10)]
                n += 10
                batch = [{"type": "track", "userId": f"u_{i % 9:06d}", "event": "report_created",
                          "messageId": m} for i, m in enumerate(ids)]  # fmt: skip
                try:
                    r = http.post(self.url + "/v1/batch", json={"batch": batch})
                except httpx.HTTPError:
                    return  # refused as the server stops: not acknowledged
                if r.status_code == 200:
                    self.acknowledged += ids
                    self.first.set()

    def finish(self) -> list[str]:
        self.stop.set()
        self.thread.join(60)
        return self.acknowledged


def _in_background(fn) -> threading.Thread:
    def quietly() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server stopped under it
            fn()

    t = threading.Thread(target=quietly, daemon=True)
    t.start()
    return t


def _sigterm_at(server: Serve, moment: str, wait: float) -> list[str]:
    """Bring the server to ``moment``, wait ``wait`` seconds, SIGTERM it; the ids acknowledged."""
    events = _Events(server.url, f"{moment}-{wait:.2f}")  # from start-up: the first full pass
    assert events.first.wait(30), "no batch acknowledged"
    if moment == "pages":  # the model page's findings are computed in a thread of their own
        admin = _signed_in(server.url)
        admin.get("/model")
        _in_background(lambda: admin.get("/inbox"))  # and a page loads as the signal comes
    time.sleep(wait)
    server.stop(signal.SIGTERM)
    return events.finish()


def _stopped_cleanly(server: Serve, acknowledged: list[str]) -> None:
    assert server.proc is not None
    stderr = server.stderr.read_text()
    assert server.proc.returncode == 0, stderr[-4000:]
    assert "Fatal Python error" not in stderr, stderr[-4000:]
    with duckdb.connect(server.db, read_only=True) as con:
        stored = {
            r[0]
            for r in con.execute("SELECT message_id FROM events WHERE source = 'web'").fetchall()
        }
    assert acknowledged, "nothing was acknowledged: the test proves nothing"
    assert set(acknowledged) <= stored, (
        f"{len(set(acknowledged) - stored)} acknowledged, not stored"
    )


@pytest.mark.parametrize(
    ("moment", "wait"),
    [("first full pass", 0.0), ("events", 1.5), ("pages", 0.05)],
)
def test_sigterm_exits_zero_and_stores_what_was_acknowledged(demo, tmp_path, moment, wait):
    """SIGTERM as the first full pass runs (right after start-up), while events flow, while
    the model page's findings are computed and a page loads: exit 0, nothing acknowledged
    lost, no fatal error on stderr (the server runs with faulthandler on)."""
    server = _server(demo, tmp_path)
    server.start()
    try:
        acknowledged = _sigterm_at(server, moment, wait)
        _stopped_cleanly(server, acknowledged)
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()


@pytest.mark.long
def test_sigterm_at_a_hundred_random_moments(demo, tmp_path):
    rnd = random.Random(30)
    for i in range(100):
        run = tmp_path / str(i)
        run.mkdir()
        server = _server(demo, run)
        server.start()
        try:
            moment = rnd.choice(["first full pass", "events", "pages"])
            acknowledged = _sigterm_at(server, moment, rnd.uniform(0.0, 4.0))
            _stopped_cleanly(server, acknowledged)
        finally:
            if server.proc and server.proc.poll() is None:
                server.kill()


def test_the_model_pages_findings_are_interrupted_and_joined_when_the_web_app_closes(
    demo, tmp_path
):
    """Closing the web app (its shutdown) stops the findings' thread and the warm file's
    thread: neither is a daemon left inside DuckDB as the interpreter finalizes."""
    from pqlkit.web.app import Ui

    shutil.copy(demo / "demo.duckdb", tmp_path / "demo.duckdb")
    ui = Ui(demo / "pql.yml", str(tmp_path / "demo.duckdb"))
    with ui.session() as s:
        ui._findings(s, "opportunity", refresh=False)  # what GET /model starts
    findings, warm = ui.health.thread, ui.warm._thread
    assert findings is not None and warm is not None
    assert not findings.daemon and not warm.daemon
    ui.close()
    assert not findings.is_alive() and not warm.is_alive()
    with ui.session() as s:  # closed: nothing is started again
        ui._findings(s, "opportunity", refresh=True)
    assert ui.health.thread is findings and ui.warm._thread is warm


def test_the_combined_server_closes_the_web_app_when_it_shuts_down():
    import asyncio
    from types import SimpleNamespace

    from pqlkit.server.combined import Combined

    said: list[str] = []

    async def collector(scope, receive, send):  # a lifespan as the collector's
        while True:
            message = await receive()
            said.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    ui = SimpleNamespace(close=lambda: said.append("web closed"))
    app = Combined(SimpleNamespace(), SimpleNamespace(state=SimpleNamespace(ui=ui)))
    app.collector = collector
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        pass

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert said == ["lifespan.startup", "web closed", "lifespan.shutdown"]


def test_the_watchdog_never_starts_a_flusher_after_the_stop(tmp_path):
    """The flusher ends because it was stopped, and the watchdog finds it gone just then: it
    must not start another (one started after the stop is never joined)."""
    from pqlkit.collect.background import FlusherProcess

    class StoppedJustThen(FlusherProcess):
        starts = 0

        def start(self, timeout: float = 120.0) -> None:
            self.starts += 1

        @property
        def alive(self) -> bool:
            self.state.stop.set()  # stop() comes as the watchdog looks
            return False

    flusher = StoppedJustThen(
        str(tmp_path / "f.duckdb"), tmp_path / "log", "events",
        interval=0.05, resolve_interval=1.0, hold=False,
    )  # fmt: skip
    flusher.watch(give_up=lambda: None, every=0.01)
    time.sleep(0.3)
    assert flusher.starts == 0


def test_the_flusher_thread_is_never_a_daemon_even_when_the_watchdog_starts_it(tmp_path):
    from pqlkit.collect.background import FlusherThread

    flusher = FlusherThread(
        str(tmp_path / "f.duckdb"), tmp_path / "log", "events",
        interval=0.05, resolve_interval=1.0, hold=False,
    )  # fmt: skip
    (tmp_path / "log").mkdir()
    watchdog = threading.Thread(target=flusher.start, daemon=True)  # as the watchdog's thread
    watchdog.start()
    watchdog.join(60)
    try:
        assert flusher.process is not None and flusher.process.is_alive()
        assert not flusher.process.daemon
    finally:
        flusher.stop()
    assert not flusher.process.is_alive()


def test_a_sigterm_before_uvicorns_handler_still_stops_the_server():
    """`pql serve` takes SIGTERM from its first line: during its set-up (nothing served yet,
    it returns at once) and in the moment before uvicorn's own handler is there (the server
    is told to stop; uvicorn checks after its start-up)."""
    import os
    from types import SimpleNamespace

    from pqlkit.cli.collecting import _exit_zero_after_draining

    previous = signal.getsignal(signal.SIGTERM)
    try:
        stopping = _exit_zero_after_draining()
        assert not stopping[0]
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopping[0]
        server = SimpleNamespace(should_exit=False)
        stopping.append(server)
        os.kill(os.getpid(), signal.SIGTERM)
        assert server.should_exit
    finally:
        signal.signal(signal.SIGTERM, previous)
