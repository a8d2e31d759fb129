"""What the data checks report, worked out in plain Python from the counts they read. Light:
no Ibis, so that a cold `pql validate` reads the counts with SQL an earlier validate compiled
and stored (engine.explained.cached_check) and says exactly what the engine says.

The counts are one flat row (a mapping), named as :func:`pqlkit.features.checks.check_query`
names its columns::

    users_n, users_null_ids, users_distinct_ids, users_example        (accounts_... alike)
    events_n                    0 when the events table is empty
    events_null_users, events_ids, events_with_ids                    (thorough only)
    event_names                 the distinct event names (or the referenced ones found)
    badts__<role>__<column>__n, badts__<role>__<column>__example      text timestamps
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import DataQualityError
from ..model.load import LoadedModel
from ..model.signals import signal_events

BAD_TIMESTAMPS = "badts"
"""The prefix of the columns counting text timestamps that do not parse."""


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def referenced_events(loaded: LoadedModel) -> list[str]:
    """The event names the model's signals count, sorted."""
    return sorted({n for s in loaded.model.all_signals for n in signal_events(s)})


def data_findings(facts: Mapping[str, Any], loaded: LoadedModel, *, thorough: bool) -> list[str]:
    """Raise DataQualityError on unusable data (every problem at once); return warnings."""
    problems = _id_problems(facts, "users", "user_id", "user")
    if "accounts_n" in facts:
        problems += _id_problems(facts, "accounts", "account_id", "account")
    warnings: list[str] = []
    no_events = not _count(facts, "events_n")
    if no_events:
        earning = [s.id for s in loaded.model.usage_signals if s.points]
        if earning:
            problems.append(
                f"the events table is empty: load events before scoring (signals such as "
                f"{earning[0]!r} earn points from events)"
            )
        else:  # a model scored from traits alone (a proposal learned from a user-level table)
            warnings.append("the events table is empty: only fit signals earn points")
    problems.extend(_timestamp_problems(facts))
    if problems:
        raise DataQualityError("\n".join(problems))
    if no_events:
        return warnings
    warnings += _unknown_events(referenced_events(loaded), facts["event_names"] or [])
    if thorough:
        warnings += _event_warnings(facts)
    return warnings


def _count(facts: Mapping[str, Any], name: str) -> int:
    return int(facts.get(name) or 0)


def _id_problems(facts: Mapping[str, Any], role: str, column: str, one: str) -> list[str]:
    """An empty users table, rows without an id, and ids held by more than one row (for
    accounts, only the last)."""
    n, nulls = _count(facts, f"{role}_n"), _count(facts, f"{role}_null_ids")
    problems = []
    if role == "users":
        if n == 0:
            problems.append("the users table is empty: load users before scoring")
        if nulls:
            problems.append(f"users: {nulls} row(s) have no user_id; every user needs an id")
    dupes = n - nulls - _count(facts, f"{role}_distinct_ids")
    if dupes > 0:
        problems.append(
            f"{role}: {dupes} duplicate {column} row(s), e.g. {facts[f'{role}_example']!r}; "
            f"keep one row per {one}"
        )
    return problems


def _timestamp_problems(facts: Mapping[str, Any]) -> list[str]:
    """Text timestamps that do not parse (mixed formats), with an example."""
    out = []
    for name in facts:
        prefix, _, rest = name.partition("__")
        if prefix != BAD_TIMESTAMPS or not rest.endswith("__n") or not _count(facts, name):
            continue
        role, _, col = rest.removesuffix("__n").partition("__")
        example = facts[f"{BAD_TIMESTAMPS}__{role}__{col}__example"]
        out.append(
            f"{role}.{col}: {_count(facts, name)} value(s) are not timestamps, e.g. {example!r}; "
            "use ISO 8601 (2024-05-01T12:00:00Z or with an offset, +02:00) or epoch seconds"
        )
    return out


def _unknown_events(referenced: list[str], names: list[str | None]) -> list[str]:
    """A warning for each event name the model references that never occurs."""
    found = set(names)
    unknown = [n for n in referenced if n not in found]
    if not unknown:
        return []
    known = sorted(n for n in names if n is not None)
    return [
        f"event {name!r} is referenced by the model but never occurs in the events"
        f"{suggest(name, known)}; "
        f"known events: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}"
        for name in unknown
    ]


def _event_warnings(facts: Mapping[str, Any]) -> list[str]:
    """Events without a user (not scored) and repeated message ids."""
    warnings = []
    null_users, n = _count(facts, "events_null_users"), _count(facts, "events_n")
    if null_users:
        warnings.append(f"events: {null_users} of {n} events have no user_id and are not scored")
    with_ids, ids = _count(facts, "events_with_ids"), _count(facts, "events_ids")
    if with_ids and with_ids > ids:
        warnings.append(f"events: {with_ids - ids} events repeat a message_id already seen")
    return warnings
