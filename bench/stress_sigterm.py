"""SIGTERM `pql serve --model pql.yml --ui` on the demo at random moments, many times (issue 30:
graceful shutdown exits 0, every time). Not a test: a hunt for a rare abort at exit.

    python bench/stress_sigterm.py --runs 50 [--base DIR]

``--base`` is a folder where `pql demo` ran and an admin user was added (made once when
missing). Each run copies the database, starts the server with PYTHONFAULTHANDLER=1 (a fatal
signal prints every thread's Python stack), and picks a moment: during start-up (before the
server answers, while the first full pass runs), while events flow, while a page loads (the
model page starts its findings' thread), while the findings are computed after the first
full pass (``findings``: a demo of 3000 users makes them long), or at a random 0-8 s after a few events and a page.
It prints one line per run and, for any exit code but 0, the tail of the server's stderr; at
the end, the exit codes counted per moment.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PQL = [sys.executable, "-m", "pqlkit.cli"]
MOMENTS = ("startup", "events", "page", "model-page", "findings", "random")


def base_demo(base: Path, users: int) -> None:
    if (base / "demo.duckdb").exists():
        return
    run = subprocess.run([*PQL, "demo", "--dir", str(base), "--accounts", str(max(40, users // 5)),
                          "--users", str(users), "--days", "21" if users <= 200 else "60",
                          "--json"], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    add = subprocess.run([*PQL, "users", "add", "admin", "--role", "admin", "--url",
                          str(base / "demo.duckdb"), "--password-stdin"],
                         input="pw-admin-123456\n", capture_output=True, text=True)  # fmt: skip
    assert add.returncode == 0, add.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def track(url: str, prefix: str, n: int) -> int:
    batch = [{"type": "track", "userId": f"u_{i % 7:06d}", "event": "report_created",
              "messageId": f"{prefix}-{i}"} for i in range(n)]  # fmt: skip
    try:
        r = httpx.post(url + "/v1/batch", json={"batch": batch}, auth=("wk_web", ""), timeout=30)
    except httpx.HTTPError:
        return 0
    return n if r.status_code == 200 else 0


def full_pass_done(url: str) -> bool:
    r = httpx.get(url + "/metrics", headers={"authorization": "Bearer mk"}, timeout=30)
    live = r.json().get("live") or {}
    return bool(live.get("full_runs"))


def signed_in(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"csrf": token, "name": "admin", "password": "pw-admin-123456"})
    return c


def in_background(fn) -> threading.Thread:
    def quietly() -> None:
        with contextlib.suppress(Exception):  # the server stopped under it
            fn()

    t = threading.Thread(target=quietly, daemon=True)
    t.start()
    return t


def one_run(base: Path, moment: str, seed: int) -> tuple[int | None, str, int, int, float]:
    """(exit code, stderr tail, acknowledged, stored, seconds from SIGTERM to exit)."""
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="pql-sigterm-") as tmp:
        folder = Path(tmp)
        shutil.copy(base / "demo.duckdb", folder / "demo.duckdb")
        shutil.copy(base / "pql.yml", folder / "pql.yml")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        err = folder / "server.err"
        env = {**os.environ, "PYTHONFAULTHANDLER": "1", "PQL_UI_SECRET": "d" * 40,
               "PYTHONWARNINGS": "ignore", "PQL_METRICS_KEY": "mk"}  # fmt: skip
        with err.open("wb") as f:
            proc = subprocess.Popen(
                [*PQL, "serve", "--port", str(port), "--url", str(folder / "demo.duckdb"),
                 "--log-dir", str(folder / "log"), "--write-key", "web=wk_web", "--model",
                 str(folder / "pql.yml"), "--ui", "--product-key", "pk_demo",
                 "--resolve-every", "0"],
                env=env, stdout=subprocess.DEVNULL, stderr=f, start_new_session=True,
            )  # fmt: skip
        acknowledged = 0
        try:
            if moment == "startup":
                time.sleep(rnd.uniform(0.5, 4.0))  # imports, the flusher's start, first pass
            else:
                if not healthy(url, proc):
                    proc.kill()
                    proc.wait()
                    return None, err.read_text()[-3000:], 0, 0, 0.0
                acknowledged += track(url, f"a{seed}", 5)
                if moment == "events":
                    box = [0]

                    def flow() -> None:
                        for i in range(200):
                            box[0] += track(url, f"f{seed}-{i}", 20)

                    in_background(flow)
                    time.sleep(rnd.uniform(0.0, 2.0))
                    acknowledged += box[0]
                elif moment == "findings":  # after the first full pass: the findings' thread
                    admin = signed_in(url)  # is the one inside DuckDB as the server stops
                    while not full_pass_done(url) and proc.poll() is None:
                        time.sleep(0.2)
                    in_background(lambda: admin.get("/model"))
                    time.sleep(rnd.uniform(0.5, 2.0))
                elif moment in ("page", "model-page"):
                    admin = signed_in(url)
                    path = "/model" if moment == "model-page" else "/inbox"
                    in_background(lambda: admin.get(path))
                    time.sleep(rnd.uniform(0.0, 1.0))
                else:
                    admin = signed_in(url)
                    admin.get("/inbox")
                    time.sleep(rnd.uniform(0.0, 8.0))
            proc.send_signal(signal.SIGTERM)
            signalled = time.time()
            try:
                code = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            stopping = time.time() - signalled
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        import duckdb

        stored = 0
        if code == 0:
            with duckdb.connect(str(folder / "demo.duckdb"), read_only=True) as con:
                stored = con.execute("SELECT count(*) FROM events WHERE source = 'web'").fetchone()[
                    0
                ]
        return code, err.read_text()[-3000:], acknowledged, stored, stopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--base", type=Path, default=Path(tempfile.gettempdir()) / "pql-sigterm")
    parser.add_argument("--moment", choices=MOMENTS, default=None, help="default: each in turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--users",
        type=int,
        default=200,
        help="the demo's size when --base is made (3000: the model page's findings take long "
        "enough that a SIGTERM lands while they run)",
    )
    args = parser.parse_args()
    base_demo(args.base, args.users)
    codes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for i in range(args.runs):
        moment = args.moment or MOMENTS[i % len(MOMENTS)]
        started = time.time()
        code, tail, acknowledged, stored, stopping = one_run(
            args.base, moment, args.seed * 100_000 + i
        )
        codes[moment][code] += 1
        lost = code == 0 and stored < acknowledged
        print(f"run {i} {moment}: exit {code} {stopping:.1f}s after SIGTERM "
              f"({time.time() - started:.1f}s in all), "
              f"{acknowledged} acknowledged, {stored} stored{' LOST' if lost else ''}",
              flush=True)  # fmt: skip
        if code != 0 or lost:
            print("  " + tail.replace("\n", "\n  "), flush=True)
    print(json.dumps({m: {str(k): v for k, v in c.items()} for m, c in codes.items()}))


if __name__ == "__main__":
    main()
