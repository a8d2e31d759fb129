"""Where the learned points fall behind the boosted reference: conversion that needs two
conditions together (a pair), which steps of one column each cannot express.

    .venv/bin/python bench/bench_interactions.py [--rows 20000]

A synthetic table: `a` (0-9), `b` (x/y/z), `c` (0-1), `d` (0/1); the log-odds rise with `a`
and with `d`, and jump when `a >= 6` and `b = x` together, and when `c > 0.7` and `d = 1`
together. Prints the held-out AUC (a random quarter) of the learned points, their step count,
and the boosted reference's.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, rows)
    b = rng.choice(["x", "y", "z"], rows)
    c = rng.random(rows)
    d = rng.integers(0, 2, rows)
    logit = -3 + 0.15 * a + 2.0 * ((a >= 6) & (b == "x")) + 1.5 * ((c > 0.7) & (d == 1)) + 0.3 * d
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pa.table({"a": a, "b": b, "c": c, "d": d, "label": pa.array(y)})


def main() -> None:
    from pqlkit.learn.learn import learn_table, split_at_random

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--no-pairs", action="store_true", help="steps of one column only")
    args = ap.parse_args()
    started = time.perf_counter()
    r = learn_table(
        table(args.rows), "label", timedelta(0), [], split=split_at_random, pairs=not args.no_pairs
    )
    steps = sum(1 for p in r.points.points if p) if r.points else 0
    figures = ", ".join(f"{q.name} {q.auc:.4f}" for q in r.quality)
    print(f"{figures}; {steps} steps; {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
