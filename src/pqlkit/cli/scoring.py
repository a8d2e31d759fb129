"""`pql init`, `validate`, `score`, `accounts`, `explain`, `compile`."""

from __future__ import annotations

import io
import sys
from typing import Any

import click

from . import render
from .group import cli
from .options import (
    as_of_option,
    interactive,
    json_option,
    model_option,
    open_session,
    progress,
    url_option,
)

USER_COLUMNS = [
    "user_id",
    "account_id",
    "score",
    "tier",
    "icp_profile",
    "is_pql",
    "segment",
    "motion",
    "reasons",
]
ACCOUNT_COLUMNS = [
    "account_id",
    "name",
    "score",
    "tier",
    "users",
    "pql_users",
    "seat_share_active",
    "champion_user_id",
    "motion",
    "is_pqa",
]
FORMATS = ("csv", "parquet", "jsonl", "json")


@cli.command()
@click.argument("path", default="pql.yml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter model to PATH (default pql.yml)."""
    from ..usecases.common import init_model  # light: `pql init` loads no database library

    target = init_model(path, force=force)
    render.out.print(
        f"Wrote a starter model to {target}. Edit it, then run `pql validate -m {target}`."
    )


@cli.command()
@model_option
@url_option
@click.option(
    "--data/--no-data",
    default=True,
    show_default=True,
    help="Also check the database: mapped tables and columns, ids, timestamps, event names.",
)
@json_option
def validate(model_path: str, url: str | None, data: bool, as_json: bool) -> None:
    """Check the model file (and, with --data, that the data fits it)."""
    from ..usecases.validating import validate_cold as run

    v = run(url, model_path, data=data)
    if as_json:
        render.emit_json(v.to_dict())
        return
    for w in v.warnings:
        render.warn(w)
    render.out.print(
        f"[green]ok[/green] {render.escape(v.path)} (version {v.version}): {v.profiles} profiles, "
        f"{v.exclusions} exclusions, {v.fit_signals} fit, {v.usage_signals} usage and {v.mql_signals} MQL signals"
        + ("; data checked" if v.data_checked else "")
    )


def _write_or_print(
    expr: Any,
    out: str | None,
    fmt: str | None,
    columns: list[str],
    title: str,
    limit: int,
    as_json: bool,
    summary: dict[str, Any],
    csv_formulas: bool,
) -> None:
    from ..errors import PqlkitError
    from ..usecases.output import arrow, export, format_from_path, write_csv, write_json

    if out:
        n = export(expr, out, fmt or format_from_path(out), csv_formulas=csv_formulas)
        if as_json:
            render.emit_json({**summary, "written": n, "out": out})
        else:
            render.out.print(f"Wrote {n} rows to {render.escape(out)}")
        return
    fmt = "json" if as_json and not fmt else (fmt or "table")
    if fmt == "table" and limit <= 0:
        return
    if fmt == "table":
        rows = arrow(expr.limit(limit)).to_pylist()
        if "reasons" in columns:
            render.lead_list(rows, title)
        else:
            render.table(rows, columns, title=title)
        return
    if fmt == "parquet":
        raise PqlkitError("--format parquet needs --out FILE")
    data = arrow(expr)
    if fmt == "csv":
        buf = io.BytesIO()
        write_csv(data, buf, csv_formulas=csv_formulas)
        sys.stdout.write(buf.getvalue().decode())
    elif fmt == "json":
        render.emit_json({**summary, "rows": data.to_pylist()})
    else:
        write_json(data, sys.stdout, lines=True)


def run_options(fn: Any) -> Any:
    """The options of the commands that run a scoring (score, accounts), defined once."""
    for option in reversed(
        (
            model_option,
            url_option,
            as_of_option,
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["table", *FORMATS]),
                default=None,
                help="Output format (default: table; from the file name with --out).",
            ),
            click.option(
                "--out",
                default=None,
                type=click.Path(dir_okay=False),
                help="Write the results to this file (CSV, Parquet, JSON lines).",
            ),
            click.option(
                "--limit",
                default=20,
                show_default=True,
                help="Rows shown in the table (0: only the summary; results are stored either way).",
            ),
            click.option(
                "--checks/--no-checks",
                default=True,
                show_default=True,
                help="Check the data (ids, timestamps, event names) before scoring.",
            ),
            click.option(
                "--features/--no-features",
                default=True,
                show_default=True,
                help="Keep every user's features (pql_user_features), so the web app explains "
                "a lead without reading events; --no-features scores in one query, faster.",
            ),
            click.option(
                "--csv-formulas",
                is_flag=True,
                help="Keep CSV cells that start with = + - @ as they are (by default they get a leading ' "
                "so a spreadsheet shows them as text instead of running them).",
            ),
            json_option,
        )
    ):
        fn = option(fn)
    return fn


