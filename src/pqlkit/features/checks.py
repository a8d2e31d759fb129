"""Check the bound data before a run: empty tables, missing and duplicate ids, text timestamps
that do not parse (errors, all reported at once), and event names the model references that never
occur or events no user owns (warnings)."""

from __future__ import annotations

from typing import Any

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..errors import DataQualityError
from ..model.load import LoadedModel
from ..model.signals import signal_events
from .sources import Bound, Reader, suggest


def check_data(
    bound: Bound, loaded: LoadedModel, backend: Reader, *, thorough: bool = False
) -> list[str]:
    """Raise DataQualityError on unusable data; return warnings (unknown event names...)."""
    problems = _user_problems(bound.users, backend)
    if bound.accounts is not None:
        problems += _account_problems(bound.accounts, backend)
    warnings: list[str] = []
    events = bound.events
    no_events = not backend.rows(events.select("event").limit(1))
    if no_events:
        earning = [s.id for s in loaded.model.usage_signals if s.points]
        if earning:
            problems.append(
                f"the events table is empty: load events before scoring (signals such as "
                f"{earning[0]!r} earn points from events)"
            )
        else:  # a model scored from traits alone (a proposal learned from a user-level table)
            warnings.append("the events table is empty: only fit signals earn points")
    problems.extend(_timestamp_problems(bound, backend))
    if problems:
        raise DataQualityError("\n".join(problems))
    if no_events:
        return warnings
    referenced = sorted({n for s in loaded.model.all_signals for n in signal_events(s)})
    warnings += _unknown_events(referenced, events, backend)
    if thorough:
        warnings += _event_warnings(events, backend)
    return warnings


def _user_problems(users: ir.Table, backend: Reader) -> list[str]:
    """An empty users table, users without an id, and ids held by more than one row."""
    problems = []
    stats = backend.rows(
        users.aggregate(
            n=users.count(),
            null_ids=users.user_id.isnull().sum(),
            distinct_ids=users.user_id.nunique(),
        )
    )[0]
    if stats["n"] == 0:
        problems.append("the users table is empty: load users before scoring")
    if stats["null_ids"]:
        problems.append(
            f"users: {stats['null_ids']} row(s) have no user_id; every user needs an id"
        )
    dupes = int(stats["n"]) - int(stats["null_ids"] or 0) - int(stats["distinct_ids"])
    if dupes > 0:
        example = _duplicate_example(backend, users, "user_id")
        problems.append(
            f"users: {dupes} duplicate user_id row(s), e.g. {example!r}; keep one row per user"
        )
    return problems


def _account_problems(accounts: ir.Table, backend: Reader) -> list[str]:
    """Account ids held by more than one row."""
    a = backend.rows(
        accounts.aggregate(
            n=accounts.count(),
            distinct_ids=accounts.account_id.nunique(),
            null_ids=accounts.account_id.isnull().sum(),
        )
    )[0]
    adupes = int(a["n"]) - int(a["null_ids"] or 0) - int(a["distinct_ids"])
    if adupes <= 0:
        return []
    example = _duplicate_example(backend, accounts, "account_id")
    return [
        f"accounts: {adupes} duplicate account_id row(s), e.g. {example!r}; keep one row per account"
    ]


def _unknown_events(referenced: list[str], events: ir.Table, backend: Reader) -> list[str]:
    """A warning for each event name the model references that never occurs."""
    # One early-exit probe per name: a name that occurs is found in the first rows read; only a
    # missing one costs a full scan, and only then are the known names listed.
    unknown = [
        n
        for n in referenced
        if not backend.rows(events.filter(events.event == n).select("event").limit(1))
    ]
    if not unknown:
        return []
    known = sorted(
        r["event"]
        for r in backend.rows(events.select("event").distinct())
        if r["event"] is not None
    )
    return [
        f"event {name!r} is referenced by the model but never occurs in the events"
        f"{suggest(name, known)}; "
        f"known events: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}"
        for name in unknown
    ]


def _event_warnings(events: ir.Table, backend: Reader) -> list[str]:
    """Events without a user (not scored) and repeated message ids (a thorough check: it reads
    every event)."""
    warnings = []
    e = backend.rows(
        events.aggregate(
            null_users=events.user_id.isnull().sum(),
            n=events.count(),
            ids=events.message_id.nunique(),
            with_ids=events.message_id.notnull().sum(),
        )
    )[0]
    if e["null_users"]:
        warnings.append(
            f"events: {e['null_users']} of {e['n']} events have no user_id and are not scored"
        )
    if e["with_ids"] and e["with_ids"] > e["ids"]:
        warnings.append(
            f"events: {e['with_ids'] - e['ids']} events repeat a message_id already seen"
        )
    return warnings


def _duplicate_example(backend: Reader, table: ir.Table, column: str) -> Any:
    present = table.filter(table[column].notnull())
    counts = present.group_by(column).aggregate(n=present.count())
    row = backend.rows(counts.filter(counts.n > 1).order_by(column).limit(1))
    return row[0][column] if row else None


def _timestamp_problems(bound: Bound, backend: Reader) -> list[str]:
    """Text timestamps that do not parse (mixed formats) are reported with an example."""
    out = []
    for role, col, table in bound.text_timestamps:
        raw = table[col]
        bad = table.filter(
            raw.notnull() & (raw != "") & raw.try_cast(dt.Timestamp(timezone="UTC")).isnull()
        )
        sample = backend.rows(bad.select(value=raw).limit(1))
        if sample:
            total = backend.rows(bad.aggregate(n=bad.count()))[0]["n"]
            out.append(
                f"{role}.{col}: {total} value(s) are not timestamps, e.g. {sample[0]['value']!r}; "
                "use ISO 8601 (2024-05-01T12:00:00Z or with an offset, +02:00) or epoch seconds"
            )
    return out
