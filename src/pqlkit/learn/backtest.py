"""Backtests: replay a model over history and measure what its PQLs went on to do.

:func:`replay` asks the engine for one snapshot per date (every user not yet in the sales
pipeline, their score, flags and what happened within the horizon after the date); everything
else here is plain numpy over those rows, testable with plain data:

- :func:`weekly`: per date, the users who became PQLs (and MQLs) since the date before, their
  conversion to opportunity and to closed-won within the horizon and the days it took, against
  the users who were not PQLs.
- :func:`side_by_side`: PQL against MQL on the same people, each person counted once, at the
  first date they qualified.
- :func:`capacity_curve` (in ``capacity.py``): for every threshold, new leads a week, their
  conversion, and the conversions sales can work given its capacity; the threshold that fits.
- :func:`monitor`: PQL conversion by date against the band the earlier dates set, and drift
  in signal coverage and in the score distribution.

A user counts as converted for a date when the outcome happened within the horizon after it;
dates whose horizon reaches past the data are marked incomplete and left out of rates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model.signals import duration_seconds
from ..scoring.decide import FIT_GATES, fit_gates_pass
from . import dataset
from .capacity import capacity_curve
from .columns import NOT_SIGNALS
from .monitor import monitor

#: What practitioners quote (OpenView, Pocus, Gainsight PLG benchmarks): shown beside the
#: measured rates, never used in any computation.
REFERENCE_RANGES = {
    "pql_to_opportunity": (0.15, 0.30),
    "pql_to_closed_won": (0.05, 0.15),
    "mql_to_opportunity": (0.05, 0.15),
}

META = NOT_SIGNALS


@dataclass
class Replay:
    """The replayed rows as arrays, sorted by user then date, with each row's state at the
    date before (``prev_*``; False/NaN when the user was not there)."""

    dates: list[datetime]
    complete: list[bool]
    """Whether each date's whole horizon lies within the data."""
    won_complete: list[bool]
    """The same for the closed-won horizon."""
    horizon_days: float
    won_horizon_days: float
    date_index: np.ndarray
    user: np.ndarray
    score: np.ndarray
    mql_score: np.ndarray
    gate: np.ndarray
    """Fits a profile, not excluded, activated: everything a PQL needs but the score."""
    is_pql: np.ndarray
    is_mql: np.ndarray
    opportunity: np.ndarray
    days_to_opportunity: np.ndarray
    closed_won: np.ndarray
    days_to_closed_won: np.ndarray
    signals: dict[str, np.ndarray]
    prev_score: np.ndarray
    prev_gate: np.ndarray
    prev_pql: np.ndarray
    prev_mql: np.ndarray
    first_date: int = 1
    """Dates before this index are only the baseline for "new" (not reported)."""
    fired: dict[str, np.ndarray] = field(default_factory=dict)
    """Per signal of the model: whether it fired on each row, as its kind decides (signals
    without an entry count as firing when their value is above zero)."""
    tenure: np.ndarray | None = None
    """Days since each row's user signed up (NaN: unknown); monitoring compares like with like."""
    data_start: datetime | None = None
    """The first event: a signal's window that reaches before it counts less than it will."""
    lookback: dict[str, float] = field(default_factory=dict)
    """Per signal with a window: its length in days (others count the whole history)."""

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        horizon: timedelta,
        data_end: datetime,
        *,
        baseline: bool = True,
        won_horizon: timedelta | None = None,
        fires: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        data_start: datetime | None = None,
        lookback: dict[str, float] | None = None,
    ) -> Replay:
        if table.num_rows == 0:
            raise DataError("no users at the replayed dates")
        as_of = table.column("as_of")
        dates = sorted(pc.unique(as_of).to_pylist())
        date_index = pc.index_in(as_of, value_set=pa.array(dates, as_of.type)).to_numpy()
        user = table.column("user_id").to_numpy(zero_copy_only=False).astype(object)
        order = np.lexsort((date_index, user.astype(str)))

        def col(name: str, dtype: Any, fill: Any) -> np.ndarray:
            if name not in table.column_names:
                return np.full(table.num_rows, fill, dtype)[order]
            c = table.column(name).cast(pa.float64() if dtype is float else pa.bool_())
            c = c.fill_null(fill) if c.null_count else c
            return np.asarray(c.to_numpy(zero_copy_only=False), dtype)[order]

        date_index, user = date_index[order], user[order]
        gate_cols = [g.output for g in FIT_GATES]
        gate = _gates(table.select(gate_cols))[order]
        signals = {c: col(c, float, 0.0) for c in _signal_columns(table)}
        fired = {
            name: np.asarray(test(col(name, float, np.nan)), bool)
            for name, test in (fires or {}).items()
            if name in signals
        }
        score = col("score", float, 0.0)
        is_pql, is_mql = col("is_pql", bool, False), col("is_mql", bool, False)
        same = np.zeros(user.size, bool)
        same[1:] = (user[1:] == user[:-1]) & (date_index[1:] == date_index[:-1] + 1)

        def prev(a: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(a.size, fill, a.dtype)
            out[1:] = np.where(same[1:], a[:-1], fill)
            return out

        return cls(
            dates=dates,
            complete=[d + horizon <= data_end for d in dates],
            won_complete=[d + (won_horizon or horizon) <= data_end for d in dates],
            horizon_days=horizon.total_seconds() / 86400,
            won_horizon_days=(won_horizon or horizon).total_seconds() / 86400,
            date_index=date_index,
            user=user,
            score=score,
            mql_score=col("mql_score", float, 0.0),
            gate=gate,
            is_pql=is_pql,
            is_mql=is_mql,
            opportunity=col("label", bool, False),
            days_to_opportunity=col("days_to_convert", float, np.nan),
            closed_won=col("closed_won", bool, False),
            days_to_closed_won=col("days_to_closed_won", float, np.nan),
            signals=signals,
            prev_score=prev(score, np.nan),
            prev_gate=prev(gate, False),
            prev_pql=prev(is_pql, False),
            prev_mql=prev(is_mql, False),
            first_date=1 if baseline and len(dates) > 1 else 0,
            fired=fired,
            tenure=col("days_since_signup", float, np.nan),
            data_start=data_start,
            lookback=dict(lookback or {}),
        )

    @property
    def reported(self) -> range:
        return range(self.first_date, len(self.dates))

    @property
    def new_pql(self) -> np.ndarray:
        return self.is_pql & ~self.prev_pql

    @property
    def new_mql(self) -> np.ndarray:
        return self.is_mql & ~self.prev_mql

    def rows_complete(self) -> np.ndarray:
        ok = np.asarray(self.complete, bool)[self.date_index]
        return ok & (self.date_index >= self.first_date)


def _gates(outputs: pa.Table) -> np.ndarray:
    """Whether each row passes the fit gates, decided once per distinct combination of the
    gates' outputs (a handful of them among a replay's hundreds of thousands of rows)."""
    names = outputs.column_names
    seen: dict[tuple[Any, ...], bool] = {}

    def passes(key: tuple[Any, ...]) -> bool:
        if key not in seen:
            seen[key] = fit_gates_pass([dict(zip(names, key, strict=True))])[0]
        return seen[key]

    keys = zip(*(outputs.column(c).to_pylist() for c in names), strict=True)
    return np.fromiter((passes(k) for k in keys), bool, outputs.num_rows)


def window(engine, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The replay's first and last date: by default four weeks into the data (some history
    before the first date) to the day of the last event."""
    first, last = dataset.data_span(engine)
    return start or dataset.day_of(first + timedelta(days=28)), end or dataset.day_of(last)


def replay_dates(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    if every.total_seconds() <= 0:
        raise DataError("--every must be a positive duration, e.g. 7d")
    if end < start:
        raise DataError(f"--to {end:%Y-%m-%d} is before --from {start:%Y-%m-%d}")
    out, d = [], start
    while d <= end:
        out.append(d)
        d += every
    if len(out) > 520:
        raise DataError(
            f"{len(out)} dates from --from to --to; use a longer --every (at most 520 dates)"
        )
    return out


def replay(
    engine,
    dates: list[datetime],
    horizon: timedelta,
    every: timedelta,
    *,
    won_horizon: timedelta | None = None,
    outcome: str = "opportunity",
    progress: Callable[[str], None] | None = None,
) -> Replay:
    """Snapshots at ``dates`` (plus one date before the first, the baseline for "new"); a
    conversion (``Replay.opportunity``) is the ``outcome`` within the horizon."""
    rows = replay_rows(
        engine, dates, horizon, every, won_horizon=won_horizon, outcome=outcome, progress=progress
    )
    return from_rows(engine, rows, horizon, won_horizon=won_horizon)


def replay_rows(
    engine,
    dates: list[datetime],
    horizon: timedelta,
    every: timedelta,
    *,
    won_horizon: timedelta | None = None,
    outcome: str = "opportunity",
    progress: Callable[[str], None] | None = None,
) -> pa.Table:
    """The snapshot rows :func:`replay` reads (the report also evaluates on them)."""
    every_date = [dates[0] - every, *dates]
    tables = []
    for i, when in enumerate(every_date):
        if progress:
            progress(f"replaying {when:%Y-%m-%d} ({i + 1}/{len(every_date)})")
        rows = dataset.snapshot_rows(
            engine,
            outcome,
            dataset.Snapshot(when, horizon),
            also=(("closed_won", won_horizon or horizon),),
        )
        if rows.num_rows:
            tables.append(rows)
    if not tables:
        raise DataError("no users at any replayed date: check --from and --to against your events")
    return pa.concat_tables(tables, promote_options="permissive")


def from_rows(
    engine, rows: pa.Table, horizon: timedelta, *, won_horizon: timedelta | None = None
) -> Replay:
    """The :class:`Replay` of :func:`replay_rows`, with the model's signal kinds and windows."""
    data_start, data_end = dataset.data_span(engine)
    return Replay.from_table(
        rows,
        horizon,
        data_end,
        won_horizon=won_horizon,
        fires=signal_fires(engine.model),
        data_start=data_start,
        lookback=signal_lookback(engine.model),
    )


class _ArrayOps:
    """The comparisons a signal kind's ``fires`` makes, on numpy arrays (NaN: no value,
    which fires for nothing, as NULL in SQL)."""

    _OPS: ClassVar[dict[str, Any]] = {
        "gte": np.greater_equal,
        "gt": np.greater,
        "lte": np.less_equal,
        "lt": np.less,
    }

    def cmp(self, x: np.ndarray, op: str, value: Any) -> np.ndarray:
        return self._OPS[op](x, value)


def _fires(signal: Any, ops: Any, values: np.ndarray) -> np.ndarray:
    return np.asarray(signal.fires(values, ops), bool)


def signal_fires(model: Any) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Per usage and MQL signal: its values -> whether it fires, as its kind decides."""
    ops = _ArrayOps()
    return {
        s.id: functools.partial(_fires, s, ops) for s in [*model.usage_signals, *model.mql_signals]
    }


def signal_lookback(model: Any) -> dict[str, float]:
    """Per usage and MQL signal with a window: the window in days."""
    return {
        s.id: duration_seconds(s.window) / 86400
        for s in [*model.usage_signals, *model.mql_signals]
        if getattr(s, "window", None)
    }


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _median(a: np.ndarray) -> float | None:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else None


def weekly(r: Replay) -> list[dict[str, Any]]:
    """Per reported date: new PQLs, new MQLs, users who were not PQLs, and what they did."""
    out = []
    for i in r.reported:
        at = r.date_index == i
        new_pql, new_mql, other = at & r.new_pql, at & r.new_mql, at & ~r.is_pql
        row: dict[str, Any] = {
            "as_of": r.dates[i],
            "complete": r.complete[i],
            "users": int(at.sum()),
            "pqls": int((at & r.is_pql).sum()),
        }
        for name, group in (("new_pqls", new_pql), ("new_mqls", new_mql), ("non_pqls", other)):
            n = int(group.sum())
            row[name] = n
            done, won_done = r.complete[i], r.won_complete[i]
            row[f"{name}_to_opportunity"] = (
                _rate(int((group & r.opportunity).sum()), n) if done else None
            )
            row[f"{name}_days_to_opportunity"] = (
                _median(r.days_to_opportunity[group & r.opportunity]) if done else None
            )
            row[f"{name}_to_closed_won"] = (
                _rate(int((group & r.closed_won).sum()), n) if won_done else None
            )
        out.append(row)
    return out


def first_rows(r: Replay, flag: np.ndarray) -> np.ndarray:
    """Each user's first reported row where ``flag`` holds (row indexes)."""
    idx = np.flatnonzero(flag & (r.date_index >= r.first_date))
    if idx.size == 0:
        return idx
    _, first = np.unique(r.user[idx].astype(str), return_index=True)
    return idx[first]


def side_by_side(r: Replay) -> dict[str, Any]:
    """PQL and MQL on the same people: every user seen at a complete reported date counts once,
    at the first date they qualified (or their first date, for those who never did)."""
    ok = r.rows_complete()
    seen = first_rows(r, ok)
    users = r.user[seen].astype(str)
    pql_rows, mql_rows = first_rows(r, ok & r.is_pql), first_rows(r, ok & r.is_mql)
    first_pql = dict(zip(r.user[pql_rows].astype(str), pql_rows, strict=True))
    first_mql = dict(zip(r.user[mql_rows].astype(str), mql_rows, strict=True))
    total = users.size

    won_ok = np.asarray(r.won_complete, bool)[r.date_index]

    def outcome_at(rows: list[int]) -> dict[str, Any]:
        a = np.asarray(rows, int)
        opp = int(r.opportunity[a].sum()) if a.size else 0
        won_rows = a[won_ok[a]] if a.size else a
        won = int(r.closed_won[won_rows].sum()) if won_rows.size else 0
        return {
            "people": int(a.size),
            "opportunities": opp,
            "to_opportunity": _rate(opp, int(a.size)),
            "closed_won": won,
            "closed_won_people": int(won_rows.size),
            "to_closed_won": _rate(won, int(won_rows.size)),
            "median_days_to_opportunity": _median(r.days_to_opportunity[a][r.opportunity[a]])
            if a.size
            else None,
        }

    all_opp = 0
    for u, row in zip(users, seen, strict=True):
        first = [first_pql.get(u), first_mql.get(u)]
        at = min([x for x in first if x is not None], default=row)
        all_opp += int(r.opportunity[at])
    groups = {}
    for name, firsts in (("PQL", first_pql), ("MQL", first_mql)):
        groups[name] = outcome_at(list(firsts.values()))
        groups[name]["share_of_opportunities"] = _rate(groups[name]["opportunities"], all_opp)
    overlap = {}
    for name, test in (
        ("both", lambda u: u in first_pql and u in first_mql),
        ("PQL only", lambda u: u in first_pql and u not in first_mql),
        ("MQL only", lambda u: u in first_mql and u not in first_pql),
        ("neither", lambda u: u not in first_pql and u not in first_mql),
    ):
        rows = []
        for u, row in zip(users, seen, strict=True):
            if test(u):
                cands = [x for x in (first_pql.get(u), first_mql.get(u)) if x is not None]
                rows.append(min(cands) if cands else row)
        overlap[name] = outcome_at(rows)
    return {
        "people": total,
        "opportunities": all_opp,
        "base_rate": _rate(all_opp, total),
        "groups": groups,
        "overlap": overlap,
        "reference_ranges": REFERENCE_RANGES,
    }


__all__ = [
    "REFERENCE_RANGES",
    "Replay",
    "capacity_curve",
    "first_rows",
    "from_rows",
    "monitor",
    "replay",
    "replay_dates",
    "replay_rows",
    "side_by_side",
    "signal_fires",
    "signal_lookback",
    "weekly",
    "window",
]


def _signal_columns(table: pa.Table) -> list[str]:
    """The replayed table's signal columns: the numbers that are neither bookkeeping, fit
    gates nor days to an outcome."""
    return [
        c
        for c in table.column_names
        if c not in META
        and not c.startswith(("fit_", "days_to_"))
        and (
            pa.types.is_floating(table.column(c).type) or pa.types.is_integer(table.column(c).type)
        )
    ]
