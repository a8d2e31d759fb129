"""`pql learn`: which behaviours and traits go with conversions, and points fitted to them.

Snapshots at several dates (features before, labels after); the last date is held out, so
every quality figure is measured on a later period than the one the points were fitted on.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from . import calibrate, dataset, fit, metrics

#: Fewer conversions than this in the training dates and no model is fitted (lifts only).
MIN_CONVERSIONS = 30


@dataclass
class Quality:
    name: str
    auc: float
    lift_5: float
    lift_10: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in self.__dict__.items()
        }


@dataclass
class Learned:
    outcome: str
    horizon_days: int
    dates: list[datetime]
    rows: int
    conversions: int
    train_conversions: int
    test_conversions: int
    lifts: list[metrics.Lift]
    quality: list[Quality] = field(default_factory=list)
    points: fit.Points | None = None
    notes: list[str] = field(default_factory=list)
    train: pa.Table | None = field(default=None, repr=False)
    """The rows the points were fitted on (for choosing a proposed model's threshold)."""
    stability: dict[str, list[float]] = field(default_factory=dict)
    """Held-out AUC of each model over several random splits (user-level tables, --seeds)."""
    cross_validated: dict[str, list[float]] = field(default_factory=dict)
    """Each seed's cross-validated AUC (the mean over its folds), per model (--seeds)."""
    test_ids: list[str] = field(default_factory=list, repr=False)
    """The held-out rows' ids (user-level tables with an id column)."""
    originals: dict[str, str] = field(default_factory=dict, repr=False)
    """Input column of the fitted table -> the user-level table's own column."""
    held_out: str = ""
    """Which rows measured the quality, in words (user-level tables)."""
    calibration: calibrate.Calibrated | None = None
    """The likelihood the learned points mean (Platt, judged against isotonic on held-out rows)."""

    def quality_of(self, name: str) -> float | None:
        return next((q.auc for q in self.quality if q.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "horizon_days": self.horizon_days,
            "dates": [d.isoformat() for d in self.dates],
            "rows": self.rows,
            "conversions": self.conversions,
            "train_conversions": self.train_conversions,
            "test_conversions": self.test_conversions,
            "lifts": [_clean(x.to_dict()) for x in self.lifts],
            "quality": [q.to_dict() for q in self.quality],
            "points": self.points.rows() if self.points else None,
            "base_points": self.points.base if self.points else None,
            "held_out": self.held_out or None,
            "stability": self.stability,
            "cross_validated": self.cross_validated,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "notes": self.notes,
        }


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def facts(table: pa.Table) -> list[fit.Step]:
    """The yes/no facts lifts are shown for: each signal fired (value above zero), each flag,
    each frequent value of a trait, and size bands."""
    return fit.steps_for(table, quantiles=(0.0,))


def split_by_time(table: pa.Table) -> tuple[pa.Table, pa.Table, datetime]:
    dates = sorted(set(table.column("as_of").to_pylist()))
    if len(dates) < 2:
        raise DataError("a time split needs at least two snapshot dates (--snapshots 2 or more)")
    last = dates[-1]
    is_test = pc.equal(table.column("as_of"), pa.scalar(last, table.column("as_of").type))
    return table.filter(pc.invert(is_test)), table.filter(is_test), last


#: A table without dates is split in this many stratified folds; the first is held out.
FOLDS = 4


def stratified_folds(y: np.ndarray, k: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Each row's fold, 0 to k-1: every fold holds a random k-th of each class."""
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, int)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(idx.size) % k
    return fold


def split_at_random(
    table: pa.Table, seed: int = 0, fold: int = 0
) -> tuple[pa.Table, pa.Table, None]:
    """A stratified random hold-out (a quarter: one of :data:`FOLDS` folds), for a table
    without dates."""
    y = np.asarray(table.column("label").to_pylist(), bool)
    test = stratified_folds(y, FOLDS, seed) == fold
    return table.filter(pa.array(~test)), table.filter(pa.array(test)), None


def learn_table(
    table: pa.Table,
    outcome: str,
    horizon: timedelta,
    dates: list[datetime],
    *,
    reference: bool = True,
    split=split_by_time,
    pairs: bool = False,
) -> Learned:
    """Lifts, and (with enough conversions) fitted points and their quality on the held-out
    rows (the last date, or a random quarter for a table without dates). With ``pairs``, steps
    on two conditions together are inputs too (:func:`fit.pairs_for`)."""
    y = np.asarray(table.column("label").to_pylist(), bool)
    lifts = sorted(
        (metrics.lift(s.name, s.apply(table), y) for s in facts(table)),
        key=lambda x: (-(x.lift if not math.isnan(x.lift) else -1), x.name),
    )
    train, test, _ = split(table)
    y_train = np.asarray(train.column("label").to_pylist(), bool)
    y_test = np.asarray(test.column("label").to_pylist(), bool)
    result = Learned(
        outcome,
        horizon.days,
        dates,
        table.num_rows,
        int(y.sum()),
        int(y_train.sum()),
        int(y_test.sum()),
        lifts,
        train=train,
    )
    inputs = len(fit.steps_for(train))
    needed = max(MIN_CONVERSIONS, metrics.needed_conversions(min(inputs, 20)))
    if not y.any():
        result.notes.append(
            f"no conversions ({outcome}) at all: no behaviour can be told to go with converting, "
            "so no lift is measured and no points are fitted. Check that outcomes of this kind "
            "are recorded (--outcome picks the kind)."
        )
        return result
    if y_train.sum() < MIN_CONVERSIONS or y_test.sum() == 0:
        result.notes.append(
            f"cold start: {int(y_train.sum())} conversions before the last date and {int(y_test.sum())} on it; "
            f"fitting points needs at least {MIN_CONVERSIONS} (about {needed} to trust every weight). "
            "The lifts above still show which behaviours go with converting; their intervals are wide. "
            "Keep the hand-set points, and run `pql learn` again as outcomes arrive."
        )
        return result
    if y_train.sum() < needed:
        result.notes.append(
            f"{int(y_train.sum())} conversions for {inputs} inputs: weights are shrunk hard (regularised); "
            f"about {needed} conversions would let the data speak more."
        )
    if "score" in test.column_names:
        current = np.asarray(test.column("score").to_pylist(), float)
        result.quality.append(_quality("current model", y_test, current))
    result.points = fit.fit_points(train, pairs=pairs)
    if not result.points.converged:
        result.notes.append(
            "the points fit did not converge within its iterations; the weights are approximate"
        )
    result.quality.append(_quality("learned points", y_test, result.points.score(test)))
    result.calibration = calibrate.fit(
        result.points.score(train), y_train, result.points.score(test), y_test
    )
    if result.calibration is None:
        result.notes.append(
            "no calibration: too few conversions, or points that do not rise with converting; "
            "the proposal ranks by points alone"
        )
    if reference:
        ref = fit.fit_reference(train)
        result.quality.append(_quality("gradient-boosted reference", y_test, ref.probability(test)))
    return result


def _quality(name: str, y: np.ndarray, score: np.ndarray) -> Quality:
    return Quality(
        name,
        metrics.auc(y, score),
        metrics.lift_at(y, score, 0.05),
        metrics.lift_at(y, score, 0.10),
    )


def learn(
    engine,
    outcome: str,
    horizon: timedelta,
    *,
    snapshots: int = 6,
    until: datetime | None = None,
    reference: bool = True,
    progress=None,
) -> Learned:
    first, last = dataset.data_span(engine)
    dates = dataset.snapshot_dates(first, until or last, horizon, count=snapshots)
    table = dataset.build(engine, outcome, dates, horizon, progress=progress)
    if progress:
        progress("fitting")
    return learn_table(table, outcome, horizon, dates, reference=reference)


def user_level(
    table: pa.Table,
    label: str,
    *,
    exclude: list[str] | None = None,
    id_column: str | None = None,
    reference: bool = True,
    seeds: int = 1,
    time_column: str | None = None,
    pairs: bool = True,
) -> Learned:
    """Learn from a plain user-level table: one row per user, usage and trait columns, and an
    outcome column (1/0, true/false, yes/no). The hold-out is a random quarter, or with
    ``time_column`` the later quarter of the rows by that column (fitted on the earlier ones;
    the column itself is not an input). A learned step on a column that reads like a date or
    a year is named in a note either way. Steps on pairs of conditions are inputs unless
    ``pairs`` is off: a proposal from a table says them as ``all:`` of the two conditions."""
    from .timesplit import calendar_notes, later_rows, times_of

    named = [label, *(exclude or []), *([id_column] if id_column else [])]
    missing = [
        c for c in [*named, *([time_column] if time_column else [])] if c not in table.column_names
    ]
    if missing:
        raise DataError(
            f"no column {missing[0]!r} in the table; columns: {', '.join(table.column_names)}"
        )
    y = [_truthy(v, label) for v in table.column(label).to_pylist()]
    drop = {*named, *([time_column] if time_column else [])}
    keep = [c for c in table.column_names if c not in drop]
    data = table.select(keep)
    inputs = [f"_{c}" if c in fit.NOT_INPUTS else c for c in keep]
    data = data.rename_columns(inputs)
    data = data.append_column("label", pa.array(y, pa.bool_()))
    if id_column:
        ids = [None if v is None else str(v) for v in table.column(id_column).to_pylist()]
        _check_ids(ids, id_column)
        data = data.append_column("user_id", pa.array(ids, pa.string()))
    split: Callable[[pa.Table], tuple[pa.Table, pa.Table, None]] = split_at_random
    if time_column:
        later = pa.array(later_rows(times_of(table, time_column), time_column))

        def by_time(t: pa.Table) -> tuple[pa.Table, pa.Table, None]:
            return t.filter(pc.invert(later)), t.filter(later), None

        split = by_time

    result = learn_table(
        data, label, timedelta(0), [], reference=reference, split=split, pairs=pairs
    )
    result.originals = dict(zip(inputs, keep, strict=True))
    result.held_out = (
        f"the later quarter of the rows by {time_column}"
        if time_column
        else "a random held-out quarter"
    )
    if id_column:
        result.test_ids = split(data)[1].column("user_id").to_pylist()
    if seeds > 1 and result.quality and time_column:
        result.notes.append("--seeds draws random splits; with --time-column there is one split")
    elif seeds > 1 and result.quality:
        _stability(result, data, label, reference, seeds, pairs)
    if result.points is not None and result.train is not None:
        result.notes.extend(calendar_notes(result.points, result.train, result.originals))
    return result


def _stability(
    result: Learned, data: pa.Table, label: str, reference: bool, seeds: int, pairs: bool
) -> None:
    """The same fit on every fold of ``seeds`` random fold assignments: how much one held-out
    quarter's AUC moves with the split alone, and the cross-validated AUC (the mean over the
    folds) of each seed, which moves much less."""
    held: dict[str, list[float]] = {q.name: [] for q in result.quality}
    crossed: dict[str, list[float]] = {q.name: [] for q in result.quality}

    jobs = [(seed, fold) for seed in range(seeds) for fold in range(FOLDS)][1:]
    # One process a core: liblinear draws from the C library's one random generator, so fits
    # in threads of one process would not give the same points twice.
    workers = min(4, os.cpu_count() or 1, len(jobs))
    args = list(zip(*[(data, label, reference, s, f, pairs) for s, f in jobs], strict=True))
    # Points alone: one worker a core (the boosted reference already uses every core, and
    # below 5,000 rows starting the workers costs more than it saves)
    if workers > 1 and not reference and data.num_rows >= 5000:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_one_thread
        ) as pool:
            done = list(pool.map(_fold_quality, *args))
    else:
        done = list(map(_fold_quality, *args))
    runs = {(0, 0): {q.name: q.auc for q in result.quality}, **dict(zip(jobs, done, strict=True))}
    for seed in range(seeds):
        per_fold = {
            name: [runs[(seed, f)].get(name, float("nan")) for f in range(FOLDS)] for name in held
        }
        for name in held:
            held[name].append(per_fold[name][0])
            crossed[name].append(float(np.mean(per_fold[name])))
    result.stability = held
    result.cross_validated = crossed

    def spread(values: dict[str, list[float]]) -> float:
        return max(max(v) - min(v) for v in values.values())

    note = (
        f"over {seeds} random seeds, the {FOLDS}-fold cross-validated AUCs move by at most "
        f"{spread(crossed):.3f} ("
        + "; ".join(f"{k} {min(v):.3f}-{max(v):.3f}" for k, v in crossed.items())
        + f"); one held-out quarter's move by up to {spread(held):.3f} with the split alone"
    )
    ref, pts = crossed.get("gradient-boosted reference"), crossed.get("learned points")
    if ref and pts:
        gaps = [r - p for r, p in zip(ref, pts, strict=True)]
        note += f"; the reference's cross-validated lead {min(gaps):+.3f} to {max(gaps):+.3f}"
    result.notes.append(note)


_LIMITS: list[object] = []


def _one_thread() -> None:
    """A worker's numerical libraries use one thread each: the workers share the cores."""
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))


