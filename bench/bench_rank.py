"""Measure: ties at the top, and precision at sales capacity of the likelihood against the
capped score, on the demo's own data and its point-in-time backtest.

    python bench/bench_rank.py                       # pql demo into bench/data/rank, then measure
    python bench/bench_rank.py --capacity 20 --outcome opportunity --horizon 30

Ties: the largest group of the top 10% (by each value) sharing one value, on the demo's run.
Precision: on each backtest date (weekly snapshots, users who had not converted yet), sales
works ``--capacity`` of that date's PQLs; precision is the share of them that convert within the
horizon. By the capped score, equal scores are worked in random order (the expected share is
reported: a tied group at the cut counts its mean). By the likelihood: a calibration (Platt, as
`pql learn` fits it) on the earlier half of the dates, applied to the later half; equal
likelihoods (equal points) go by the ranking's recency, as the engine orders them.
"""

from __future__ import annotations

import argparse
import collections
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def expected_precision(value: np.ndarray, label: np.ndarray, k: int) -> float:
    """Precision of the top ``k`` by ``value``, equal values worked in random order."""
    if len(value) == 0:
        return float("nan")
    k = min(k, len(value))
    order = np.argsort(-value, kind="stable")
    cut = value[order[k - 1]]
    above = value > cut
    at = value == cut
    slots = k - int(above.sum())
    hits = label[above].sum() + slots * label[at].mean()
    return float(hits / k)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(HERE / "data" / "rank"))
    ap.add_argument("--capacity", type=int, default=20, help="PQLs sales works a week")
    ap.add_argument("--outcome", default="opportunity")
    ap.add_argument("--horizon", type=int, default=30, help="days")
    ap.add_argument("--dates", type=int, default=8)
    args = ap.parse_args()

    from pqlkit.backends import connect
    from pqlkit.engine import Engine
    from pqlkit.learn import calibrate, dataset
    from pqlkit.model.load import load_model
    from pqlkit.usecases.demo import run_demo

    folder = Path(args.dir)
    if not (folder / "demo.duckdb").exists():
        run_demo(folder)
    backend = connect(str(folder / "demo.duckdb"))
    engine = Engine(load_model(folder / "pql.yml"), backend)

    t = backend.table("pql_user_scores")
    rows = backend.rows(t.select("score", "points", "ranking"))
    top_n = len(rows) // 10
    print(f"Ties in the demo's top 10% ({top_n:,} of {len(rows):,} users):")
    for col in ("score", "points", "ranking"):
        top = sorted(rows, key=lambda r: -r[col])[:top_n]
        largest = max(collections.Counter(r[col] for r in top).values())
        print(f"  {col:8s} largest group sharing one value: {largest:5,} ({largest / top_n:.1%})")

    horizon = timedelta(days=args.horizon)
    first, last = dataset.data_span(engine)
    dates = dataset.snapshot_dates(first, last, horizon, count=args.dates)
    table = dataset.build(engine, args.outcome, dates, horizon)
    cols = {c: np.asarray(table.column(c).to_pylist()) for c in ("as_of", "is_pql", "label")}
    score = np.asarray(table.column("score").to_pylist(), float)
    points = np.asarray(table.column("points").to_pylist(), float)
    ranking = np.asarray(table.column("ranking").to_pylist(), float)
    label = cols["label"].astype(bool)
    when = cols["as_of"]
    uniq = sorted(set(when))
    early, late = uniq[: len(uniq) // 2], uniq[len(uniq) // 2 :]
    fit_rows = np.isin(when, early)
    test_rows = np.isin(when, late)
    cal = calibrate.fit(points[fit_rows], label[fit_rows], points[test_rows], label[test_rows])
    print(
        f"\nBacktest: {len(uniq)} weekly dates, {args.outcome} within {args.horizon} days; "
        f"capacity {args.capacity} PQLs a date; measured on the later {len(late)} dates"
    )
    if cal is None:
        print("  no calibration could be fitted (too few conversions)")
        return 1
    print(
        f"  calibration: intercept {cal.intercept:.3f}, slope {cal.slope:.4f}; held-out Brier "
        f"Platt {cal.brier_platt:.4f}, isotonic {cal.brier_isotonic:.4f}, base rate "
        f"{cal.brier_base_rate:.4f}; distinct values in the top decile: Platt "
        f"{cal.platt_levels_in_top_decile}, isotonic {cal.isotonic_levels_in_top_decile}"
    )
    like = calibrate.likelihood(points, cal.intercept, cal.slope)
    by = {"capped score": [], "likelihood": [], "predicted": [], "base": []}
    for d in late:
        rows_d = (when == d) & cols["is_pql"].astype(bool)
        y = label[rows_d].astype(float)
        k = args.capacity
        by["capped score"].append(expected_precision(score[rows_d], y, k))
        # the likelihood rises with the points; equal points go by the ranking's recency
        order_value = ranking[rows_d]
        by["likelihood"].append(expected_precision(order_value, y, k))
        top = np.argsort(-order_value, kind="stable")[: min(k, rows_d.sum())]
        by["predicted"].append(float(like[rows_d][top].mean()))
        by["base"].append(float(y.mean()))
    for name in ("capped score", "likelihood"):
        print(f"  precision at capacity by {name:12s}: {np.mean(by[name]):.1%}  per date "
              + ", ".join(f"{v:.0%}" for v in by[name]))  # fmt: skip
    print(f"  the likelihood predicted for the worked leads: {np.mean(by['predicted']):.1%}")
    print(f"  every PQL's conversion (working at random): {np.mean(by['base']):.1%}")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
