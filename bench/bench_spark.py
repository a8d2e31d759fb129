"""Benchmark: `pql score` on DuckDB against Spark local[2], on the same data, this machine.

    python bench/bench_spark.py                       # 1M events, 2 runs each
    python bench/bench_spark.py --events 1M,10M --repeat 3

Data: bench_score's generator (N events, N/10 users, N/100 accounts, 90 days) in DuckDB, copied
to Parquet and into a Spark warehouse. Each run is a process of its own (Spark's JVM included)
timing `pql score` as a user runs it; both must give identical rows. Prints medians, the
microseconds per event of each and their ratio, and the peak memory of each run: the resident
memory of the timed process and all its descendants (Spark's JVM is a grandchild), summed and
sampled every 100 ms from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_score import AS_OF, DATA, MODEL, generate, parse_count  # noqa: E402


def prepare(n_events: int) -> tuple[Path, str]:
    import duckdb

    DATA.mkdir(exist_ok=True)
    db = DATA / f"spark_{n_events}.duckdb"
    warehouse = DATA / f"spark_{n_events}_warehouse"
    if not db.exists():
        started = time.perf_counter()
        generate(db, n_events, max(n_events // 10, 100), max(n_events // 100, 10))
        print(f"generated {db.name} in {time.perf_counter() - started:.0f} s", flush=True)
    url = f"spark://local[2]?warehouse={warehouse}&spark.driver.memory=6g"
    if not warehouse.exists():
        started = time.perf_counter()
        parquet = DATA / f"spark_{n_events}_parquet"
        parquet.mkdir(exist_ok=True)
        con = duckdb.connect(str(db), read_only=True)
        for table in ("events", "users", "accounts"):
            con.execute(
                f"COPY (SELECT * REPLACE (CAST(properties AS VARCHAR) AS properties) FROM {table}) "
                f"TO '{parquet / table}.parquet' (FORMAT parquet)"
                if table == "events"
                else f"COPY {table} TO '{parquet / table}.parquet' (FORMAT parquet)"
            )
        con.close()
        code = (
            "import sys; from pqlkit.backends import connect; b = connect(sys.argv[1]); "
            "s = b.session\n"
            "for t in ('events', 'users', 'accounts'):\n"
            "    s.read.parquet(sys.argv[2] + '/' + t + '.parquet').write.saveAsTable(t)\n"
        )
        subprocess.run([sys.executable, "-c", code, url, str(parquet)], check=True)
        shutil.rmtree(parquet)
        print(f"copied to Spark in {time.perf_counter() - started:.0f} s", flush=True)
    return db, url


def child(url: str) -> None:
    from pqlkit.cli import main

    started = time.perf_counter()
    args = ["score", "-m", str(MODEL), "--url", url, "--as-of", AS_OF.isoformat(), "--limit", "0"]
    try:
        main(args)
    except SystemExit as exc:
        if exc.code:
            raise
    print(json.dumps({"seconds": time.perf_counter() - started}))


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and every process below it (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def timed(url: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"run on {url} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": peak / 2**20}


def scores(url: str) -> list[tuple]:
    from pqlkit.backends import connect

    b = connect(url)
    t = b.table("pql_user_scores")
    rows = b.values(t.select("user_id", "score", "tier", "is_pql").order_by("user_id"))
    b.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", default="1M")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child)
        return
    print(
        f"{'events':>10} {'DuckDB s':>9} {'Spark s':>8} {'ratio':>6} {'DuckDB us/ev':>13} "
        f"{'Spark us/ev':>12} {'DuckDB peak MB':>15} {'Spark peak MB':>14}"
    )
    for text in a.events.split(","):
        n = parse_count(text)
        db, url = prepare(n)
        duck = [timed(str(db)) for _ in range(a.repeat)]
        spark = [timed(url) for _ in range(a.repeat)]
        same = (
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from bench_spark import scores; print(scores(sys.argv[2]) == scores(sys.argv[3]))",
                    str(HERE),
                    str(db),
                    url,
                ],
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1:]
        )
        d = statistics.median(r["seconds"] for r in duck)
        s = statistics.median(r["seconds"] for r in spark)
        print(
            f"{n:>10,} {d:>9.2f} {s:>8.2f} {s / d:>6.1f} {d / n * 1e6:>13.2f} {s / n * 1e6:>12.2f}"
            f" {max(r['peak_mb'] for r in duck):>15,.0f} {max(r['peak_mb'] for r in spark):>14,.0f}"
            f"  same rows: {same[0] if same else '?'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
