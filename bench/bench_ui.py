"""Benchmark: the web app's pages with 1M scored users, over real HTTP, against naive baselines.

    python bench/bench_ui.py                         # 10M events
    python bench/bench_ui.py --events 10M,100M --repeat 60

Data: bench_score's generator (1M users, 100k accounts, 90 days, N events in time order as an
append-only log stores them, inside DuckDB, kept in bench/data/), scored by `pql score`'s engine at two dates a week apart (so leads have a history).
`pql ui` runs in its own process; a client signs in and times each page, p50 and p95 of
``--repeat`` requests (leads and accounts drawn at random from the PQLs and PQAs).

Baselines, in the same run and process as each other: a lead explained from the features its
scoring run stored (what the lead page does) against the one-user query over the events (what
`pql explain` does, and the lead page did before); a lead's timeline searched in the week up
to the user's last event against all their events; and an inbox page cut in Python from every
PQL fetched, against the page cut in the database.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_score import AS_OF, DATA, MODEL, generate, parse_count  # noqa: E402

USERS, ACCOUNTS = 1_000_000, 100_000
PASSWORD = "benchmark password"


def prepare(events: int) -> Path:
    from pqlkit.access import accounts
    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.model.load import load_model

    DATA.mkdir(exist_ok=True)
    db = DATA / f"ui_{events}_ordered.duckdb"
    if db.exists():
        return db
    started = time.perf_counter()
    print(f"generating {events:,} events for {USERS:,} users...", flush=True)
    generate(db, events, USERS, ACCOUNTS, ordered=True)
    engine = Engine(load_model(MODEL), connect(str(db)))
    try:
        for when in (AS_OF - timedelta(days=7), AS_OF):
            r = engine.run(when, checks=False)
            print(
                f"  scored as of {when:%Y-%m-%d}: {r.users:,} users, {r.pqls:,} PQLs, "
                f"{r.pqas:,} PQAs in {r.seconds:.1f}s",
                flush=True,
            )
        accounts.add(engine.backend, "bench", "admin", PASSWORD)
    finally:
        engine.close()
    print(f"  ready in {time.perf_counter() - started:.0f}s", flush=True)
    return db


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(c: httpx.Client) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"csrf": token, "name": "bench", "password": PASSWORD})
    assert r.status_code == 303, r.text


def timed_gets(c: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for p in paths:
        t = time.perf_counter()
        r = c.get(p)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (p, r.status_code, r.text[:300])
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def pages(db: Path, repeat: int, rng: random.Random) -> dict[str, list[float]]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        when = f"TIMESTAMP '{AS_OF.isoformat(sep=' ')}'"
        pqls = [
            r[0]
            for r in con.execute(
                f"SELECT user_id FROM pql_user_scores WHERE is_pql AND as_of = {when}"
            ).fetchall()
        ]
        pqas = [
            r[0]
            for r in con.execute(
                f"SELECT account_id FROM pql_account_scores WHERE is_pqa AND as_of = {when}"
            ).fetchall()
        ]
        motion, tier = con.execute(
            f"SELECT motion, tier FROM pql_user_scores WHERE is_pql AND as_of = {when} "
            "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        emails = [
            r[0]
            for r in con.execute(
                f"SELECT email FROM users WHERE user_id IN ({', '.join(repr(u) for u in rng.sample(pqls, 20))})"
            ).fetchall()
        ]
    port = free_port()
    env = {**os.environ, "PQL_UI_SECRET": "b" * 48, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pqlkit.cli",
            "ui",
            "-m",
            str(MODEL),
            "--url",
            str(db),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=120) as c:
            sign_in(c)
            warm = ["/inbox", f"/leads/{pqls[0]}", f"/accounts/{pqas[0]}"]
            timed_gets(c, warm)  # first use: bind, compile, store the SQL
            results = {
                "inbox": timed_gets(c, ["/inbox"] * repeat),
                "inbox, 2 filters": timed_gets(c, [f"/inbox?motion={motion}&tier={tier}"] * repeat),
                "inbox, search by e-mail": timed_gets(
                    c, [f"/inbox?q={rng.choice(emails)}" for _ in range(repeat)]
                ),
                "inbox, page 100": timed_gets(c, ["/inbox?page=100"] * repeat),
                "accounts inbox": timed_gets(c, ["/inbox?kind=accounts"] * repeat),
                "lead": timed_gets(c, [f"/leads/{rng.choice(pqls)}" for _ in range(repeat)]),
                "account": timed_gets(c, [f"/accounts/{rng.choice(pqas)}" for _ in range(repeat)]),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    results["_counts"] = [float(len(pqls)), float(len(pqas))]
    return results


def _close(a, b) -> bool:
    """Equal, floats to 1e-9: DuckDB's parallel sums (decay) may add in another order."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def baselines(db: Path, repeat: int, rng: random.Random) -> dict[str, tuple[float, float]]:
    """(ours, baseline) median ms for a lead's explanation and an inbox page, in-process."""
    import ibis

    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.model.load import load_model
    from pqlkit.usecases import inbox as desk
    from pqlkit.usecases import leads
    from pqlkit.usecases.session import Session

    engine = Engine(load_model(MODEL), connect(str(db)))
    try:
        pqls = [
            r[0]
            for r in engine.backend.values(
                engine.stored_users(AS_OF, engine.loaded.version)
                .filter(lambda t: t.is_pql)
                .select("user_id")
            )
        ]
        engine.explain(pqls[0], AS_OF)
        engine.stored_explanation(pqls[0], AS_OF)
        sample = rng.sample(pqls, min(repeat, 10))
        ours, theirs = [], []
        for uid in sample:
            t = time.perf_counter()
            a = engine.stored_explanation(uid, AS_OF)
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b = engine.explain(uid, AS_OF)  # from the user's events
            theirs.append((time.perf_counter() - t) * 1000)
            assert a is not None and _close(a.to_dict(), b.to_dict()), uid
        out = {"lead's explanation": (statistics.median(ours), statistics.median(theirs))}
        ours, theirs = [], []
        for uid in sample:
            t = time.perf_counter()
            a = leads.lead(Session.of(engine), uid)
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b = leads.lead(Session.of(engine), uid, all_events=True)
            theirs.append((time.perf_counter() - t) * 1000)
            assert a is not None and b is not None
            # the window's are the latest
            stamps = [e["timestamp"] for e in b.events[: len(a.events)]]
            assert [e["timestamp"] for e in a.events] == stamps, uid
        out["lead page, in-process"] = (statistics.median(ours), statistics.median(theirs))
        ours, theirs = [], []
        for _ in range(min(repeat, 10)):
            t = time.perf_counter()
            page = desk.inbox(Session.of(engine), desk.Filters(status="all"))
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            users, _, _ = desk.state(engine)
            every = engine.backend.rows(users.filter(users.is_pql))
            every.sort(key=lambda r: (-r["score"], r["user_id"]))
            _ = every[: desk.PAGE]
            theirs.append((time.perf_counter() - t) * 1000)
        assert page.total == len(every)
        out["inbox page"] = (statistics.median(ours), statistics.median(theirs))
        del ibis
        return out
    finally:
        engine.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="10M")
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    for text in args.events.split(","):
        n = parse_count(text)
        db = prepare(n)
        rng = random.Random(args.seed)
        res = pages(db, args.repeat, rng)
        pqls, pqas = res.pop("_counts")
        print(
            f"\n{n:,} events, {USERS:,} scored users ({int(pqls):,} PQLs, {int(pqas):,} PQAs); "
            f"{args.repeat} requests a page over HTTP:"
        )
        print(f"  {'page':<26}{'p50 ms':>9}{'p95 ms':>9}")
        for name, ms in res.items():
            print(f"  {name:<26}{statistics.median(ms):>9.1f}{pct(ms, 0.95):>9.1f}")
        print("  in-process, ours against a naive baseline (medians):")
        for name, (ours, theirs) in baselines(db, args.repeat, rng).items():
            print(f"  {name:<26}{ours:>9.1f} ms vs {theirs:>9.1f} ms  {theirs / ours:>6.1f}x")


if __name__ == "__main__":
    main()
