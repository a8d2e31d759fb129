"""Benchmark: `pql score` against the fastest hand-written DuckDB SQL for the same model.

    python bench/bench_score.py                      # 1M and 10M events, 3 runs each
    python bench/bench_score.py --events 1M,10M,100M --repeat 3

Data (1M users, 100k accounts, 90 days) is generated inside DuckDB and kept in bench/data/.
Each run is a separate process so peak memory (max RSS) is its own; the paths alternate:
the hand-written SQL (scores and accounts), `pql score` (which also keeps every user's features
for the web app's lead page) and `pql score --no-features` (one query from events to scores).
Both must produce identical rows, or the benchmark says so and fails. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
MODEL = HERE / "model.yml"
AS_OF = datetime(2026, 10, 1)
START = AS_OF - timedelta(days=90)

EVENT_MIX = (
    ["session_started"] * 30
    + ["feature_used"] * 40
    + ["project_created"] * 5
    + ["invite_sent"] * 3
    + ["pricing_viewed"] * 3
    + ["email_opened"] * 10
    + ["onboarding_a"] * 2
    + ["onboarding_b"] * 2
    + ["contact_sales"] * 1
    + ["webinar_attended"] * 1
    + ["upgrade_clicked"] * 3
)


def parse_count(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KMB")) * mult)


def generate(
    path: Path, n_events: int, n_users: int, n_accounts: int, *, ordered: bool = False
) -> None:
    """The bench world, inside DuckDB; ``ordered`` stores events in time order, as an
    append-only log (pqlkit's collector, any event stream) has them."""
    import duckdb

    con = duckdb.connect(str(path))
    names = "[" + ", ".join(f"'{n}'" for n in EVENT_MIX) + "]"
    start = START.isoformat(sep=" ")
    con.execute(f"""
      CREATE TABLE accounts AS SELECT
        'a_' || i AS account_id, 'd' || i || '.com' AS domain, 'Account ' || i AS name,
        (['software', 'fintech', 'media', 'education', 'retail'])[1 + (hash(i) % 5)::BIGINT] AS industry,
        (1 + hash(i * 7) % 3000)::BIGINT AS employees, 'US' AS country,
        CASE WHEN hash(i * 3) % 3 = 0 THEN ['snowflake', 'dbt'] ELSE ['excel'] END AS tech_stack,
        'free' AS plan, (1 + hash(i * 11) % 60)::BIGINT AS seats
      FROM range({n_accounts}) t(i);
      CREATE TABLE users AS SELECT
        'u_' || i AS user_id,
        'user' || i || '@' || CASE WHEN hash(i) % 7 = 0 THEN 'gmail.com' ELSE 'd' || (i % {n_accounts}) || '.com' END AS email,
        'a_' || (i % {n_accounts}) AS account_id,
        TIMESTAMP '{start}' + to_seconds((hash(i * 13) % (90 * 86400))::BIGINT) - INTERVAL 20 DAY AS created_at,
        CASE WHEN hash(i * 5) % 20 = 0 THEN 'paid' ELSE 'free' END AS plan,
        (['Engineer', 'VP Engineering', 'Student', 'Analyst', 'Head of Data', 'CTO', 'Designer'])[1 + (hash(i * 17) % 7)::BIGINT] AS role
      FROM range({n_users}) t(i);
      CREATE TABLE events AS
      WITH r AS (
        SELECT i, {names}[1 + (hash(i * 31) % {len(EVENT_MIX)})::BIGINT] AS event,
               -- activity is skewed: a few users do most things
               (floor(pow((hash(i) % 1000003) / 1000003.0, 2.5) * {n_users}))::BIGINT AS u
        FROM range({n_events}) t(i)
      )
      SELECT 'm_' || i AS message_id, 'u_' || u AS user_id, NULL::VARCHAR AS anonymous_id,
        NULL::VARCHAR AS account_id, event,
        TIMESTAMP '{start}' + to_seconds((hash(i * 17) % (90 * 86400))::BIGINT) AS "timestamp",
        (CASE WHEN event = 'feature_used' THEN '{{"feature": "f' || hash(i * 19) % 8 || '"}}'
              WHEN event = 'invite_sent' THEN '{{"invitee": "x' || hash(i * 23) % 20 || '@y.com"}}'
              ELSE '{{}}' END)::JSON AS properties
      FROM r{' ORDER BY "timestamp"' if ordered else ""};
    """)
    con.close()


def baseline_sql() -> str:
    from pqlkit.model.defaults import free_mail_domains
    from pqlkit.model.load import load_model

    epoch = (AS_OF - datetime(1970, 1, 1)).total_seconds()
    return (
        (HERE / "baseline.sql")
        .read_text()
        .format(
            as_of=AS_OF.isoformat(sep=" "),
            as_of_epoch=repr(epoch),
            as_of_day=math.floor(epoch / 86400),
            start14=(AS_OF - timedelta(days=14)).isoformat(sep=" "),
            start30=(AS_OF - timedelta(days=30)).isoformat(sep=" "),
            start60=(AS_OF - timedelta(days=60)).isoformat(sep=" "),
            pricing_rate=repr(math.log(2) / 7.0),
            freemail=", ".join(f"'{d}'" for d in sorted(free_mail_domains())),
            version=load_model(MODEL).version,
        )
    )


# --- one timed run, in its own process -------------------------------------------------------


def child(kind: str, db: str, keep_features: bool) -> None:
    started = time.perf_counter()
    if kind == "baseline":
        import duckdb

        con = duckdb.connect(db)
        con.execute("SET TimeZone = 'UTC'")
        con.execute(baseline_sql())
        con.close()
    else:
        from pqlkit.cli import main

        # score and store, print only the summary: the same work as the baseline's two tables
        args = [
            "score",
            "-m",
            str(MODEL),
            "--url",
            db,
            "--as-of",
            AS_OF.isoformat(),
            "--limit",
            "0",
        ]
        if not keep_features:
            args.append("--no-features")
        try:
            main(args)
        except SystemExit as exc:
            if exc.code:
                raise
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime  # all threads: steadier than wall on a busy machine
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "cpu_s": cpu}))


