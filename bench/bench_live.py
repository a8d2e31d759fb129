"""Benchmark: live scoring (`pql serve --model`).

    python bench/bench_live.py rescore  --users 1M --events 5M   # partial against full
    python bench/bench_live.py prompts  --users 1M               # the prompt API's lookups
    python bench/bench_live.py latency  --users 100k --load 5000 # event to webhook, under load
                                       [--flusher fast,reference]    # with each flusher path

rescore: a full run against rescoring 1, 100 and 10k touched users (and everyone in their
accounts) on the same database, medians of --repeat runs, and the ratio.
prompts: GET /v1/prompts/{user_id} against a running collector whose state holds every user:
p50/p99 over many requests (one keep-alive client), beside the in-process lookup alone.
latency: a running `pql serve --model --ui`; a background client sends --load events a second
from many users, a rep signed in to the web app loads a page every 0.4 s, and a full pass starts
every --full-every seconds (during the probes); probes send a decisive event for a fresh user and
time its webhook's arrival at a local receiver. p50/p99 over --probes, each flusher path in
turn, --repeat times, and the medians.

Data is generated inside DuckDB (bench_score's generator) and kept in bench/data/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_score import DATA, EVENT_MIX, MODEL, generate, parse_count  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HANDOFF = """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "RECEIVER", secret_env: PQL_BENCH_SECRET, timeout: 5s}
  routes:
    - {when: {transitions: [became_pql]}, to: [hook]}
  prompts:
    cooldown: 1s
    cap: 1000
    rules:
      - {id: upgrade, when: {pql: null}}
"""
# The latency probe: a user becomes a PQL on one event no generated user sends.
LATENCY_MODEL = """
name: latency
sources: {events: {table: events}, users: {table: users}, accounts: {table: accounts}}
icp:
  profiles: [{id: business, when: {email: business}}]
usage_signals:
  - {id: active, kind: event_count, label: "{value} events", events: ["*"], window: 30d, points: 1, per_unit: true, cap: 20}
  - {id: decisive, kind: hand_raise, label: "Asked for a demo", events: [probe_decisive], points: 80}
