"""Point-in-time training snapshots: features from before each date, the label from after it.

For each as_of date, every user known then gets one row: the model's signal values and
decisions as of that date (computed by the engine, inside the database, from events before the
date only) and a label: did the chosen outcome happen within ``horizon`` after the date? Users
who had already converted before the date are left out (they are not leads any more). Only the
label looks past the date; a test plants future events and shows no feature moves.

What comes back to Python is one row per user and date: aggregates, never event rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import DataError
from ..features.ibis_ops import IbisOps
from ..features.names import env_of
from ..features.signals import AsOf, epoch
from ..scoring.decide import evaluate
from .columns import OUTCOMES, OUTPUTS


@dataclass(frozen=True)
class Snapshot:
    as_of: datetime
    horizon: timedelta


def _outcomes(engine) -> ir.Table:
    o = engine.bound.outcomes
    if o is None:
        raise DataError(
            "learning needs outcomes: map sources.outcomes to your opportunities and upgrades "
            "(outcome_id, account_id, user_id, kind, created_at, closed_at, stage)"
        )
    return o


def _hits(o: ir.Table, outcome: str, start: ir.Scalar, end: ir.Scalar | None) -> ir.Table:
    """Outcomes of the kind that happened in [start, end) (end None: before start)."""
    at = outcome_times(o, outcome)
    window = (at.when < start) if end is None else ((at.when >= start) & (at.when < end))
    return at.filter(window)


def outcome_times(o: ir.Table, outcome: str) -> ir.Table:
    """Every outcome of the kind: user_id, account_id and when it happened."""
    sales = o.kind.isnull() | (o.kind != "self_serve")
    if outcome == "opportunity":
        when, kind = o.created_at, sales
    elif outcome == "closed_won":
        when, kind = o.closed_at, sales & (o.stage == "won")
    elif outcome == "self_serve":
        when, kind = o.created_at, o.kind == "self_serve"
    elif outcome == "any":
        when, kind = o.created_at, ibis.literal(True)
    else:
        raise DataError(f"unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
    return o.filter(kind, when.notnull()).select("user_id", "account_id", when=when)


def snapshot_expr(
    engine, outcome: str, snapshot: Snapshot, *, also: tuple[tuple[str, timedelta], ...] = ()
) -> ir.Table:
    """One row per user known at ``snapshot.as_of`` who had not converted yet: decisions,
    signal values, fit-signal flags and the label (did ``outcome`` happen within the horizon?).
    Each (outcome, horizon) in ``also`` adds ``<outcome>`` (a label within that horizon) and
    ``days_to_<outcome>``.

    The date appears in the SQL as one timestamp literal (the horizon is an interval added to
    it), so the compiled query is reused for every date (see :meth:`Engine.sql_at`)."""
    as_of = snapshot.as_of
    point = AsOf(as_of)
    start = point.lit
    features = engine.features(as_of)
    scores = engine.scores(as_of)
    o = _outcomes(engine)

    signal_cols = [c for c in features.columns if c.startswith("signal__")]
    env = {field: features[col] for col, field in env_of(features.columns).items()}
    ops = IbisOps(features)
    fit_flags = {
        f"fit_{s.id}": evaluate(s.when, env, ops).cast("boolean") for s in engine.model.fit_signals
    }
    f = features.select(
        _uid=features.user__user_id,
        _acc=features.user__account_id,
        business_email=features.user__is_business_email.cast("boolean"),
        employees=features.account__employees.cast("float64"),
        industry=features.account__industry.cast("string"),
        days_since_signup=features.user__days_since_signup.cast("float64"),
        **fit_flags,
        **{c.removeprefix("signal__"): features[c].cast("float64") for c in signal_cols},
    )
    s = scores.select("user_id", *OUTPUTS)
    j = s.join(f, s.user_id == f._uid)
    keep = [c for c in j.columns if c not in ("_uid", "_acc")]

    past = _hits(o, outcome, start, None)
    done_u = past.filter(past.user_id.notnull()).select(_du="user_id").distinct()
    done_a = past.filter(past.account_id.notnull()).select(_da="account_id").distinct()
    j = j.left_join(done_u, j.user_id == done_u._du)
    j = j.left_join(done_a, j._acc == done_a._da)
    j = j.filter(j._du.isnull(), j._da.isnull()).drop("_du", "_da")

    for i, (name, span) in enumerate(((outcome, snapshot.horizon), *also)):
        future = _hits(o, name, start, point.minus(-span.total_seconds()))
        by_user = (
            future.filter(future.user_id.notnull())
            .group_by(_u=future.user_id)
            .aggregate(_wu=future.when.min())
        )
        by_acc = (
            future.filter(future.account_id.notnull())
            .group_by(_a=future.account_id)
            .aggregate(_wa=future.when.min())
        )
        j = j.left_join(by_user, j.user_id == by_user._u)
        j = j.left_join(by_acc, j._acc == by_acc._a)
        first = ibis.coalesce(ibis.least(j._wu, j._wa), j._wu, j._wa)
        days = (epoch(first) - point.epoch) / 86400.0
        hit = first.notnull()
        j = j.mutate(**{f"_hit{i}": hit, f"_days{i}": ibis.ifelse(hit, days, ibis.null("float64"))})
        j = j.drop("_u", "_wu", "_a", "_wa").view()
    extra = {}
    for i, (name, _) in enumerate(also, start=1):
        extra[name] = j[f"_hit{i}"]
        extra[f"days_to_{name}"] = j[f"_days{i}"]
    return j.select(
        as_of=start.cast("timestamp"),
        **{c: j[c] for c in keep},
        account_id=j._acc,
        label=j._hit0,
        days_to_convert=j._days0,
        **extra,
    )


def snapshot_rows(
    engine, outcome: str, snapshot: Snapshot, *, also: tuple[tuple[str, timedelta], ...] = ()
) -> pa.Table:
    """The snapshot's rows (one per user: aggregates, never events), through SQL compiled once
    per model, outcome and horizon and reused for every date."""
    key = ":".join(
        [
            "snapshot",
            outcome,
            str(int(snapshot.horizon.total_seconds())),
            *(f"{n}/{int(h.total_seconds())}" for n, h in also),
        ]
    )
    sql = engine.sql_at(
        key,
        lambda when: snapshot_expr(engine, outcome, Snapshot(when, snapshot.horizon), also=also),
        snapshot.as_of,
    )
    return engine.backend.arrow(sql)


def outcome_counts(engine) -> dict[str, int]:
    """How many outcomes of each kind the outcomes table holds (none without one)."""
    o = engine.bound.outcomes
    if o is None:
        return {name: 0 for name in OUTCOMES}
    sales = o.kind.isnull() | (o.kind != "self_serve")
    row = engine.backend.rows(
        o.aggregate(
            opportunity=(sales & o.created_at.notnull()).sum(),
            closed_won=(sales & (o.stage == "won") & o.closed_at.notnull()).sum(),
            self_serve=((o.kind == "self_serve") & o.created_at.notnull()).sum(),
            any=o.created_at.notnull().sum(),
        )
    )[0]
    return {name: int(row[name] or 0) for name in OUTCOMES}


def outcome_warning(engine, outcome: str, counts: dict[str, int] | None = None) -> str | None:
    """A warning when the outcomes table has no outcome of the chosen kind but has others:
    every rate would read 0% for a product whose conversions are of another kind."""
    counts = outcome_counts(engine) if counts is None else counts
    if counts.get(outcome, 0) > 0:
        return None
    others = {k: n for k, n in counts.items() if k not in (outcome, "any") and n > 0}
    if not others:
        return None
    best = max(others, key=lambda k: others[k])
    listed = ", ".join(f"{n:,} {k}" for k, n in sorted(others.items(), key=lambda kv: -kv[1]))
    return (
        f"the outcomes table has no {outcome} outcome but {listed}: every {outcome} rate "
        f"reads 0%; pass --outcome {best} (or --outcome any) to count those"
    )


def data_span(engine) -> tuple[datetime, datetime]:
    """The first event, and the last thing known: the last event or the last outcome created
    or closed, whichever is later (a deal won after the last event is known, and the horizon
    before it has been observed)."""
    e = engine.bound.events
    row = engine.backend.rows(e.aggregate(lo=e.timestamp.min(), hi=e.timestamp.max()))[0]
    if row["lo"] is None:
        raise DataError("the events table is empty: nothing to learn from")
    hi = row["hi"]
    o = engine.bound.outcomes
    if o is not None:
        seen = engine.backend.rows(o.aggregate(c=o.created_at.max(), d=o.closed_at.max()))[0]
        hi = max([hi, *(v for v in (seen["c"], seen["d"]) if v is not None)])
    return row["lo"], hi


def snapshot_dates(
    first: datetime,
    last: datetime,
    horizon: timedelta,
    *,
    count: int = 6,
    warmup: timedelta = timedelta(days=28),
) -> list[datetime]:
    """``count`` dates, evenly spaced, each late enough to have history before it (warmup) and
    early enough for its whole horizon to have been observed."""
    lo = first + warmup
    hi = last - horizon
    if hi < lo:
        raise DataError(
            f"not enough history: the data spans {first:%Y-%m-%d} to {last:%Y-%m-%d}, and a snapshot "
            f"needs {warmup.days} days before it and a {horizon.days}-day horizon after it; "
            "use a shorter --horizon or wait for more data"
        )
    if count <= 1 or hi == lo:
        return [day_of(hi)]
    step = (hi - lo) / (count - 1)
    return sorted({day_of(lo + step * i) for i in range(count)})


def day_of(when: datetime) -> datetime:
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def build(
    engine, outcome: str, dates: list[datetime], horizon: timedelta, progress=None
) -> pa.Table:
    """The training table: every snapshot's rows, stacked."""
    tables = []
    for i, when in enumerate(dates, start=1):
        if progress:
            progress(f"snapshot {i}/{len(dates)} as of {when:%Y-%m-%d}")
        rows = snapshot_rows(engine, outcome, Snapshot(when, horizon))
        if rows.num_rows:
            tables.append(rows)
    if not tables:
        raise DataError("no users to learn from at those dates")
    return pa.concat_tables(tables, promote_options="permissive")


__all__ = [
    "OUTCOMES",
    "Snapshot",
    "build",
    "data_span",
    "day_of",
    "outcome_counts",
    "outcome_times",
    "outcome_warning",
    "snapshot_dates",
    "snapshot_expr",
    "snapshot_rows",
]
