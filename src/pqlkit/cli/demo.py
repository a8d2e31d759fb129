"""`pql demo`."""

from __future__ import annotations

import click

from . import render
from .group import cli
from .options import interactive, json_option, progress


@cli.command()
@click.option(
    "--dir",
    "folder",
    default="pql-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the database, the model and the exports.",
)
@click.option("--url", default=None, help="Load into this database instead of DIR/demo.duckdb.")
@click.option("--accounts", "n_accounts", default=5_000, show_default=True)
@click.option("--users", "n_users", default=20_000, show_default=True)
@click.option("--days", default=90, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--top", default=10, show_default=True, help="How many top PQLs to show.")
@json_option
def demo(folder, url, n_accounts, n_users, days, seed, top, as_json) -> None:
    """Generate a realistic product-led SaaS, score it with the starter model, and show the result."""
    from ..usecases.demo import run_demo

    with progress(interactive(as_json)) as say:
        d = run_demo(
            folder,
            url,
            accounts=n_accounts,
            users=n_users,
            days=days,
            seed=seed,
            top=top,
            progress=say,
        )
    if as_json:
        render.emit_json(d.to_dict())
        return
    c, result = d.counts, d.run
    render.out.print(
        f"[bold]pqlkit demo[/bold]: {c['accounts']:,} accounts, {c['users']:,} users, {c['events']:,} events over "
        f"{d.days} days, {c['opportunities']:,} opportunities ({c['won']:,} won). Scored as of "
        f"{result.as_of.isoformat(sep=' ')} UTC in {result.seconds:.1f}s."
    )
    render.table(
        d.breakdown, ["segment", "motion", "users", "pqls"], title="Users by segment and motion"
    )
    render.lead_list(d.top_pqls, f"Top {len(d.top_pqls)} PQLs and why")
    first = d.top_pqls[0]["user_id"] if d.top_pqls else "USER_ID"
    render.out.print(
        f"{result.pqls:,} PQLs and {result.pqas:,} product-qualified accounts.\n"
        f"  database: {d.database} (tables events, users, accounts, outcomes, pql_user_scores, "
        f"pql_account_scores, pql_runs)\n"
        f"  model:    {d.model}\n"
        f"  exports:  {', '.join(str(p) for p in d.exports)}\n"
        f"Next: pql explain {first} -m {d.model} --url {d.database} --as-of {result.as_of.date().isoformat()}\n"
        f"The whole system (collector, live scoring, hand-off and the web app on one port):\n"
        f"  pql users add admin --role admin --url {d.database}\n"
        f"  pql serve --model {d.model} --url {d.database} --ui --write-key web=YOUR_WRITE_KEY "
        "--product-key YOUR_PRODUCT_KEY"
    )
