"""One schema for what the collector, the importer and the demo write: each table checked
before anything is acknowledged or imported, and upgraded in place by `pql migrate`.

A table made by an older pqlkit (the demo's events before they carried ``source``, say) would
take an insert of the canonical rows badly or not at all: `pql serve` would acknowledge events it
cannot store. So whoever writes checks first and refuses with the table, the missing columns and
the fix; `pql migrate` adds them (nullable, empty in the rows already there).
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError
from . import identity
from .tables import (
    EVENTS_SCHEMA,
    FEEDBACK,
    FEEDBACK_SCHEMA,
    MESSAGES,
    MESSAGES_SCHEMA,
    OFFSETS,
    OFFSETS_SCHEMA,
    QUARANTINE,
    QUARANTINE_SCHEMA,
)


def written(events: str = "events") -> dict[str, Any]:
    """Every table the collector and the importer write, with its columns."""
    return {
        events: EVENTS_SCHEMA,
        MESSAGES: MESSAGES_SCHEMA,
        QUARANTINE: QUARANTINE_SCHEMA,
        OFFSETS: OFFSETS_SCHEMA,
        FEEDBACK: FEEDBACK_SCHEMA,
        **{name: spec[0] for name, spec in identity.table_specs().items()},
    }


def lacking(backend: Any, events: str = "events") -> dict[str, list[str]]:
    """The tables that exist without every column pqlkit writes, and those columns."""
    out = {}
    for name, schema in written(events).items():
        missing = backend.missing_columns(name, schema)
        if missing:
            out[name] = missing
    return out


def require_writable(backend: Any, events: str = "events", *, who: str = "the collector") -> None:
    """Refuse, naming tables, columns and the fix, when a table lacks a column ``who`` writes."""
    found = lacking(backend, events)
    if found:
        tables = "; ".join(f"table {t} has no column {', '.join(c)}" for t, c in found.items())
        raise DataError(
            f"{tables}: {who} writes them (the table was made by an older pqlkit, or by hand). "
            f"Run `pql migrate` with the same --url{'' if events == 'events' else f' --table {events}'} "
            "to add them in place (existing rows keep "
            "their values; the new columns start empty), or write to another table (--table)."
        )


def migrate(backend: Any, events: str = "events") -> dict[str, list[str]]:
    """Add to every table pqlkit writes the columns it lacks; what was added, by table."""
    added = {}
    with backend.transaction():
        for name, schema in written(events).items():
            cols = backend.add_columns(name, schema)
            if cols:
                added[name] = cols
    return added


__all__ = ["lacking", "migrate", "require_writable", "written"]
