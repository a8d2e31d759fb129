"""Measure: a cold `pql explain USER` and `pql validate` on the demo, each a new process.

    python bench/bench_cold.py                          # pql demo into bench/data/cold, then measure
    python bench/bench_cold.py --before /work/main/src  # and the same commands with that code

Each command runs once first (the first run: the explain or check SQL kept in the database is
dropped before it, so it compiles and stores it again, and Python writes its bytecode), then ``--runs`` times (caches warm: the second run on); the median
wall time, the fastest and the median CPU time (user + system) of those runs are printed
(on a busy machine the CPU time is the steadier figure). The code is
copied to a temporary folder first, without bytecode; with ``--before``, so is that source
tree (nothing is written into it), measured the same way, the two taking turns run by run so that a busy machine slows both
alike. The commands are `pql explain <the top user> -m pql.yml --url demo.duckdb`,
`pql validate -m pql.yml --url demo.duckdb` (the data checked too, the default) and
`pql validate -m pql.yml --no-data`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def run(src: Path, argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `pql` process running ``argv`` with the code in ``src``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    code = "import sys; from pqlkit.cli import main; sys.argv[0] = 'pql'; main()"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pql {' '.join(argv)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def forget_compiled(db: Path, kind: str) -> None:
    """Drop the SQL of ``kind`` (explain, check) kept in the database (a cache): the next
    such command compiles it."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        if con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pql_compiled'"
        ).fetchone()[0]:
            con.execute(f"DELETE FROM pql_compiled WHERE key LIKE '{kind}:%'")
    finally:
        con.close()


def top_user(db: Path) -> str:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return str(
            con.execute(
                "SELECT user_id FROM pql_user_scores ORDER BY score DESC, user_id LIMIT 1"
            ).fetchone()[0]
        )
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(HERE / "data" / "cold"), help="where the demo is")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--before", help="another source tree (a src/ folder) to measure too")
    args = ap.parse_args()
    folder = Path(args.dir)
    demo = folder / "pql-demo"
    if not (demo / "demo.duckdb").exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"making the demo in {demo} ...", flush=True)
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        code = "from pqlkit.cli import main; main()"
        subprocess.run(
            [sys.executable, "-c", code, "demo", "--dir", str(demo)],
            cwd=folder,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    user = top_user(demo / "demo.duckdb")
    commands = {
        f"explain {user}": ["explain", user, "-m", "pql.yml", "--url", "demo.duckdb"],
        "validate": ["validate", "-m", "pql.yml", "--url", "demo.duckdb"],
        "validate --no-data": ["validate", "-m", "pql.yml", "--no-data"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        # copies without bytecode: each tree's first run compiles its modules, as a fresh
        # install's first command does
        trees = {"now": Path(tmp) / "now" / "src"}
        shutil.copytree(SRC, trees["now"], ignore=shutil.ignore_patterns("__pycache__"))
        if args.before:
            trees["before"] = Path(tmp) / "before" / "src"
            shutil.copytree(
                args.before, trees["before"], ignore=shutil.ignore_patterns("__pycache__")
            )
        print(
            f"{'command':<26}{'code':<8}{'first run':>12}{'median wall':>14}{'fastest':>10}"
            f"{'median CPU':>13}"
        )
        for name, argv in commands.items():
            if argv[0] == "explain":
                forget_compiled(demo / "demo.duckdb", "explain")
            elif "--no-data" not in argv:
                forget_compiled(demo / "demo.duckdb", "check")
            first = {label: run(src, argv, demo) for label, src in trees.items()}
            taken: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
            for i in range(args.runs):
                order = list(trees.items())
                for label, src in order if i % 2 == 0 else reversed(order):
                    taken[label].append(run(src, argv, demo))
            for label in trees:
                wall = statistics.median(w for w, _ in taken[label])
                fastest = min(w for w, _ in taken[label])
                cpu = statistics.median(c for _, c in taken[label])
                print(
                    f"{name:<26}{label:<8}{first[label][0]:>11.2f}s{wall:>13.2f}s"
                    f"{fastest:>9.2f}s{cpu:>12.2f}s",
                    flush=True,
                )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.1f} on {os.cpu_count()} cores at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
