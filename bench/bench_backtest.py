"""Benchmark: `pql backtest`'s replay (one compiled query, reused for every date) against the
same replay compiling its expression afresh for each date, in the same run.

    python bench/bench_backtest.py                   # the demo's 20,000 users, 13 weekly dates
    python bench/bench_backtest.py --users 50000 --dates 26 --repeat 3

The demo data is generated into bench/data/backtest-<users>.duckdb once. The two paths
alternate; both must return the same rows for every date, or the benchmark fails. Prints
medians and the ratio, and the whole `pql backtest` (replay and every summary) for scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
END = datetime(2026, 10, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--dates", type=int, default=13)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from pqlkit.backends import connect
    from pqlkit.demo.generate import DemoSize, generate
    from pqlkit.demo.load import load, write_model
    from pqlkit.engine import Engine
    from pqlkit.learn import backtest as bt
    from pqlkit.learn import dataset
    from pqlkit.model.load import load_model

    data_dir = HERE / "data"
    data_dir.mkdir(exist_ok=True)
    db = data_dir / f"backtest-{args.users}.duckdb"
    model = data_dir / "backtest-model.yml"
    write_model(model)
    if not db.exists():
        print(f"generating {args.users:,} users into {db} ...", file=sys.stderr)
        backend = connect(str(db))
        load(
            backend,
            generate(
                DemoSize(accounts=args.users // 4, users=args.users, days=120, seed=7), end=END
            ),
        )
        backend.close()
    backend = connect(str(db))
    horizon, every = timedelta(days=30), timedelta(days=7)
    first = END - horizon - every * (args.dates - 1)
    dates = [first + every * i for i in range(args.dates)]

    def reused() -> list[int]:
        engine = Engine(
            load_model(model), backend
        )  # a fresh engine: templates come from pql_compiled
        return [
            dataset.snapshot_rows(engine, "opportunity", dataset.Snapshot(d, horizon)).num_rows
            for d in dates
        ]

    def fresh() -> list[int]:
        engine = Engine(load_model(model), backend)
        out = []
        for d in dates:
            sql = backend.compile(
                dataset.snapshot_expr(engine, "opportunity", dataset.Snapshot(d, horizon))
            )
            out.append(backend.arrow(sql).num_rows)
        return out

    reused()  # the first run compiles and stores the template, as a first `pql backtest` would
    times: dict[str, list[float]] = {"fresh": [], "reused": []}
    rows: dict[str, list[int]] = {}
    for _ in range(args.repeat):
        for name, fn in (("fresh", fresh), ("reused", reused)):
            t = time.perf_counter()
            rows[name] = fn()
            times[name].append(time.perf_counter() - t)
    if rows["fresh"] != rows["reused"]:
        print(f"FAIL: the two paths returned different rows: {rows}", file=sys.stderr)
        return 1
    engine = Engine(load_model(model), backend)
    t = time.perf_counter()
    r = bt.replay(engine, dates[1:], horizon, every)
    bt.weekly(r), bt.side_by_side(r), bt.capacity_curve(r, 20), bt.monitor(r)
    whole = time.perf_counter() - t
    f, u = statistics.median(times["fresh"]), statistics.median(times["reused"])
    print(
        f"{args.users:,} users, {args.dates} dates, {sum(rows['reused']):,} user-dates, medians of {args.repeat}:"
    )
    print(f"  compile per date : {f:6.2f} s  ({f / args.dates * 1000:.0f} ms a date)")
    print(f"  compiled once    : {u:6.2f} s  ({u / args.dates * 1000:.0f} ms a date)")
    print(f"  ratio            : {f / u:6.2f}x faster")
    print(f"  whole backtest (replay + weekly, PQL vs MQL, capacity, monitoring): {whole:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