def _summary_line(run: Any) -> str:
    return (
        f"Scored {run.users:,} users and {run.accounts:,} accounts as of {run.as_of.isoformat(sep=' ')} UTC "
        f"(model {run.model_version}) in {run.seconds:.1f}s: {run.pqls:,} PQLs, {run.pqas:,} product-qualified accounts."
    )


@cli.command()
@run_options
@click.option("--pql-only", is_flag=True, help="Only users who are PQLs.")
@click.option(
    "--challenger",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also score this model (e.g. a `pql learn` proposal) beside the live one, into "
    "pql_challenger_scores; it hands nothing off (default: the model's challenger: file).",
)
def score(
    model_path,
    url,
    as_of,
    fmt,
    out,
    limit,
    checks,
    features,
    csv_formulas,
    as_json,
    pql_only,
    challenger,
) -> None:
    """Score every user as of a time, store the results, and show or export them."""
    from ..usecases.scoring import score as run

    with progress(interactive(as_json)) as say:
        scored = run(
            open_session(url, model_path, challenger=challenger),
            as_of,
            checks=checks,
            pql_only=pql_only,
            progress=say,
            features=features,
        )
    for w in scored.run.warnings:
        render.warn(w)
    if not as_json and not out and fmt in (None, "table"):
        render.out.print(_summary_line(scored.run))
        for c in scored.challengers:
            render.out.print(
                f"Challenger {render.escape(c.path)} (model {c.model_version}) scored beside it: "
                f"{c.pqls:,} PQLs of {c.users:,} users, handed nothing off; `pql compare` shows both."
            )
    _write_or_print(
        scored.rows,
        out,
        fmt,
        USER_COLUMNS,
        "Top users",
        limit,
        as_json,
        scored.to_dict(),
        csv_formulas,
    )


@cli.command()
@run_options
def accounts(
    model_path, url, as_of, fmt, out, limit, checks, features, csv_formulas, as_json
) -> None:
    """Score and show product-qualified accounts (users rolled up by the model's rule)."""
    from ..usecases.scoring import accounts as run

    with progress(interactive(as_json)) as say:
        scored = run(
            open_session(url, model_path), as_of, checks=checks, progress=say, features=features
        )
    for w in scored.run.warnings:
        render.warn(w)
    if not as_json and not out and fmt in (None, "table"):
        render.out.print(
            f"{scored.run.pqas:,} of {scored.run.accounts:,} accounts are product-qualified as of "
            f"{scored.run.as_of.isoformat(sep=' ')} UTC (model {scored.run.model_version})."
        )
    _write_or_print(
        scored.rows,
        out,
        fmt,
        ACCOUNT_COLUMNS,
        "Top accounts",
        limit,
        as_json,
        scored.to_dict(),
        csv_formulas,
    )


@cli.command()
@click.argument("user_id")
@model_option
@url_option
@as_of_option
@json_option
def explain(user_id, model_path, url, as_of, as_json) -> None:
    """Why USER_ID scored what they did: every signal, its value and points, and each decision."""
    from ..usecases.scoring import explain_cold as run

    explained = run(url, model_path, user_id, as_of)
    if as_json:
        render.emit_json(explained.to_dict())
        return
    e, o = explained.explanation, explained.explanation.outputs
    verdict = "[bold green]PQL[/bold green]" if o["is_pql"] else "not a PQL"
    esc = render.escape
    render.out.print(
        f"[bold]{esc(e.user_id)}[/bold] as of {e.as_of.isoformat(sep=' ')} UTC (model {e.model_version}): "
        f"{verdict}, score {o['score']} (fit {o['fit_score']} + usage {o['usage_score']}), "
        f"tier {esc(str(o['tier']))}, MQL score {o['mql_score']}"
    )
    render.out.print(f"  {render.standing(o)}")
    render.out.print(
        f"  profile: {esc(str(o['icp_profile'] or '-'))}   segment: {esc(str(o['segment']))}   "
        f"motion: {esc(str(o['motion']))}   activated: {'yes' if o['activated'] else 'no'}"
    )
    if explained.blocked_by:
        render.out.print("  not a PQL because: " + esc("; ".join(explained.blocked_by)))
    rows = [
        {
            "group": s.group,
            "signal": s.id,
            "value": s.value,
            "fired": bool(s.fired),
            "points": s.points,
            "reason": s.text,
        }
        for s in e.signals
    ]
    render.table(
        rows,
        ["group", "signal", "value", "fired", "points", "reason"],
        title="Signals",
        wrap=("reason",),
    )


@cli.command(name="compile")
@model_option
@url_option
@as_of_option
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "postgres", "snowflake", "bigquery"]),
    default="duckdb",
    show_default=True,
    help="SQL dialect to print.",
)
def compile_(model_path, url, as_of, dialect) -> None:
    """Print the SQL a warehouse would run to score every user."""
    from ..usecases.scoring import compile_sql

    click.echo(compile_sql(open_session(url, model_path), as_of, dialect=dialect))
