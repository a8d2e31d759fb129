"""Benchmark: the collector (`pql serve`) against a bare durable baseline, under the same load.

    python bench/bench_collect.py                       # 10- and 100-message batches, 3 runs each
    python bench/bench_collect.py --events 400000 --repeat 5 --connections 32
    python bench/bench_collect.py --tracking-plan       # ours counts tracking-plan violations

The baseline is the least a durable collector must do: parse the JSON body, append every
message to a file, and fsync before answering (group commit: one fsync for all the requests
waiting), served by the same uvicorn. Ours also authenticates, validates every message,
corrects clock skew, and stores into DuckDB behind the log.

The load comes from a separate process: keep-alive HTTP/1.1 connections sending pre-built
requests with unique message ids, as fast as the server answers. It reports events per second
and per-request latency (p50, p99). After each run of ours the server is stopped and the
events table must hold every acknowledged event exactly once (zero loss), or the benchmark
fails. Prints medians and the ratio ours / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRITE_KEY = "wk_bench"


# --- the baseline server: parse, append, group-commit fsync ---------------------------------------


def baseline_app(path: str):
    import threading
    from concurrent.futures import Future

    import orjson

    fh = open(path, "ab")  # noqa: SIM115
    pending: list[tuple[bytes, Future]] = []
    cond = threading.Condition()

    def writer() -> None:
        nonlocal pending
        while True:
            with cond:
                while not pending:
                    cond.wait()
                batch, pending = pending, []
            for data, _ in batch:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            for _, fut in batch:
                fut.set_result(None)

    threading.Thread(target=writer, daemon=True).start()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = orjson.loads(b"".join(chunks))
        data = b"".join(orjson.dumps(m) + b"\n" for m in body["batch"])
        fut: Future = Future()
        with cond:
            pending.append((data, fut))
            cond.notify()
        await asyncio.wrap_future(fut)
        payload = b'{"success":true}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


def run_baseline(port: int, path: str) -> None:
    import uvicorn

    uvicorn.run(
        baseline_app(path),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
    )


# --- the load generator (its own process) ----------------------------------------------------------


EVENTS = ["Feature Used", "Project Created", "Page Viewed", "Invite Sent", "Pricing Viewed"]


def track_batch(start: int, stop: int, run: str, users: int = 50_000) -> bytes:
    """The body of one /v1/batch request: track calls ``start``..``stop`` of a run, from
    ``users`` users, with context and three properties (bench_flusher.py logs the same)."""
    messages = [
        {
            "type": "track",
            "userId": f"u{i % users}",
            "event": EVENTS[i % 5],
            "messageId": f"{run}-{i}",
            "timestamp": "2026-11-01T12:00:00.000Z",
            "properties": {"plan": "free", "n": i, "feature": "reports"},
            "context": {"library": {"name": "bench", "version": "1"}},
        }
        for i in range(start, stop)
    ]
    return json.dumps({"batch": messages, "sentAt": "2026-11-01T12:00:00.000Z"}).encode()


def build_requests(n_events: int, batch: int, run: str) -> list[bytes]:
    import base64

    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    requests = []
    for start in range(0, n_events, batch):
        body = track_batch(start, min(start + batch, n_events), run)
        head = (
            f"POST /v1/batch HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests


async def _drive(
    port: int, requests: list[bytes], connections: int
) -> tuple[float, list[float], int]:
    queue = list(reversed(requests))
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            req = queue.pop()
            t0 = time.perf_counter()
            writer.write(req)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if b" 200 " not in status_line:
                failures += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, latencies, failures


def generate_load(port: int, n_events: int, batch: int, connections: int, run: str) -> dict:
    requests = build_requests(n_events, batch, run)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    seconds, latencies, failures = asyncio.run(_drive(port, requests, connections))
    latencies.sort()
    return {
        "events": n_events,
        "seconds": seconds,
        "events_per_s": n_events / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failures": failures,
    }


# --- orchestration ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120  # a loaded machine starts Python slowly
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("the server did not start")


def _load(port: int, n: int, batch: int, connections: int, run: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate",
            str(port),
            str(n),
            str(batch),
            str(connections),
            run,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


#: `--tracking-plan`: a model whose plan names four of the five events and checks their
#: properties (the fifth counts as unknown), so every message takes the checker's longer path.
PLAN_MODEL = """
name: bench_plan
icp: {profiles: [{id: all, when: {email: business}}]}
usage_signals:
  - {id: features, kind: distinct_features, events: [Feature Used], property: feature, points: 5}
  - {id: projects, kind: property_threshold, events: [Project Created], property: n, points: 5}
  - {id: invites, kind: teammates_invited, events: [Invite Sent], points: 5}
  - {id: pricing, kind: event_count, events: [Pricing Viewed], where: {plan: free}, points: 5}
