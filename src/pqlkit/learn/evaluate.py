"""`pql evaluate`: how well a model's score and PQL flag predicted what happened next, on dates
after a time split.

Snapshots every ``every`` from a month into the data until the last date whose horizon is
complete. Dates before the split only calibrate (a one-input logistic curve from score to
conversion rate); every figure is measured on the dates from the split on: AUC and lift at
the top 5% and 10% of the score, precision and recall of the PQL flag (and the MQL flag, on
the same rows), and calibration: the rate the earlier dates predicted for each score against
the rate that followed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from . import dataset, fit, metrics


@dataclass
class Evaluation:
    model: str
    outcome: str
    horizon_days: int
    split: datetime
    train_dates: list[datetime]
    test_dates: list[datetime]
    rows: int
    conversions: int
    auc: float
    lift_5: float
    lift_10: float
    pql: dict[str, Any]
    mql: dict[str, Any]
    mql_auc: float
    calibration: list[dict[str, float]]
    by_band: list[dict[str, Any]]
    brier: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        for k in ("split",):
            out[k] = self.split.isoformat()
        out["train_dates"] = [d.isoformat() for d in self.train_dates]
        out["test_dates"] = [d.isoformat() for d in self.test_dates]
        return _clean(out)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def evaluation_dates(
    first: datetime,
    last: datetime,
    horizon: timedelta,
    every: timedelta,
    warmup: timedelta = timedelta(days=28),
) -> list[datetime]:
    lo = dataset.day_of(first + warmup)
    hi = last - horizon
    if hi < lo:
        raise DataError(
            f"not enough history: the data spans {first:%Y-%m-%d} to {last:%Y-%m-%d}; a date needs "
            f"{warmup.days} days before it and the {horizon.days}-day horizon after it"
        )
    out, d = [], lo
    while d <= hi:
        out.append(d)
        d += every
    return out


def flag_quality(y: np.ndarray, flag: np.ndarray) -> dict[str, Any]:
    precision, recall = metrics.precision_recall(y, flag)
    return {
        "flagged": int(flag.sum()),
        "converted": int((flag & y).sum()),
        "precision": precision,
        "recall": recall,
        "base_rate": float(y.mean()) if y.size else float("nan"),
        "lift": precision / float(y.mean())
        if y.size and y.mean() and not math.isnan(precision)
        else float("nan"),
    }


def score_bands(y: np.ndarray, score: np.ndarray, width: int = 10) -> list[dict[str, Any]]:
    out = []
    for lo in range(0, 100, width):
        hi = lo + width
        inside = (score >= lo) & ((score < hi) if hi < 100 else (score <= 100))
        n = int(inside.sum())
        out.append(
            {
                "band": f"{lo}-{hi - 1 if hi < 100 else 100}",
                "low": lo,
                "users": n,
                "converted": int(y[inside].sum()),
                "rate": float(y[inside].mean()) if n else None,
            }
        )
    return out


def evaluate_table(
    table: pa.Table, split: datetime, *, model: str, outcome: str, horizon_days: int
) -> Evaluation:
    """Every figure from the snapshot rows (pure: no database)."""
    as_of = np.asarray(table.column("as_of").to_pylist(), dtype="datetime64[us]")
    test = as_of >= np.datetime64(split, "us")
    if not test.any():
        raise DataError(f"no dates on or after the split {split:%Y-%m-%d}: move --split earlier")
    y = np.asarray(table.column("label").to_pylist(), bool)
    score = np.asarray(table.column("score").to_pylist(), float)
    mql_score = np.asarray(table.column("mql_score").to_pylist(), float)
    is_pql = np.asarray(table.column("is_pql").to_pylist(), bool)
    is_mql = np.asarray(table.column("is_mql").to_pylist(), bool)
    yt, st = y[test], score[test]
    notes = []
    calibration: list[dict[str, float]] = []
    brier = None
    train = ~test
    if y[train].sum() >= 5 and (~y[train]).sum() >= 5:
        # Platt scaling: a one-input logistic regression (barely penalised) from score to rate
        f = fit.logistic((score[train] / 10.0)[:, None], y[train].astype(float), C=1000.0, l1=False)
        predicted = 1.0 / (1.0 + np.exp(-np.clip(f.intercept + f.weights[0] * st / 10.0, -35, 35)))
        if not f.converged:
            notes.append("the calibration fit did not converge; its figures are rough")
        calibration = metrics.calibration(yt, predicted, bins=10)
        brier = float(np.mean((predicted - yt) ** 2))
    else:
        notes.append(
            "too few conversions before the split to calibrate (need 5); calibration is left out"
        )
    if int(yt.sum()) < 30:
        notes.append(f"only {int(yt.sum())} conversions after the split: the figures are rough")
    dates = sorted(set(as_of.tolist()))
    return Evaluation(
        model=model,
        outcome=outcome,
        horizon_days=horizon_days,
        split=split,
        train_dates=[d for d in dates if d < split],
        test_dates=[d for d in dates if d >= split],
        rows=int(test.sum()),
        conversions=int(yt.sum()),
        auc=metrics.auc(yt, st),
        lift_5=metrics.lift_at(yt, st, 0.05),
        lift_10=metrics.lift_at(yt, st, 0.10),
        pql=flag_quality(yt, is_pql[test]),
        mql=flag_quality(yt, is_mql[test]),
        mql_auc=metrics.auc(yt, mql_score[test]),
        calibration=calibration,
        by_band=score_bands(yt, st),
        brier=brier,
        notes=notes,
    )


def evaluate(
    engine,
    *,
    outcome: str = "opportunity",
    horizon: timedelta = timedelta(days=30),
    every: timedelta = timedelta(days=7),
    split: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    known: pa.Table | None = None,
) -> Evaluation:
    """``known``: snapshot rows already read for some dates with this outcome and horizon
    (the report's replay); those dates are not read again."""
    first, last = dataset.data_span(engine)
    read = set() if known is None else set(known.column("as_of").to_pylist())
    dates = evaluation_dates(first, until or last, horizon, every)
    if len(dates) < 2:
        raise DataError("a time split needs at least two dates; use a shorter --every or --horizon")
    if split is None:
        split = dates[max(1, int(len(dates) * 0.6))] if len(dates) > 2 else dates[-1]
    tables = []
    for i, when in enumerate(dates, start=1):
        if progress:
            progress(f"snapshot {i}/{len(dates)} as of {when:%Y-%m-%d}")
        if known is not None and when in read:
            rows = known.filter(
                pc.equal(known.column("as_of"), pa.scalar(when, known.column("as_of").type))
            )
        else:
            rows = dataset.snapshot_rows(engine, outcome, dataset.Snapshot(when, horizon))
        if rows.num_rows:
            tables.append(
                rows.select(["as_of", "user_id", "score", "mql_score", "is_pql", "is_mql", "label"])
            )
    if not tables:
        raise DataError("no users at the evaluation dates")
    # in a fixed order: the calibration bins cut ties by position, and a database returns rows
    # in any order (DuckDB's threads, Spark's partitions)
    table = pa.concat_tables(tables, promote_options="permissive").sort_by(
        [("as_of", "ascending"), ("user_id", "ascending")]
    )
    return evaluate_table(
        table, split, model=str(engine.loaded.path), outcome=outcome, horizon_days=horizon.days
    )


__all__ = [
    "Evaluation",
    "evaluate",
    "evaluate_table",
    "evaluation_dates",
    "flag_quality",
    "score_bands",
]