def _fold_quality(
    data: pa.Table, label: str, reference: bool, seed: int, fold: int, pairs: bool = False
) -> dict[str, float]:
    """Each model's AUC with one fold of one seed held out (run in a worker process)."""
    run = learn_table(
        data,
        label,
        timedelta(0),
        [],
        reference=reference,
        split=lambda t: split_at_random(t, seed=seed, fold=fold),
        pairs=pairs,
    )
    return {q.name: q.auc for q in run.quality}


def _check_ids(ids: list[str | None], column: str) -> None:
    """Each row one user: an id on every row, and no id twice."""
    seen: set[str] = set()
    for row, value in enumerate(ids, start=1):
        if value is None or not value.strip():
            raise DataError(f"--id {column!r}: row {row} has no id; every row needs one")
        if value in seen:
            raise DataError(
                f"--id {column!r}: {value!r} is on more than one row (row {row} again); each "
                "row must be one user"
            )
        seen.add(value)


def _truthy(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "won", "converted"):
        return True
    if text in ("0", "false", "no", "n", "lost", ""):
        return False
    raise DataError(
        f"outcome column {column!r}: cannot read {value!r} as yes or no (use 1/0, true/false, yes/no)"
    )


__all__ = [
    "FOLDS",
    "Learned",
    "Quality",
    "learn",
    "learn_table",
    "split_at_random",
    "split_by_time",
    "stratified_folds",
    "user_level",
]