activation: {signal: invites}
"""
TRACKING_PLAN: list[str] = []  # ["--tracking-plan", FILE] when the option is given


def request_path_cost(plan: Path, batch: int = 100, repeat: int = 30, number: int = 50) -> dict:
    """CPU time of the request path's work on one batch, in this process: decoding and
    validating it, and counting it against the tracking plan, each the best of ``repeat``
    timings (which a busy machine disturbs far less than the HTTP runs' throughput)."""
    import timeit

    import orjson

    from pqlkit.collect.segment_api import check_body
    from pqlkit.model.load import load_model
    from pqlkit.usecases.tracking import checker

    raw = track_batch(0, batch, "cost")
    body = orjson.loads(raw)
    counter = checker(load_model(plan).model)

    def best(fn) -> float:
        return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6

    without = best(lambda: check_body("batch", orjson.loads(raw), len(raw)))
    counting = best(lambda: counter.check("batch", body))
    return {"without_us": without, "with_us": without + counting, "ratio": 1 + counting / without}


def one_run(kind: str, n: int, batch: int, connections: int, run: str) -> dict:
    """One run of ``kind``: baseline, ours, or plan (ours counting against a tracking plan)."""
    tmp = Path(tempfile.mkdtemp(prefix="pql-bench-"))
    port = _free_port()
    if kind == "baseline":
        cmd = [sys.executable, __file__, "--baseline", str(port), str(tmp / "baseline.log")]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pqlkit.cli",
            "serve",
            "--port",
            str(port),
            "--url",
            str(tmp / "c.duckdb"),
            "--log-dir",
            str(tmp / "log"),
            "--write-key",
            f"bench={WRITE_KEY}",
            *(TRACKING_PLAN if kind == "plan" else []),
        ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_up(port, proc)
        result = _load(port, n, batch, connections, run)
    finally:
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)
    # ours stores what is still in the log before it exits: all of it is in the database then
    result["drain_s"] = time.perf_counter() - stopping
    result["stored_per_s"] = n / (result["seconds"] + result["drain_s"])
    if kind != "baseline":
        import duckdb

        with duckdb.connect(str(tmp / "c.duckdb"), read_only=True) as con:
            stored, distinct = con.execute(
                "SELECT count(*), count(DISTINCT message_id) FROM events"
            ).fetchone()
        result["stored"] = stored
        if result["failures"] or stored != n or distinct != n:
            raise SystemExit(
                f"LOSS OR DUPLICATES: sent {n}, failures {result['failures']}, "
                f"stored {stored} ({distinct} distinct)"
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events",
        type=int,
        default=2_000_000,
        help="events per run with 100-message batches (a quarter of it with 10)",
    )
    parser.add_argument("--batches", default="10,100", help="messages per request, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--tracking-plan",
        action="store_true",
        help="also run ours counting every request against a tracking plan (pql serve "
        "--tracking-plan), interleaved with the others, and give its ratio to ours without",
    )
    args = parser.parse_args()
    if args.tracking_plan:
        plan = Path(tempfile.mkdtemp(prefix="pql-bench-plan-")) / "pql.yml"
        plan.write_text(PLAN_MODEL)
        TRACKING_PLAN.extend(["--tracking-plan", str(plan)])
    kinds = ("baseline", "ours", "plan") if args.tracking_plan else ("baseline", "ours")
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        n = args.events if batch >= 100 else args.events // 4
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for r in range(args.repeat):
            for kind in kinds:  # alternate, so drift hits each
                res = one_run(kind, n, batch, args.connections, f"{kind}{batch}-{r}")
                runs[kind].append(res)
                print(
                    f"  batch {batch:>3} {kind:<8} run {r + 1}: {res['events_per_s']:>9,.0f} ev/s  "
                    f"p50 {res['p50_ms']:.1f} ms  p99 {res['p99_ms']:.1f} ms",
                    file=sys.stderr,
                )
        med = {
            k: {
                m: statistics.median(x[m] for x in v)
                for m in ("events_per_s", "p50_ms", "p99_ms", "stored_per_s", "drain_s")
            }
            for k, v in runs.items()
        }
        rows.append(
            {
                "batch": batch,
                "events": n,
                **{f"{k}_{m}": v for k, d in med.items() for m, v in d.items()},
                "ratio": med["ours"]["events_per_s"] / med["baseline"]["events_per_s"],
                **(
                    {"plan_ratio": med["plan"]["events_per_s"] / med["ours"]["events_per_s"]}
                    if "plan" in med
                    else {}
                ),
                "lost": 0,
            }
        )
    cost = request_path_cost(Path(TRACKING_PLAN[1])) if args.tracking_plan else None
    if args.json:
        print(json.dumps({"runs": rows, "request_path": cost} if cost else rows, indent=2))
        return
    print(
        f"\n{'batch':>5} | {'events':>9} | {'baseline ev/s':>13} | {'ours ev/s':>10} | {'ratio':>5} | "
        f"{'p50 ms':>6} | {'p99 ms':>6} | {'in DuckDB ev/s':>14} | lost"
    )
    for row in rows:
        print(
            f"{row['batch']:>5} | {row['events']:>9,} | {row['baseline_events_per_s']:>13,.0f} | "
            f"{row['ours_events_per_s']:>10,.0f} | {row['ratio']:>5.2f} | {row['ours_p50_ms']:>6.1f} | "
            f"{row['ours_p99_ms']:>6.1f} | {row['ours_stored_per_s']:>14,.0f} | {row['lost']}"
        )
        if "plan_ratio" in row:
            print(
                f"      with a tracking plan: {row['plan_events_per_s']:,.0f} ev/s, "
                f"{row['plan_ratio']:.3f} of ours without (p50 {row['plan_p50_ms']:.1f} ms, "
                f"p99 {row['plan_p99_ms']:.1f} ms)"
            )
    if cost is not None:
        print(
            f"      request path per 100-message batch (best of 30): {cost['without_us']:,.0f} us, "
            f"{cost['with_us']:,.0f} us counting against the plan ({cost['ratio']:.3f})"
        )
    print(
        f"(medians of {args.repeat}; {args.connections} keep-alive connections from a separate process; "
        "'in DuckDB' counts until the last event is stored, including the drain after the load stops)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        port, n, batch, conns, run = sys.argv[2:7]
        print(json.dumps(generate_load(int(port), int(n), int(batch), int(conns), run)))
    elif len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        run_baseline(int(sys.argv[2]), sys.argv[3])
    else:
        main()
