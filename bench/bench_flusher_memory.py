"""Why the collector's flusher grew, and that it is bounded now: peak memory of one flusher
process storing a backlog of large acknowledged requests, reading at most 100,000 lines a
flush (as before) against at most 32 MB of log a flush (now).

    .venv/bin/python bench/bench_flusher_memory.py [--lines 3000] [--messages 40]

Each run is a fresh process (ru_maxrss is a high-water mark); medians of 3.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
from pathlib import Path
from pqlkit.backends import connect
from pqlkit.collect.log import LogReader, DurableLog
from pqlkit.collect.store import Flusher
folder, limit_bytes = Path(sys.argv[1]), int(sys.argv[2])
log = DurableLog(folder / "log")
end = log.durable
log.close()
start = time.perf_counter()
flusher = Flusher(lambda: connect(str(folder / f"f{limit_bytes}.duckdb")), LogReader(folder / "log", lambda: end))
flushes = 0
while flusher.flush_once(limit_bytes=limit_bytes):
    flushes += 1
flusher.finish()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flusher.stored, flushes, time.perf_counter() - start)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=3000, help="acknowledged requests in the backlog")
    ap.add_argument("--messages", type=int, default=40, help="messages per request")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from pqlkit.collect.log import DurableLog

        log = DurableLog(folder / "source")
        pad = "x" * 600
        for i in range(args.lines):
            batch = [
                {
                    "type": "track",
                    "userId": f"u{j % 500}",
                    "event": "Feature Used",
                    "messageId": f"m{i}-{j}",
                    "timestamp": "2026-11-01T11:00:00Z",
                    "properties": {"pad": pad, "n": j},
                }
                for j in range(args.messages)
            ]
            body = json.dumps({"batch": batch}).encode()
            log.append(
                [b'{"s":"web","r":"2026-11-01T12:00:00Z","e":"batch","b":' + body + b"}\n"]
            ).result()
        log.close()
        size = sum(p.stat().st_size for p in (folder / "source").glob("*.log"))
        print(
            f"backlog: {args.lines:,} requests, {args.lines * args.messages:,} messages, {size / 2**20:.0f} MB of log"
        )
        for label, limit in (
            ("100,000 lines a flush (before)", 2**62),
            ("32 MB a flush (now)", 32 * 2**20),
        ):
            peaks, secs = [], []
            for _run in range(args.runs):
                for p in folder.glob("f*.duckdb*"):
                    p.unlink()
                # the flusher deletes log segments it has stored: every run starts from a copy
                shutil.rmtree(folder / "log", ignore_errors=True)
                shutil.copytree(folder / "source", folder / "log")
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(folder), str(limit)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                peaks.append(float(out[0]))
                secs.append(float(out[3]))
                stored, flushes = int(out[1]), int(out[2])
            print(
                f"{label:34s} peak RSS {statistics.median(peaks):7.0f} MB   {stored:,} stored in {flushes} flushes, "
                f"{statistics.median(secs):.1f} s"
            )


if __name__ == "__main__":
    main()
