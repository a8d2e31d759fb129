"""`pql tracking-plan` (the events, properties and traits the model reads, as JSON Schema) and
`pql tracking` (each event's volume against its baseline, and the alerts recorded)."""

from __future__ import annotations

from pathlib import Path

import click

from . import render
from .group import cli
from .options import json_option, model_option, open_session, url_option


@cli.command(name="tracking-plan")
@model_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one JSON Schema file per event (event.<name>.schema.json), identify and group.",
)
@json_option
def tracking_plan(model_path, out, as_json) -> None:
    """The tracking plan the model implies: each event its signals read, the properties read
    on it with their JSON types, and the traits its rules compare (JSON Schema, draft 2020-12)."""
    from ..usecases.tracking import export_plan

    exported = export_plan(model_path, out)
    if as_json:
        render.emit_json(exported)
        return
    plan = exported["plan"]
    rows = []
    for e in plan["events"]:
        props = e["properties"] or [{"name": "-", "types": ["-"]}]
        for p in props:
            rows.append(
                {
                    "event": e["name"],
                    "property": p["name"],
                    "type": " or ".join(p["types"]),
                    "read by": ", ".join(e["read_by"]),
                }
            )
    render.table(rows, ["event", "property", "type", "read by"], title="Events", wrap=("read by",))
    for call, key in (("identify", "user_traits"), ("group", "account_traits")):
        traits = [
            {
                "trait": t["name"],
                "type": " or ".join(t["types"]),
                "read by": ", ".join(t["read_by"]),
            }
            for t in plan[key]
        ]
        if traits:
            render.table(
                traits, ["trait", "type", "read by"], title=f"{call} traits", wrap=("read by",)
            )
    if plan["any_event"]:
        render.out.print("Any event feeds: " + render.escape(", ".join(plan["any_event"])))
    if out is not None:
        render.out.print(f"Wrote {len(exported['schemas'])} schemas to {render.escape(str(out))}")


@cli.command(name="tracking")
@model_option
@url_option
@click.option("--table", default="events", show_default=True, help="The collector's events table.")
@json_option
def tracking(model_path, url, table, as_json) -> None:
    """Each event the model reads: its count over the last window against its baseline (the
    model's `instrumentation:` section, or its defaults), and the alerts `pql serve` recorded."""
    from ..usecases.tracking import volume_now

    found = volume_now(open_session(url, model_path), table=table)
    if as_json:
        render.emit_json(found)
        return
    render.table(
        found["events"],
        ["event", "count", "expected", "status"],
        title=f"Last {found['window']} against the same span one {found['season']} back, "
        f"{found['periods']} times",
    )
    for a in found["alerts"]:
        render.out.print(
            f"[bold red]alert[/bold red] {render.escape(a['event'])}: {a['status']} since {a['at']}"
        )
