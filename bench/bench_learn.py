"""How long learning takes at the size the issue names: 40,000 rows x 30 columns (20 numbers,
10 text), fitted by the points model (L1 logistic regression over step inputs) and by the
gradient-boosted reference, on this machine; and how close the points come to the reference.

    .venv/bin/python bench/bench_learn.py [--rows 40000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    logit = np.full(rows, -2.0)
    for i in range(20):
        x = rng.gamma(1.0 + i % 3, 2.0, rows) * (rng.random(rows) < 0.7)
        cols[f"n{i}"] = x
        logit += (0.25 if i < 8 else 0.0) * np.log1p(x)
    for i in range(10):
        levels = np.array([f"v{j}" for j in range(5 + 3 * i)])
        x = levels[rng.integers(0, levels.size, rows)]
        cols[f"t{i}"] = x
        if i < 3:
            logit += np.where(x == "v1", 0.8, 0.0)
    cols["label"] = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pa.table(cols)


def main() -> None:
    from pqlkit.learn import fit, metrics
    from pqlkit.learn.learn import split_at_random

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    data = table(args.rows)
    train, test, _ = split_at_random(data)
    y = np.asarray(test.column("label").to_pylist(), bool)
    times: dict[str, list[float]] = {"points": [], "reference": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        points = fit.fit_points(train)
        times["points"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = fit.fit_reference(train)
        times["reference"].append(time.perf_counter() - t0)
    auc_p = metrics.auc(y, points.score(test))
    auc_r = metrics.auc(y, ref.probability(test))
    print(
        f"{args.rows:,} rows x 30 columns ({train.num_rows:,} to fit on), medians of {args.runs}:"
    )
    print(
        f"  points model     {statistics.median(times['points']):5.1f} s   AUC {auc_p:.4f}   "
        f"{len(points.points)} rules, base {points.base}, converged {points.converged}"
    )
    print(f"  boosted reference {statistics.median(times['reference']):5.1f} s   AUC {auc_r:.4f}")
    print(
        f"  gap {auc_r - auc_p:+.4f}; points / reference time {statistics.median(times['points']) / statistics.median(times['reference']):.2f}x"
    )


if __name__ == "__main__":
    main()