def timed(kind: str, db: Path, keep_features: bool = True) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--db", str(db)]
    if not keep_features:
        argv.append("--no-features")
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # the child's last line is its figures


def agree(db: Path) -> tuple[bool, int]:
    import duckdb

    from pqlkit.scoring.decide import OUTPUT_FIELDS

    con = duckdb.connect(str(db), read_only=True)
    when = f"TIMESTAMP '{AS_OF.isoformat(sep=' ')}'"

    def differing(cols: str, ours: str, theirs: str) -> int:
        """Rows in one table and not the other, either way (multiset difference)."""
        mine = f"SELECT {cols} FROM {ours} WHERE as_of = {when}"
        return con.execute(
            f"SELECT count(*) FROM (({mine} EXCEPT ALL SELECT {cols} FROM {theirs}) "
            f"UNION ALL (SELECT {cols} FROM {theirs} EXCEPT ALL {mine}))"
        ).fetchone()[0]

    diff = differing(
        ", ".join(["user_id", *OUTPUT_FIELDS]), "pql_user_scores", "baseline_user_scores"
    )
    adiff = differing(
        "account_id, users, active_users, pql_users, score, champion_user_id, tier, is_pqa",
        "pql_account_scores",
        "baseline_account_scores",
    )
    users = con.execute("SELECT count(*) FROM baseline_user_scores").fetchone()[0]
    con.close()
    return diff == 0 and adiff == 0, users


def build_ms(db: Path, repeat: int = 20) -> tuple[float, float]:
    """Median milliseconds to get the scoring SQL: cold (bind the sources, build every
    expression, compile) and warm (a new engine at a new as_of, reusing the stored SQL)."""
    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.model.load import load_model

    backend = connect(str(db))
    cold, warm = [], []
    for i in range(repeat):
        started = time.perf_counter()
        engine = Engine(load_model(MODEL), backend)
        backend.compile(engine.scores(AS_OF))
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        engine = Engine(load_model(MODEL), backend)
        engine.scores_sql(AS_OF - timedelta(days=i + 1))
        warm.append((time.perf_counter() - started) * 1000)
    backend.close()
    return statistics.median(cold), statistics.median(warm)