activation: {signal: active}
thresholds: {pql_score: 80}
"""


def dataset(users: int, events: int, *, collector: bool = False) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"live_{users}_{events}{'_c' if collector else ''}.duckdb"
    if not path.exists():
        print(f"generating {users:,} users and {events:,} events into {path.name}", flush=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        generate(tmp, events, users, max(1, users // 10))
        if collector:  # the columns the collector's flusher writes
            import duckdb

            con = duckdb.connect(str(tmp))
            con.execute(
                "CREATE TABLE e2 AS SELECT message_id, 'bench' AS source, user_id, anonymous_id, "
                "account_id, event, timestamp, timestamp AS received_at, "
                "properties::VARCHAR AS properties FROM events; DROP TABLE events; "
                "ALTER TABLE e2 RENAME TO events"
            )
            con.close()
        tmp.rename(path)
    return path


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _pct(xs: list[float], p: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- partial against full ------------------------------------------------------------------------


def bench_rescore(users: int, events: int, repeat: int, touched: list[int]) -> dict:
    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.model.load import parse_model

    source = dataset(users, events)
    work = Path(tempfile.mkdtemp()) / "live.duckdb"
    shutil.copy(source, work)
    os.environ["PQL_BENCH_SECRET"] = SECRET
    text = MODEL.read_text() + HANDOFF.replace("RECEIVER", "http://127.0.0.1:9/x")
    loaded = parse_model(text, str(HERE / "live.yml"))
    backend = connect(str(work))
    engine = Engine(loaded, backend)
    rng = random.Random(7)
    when = datetime(2026, 10, 1)
    engine.run(when, checks=False)  # warm: compiled SQL cached, the state exists
    full = []
    for i in range(repeat):
        started = time.perf_counter()
        engine.run(when.replace(hour=1 + i), checks=False)
        full.append(time.perf_counter() - started)
    out = {"users": users, "events": events, "full_s": round(_median(full), 3), "partial": []}
    print(f"full run: {out['full_s']:.2f} s (median of {repeat})", flush=True)
    hour = 10
    engine.rescore([f"u_{rng.randrange(users)}"], (), when.replace(hour=hour))  # warm
    for k in touched:
        times, scored = [], 0
        for _ in range(repeat):
            hour += 1
            ids = [f"u_{rng.randrange(users)}" for _ in range(k)]
            started = time.perf_counter()
            r = engine.rescore(ids, (), when.replace(hour=hour % 24, minute=hour // 24))
            times.append(time.perf_counter() - started)
            scored = r.users
        med = _median(times)
        row = {
            "touched": k,
            "scored_with_accounts": scored,
            "seconds": round(med, 4),
            "full_over_partial": round(out["full_s"] / med, 1),
        }
        out["partial"].append(row)
        print(
            f"rescore {k:>6,} touched ({scored:>7,} scored): {med * 1000:8.1f} ms"
            f"   full/partial = {row['full_over_partial']:.1f}x",
            flush=True,
        )
    backend.close()
    shutil.rmtree(work.parent, ignore_errors=True)
    return out


# --- a running collector -------------------------------------------------------------------------


class Receiver:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                receiver.arrivals.setdefault(body["user"]["id"], time.monotonic())
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


METRICS_KEY = "mk-bench"
UI_SECRET = "b" * 40


class Serve:
    def __init__(
        self,
        db: Path,
        model_text: str,
        folder: Path,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ):
        self.folder = folder
        self.model = folder / "live.yml"
        self.model.write_text(model_text)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PQL_BENCH_SECRET": SECRET, "PYTHONWARNINGS": "ignore",
               "PQL_UI_SECRET": UI_SECRET, **(env or {})}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pqlkit.cli", "serve", "--port", str(self.port),
             "--url", str(db), "--log-dir", str(folder / "log"), "--write-key", "bench=wk",
             "--model", str(self.model), "--product-key", "pk", "--resolve-every", "5",
             "--metrics-key", METRICS_KEY, *extra],
            env=env, stderr=(folder / "serve.err").open("wb"), start_new_session=True,
        )  # fmt: skip

    def metrics(self) -> dict:
        import httpx

        auth = {"authorization": f"Bearer {METRICS_KEY}"}
        return httpx.get(self.url + "/metrics", headers=auth, timeout=5).json()

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.metrics()
                if (m.get("live") or {}).get("full_runs", 0) >= 1:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit((self.folder / "serve.err").read_text())
            time.sleep(0.5)
        raise SystemExit("the collector's first full pass did not finish")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=120)


def bench_prompts(users: int, requests: int) -> dict:
    import httpx

    from pqlkit.backends.serving import StateReader
    from pqlkit.handoff.prompts import PromptDesk

    db_src = dataset(users, users * 2, collector=True)
    folder = Path(tempfile.mkdtemp())
    db = folder / "live.duckdb"
    shutil.copy(db_src, db)
    serve = Serve(
        db, MODEL.read_text() + HANDOFF.replace("RECEIVER", "http://127.0.0.1:9/x"), folder
    )
    try:
        started = time.monotonic()
        serve.wait_ready()
        print(f"first full pass and serving state ready in {time.monotonic() - started:.1f} s")
        rng = random.Random(3)
        ids = [f"u_{rng.randrange(users)}" for _ in range(requests)]
        times = []
        with httpx.Client(headers={"authorization": "Bearer pk"}) as client:
            for u in ids[:200]:  # warm
                client.get(f"{serve.url}/v1/prompts/{u}")
            for u in ids:
                t0 = time.perf_counter()
                r = client.get(f"{serve.url}/v1/prompts/{u}")
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        reader = StateReader(folder / "log")
        from pqlkit.model.handoff import Prompts

        desk = PromptDesk(
            folder / "log", Prompts(rules=[{"id": "x", "when": {"pql": None}}]), reader
        )
        local = []
        now = datetime.now(UTC).replace(tzinfo=None)
        for u in ids:
            t0 = time.perf_counter()
            desk.answer(u, now)
            local.append(time.perf_counter() - t0)
        desk.close()
    finally:
        serve.stop()
        shutil.rmtree(folder, ignore_errors=True)
    out = {
        "users": users,
        "requests": requests,
        "http_p50_ms": round(_pct(times, 50) * 1000, 2),
        "http_p99_ms": round(_pct(times, 99) * 1000, 2),
        "lookup_p50_ms": round(_pct(local, 50) * 1000, 3),
        "lookup_p99_ms": round(_pct(local, 99) * 1000, 3),
    }
    print(
        f"GET /v1/prompts/{{user}} with {users:,} users: p50 {out['http_p50_ms']} ms, "
        f"p99 {out['http_p99_ms']} ms over HTTP; the decision alone p50 {out['lookup_p50_ms']} ms, "
        f"p99 {out['lookup_p99_ms']} ms"
    )
    return out


def _rep(
    url: str, stop: threading.Event, pages: list[float], failed: list[str], users: int
) -> None:
    """A rep signed in to the web app, loading a page every 0.4 s (the inbox, a lead, the
    deliveries, the model) until ``stop``. (The inbox's second page is not one: only the probes
    become PQLs here, fewer than a page of them, and a page past the end is a 404.)"""
    import re

    import httpx

    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        c.post("/login", data={"csrf": token, "name": "rep", "password": "bench-rep-password"})
        rng = random.Random(7)
        paths = ["/inbox", "/deliveries", "/leads/u_{}", "/model"]
        while not stop.is_set():
            path = rng.choice(paths).format(rng.randrange(users))
            t0 = time.monotonic()
            try:
                r = c.get(path)
                if r.status_code != 200 or "/login" in str(r.url):
                    failed.append(f"{path}: {r.status_code} {r.text[:120]!r}")
            except httpx.HTTPError as exc:
                failed.append(f"{path}: {type(exc).__name__}")
            pages.append(time.monotonic() - t0)
            time.sleep(max(0.0, 0.4 - (time.monotonic() - t0)))


def bench_latency(
    users: int, load: int, probes: int, flusher: str = "fast", full_every: float = 30.0
) -> dict:
    """Event acknowledged to signed webhook received, while a background client sends ``load``
    events a second, a rep browses the web app (the same process, `pql serve --ui`), and a full
    pass starts every ``full_every`` seconds (so one or more start during the probes)."""
    import httpx

    db_src = dataset(users, users * 5, collector=True)
    folder = Path(tempfile.mkdtemp())
    db = folder / "live.duckdb"
    shutil.copy(db_src, db)
    added = subprocess.run(
        [sys.executable, "-m", "pqlkit.cli", "users", "add", "rep", "--role", "admin",
         "--url", str(db), "--password-stdin"],
        input="bench-rep-password\n", text=True, capture_output=True,
    )  # fmt: skip
    if added.returncode:
        raise SystemExit(added.stderr)
    receiver = Receiver()
    serve = Serve(
        db,
        LATENCY_MODEL + HANDOFF.replace("RECEIVER", receiver.url),
        folder,
        {"PQL_FLUSHER_FASTPATH": "1" if flusher == "fast" else "0"},
        ("--ui", "--full-every", f"{full_every:g}s"),
    )
    stop = threading.Event()
    sent = [0]
    pages: list[float] = []
    failed: list[str] = []

    def background():
        rng = random.Random(11)
        per_request = 100
        interval = per_request / load if load else 1.0
        with httpx.Client(auth=("wk", "")) as client:
            next_at = time.monotonic()
            while not stop.is_set():
                now = datetime.now(UTC).isoformat()
                batch = [
                    {"type": "track", "userId": f"u_{rng.randrange(users)}",
                     "event": rng.choice(EVENT_MIX), "timestamp": now}
                    for _ in range(per_request)
                ]  # fmt: skip
                client.post(serve.url + "/v1/batch", json={"batch": batch})
                sent[0] += per_request
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    try:
        started = time.monotonic()
        serve.wait_ready()
        print(f"first full pass over {users:,} users in {time.monotonic() - started:.1f} s")
        loader = threading.Thread(target=background, daemon=True)
        loader.start()
        rep = threading.Thread(
            target=_rep, args=(serve.url, stop, pages, failed, users), daemon=True
        )
        rep.start()
        time.sleep(5)  # the load is on
        full_before = (serve.metrics().get("live") or {}).get("full_runs", 0)
        rng = random.Random(5)
        candidates = [f"u_{i}" for i in rng.sample(range(users), probes * 3)]
        latencies = []
        probing = time.monotonic()
        with httpx.Client(auth=("wk", "")) as client:
            for u in candidates:
                if len(latencies) >= probes:
                    break
                t0 = time.monotonic()
                body = {"type": "track", "userId": u, "event": "probe_decisive",
                        "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
                client.post(serve.url + "/v1/track", json=body)
                deadline = t0 + 30
                while u not in receiver.arrivals and time.monotonic() < deadline:
                    time.sleep(0.005)
                if u in receiver.arrivals:  # (a personal e-mail is no ICP fit: no webhook)
                    latencies.append(receiver.arrivals[u] - t0)
                time.sleep(0.2)
        probing = time.monotonic() - probing
        elapsed = time.monotonic() - started
        metrics = serve.metrics()
    finally:
        stop.set()
        serve.stop()
        said = (folder / "serve.err").read_text(errors="replace").splitlines()
        for line in [x for x in said if x.startswith("pql ui:")][:5]:
            print(f"  the server said: {line[:300]}")
        receiver.server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    live = metrics.get("live") or {}
    for reason in sorted(set(failed))[:5]:
        print(f"  a page failed: {reason}")
    out = {
        "flusher": flusher,
        "users": users,
        "load_events_per_s": load,
        "background_events_sent": sent[0],
        "probes": len(latencies),
        "p50_s": round(_pct(latencies, 50), 3) if latencies else None,
        "p99_s": round(_pct(latencies, 99), 3) if latencies else None,
        "probing_s": round(probing, 1),
        "full_passes_during_probes": live.get("full_runs", 0) - full_before,
        "pages": len(pages),
        "pages_failed": len(failed),
        "page_p50_s": round(_pct(pages, 50), 3) if pages else None,
        "rescores": live.get("rescores"),
        "last_rescore_ms": live.get("last_rescore_ms"),
        "load_average": os.getloadavg()[0],
        "seconds": round(elapsed, 1),
    }
    print(
        f"[{flusher} flusher] event to webhook with {users:,} users under {load:,} events/s, a rep "
        f"browsing ({out['pages']} pages, {out['pages_failed']} failed, p50 {out['page_p50_s']} s) "
        f"and {out['full_passes_during_probes']} full passes during the probes: "
        f"p50 {out['p50_s']} s, p99 {out['p99_s']} s over {out['probes']} probes "
        f"({out['rescores']} rescores, the last {out['last_rescore_ms']} ms; load average "
        f"{out['load_average']:.1f})"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=["rescore", "prompts", "latency"])
    ap.add_argument("--users", default=None)
    ap.add_argument("--events", default="5M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--touched", default="1,100,10000")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--load", type=int, default=5000)
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument(
        "--flusher", default="fast,reference", help="latency: the flusher paths to compare"
    )
    ap.add_argument(
        "--full-every", type=float, default=30.0, help="latency: seconds between full passes"
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.what == "rescore":
        out = bench_rescore(parse_count(a.users or "1M"), parse_count(a.events), a.repeat,
                            [int(x) for x in a.touched.split(",")])  # fmt: skip
    elif a.what == "prompts":
        out = bench_prompts(parse_count(a.users or "1M"), a.requests)
    else:  # the paths alternate, --repeat times; medians per path
        paths = a.flusher.split(",")
        runs = [
            bench_latency(parse_count(a.users or "100k"), a.load, a.probes, path, a.full_every)
            for _ in range(a.repeat)
            for path in paths
        ]
        medians = {
            path: {
                k: statistics.median(
                    r[k] for r in runs if r["flusher"] == path and r[k] is not None
                )
                for k in ("p50_s", "p99_s", "page_p50_s", "load_average")
            }
            for path in paths
        }
        for path, m in medians.items():
            print(f"[{path}] median of {a.repeat}: p50 {m['p50_s']} s, p99 {m['p99_s']} s "
                  f"(pages p50 {m['page_p50_s']} s, load average {m['load_average']:.1f})")  # fmt: skip
        out = {"runs": runs, "medians": medians}
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
