"""Benchmark: draining a hand-off backlog (`pql deliver`) to a webhook receiver that answers in
30 ms.

    python bench/bench_deliver.py                       # 10,000 transitions, 3 runs of each
    python bench/bench_deliver.py --backlog 10000 --delay 0.03 --repeat 3 --sequential 1000

Each run is a fresh DuckDB file holding ``--backlog`` due deliveries to one webhook (as a run
records them: outbox and deliveries), drained by one `deliver_due` pass with the model's default
concurrency; the sequential baseline (``concurrency: 1``, every delivery after the last) drains
``--sequential`` of them (one at a time the rate does not depend on the backlog, and 10,000 at
30 ms would take six minutes a run). Runs alternate, medians of deliveries a second, and the
ratio. The receiver runs in a process of its own (a threaded HTTP/1.1 server, keep-alive, that
verifies every signature and counts each id), so its work does not share the sender's CPU
lock; every transition must arrive exactly once, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def receive(port: int, delay: float, ready: multiprocessing.synchronize.Event) -> None:
    """The receiver process: 200 after ``delay`` seconds; GET /seen answers every id seen."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks import Webhook

    seen: list[str] = []
    lock = threading.Lock()
    bad = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"])).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(SECRET).verify(body, headers)
            except Exception:
                bad[0] += 1
            time.sleep(delay)
            with lock:
                seen.append(headers["webhook-id"])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            with lock:
                body = json.dumps({"seen": seen, "unverified": bad[0]}).encode()
                seen.clear()
                bad[0] = 0
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    ready.set()
    server.serve_forever()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def backlog(backend, n: int) -> list[str]:
    import pyarrow as pa

    from pqlkit.handoff.transitions import (
        DELIVERIES,
        DELIVERIES_SCHEMA,
        OUTBOX,
        OUTBOX_SCHEMA,
        ensure_tables,
    )

    ensure_tables(backend)
    created = _now() - timedelta(seconds=10)
    ids = [f"tr_{i:07d}" for i in range(n)]
    payload = {"type": "pql.became_pql", "as_of": created.isoformat(), "model_version": "bench"}
    outbox = [
        {
            "id": t,
            "kind": "became_pql",
            "entity": "user",
            "entity_id": f"u{i}",
            "payload": json.dumps({**payload, "id": t, "user": {"id": f"u{i}", "score": 90}}),
            "created_at": created,
        }
        for i, t in enumerate(ids)
    ]
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
    with backend.transaction():
        backend.insert(OUTBOX, pa.Table.from_pylist(outbox, schema=OUTBOX_SCHEMA))
        backend.insert(DELIVERIES, pa.Table.from_pylist(rows, schema=DELIVERIES_SCHEMA))
    return ids


def drain(url: str, n: int, concurrency: int | None, folder: Path) -> dict:
    import httpx

    from pqlkit.backends import connect
    from pqlkit.handoff.deliver import deliver_due
    from pqlkit.model.handoff import Handoff

    hook = {"id": "hook", "kind": "webhook", "url": url, "secret_env": "PQL_BENCH_SECRET"}
    if concurrency is not None:
        hook["concurrency"] = concurrency
    handoff = Handoff.model_validate({"destinations": [hook], "routes": [{"to": ["hook"]}]})
    db = folder / f"deliver_{os.urandom(4).hex()}.duckdb"
    backend = connect(str(db))
    try:
        ids = backlog(backend, n)
        with httpx.Client() as client:
            started = time.perf_counter()
            report = deliver_due(backend, handoff, _now, client, env={"PQL_BENCH_SECRET": SECRET})
            seconds = time.perf_counter() - started
            seen = client.get(url.replace("/hooks", "/seen")).json()
    finally:
        backend.close()
        db.unlink(missing_ok=True)
    if sorted(seen["seen"]) != ids or seen["unverified"] or report.delivered != n:
        raise SystemExit(
            f"not exactly once: {len(seen['seen'])} received, {len(set(seen['seen']))} ids, "
            f"{seen['unverified']} unverified, {report.delivered} recorded delivered of {n}"
        )
    return {"deliveries": n, "seconds": round(seconds, 3), "per_second": round(n / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--sequential", type=int, default=1_000, help="the baseline's backlog")
    ap.add_argument("--delay", type=float, default=0.03, help="the receiver's answer time (s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=None, help="default: the model's default")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=receive, args=(port, args.delay, ready), daemon=True)
    proc.start()
    ready.wait(30)
    url = f"http://127.0.0.1:{port}/hooks"
    runs: dict[str, list[dict]] = {"sequential": [], "concurrent": []}
    try:
        with tempfile.TemporaryDirectory(prefix="pql-bench-deliver-") as tmp:
            for i in range(args.repeat):
                for name, n, bound in (  # alternating, so both see the same machine
                    ("sequential", args.sequential, 1),
                    ("concurrent", args.backlog, args.concurrency),
                ):
                    run = drain(url, n, bound, Path(tmp))
                    runs[name].append(run)
                    print(f"run {i + 1} {name}: {run}", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.join(10)
    out = {
        "receiver_delay_s": args.delay,
        "load_average": os.getloadavg(),
        **{
            name: {
                "backlog": rs[0]["deliveries"],
                "median_per_second": statistics.median(r["per_second"] for r in rs),
                "runs_per_second": [r["per_second"] for r in rs],
            }
            for name, rs in runs.items()
        },
    }
    out["ratio"] = round(
        out["concurrent"]["median_per_second"] / out["sequential"]["median_per_second"], 2
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"receiver answers in {args.delay * 1000:.0f} ms; load average {out['load_average'][0]:.1f}\n"
        f"sequential ({out['sequential']['backlog']:,}): "
        f"{out['sequential']['median_per_second']:,.1f}/s (runs {out['sequential']['runs_per_second']})\n"
        f"concurrent ({out['concurrent']['backlog']:,}): "
        f"{out['concurrent']['median_per_second']:,.1f}/s (runs {out['concurrent']['runs_per_second']})\n"
        f"ratio {out['ratio']}x"
    )


if __name__ == "__main__":
    main()