def cost_curve(rows: list[dict]) -> str:
    """Fixed and per-event cost of each path: a least-squares line through (events, seconds)
    of the sizes run."""
    xs = [parse_count(r["events"]) / 1e6 for r in rows]
    lines = [
        "| path | fixed cost | per million events | peak memory per size |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, mem in (
        ("hand-written SQL", "baseline_s", "baseline_mb"),
        ("pql score", "pql_s", "pql_mb"),
        ("pql score --no-features", "pql_nofeatures_s", None),
    ):
        ys = [r[key] for r in rows]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        fixed = my - slope * mx
        mems = " / ".join(f"{r[mem]:.0f} MB" for r in rows) if mem else "-"
        lines.append(f"| {label} | {fixed:.2f} s | {slope:.3f} s | {mems} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", default="1M,10M", help="comma-separated sizes, e.g. 1M,10M,100M"
    )
    parser.add_argument("--users", default="1M")
    parser.add_argument("--accounts", default="100K")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["ours", "baseline"])
    parser.add_argument("--db")
    parser.add_argument("--no-features", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, not args.no_features)
        return
    DATA.mkdir(exist_ok=True)
    n_users, n_accounts = parse_count(args.users), parse_count(args.accounts)
    rows = []
    for size in args.events.split(","):
        n = parse_count(size)
        db = DATA / f"bench_{size.strip().upper()}_{args.users.upper()}.duckdb"
        if not db.exists():
            print(
                f"[{size}] generating {n:,} events, {n_users:,} users, {n_accounts:,} accounts ...",
                flush=True,
            )
            started = time.perf_counter()
            generate(db, n, n_users, n_accounts)
            print(f"[{size}] generated in {time.perf_counter() - started:.1f}s", flush=True)
        results: dict[str, list[dict]] = {"ours": [], "ours_nofeatures": [], "baseline": []}
        for i in range(args.repeat):
            order = (
                ["baseline", "ours", "ours_nofeatures"]
                if i % 2
                else ["ours", "ours_nofeatures", "baseline"]
            )
            for kind in order:
                r = timed(
                    "ours" if kind.startswith("ours") else "baseline",
                    db,
                    keep_features=kind != "ours_nofeatures",
                )
                results[kind].append(r)
                print(
                    f"[{size}] run {i + 1}/{args.repeat} {kind:14s} {r['seconds']:7.2f}s  "
                    f"cpu {r['cpu_s']:7.2f}s  peak {r['peak_mb']:7.0f} MB",
                    flush=True,
                )
        ok, users = agree(db)
        med = {k: statistics.median(x["seconds"] for x in v) for k, v in results.items()}
        mem = {k: statistics.median(x["peak_mb"] for x in v) for k, v in results.items()}
        rows.append(
            {
                "events": size,
                "users": users,
                "identical": ok,
                "baseline_s": med["baseline"],
                "pql_s": med["ours"],
                "pql_nofeatures_s": med["ours_nofeatures"],
                "ratio": med["ours"] / med["baseline"],
                "ratio_nofeatures": med["ours_nofeatures"] / med["baseline"],
                "baseline_mb": mem["baseline"],
                "pql_mb": mem["ours"],
                "mem_ratio": mem["ours"] / mem["baseline"],
                "build_ms": build_ms(db),  # (cold, warm)
            }
        )
    print()
    print(
        "| events | users | identical rows | hand-written SQL | pql score | ratio | pql score --no-features | ratio "
        "| peak MB (SQL / pql) | memory ratio | build + compile: first run / later runs |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['events']} | {r['users']:,} | {'yes' if r['identical'] else 'NO'} | {r['baseline_s']:.2f} s | "
            f"{r['pql_s']:.2f} s | {r['ratio']:.2f}x | {r['pql_nofeatures_s']:.2f} s | {r['ratio_nofeatures']:.2f}x | "
            f"{r['baseline_mb']:.0f} / {r['pql_mb']:.0f} | {r['mem_ratio']:.2f}x | "
            f"{r['build_ms'][0]:.0f} ms / {r['build_ms'][1]:.0f} ms |"
        )
    if len(rows) >= 2:
        print()
        print(cost_curve(rows))
    if not all(r["identical"] for r in rows):
        raise SystemExit(
            "the two paths disagree: the comparison is not fair; fix before quoting figures"
        )


if __name__ == "__main__":
    main()
