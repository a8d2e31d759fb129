"""Write the generated demo world into a backend and a model file beside it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `pql init` writes the starter model without loading any of these
    import pyarrow as pa

    from ..backends import Backend
    from .generate import DemoData

TABLES = ("accounts", "users", "events", "outcomes")


def load(backend: Backend, data: DemoData) -> None:
    """Replace the demo tables in ``backend``; the events in the canonical layout the collector
    and the importer write (one schema: `pql serve` and `pql import` add to them as they are)."""
    for name in TABLES:
        table = getattr(data, name)
        backend.write_table(
            name, canonical_events(table) if name == "events" else table, overwrite=True
        )


def canonical_events(events: pa.Table, source: str = "demo") -> pa.Table:
    """Events in the canonical layout the collector writes: a ``source`` and a receive time
    (the event's own: the demo's events arrived as they happened) where they are missing, any
    other missing column empty, in the collector's order and types."""
    import pyarrow as pa

    from ..collect.tables import EVENTS_SCHEMA

    n = events.num_rows
    extra = {
        "source": pa.array([source] * n, pa.string()),
        "received_at": events.column("timestamp") if "timestamp" in events.column_names else None,
    }
    columns = []
    for f in EVENTS_SCHEMA:
        if f.name in events.column_names:
            column = events.column(f.name)
        else:
            column = extra.get(f.name)
            if column is None:
                column = pa.nulls(n, f.type)
        columns.append(column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=EVENTS_SCHEMA)


def starter_text() -> str:
    return files("pqlkit.model").joinpath("starter.yml").read_text(encoding="utf-8")


DEMO_HANDOFF = """
# The hand-off (docs/model.md): every run records who became a PQL (the outbox) and keeps the
# live state the inbox and the prompt API read. Add destinations (webhook, slack, hubspot,
# salesforce) and routes to send the transitions somewhere.
handoff:
  destinations: []
  prompts:
    cooldown: 7d
    cap: 3
    rules:
      - {id: upgrade_to_team, when: {pql: true}, data: {plan: team}}
"""


def write_model(path: Path, *, handoff: bool = False) -> None:
    """The starter model; with ``handoff``, the demo's hand-off section too (so that
    `pql serve --model ... --ui` runs the whole system on the demo as it is)."""
    path.write_text(starter_text() + (DEMO_HANDOFF if handoff else ""), encoding="utf-8")
