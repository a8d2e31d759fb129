"""`pql sync crm` and `pql sync outcomes`: CRM both ways."""

from __future__ import annotations

import click

from . import render
from .group import cli
from .options import interactive, json_option, model_option, progress, url_option


@cli.group()
def sync() -> None:
    """CRM both ways: write PQL fields to HubSpot or Salesforce, read deals back as outcomes."""


@sync.command("crm")
@model_option
@url_option
@click.option("--destination", default=None, help="Only this CRM destination (its id).")
@click.option("--full", is_flag=True, help="Send every record again, changed or not.")
@click.option(
    "--dry-run", is_flag=True, help="Show what would be sent, field by field; send nothing."
)
@json_option
def sync_crm(model_path, url, destination, full, dry_run, as_json) -> None:
    """Write what changed since the last sync to the model's CRM destinations (diffed upserts:
    a ledger keeps what each record last received; refused records keep their error and go
    again next time)."""
    from ..usecases.crm import sync_crm as run

    with progress(interactive(as_json)) as say:
        reports = run(
            model_path, url, destination=destination, full=full, dry_run=dry_run, progress=say
        )
    if as_json:
        render.emit_json([r.to_dict() for r in reports])
        return
    for r in reports:
        sent = "would send" if dry_run else "sent"
        columns = [
            "object",
            "considered",
            "unchanged",
            sent,
            "created",
            "updated",
            "failed",
            "skipped",
        ]
        rows = [
            {"object": o.object, "considered": o.considered, "unchanged": o.unchanged, sent: o.sent,
             "created": o.created, "updated": o.updated, "failed": o.failed, "skipped": o.skipped}
            for o in r.objects
        ]  # fmt: skip
        render.table(
            rows, columns, title=f"{r.destination} ({r.mode}, {r.calls} calls, {r.seconds:.1f} s)"
        )
        for o in r.objects:
            for d in o.diff[:20]:
                changes = ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in d["changes"].items())
                render.out.print(f"  {d['action']} {o.object} {d['crm_key']}: {changes}")
            if len(o.diff) > 20:
                render.out.print(f"  ... and {len(o.diff) - 20:,} more (--json lists them all)")
            for e in o.errors[:10]:
                render.warn(f"{o.object} {e['key']}: {e['error']}")
        if r.stopped:
            render.warn(r.stopped)
    if any(r.failed for r in reports):
        raise SystemExit(1)


@sync.command("outcomes")
@model_option
@url_option
@click.option("--from", "source", type=click.Choice(["hubspot", "salesforce"]), default=None,
              help="Only destinations of this kind (default: every CRM destination).")  # fmt: skip
@click.option("--destination", default=None, help="Only this CRM destination (its id).")
@click.option("--full", is_flag=True, help="Read everything again, not only what changed.")
@json_option
def sync_outcomes(model_path, url, source, destination, full, as_json) -> None:
    """Read deals and opportunities changed since the last read into pql_crm_outcomes (map
    sources.outcomes to it for learning, evaluation and backtests)."""
    from ..usecases.crm import sync_outcomes as run

    with progress(interactive(as_json)) as say:
        reports = run(
            model_path, url, source=source, destination=destination, full=full, progress=say
        )
    if as_json:
        render.emit_json([r.to_dict() for r in reports])
        return
    for r in reports:
        render.out.print(
            f"{r.destination}: {r.read:,} read, {r.mapped_users:,} matched to users, "
            f"{r.mapped_accounts:,} to accounts, {len(r.unmapped):,} to neither; next read from "
            f"{r.cursor.isoformat() if r.cursor else 'the start'}."
        )
