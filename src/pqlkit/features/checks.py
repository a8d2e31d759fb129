"""Check the bound data before a run: empty tables, missing and duplicate ids, text timestamps
that do not parse (errors, all reported at once), and event names the model references that never
occur or events no user owns (warnings).

The counts are read here, with Ibis; what they mean is said in plain Python by
:func:`pqlkit.features.findings.data_findings`, which a cold `pql validate` shares. Two ways
to read them:

    check_data(thorough=False)   before a run: cheap probes that stop at the first row found
    check_query                  `pql validate`: every count in one query of one row, compiled
                                 once and kept with the compiled SQL (Engine.check)
"""

from __future__ import annotations

from typing import Any

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..model.load import LoadedModel
from .findings import BAD_TIMESTAMPS, data_findings, referenced_events
from .sources import Bound, Reader


def check_data(
    bound: Bound, loaded: LoadedModel, backend: Reader, *, thorough: bool = False
) -> list[str]:
    """Raise DataQualityError on unusable data; return warnings (unknown event names...)."""
    if thorough:
        return data_findings(backend.rows(check_query(bound))[0], loaded, thorough=True)
    return data_findings(_probed_facts(bound, loaded, backend), loaded, thorough=False)


def check_query(bound: Bound) -> ir.Table:
    """One row of every count the thorough check reads, named as
    :mod:`~pqlkit.features.findings` reads them: each table scanned once or twice, the event
    names as one list rather than a probe per name."""
    parts = [_id_counts(bound.users, "user_id", "users")]
    if bound.accounts is not None:
        parts.append(_id_counts(bound.accounts, "account_id", "accounts"))
    e = bound.events
    parts.append(
        e.aggregate(
            events_n=e.count(),
            events_null_users=e.count(where=e.user_id.isnull()),
            events_ids=e.message_id.nunique(),
            events_with_ids=e.message_id.count(),
        )
    )
    names = e.select("event").distinct()
    parts.append(names.aggregate(event_names=names.event.collect()))
    parts += [_bad_timestamps(table, role, col) for role, col, table in bound.text_timestamps]
    query = parts[0]
    for part in parts[1:]:
        query = query.cross_join(part)
    return query


def _id_counts(table: ir.Table, column: str, role: str) -> ir.Table:
    """Rows, rows without an id, distinct ids and the first id held by more than one row
    (counts, not sums: a sum is a 128-bit integer in DuckDB, which a cold reader leaves be)."""
    rows = table.aggregate(
        **{
            f"{role}_n": table.count(),
            f"{role}_null_ids": table.count(where=table[column].isnull()),
        }
    )
    ids = table.group_by(column).aggregate(k=table.count())
    key = ids[column]
    return rows.cross_join(
        ids.aggregate(
            **{f"{role}_distinct_ids": key.count(), f"{role}_example": key.min(where=ids.k > 1)}
        )
    )


def _bad_timestamps(table: ir.Table, role: str, col: str) -> ir.Table:
    """How many text timestamps do not parse, and the first of them (one scan, which a
    probe for one would take too when all parse)."""
    raw = table[col]
    bad = table.filter(
        raw.notnull() & (raw != "") & raw.try_cast(dt.Timestamp(timezone="UTC")).isnull()
    )
    name = f"{BAD_TIMESTAMPS}__{role}__{col}"
    return bad.aggregate(**{f"{name}__n": bad.count(), f"{name}__example": bad[col].min()})


# --- the probes before a run ------------------------------------------------------------------


def _probed_facts(bound: Bound, loaded: LoadedModel, backend: Reader) -> dict[str, Any]:
    """The counts a run's check reads, each by the cheapest query that tells: an id example
    only when ids repeat, one early-exit probe per event name (a name that occurs is found in
    the first rows read; only a missing one costs a full scan, and only then are the known
    names listed). ``events_n`` is 0 or 1: are there events at all."""
    facts = _table_facts(bound.users, "user_id", "users", backend)
    if bound.accounts is not None:
        facts.update(_table_facts(bound.accounts, "account_id", "accounts", backend))
    events = bound.events
    facts["events_n"] = len(backend.rows(events.select("event").limit(1)))
    for role, col, table in bound.text_timestamps:
        facts.update(backend.rows(_bad_timestamps(table, role, col))[0])
    referenced = referenced_events(loaded) if facts["events_n"] else []
    found = [
        n
        for n in referenced
        if backend.rows(events.filter(events.event == n).select("event").limit(1))
    ]
    facts["event_names"] = found
    if len(found) < len(referenced):
        facts["event_names"] = [r["event"] for r in backend.rows(events.select("event").distinct())]
    return facts


def _table_facts(table: ir.Table, column: str, role: str, backend: Reader) -> dict[str, Any]:
    stats = backend.rows(
        table.aggregate(
            n=table.count(),
            null_ids=table[column].isnull().sum(),
            distinct_ids=table[column].nunique(),
        )
    )[0]
    facts = {f"{role}_{k}": v for k, v in stats.items()}
    facts[f"{role}_example"] = None
    if int(stats["n"]) - int(stats["null_ids"] or 0) - int(stats["distinct_ids"]) > 0:
        present = table.filter(table[column].notnull())
        counts = present.group_by(column).aggregate(n=present.count())
        row = backend.rows(counts.filter(counts.n > 1).order_by(column).limit(1))
        facts[f"{role}_example"] = row[0][column] if row else None
    return facts
