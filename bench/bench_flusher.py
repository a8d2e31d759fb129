"""How fast the flusher moves acknowledged requests from the log into DuckDB: the fast path
(DuckDB normalising the logged requests, :mod:`pqlkit.collect.fastpath`) against the reference
path (Python normalising every message), on the same backlog, in the same run.

    .venv/bin/python bench/bench_flusher.py [--events 400000] [--batch 100] [--users 50000]
    .venv/bin/python bench/bench_flusher.py --runs 5 --src /tmp/old/src,src   # old against new

The backlog is what `pql serve` logs for Segment batches like bench_collect.py's (track
calls with context and three properties, many users). Each run is a fresh process storing the
whole backlog into a fresh DuckDB file, identity tables included; medians of 3. The run fails
unless both paths store every event exactly once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time
from pathlib import Path
from pqlkit.backends import connect
from pqlkit.collect.log import LogReader, DurableLog
from pqlkit.collect.store import Flusher
folder, fast = Path(sys.argv[1]), sys.argv[2] == "fast"
log = DurableLog(folder / "log")
end = log.durable
log.close()
flusher = Flusher(lambda: connect(str(folder / "bench.duckdb")), LogReader(folder / "log", lambda: end), fast=fast)
start = time.perf_counter()
while flusher.flush_once():
    pass
flusher.resolve()
seconds = time.perf_counter() - start
backend = connect(str(folder / "bench.duckdb"))
rows, distinct = backend.run_sql("SELECT count(*), count(DISTINCT message_id) FROM events")[0]
print(flusher.stored, rows, distinct, seconds)
"""


def build(folder: Path, events: int, batch: int, users: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pqlkit.collect.log import DurableLog

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_collect import track_batch

    log = DurableLog(folder / "source")
    lines = []
    for start in range(0, events, batch):
        body = track_batch(start, min(start + batch, events), "m", users)
        lines.append(b'{"s":"web","r":"2026-11-01T12:00:00.120Z","e":"batch","b":' + body + b"}\n")
        if len(lines) >= 200:
            log.append(lines).result()
            lines = []
    if lines:
        log.append(lines).result()
    log.close()


def timed(folder: Path, label: str, events: int, src: str | None = None) -> float:
    """One run of the flusher in a fresh process over a fresh copy of the backlog."""
    for p in folder.glob("bench.duckdb*"):
        p.unlink()
    shutil.rmtree(folder / "log", ignore_errors=True)
    shutil.copytree(folder / "source", folder / "log")
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())} if src else None
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), label],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    stored, rows, distinct, seconds = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    if not (stored == rows == distinct == events):
        raise SystemExit(f"{label}: stored {stored}, {rows} rows, {distinct} distinct")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--src",
        help="comma-separated source trees (each a `src` folder, e.g. of another checkout): "
        "the fast path of each, runs alternating, instead of the two paths of this one",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.events, args.batch, args.users)
        size = sum(p.stat().st_size for p in (folder / "source").glob("*.log"))
        print(
            f"backlog: {args.events:,} events in batches of {args.batch}, {args.users:,} users, "
            f"{size / 2**20:.0f} MB of log"
        )
        if args.src:
            trees = args.src.split(",")
            runs: dict[str, list[float]] = {t: [] for t in trees}
            for _run in range(args.runs):
                for t in trees:
                    runs[t].append(timed(folder, "fast", args.events, t))
            first = statistics.median(runs[trees[0]])
            for t, secs in runs.items():
                m = statistics.median(secs)
                print(
                    f"fast path of {t}: {m:6.2f} s  {args.events / m:>9,.0f} events/s "
                    f"({first / m:.2f}x the first; runs: {', '.join(f'{s:.2f}' for s in secs)})"
                )
            return
        rates = {}
        for label in ("reference", "fast"):
            secs = [timed(folder, label, args.events) for _run in range(args.runs)]
            rates[label] = args.events / statistics.median(secs)
            print(
                f"{label:9s} path: {statistics.median(secs):6.2f} s  {rates[label]:>9,.0f} events/s "
                f"(runs: {', '.join(f'{s:.2f}' for s in secs)})"
            )
        print(f"fast / reference: {rates['fast'] / rates['reference']:.2f}x")


if __name__ == "__main__":
    main()
