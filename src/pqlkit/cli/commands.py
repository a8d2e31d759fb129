"""The `pql` commands. Each parses, calls the library, renders; nothing more."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from datetime import datetime
from pathlib import Path

import click
import pyarrow.csv as pacsv
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..backends import connect
from ..engine import Engine, as_utc
from ..errors import PqlkitError
from ..model.load import load_model
from ..sinks.files import FORMATS, export, format_from_path, write_csv, write_json
from . import (
    _handle_errors,
    as_of_option,
    cli,
    json_option,
    model_option,
    render,
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


@contextlib.contextmanager
def _progress(enabled: bool):
    """A spinner with the current step, on stderr, when a person is watching."""
    if not enabled:
        yield lambda _msg: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=render.err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda msg: bar.update(task, description=msg)


def _outcome_options(fn):
    """--outcome and --horizon, shared by learn and evaluate."""
    fn = click.option(
        "--horizon",
        default="30d",
        show_default=True,
        help="How long after each date a conversion counts (e.g. 30d, 6w).",
    )(fn)
    return click.option(
        "--outcome",
        type=click.Choice(["opportunity", "closed_won", "self_serve"]),
        default="opportunity",
        show_default=True,
        help="What counts as converting.",
    )(fn)


def _interactive(as_json: bool) -> bool:
    return not as_json and render.err.is_terminal


# --- init / validate --------------------------------------------------------------------------


@cli.command()
@click.argument("path", default="pql.yml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@_handle_errors
def init(path: str, force: bool) -> None:
    """Write a commented starter model to PATH (default pql.yml)."""
    from ..demo.load import write_model

    target = Path(path)
    if target.exists() and not force:
        raise PqlkitError(f"{target} already exists; pass --force to overwrite it")
    write_model(target)
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
@_handle_errors
def validate(model_path: str, url: str | None, data: bool, as_json: bool) -> None:
    """Check the model file (and, with --data, that the data fits it)."""
    loaded = load_model(model_path)
    warnings: list[str] = []
    if data:
        engine = Engine(loaded, connect(url))
        warnings = engine.check(thorough=True)
        engine.close()
    if as_json:
        render.emit_json(
            {"ok": True, "model": loaded.path, "version": loaded.version, "warnings": warnings}
        )
        return
    for w in warnings:
        render.warn(w)
    m = loaded.model
    render.out.print(
        f"[green]ok[/green] {loaded.path} (version {loaded.version}): "
        f"{len(m.icp.profiles)} profiles, {len(m.icp.exclusions)} exclusions, "
        f"{len(m.fit_signals)} fit, {len(m.usage_signals)} usage and {len(m.mql_signals)} MQL signals"
        + ("; data checked" if data else "")
    )


# --- score / accounts --------------------------------------------------------------------------


def _run(model_path: str, url: str | None, as_of: str | None, checks: bool, interactive: bool):
    engine = Engine.open(model_path, url)
    with _progress(interactive) as say:
        result = engine.run(as_of, checks=checks, progress=say)
    return engine, result


def _write_or_print(
    expr,
    out: str | None,
    fmt: str | None,
    columns: list[str],
    title: str,
    limit: int,
    as_json: bool,
    summary: dict,
    csv_formulas: bool = False,
) -> None:
    if out:
        n = export(expr, out, fmt or format_from_path(out), csv_formulas=csv_formulas)
        if as_json:
            render.emit_json({**summary, "written": n, "out": out})
        else:
            render.out.print(f"Wrote {n} rows to {out}")
        return
    fmt = "json" if as_json and not fmt else (fmt or "table")
    if fmt == "table" and limit <= 0:
        return
    if fmt == "table":
        rows = expr.limit(limit).to_pyarrow().to_pylist()
        if "reasons" in columns:
            render.lead_list(rows, title)
        else:
            render.table(rows, columns, title=title)
        return
    if fmt == "parquet":
        raise PqlkitError("--format parquet needs --out FILE")
    data = expr.to_pyarrow()
    if fmt == "csv":
        buf = io.BytesIO()
        write_csv(data, buf, csv_formulas=csv_formulas)
        sys.stdout.write(buf.getvalue().decode())
    else:
        if fmt == "json":
            render.emit_json({**summary, "rows": data.to_pylist()})
        else:
            write_json(data, sys.stdout, lines=True)


_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", *FORMATS]),
    default=None,
    help="Output format (default: table; from the file name with --out).",
)
_OUT = click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the results to this file (CSV, Parquet, JSON lines).",
)
_LIMIT = click.option(
    "--limit",
    default=20,
    show_default=True,
    help="Rows shown in the table (0: only the summary; results are stored either way).",
)
_CSV_FORMULAS = click.option(
    "--csv-formulas",
    is_flag=True,
    help="Keep CSV cells that start with = + - @ as they are (by default they get a leading ' so a "
    "spreadsheet shows them as text instead of running them).",
)
_CHECKS = click.option(
    "--checks/--no-checks",
    default=True,
    show_default=True,
    help="Check the data (ids, timestamps, event names) before scoring.",
)


def _run_options(fn):
    """The options of the commands that run a scoring (score, accounts), defined once."""
    for option in reversed(
        (
            model_option,
            url_option,
            as_of_option,
            _FORMAT,
            _OUT,
            _LIMIT,
            _CHECKS,
            _CSV_FORMULAS,
            json_option,
        )
    ):
        fn = option(fn)
    return fn


@cli.command()
@_run_options
@click.option("--pql-only", is_flag=True, help="Only users who are PQLs.")
@_handle_errors
def score(model_path, url, as_of, fmt, out, limit, pql_only, checks, csv_formulas, as_json) -> None:
    """Score every user as of a time, store the results, and show or export them."""
    engine, result = _run(model_path, url, as_of, checks, _interactive(as_json))
    for w in result.warnings:
        render.warn(w)
    users = engine.stored_users(result.as_of, result.model_version)
    if pql_only:
        users = users.filter(users.is_pql)
    users = users.order_by([users.score.desc(), users.user_id])
    if not as_json and not out and (fmt in (None, "table")):
        render.out.print(
            f"Scored {result.users:,} users and {result.accounts:,} accounts as of "
            f"{result.as_of.isoformat(sep=' ')} UTC (model {result.model_version}) in "
            f"{result.seconds:.1f}s: {result.pqls:,} PQLs, {result.pqas:,} product-qualified accounts."
        )
    _write_or_print(
        users, out, fmt, USER_COLUMNS, "Top users", limit, as_json, result.to_dict(), csv_formulas
    )


@cli.command()
@_run_options
@_handle_errors
def accounts(model_path, url, as_of, fmt, out, limit, checks, csv_formulas, as_json) -> None:
    """Score and show product-qualified accounts (users rolled up by the model's rule)."""
    engine, result = _run(model_path, url, as_of, checks, _interactive(as_json))
    for w in result.warnings:
        render.warn(w)
    accts = engine.stored_accounts(result.as_of, result.model_version)
    accts = accts.order_by(
        [accts.is_pqa.desc(), accts.score.desc(), accts.pql_users.desc(), accts.account_id]
    )
    if not as_json and not out and (fmt in (None, "table")):
        render.out.print(
            f"{result.pqas:,} of {result.accounts:,} accounts are product-qualified as of "
            f"{result.as_of.isoformat(sep=' ')} UTC (model {result.model_version})."
        )
    _write_or_print(
        accts,
        out,
        fmt,
        ACCOUNT_COLUMNS,
        "Top accounts",
        limit,
        as_json,
        result.to_dict(),
        csv_formulas,
    )


# --- explain / compile ---------------------------------------------------------------------------


@cli.command()
@click.argument("user_id")
@model_option
@url_option
@as_of_option
@json_option
@_handle_errors
def explain(user_id, model_path, url, as_of, as_json) -> None:
    """Why USER_ID scored what they did: every signal, its value and points, and each decision."""
    engine = Engine.open(model_path, url)
    e = engine.explain(user_id, as_of)
    if as_json:
        render.emit_json(e.to_dict())
        return
    o = e.outputs
    verdict = "[bold green]PQL[/bold green]" if o["is_pql"] else "not a PQL"
    render.out.print(
        f"[bold]{e.user_id}[/bold] as of {e.as_of.isoformat(sep=' ')} UTC (model {e.model_version}): "
        f"{verdict}, score {o['score']} (fit {o['fit_score']} + usage {o['usage_score']}), "
        f"tier {o['tier']}, MQL score {o['mql_score']}"
    )
    why_not = []
    if not o["icp_profile"]:
        why_not.append("fits no ICP profile")
    if o["excluded"]:
        why_not.append(f"excluded by {o['exclusion']} (reason: {o['exclusion_reason']})")
    if not o["activated"]:
        why_not.append("not activated")
    if o["score"] < engine.model.thresholds.pql_score:
        why_not.append(f"score below {engine.model.thresholds.pql_score:g}")
    render.out.print(
        f"  profile: {o['icp_profile'] or '-'}   segment: {o['segment']}   motion: {o['motion']}"
        f"   activated: {'yes' if o['activated'] else 'no'}"
    )
    if why_not and not o["is_pql"]:
        render.out.print("  not a PQL because: " + "; ".join(why_not))
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
@_handle_errors
def compile_(model_path, url, as_of, dialect) -> None:
    """Print the SQL a warehouse would run to score every user."""
    engine = Engine.open(model_path, url)
    click.echo(engine.compile(dialect, as_of))


# --- import ----------------------------------------------------------------------------------------


@cli.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "parquet", "segment", "rudderstack", "amplitude"]),
    default=None,
    help="File format (default: from the extension; segment/rudderstack/amplitude for their exports).",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=YOURS",
    help="Map a canonical events column to yours, e.g. --map user_id=uid (repeatable).",
)
@click.option(
    "--table", default="events", show_default=True, help="The events table to import into."
)
@click.option(
    "--source",
    default="import",
    show_default=True,
    help="Source name; message ids are unique per source.",
)
@click.option("--strict", is_flag=True, help="Import nothing if any row is bad.")
@url_option
@json_option
@_handle_errors
def import_(files, fmt, maps, table, source, strict, url, as_json) -> None:
    """Import events from CSV, JSON lines, Parquet, or Segment, RudderStack and Amplitude exports."""
    from ..collect.importer import import_files

    mapping = {}
    for item in maps:
        column, sep, theirs = item.partition("=")
        if not sep or not column or not theirs:
            raise PqlkitError(f"--map {item!r}: write COLUMN=YOURS, e.g. --map user_id=uid")
        mapping[column.strip()] = theirs.strip()
    backend = connect(url)
    with _progress(_interactive(as_json)) as say:
        report = import_files(
            backend,
            list(files),
            fmt=fmt,
            mapping=mapping,
            table=table,
            source=source,
            strict=strict,
            progress=lambda step, n: say(f"{step}: {n:,} rows"),
        )
    backend.close()
    if as_json:
        render.emit_json(report.to_dict())
        return
    for f in report.files:
        reasons = ", ".join(f"{n} {why}" for why, n in f.reasons().most_common(3))
        render.out.print(
            f"{f.path} ({f.format}): {f.read:,} rows read, {f.accepted:,} accepted"
            + (
                f", {f.identity_messages:,} identify/group/alias messages kept for identities"
                if f.identity_messages
                else ""
            )
            + (f", {f.suppressed:,} rows of forgotten users dropped" if f.suppressed else "")
            + (f", {f.skipped:,} skipped ({reasons})" if f.skipped else "")
        )
        for line, why in f.problems[:5]:
            render.warn(f"{f.path}:{line}: {why}")
        if f.skipped > 5:
            render.warn(f"... and {f.skipped - 5} more skipped rows (--json lists them)")
    render.out.print(
        f"Imported {report.imported:,} events into {report.table} (source {report.source}); "
        f"{report.duplicates:,} duplicates not stored again; {report.skipped:,} rows skipped; "
        f"{report.seconds:.1f}s."
    )


# --- learn ---------------------------------------------------------------------------------------------


@cli.command()
@model_option
@url_option
@_outcome_options
@click.option(
    "--snapshots",
    default=6,
    show_default=True,
    type=click.IntRange(min=2),
    help="How many dates to take snapshots at; the last is held out to measure quality.",
)
@click.option(
    "--until", default=None, help="Treat data after this date as unseen (default: the last event)."
)
@click.option("--no-reference", is_flag=True, help="Skip the gradient-boosted reference model.")
@click.option("--top", default=15, show_default=True, help="How many lifts and points to show.")
@click.option(
    "--from-table",
    "user_table",
    default=None,
    metavar="TABLE|FILE",
    help="Learn from a user-level table instead (one row per user, an outcome column): "
    "a table in the database or a CSV/Parquet file.",
)
@click.option(
    "--label", default=None, help="With --from-table: the outcome column (1/0, true/false, yes/no)."
)
@click.option(
    "--exclude",
    "excluded",
    multiple=True,
    metavar="COLUMN",
    help="With --from-table: a column to leave out (ids, or columns filled in after the outcome); repeatable.",
)
@click.option(
    "--propose",
    "propose_path",
    default=None,
    metavar="FILE",
    help="Where to write the proposed model [default: <model>.proposed.yml beside the model].",
)
@click.option("--no-propose", is_flag=True, help="Do not write a proposed model file.")
@click.option(
    "--force", is_flag=True, help="Let --propose replace a file that is not an earlier proposal."
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Also print the proposal as a unified diff of the model.",
)
@json_option
@_handle_errors
def learn(
    model_path,
    url,
    outcome,
    horizon,
    snapshots,
    until,
    no_reference,
    top,
    user_table,
    label,
    excluded,
    propose_path,
    no_propose,
    force,
    show_diff,
    as_json,
) -> None:
    """Which behaviours and traits go with conversions, and points fitted to them.

    Builds point-in-time snapshots (features before each date, the outcome within --horizon
    after it), shows each signal's and trait's lift with a 95% interval, fits whole points
    (regularised logistic regression) and compares them, on the last date, with the current
    model and a gradient-boosted reference.
    """
    from datetime import timedelta

    from ..learn.learn import learn as run_learn
    from ..learn.learn import user_level
    from ..model.signals import duration_seconds

    model_file = Path(model_path)
    target = (
        Path(propose_path)
        if propose_path
        else model_file.with_name(f"{model_file.stem}.proposed.yml")
    )
    if not user_table and not no_propose:
        from ..learn.propose import check_target

        check_target(target, model_file, force=force)  # before the work, not after
    if user_table:
        if not label:
            raise PqlkitError("--from-table needs --label COLUMN, the outcome column")
        table = _read_user_table(user_table, url)
        with _progress(_interactive(as_json)) as say:
            say(f"learning from {table.num_rows:,} rows of {user_table}")
            result = user_level(table, label, exclude=list(excluded), reference=not no_reference)
    else:
        try:
            span = timedelta(seconds=duration_seconds(horizon))
        except ValueError as exc:
            raise PqlkitError(f"--horizon: {exc}") from None
        engine = Engine.open(model_path, url)
        with _progress(_interactive(as_json)) as say:
            result = run_learn(
                engine,
                outcome,
                span,
                snapshots=snapshots,
                until=as_utc(until) if until else None,
                reference=not no_reference,
                progress=say,
            )
    proposal = None
    if not user_table and not no_propose and result.points is not None and result.train is not None:
        from ..learn.propose import propose, write_proposal

        proposal = propose(
            engine.loaded,
            result.points,
            result.train,
            outcome=outcome,
            horizon_days=result.horizon_days,
            auc=result.quality_of("learned points"),
        )
        write_proposal(proposal, target, model_file, force=force)
    if as_json:
        payload = result.to_dict()
        if proposal is not None:
            payload["proposal"] = {"path": str(target), **proposal.to_dict()}
        render.emit_json(payload)
        return
    if user_table:
        render.out.print(
            f"[bold]{label}[/bold] in {user_table}: {result.rows:,} rows, {result.conversions:,} "
            f"converted ({result.train_conversions:,} to fit on, {result.test_conversions:,} in a "
            "random held-out quarter)"
        )
    else:
        render.out.print(
            f"[bold]{outcome}[/bold] within {result.horizon_days} days, snapshots "
            f"{', '.join(f'{d:%Y-%m-%d}' for d in result.dates)}: {result.rows:,} user-dates, "
            f"{result.conversions:,} conversions ({result.train_conversions:,} to fit on, "
            f"{result.test_conversions:,} on the held-out last date)"
        )
    rows = [
        {
            "fact": x.name,
            "coverage": f"{x.coverage:.1%}",
            "rate with": f"{x.rate_with:.1%}",
            "rate without": f"{x.rate_without:.1%}",
            "lift": f"{x.lift:.2f}",
            "95% interval": f"{x.low:.2f}-{x.high:.2f}" + (" *" if x.significant else ""),
        }
        for x in result.lifts[:top]
    ]
    render.table(
        rows,
        list(rows[0]) if rows else [],
        title="What goes with converting (* = interval excludes 1)",
    )
    if result.quality:
        render.table(
            [
                {
                    "model": q.name,
                    "AUC": f"{q.auc:.3f}",
                    "lift top 5%": f"{q.lift_5:.2f}",
                    "lift top 10%": f"{q.lift_10:.2f}",
                }
                for q in result.quality
            ],
            ["model", "AUC", "lift top 5%", "lift top 10%"],
            title="Quality on the held-out last date",
        )
    if result.points is not None:
        prows = sorted(result.points.rows(), key=lambda r: -abs(r["points"]))[:top]
        render.table(prows, ["input", "points", "log_odds"], title="Learned points (largest first)")
    if proposal is not None:
        changed = [
            {
                "signal": c.signal,
                "group": c.group.removesuffix("_signals"),
                "points now": c.before,
                "proposed": c.after,
                "change": c.note,
            }
            for c in proposal.changes
            if c.before != c.after
        ]
        render.table(
            changed,
            ["signal", "group", "points now", "proposed", "change"],
            title=f"Proposed model {target} (your model file is unchanged)",
        )
        render.out.print(
            f"PQL threshold {proposal.pql_score_before:g} -> {proposal.pql_score_after:g} "
            "(about as many PQLs as now on the training dates). Review it, then "
            f"`pql evaluate --model {target}`; copy it over your model to adopt it."
        )
        if show_diff:
            render.out.print(proposal.unified_diff, markup=False, highlight=False)
    for note in result.notes:
        render.warn(note)


def _read_user_table(name: str, url: str | None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(name)
    if path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        if not path.exists():
            raise PqlkitError(f"--from-table: no such file {path}")
        try:
            return (
                pq.read_table(path)
                if path.suffix.lower() in (".parquet", ".pq")
                else pacsv.read_csv(path)
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise PqlkitError(
                f"--from-table: cannot read {path}: {str(exc).splitlines()[0]}"
            ) from None
    backend = connect(url)
    rows = backend.rows(backend.table(name, role="user-level"))
    return pa.Table.from_pylist(rows)


# --- forget ------------------------------------------------------------------------------------------


@cli.command()
@click.argument("user_ids", nargs=-1, required=True)
@url_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@_handle_errors
def forget(user_ids, url, yes, as_json) -> None:
    """Delete users everywhere and suppress their later events (a privacy request).

    Deletes the rows of each USER_ID and of every id linked to it (anonymous ids, aliases) in
    every table, records a suppression so the collector and `pql import` drop their later
    messages, and rewrites the database file so the deleted data cannot be read from it.
    """
    from ..collect.forget import forget as forget_users

    if not yes and not as_json:
        click.confirm(
            f"Delete {', '.join(user_ids)} everywhere in {url or 'pql.duckdb'}? This cannot be undone",
            abort=True,
            err=True,
        )
    backend = connect(url)
    with _progress(_interactive(as_json)) as say:
        say("deleting and rewriting the database")
        results = forget_users(backend, list(user_ids))
    backend.close()
    if as_json:
        render.emit_json({"forgotten": [r.to_dict() for r in results]})
        return
    for r in results:
        rows = ", ".join(f"{n:,} from {t}" for t, n in sorted(r.deleted.items())) or "no rows"
        render.out.print(f"Forgot {r.user_id} (ids: {', '.join(r.ids)}): deleted {rows}.")
        if r.blanked:
            render.out.print(
                "  Blanked mentions: "
                + ", ".join(f"{n:,} in {t}" for t, n in sorted(r.blanked.items()))
            )
    render.out.print(
        f"Suppressed: later messages for these ids are dropped. Storage: {results[0].rewritten}."
    )


# --- serve -----------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PQL_HOST")
@click.option("--port", default=8088, show_default=True, envvar="PQL_PORT", type=int)
@url_option
@click.option(
    "--log-dir",
    default="pql-log",
    show_default=True,
    envvar="PQL_LOG_DIR",
    type=click.Path(file_okay=False),
    help="The durable log acknowledged events are written to first.",
)
@click.option(
    "--write-key",
    "write_keys",
    multiple=True,
    metavar="SOURCE=KEY",
    help="A write key and the source it names (repeatable); or PQL_WRITE_KEYS=web=k1,app=k2.",
)
@click.option(
    "--table", default="events", show_default=True, help="The events table to store into."
)
@click.option(
    "--resolve-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between rebuilds of pql_users, pql_accounts and pql_identities after new identities.",
)
@_handle_errors
def serve(host, port, url, log_dir, write_keys, table, resolve_every) -> None:
    """Run the Segment-compatible collector (POST /v1/batch, /v1/track, ...)."""
    import os

    try:
        import uvicorn
    except ImportError:
        raise PqlkitError(
            '`pql serve` needs the server extra: pip install "pqlkit[server]"'
        ) from None
    from ..server.app import Collector

    pairs = list(write_keys) or [p for p in os.environ.get("PQL_WRITE_KEYS", "").split(",") if p]
    keys = {}
    for pair in pairs:
        source, sep, key = pair.partition("=")
        if not sep or not source or not key:
            raise PqlkitError(
                f"--write-key {pair!r}: write SOURCE=KEY, e.g. --write-key web=sk_live_123"
            )
        keys[source.strip()] = key.strip()
    if not keys:
        raise PqlkitError("give at least one write key: --write-key SOURCE=KEY (or PQL_WRITE_KEYS)")
    app = Collector(url or "pql.duckdb", log_dir, keys, table=table, resolve_interval=resolve_every)
    render.err.print(
        f"pqlkit collector on http://{host}:{port} (sources: {', '.join(keys)}; log {log_dir})"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")


# --- demo ----------------------------------------------------------------------------------------


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
@_handle_errors
def demo(folder, url, n_accounts, n_users, days, seed, top, as_json) -> None:
    """Generate a realistic product-led SaaS, score it with the starter model, and show the result."""
    from ..demo.generate import DemoSize, describe, generate
    from ..demo.load import load, write_model

    if n_accounts < 1 or n_users < n_accounts or days < 7:
        raise PqlkitError("demo sizes: need --accounts >= 1, --users >= --accounts and --days >= 7")
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_url = url or str(out_dir / "demo.duckdb")
    model_path = out_dir / "pql.yml"
    interactive = _interactive(as_json)
    started = time.perf_counter()
    with _progress(interactive) as say:
        say(f"generating {n_accounts:,} accounts, {n_users:,} users, {days} days of events")
        size = DemoSize(accounts=n_accounts, users=n_users, days=days, seed=seed)
        data = generate(size, end=_demo_end())
        say(f"loading {data.events.num_rows:,} events into {db_url}")
        backend = connect(db_url)
        load(backend, data)
        write_model(model_path)
        engine = Engine(load_model(model_path), backend)
        result = engine.run(data.end, progress=say)
    counts = describe(data)
    users = engine.stored_users(result.as_of, result.model_version)
    breakdown = engine.breakdown(result)
    top_rows = (
        users.filter(users.is_pql)
        .order_by([users.score.desc(), users.user_id])
        .limit(top)
        .to_pyarrow()
        .to_pylist()
    )
    scores_csv = out_dir / "scores.csv"
    export(users.order_by([users.score.desc(), users.user_id]), scores_csv, "csv")
    accounts_csv = out_dir / "accounts.csv"
    accts = engine.stored_accounts(result.as_of, result.model_version)
    export(accts.order_by([accts.score.desc(), accts.account_id]), accounts_csv, "csv")
    seconds = time.perf_counter() - started
    if as_json:
        render.emit_json(
            {
                "data": counts,
                "run": result.to_dict(),
                "breakdown": breakdown,
                "top_pqls": top_rows,
                "database": db_url,
                "model": str(model_path),
                "exports": [str(scores_csv), str(accounts_csv)],
                "seconds": seconds,
            }
        )
        return
    render.out.print(
        f"[bold]pqlkit demo[/bold]: {counts['accounts']:,} accounts, {counts['users']:,} users, "
        f"{counts['events']:,} events over {days} days, {counts['opportunities']:,} opportunities "
        f"({counts['won']:,} won). Scored as of {result.as_of.isoformat(sep=' ')} UTC in {result.seconds:.1f}s."
    )
    render.table(
        breakdown, ["segment", "motion", "users", "pqls"], title="Users by segment and motion"
    )
    render.lead_list(top_rows, f"Top {len(top_rows)} PQLs and why")
    render.out.print(
        f"{result.pqls:,} PQLs and {result.pqas:,} product-qualified accounts.\n"
        f"  database: {db_url} (tables events, users, accounts, outcomes, pql_user_scores, "
        f"pql_account_scores, pql_runs)\n"
        f"  model:    {model_path}\n"
        f"  exports:  {scores_csv}, {accounts_csv}\n"
        f"Next: pql explain {top_rows[0]['user_id'] if top_rows else 'USER_ID'} -m {model_path} --url {db_url} "
        f"--as-of {result.as_of.date().isoformat()}"
    )


def _demo_end() -> datetime:
    """The demo's data ends at the start of today (UTC), so `now` is just after it."""
    now = as_utc(None)
    return datetime(now.year, now.month, now.day)


# --- evaluate / backtest / report ----------------------------------------------------------------


def _duration(option: str, text: str):
    from datetime import timedelta

    from ..model.signals import duration_seconds

    try:
        return timedelta(seconds=duration_seconds(text))
    except ValueError as exc:
        raise PqlkitError(f"{option}: {exc}") from None


def _day_option(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return as_utc(text)
    except PqlkitError:
        raise PqlkitError(
            f"{option} {text!r} is not a date; use ISO 8601, e.g. 2026-09-01"
        ) from None


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


@cli.command()
@model_option
@url_option
@_outcome_options
@click.option("--every", default="7d", show_default=True, help="Time between evaluation dates.")
@click.option(
    "--split", default=None, help="First held-out date (default: 60% of the way through the dates)."
)
@click.option(
    "--until", default=None, help="Treat data after this date as unseen (default: the last event)."
)
@json_option
@_handle_errors
def evaluate(model_path, url, outcome, horizon, every, split, until, as_json) -> None:
    """How well the model's score and PQL flag predicted conversions, after a time split.

    AUC, lift at the top 5% and 10%, precision and recall of the PQL flag (and the MQL flag on
    the same rows), and calibration: the rate dates before --split predict for a score against
    the rate that followed.
    """
    from ..learn.evaluate import evaluate as run

    engine = Engine.open(model_path, url)
    with _progress(_interactive(as_json)) as say:
        ev = run(
            engine,
            outcome=outcome,
            horizon=_duration("--horizon", horizon),
            every=_duration("--every", every),
            split=_day_option("--split", split),
            until=_day_option("--until", until),
            progress=say,
        )
    if as_json:
        render.emit_json(ev.to_dict())
        return
    render.out.print(
        f"[bold]{ev.outcome}[/bold] within {ev.horizon_days} days: calibrated on {len(ev.train_dates)} dates before "
        f"{ev.split:%Y-%m-%d}, measured on {len(ev.test_dates)} dates from it ({ev.rows:,} user-dates, "
        f"{ev.conversions:,} conversions)"
    )
    render.table(
        [
            {"measure": "AUC", "PQL": f"{ev.auc:.3f}", "MQL": f"{ev.mql_auc:.3f}"},
            {
                "measure": "lift top 5% / 10%",
                "PQL": f"{ev.lift_5:.2f} / {ev.lift_10:.2f}",
                "MQL": "-",
            },
            {
                "measure": "flagged",
                "PQL": f"{ev.pql['flagged']:,}",
                "MQL": f"{ev.mql['flagged']:,}",
            },
            {
                "measure": "precision",
                "PQL": _pct(ev.pql["precision"]),
                "MQL": _pct(ev.mql["precision"]),
            },
            {"measure": "recall", "PQL": _pct(ev.pql["recall"]), "MQL": _pct(ev.mql["recall"])},
            {
                "measure": "Brier score",
                "PQL": "-" if ev.brier is None else f"{ev.brier:.4f}",
                "MQL": "-",
            },
        ],
        ["measure", "PQL", "MQL"],
        title="Held-out quality (score and flag)",
    )
    if ev.calibration:
        render.table(
            [
                {
                    "predicted": _pct(c["predicted"]),
                    "observed": _pct(c["observed"]),
                    "user-dates": c["n"],
                }
                for c in ev.calibration
            ],
            ["predicted", "observed", "user-dates"],
            title="Calibration (deciles of the rate the earlier dates predict)",
        )
    render.table(
        [
            {
                "score": b["band"],
                "users": b["users"],
                "converted": b["converted"],
                "rate": _pct(b["rate"]),
            }
            for b in ev.by_band
            if b["users"]
        ],
        ["score", "users", "converted", "rate"],
        title="Conversion by score band",
    )
    for note in ev.notes:
        render.warn(note)


def _replay_options(fn):
    for option in reversed(
        [
            click.option(
                "--from",
                "start",
                default=None,
                help="First date (default: four weeks into the data).",
            ),
            click.option(
                "--to", "end", default=None, help="Last date (default: the last event's day)."
            ),
            click.option(
                "--every", default="7d", show_default=True, help="Time between replayed dates."
            ),
            click.option(
                "--horizon",
                default="30d",
                show_default=True,
                help="How long after a date an opportunity counts.",
            ),
            click.option(
                "--won-horizon",
                default="60d",
                show_default=True,
                help="How long after a date a closed-won deal counts (deals take longer).",
            ),
            click.option(
                "--reps",
                default=2,
                show_default=True,
                type=click.IntRange(min=1),
                help="Sales reps working PQLs (for the capacity threshold).",
            ),
            click.option(
                "--leads-per-rep",
                default=10,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Leads each rep can work per --every period.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _replay_window(engine, start, end):
    from ..learn.backtest import window

    return window(engine, _day_option("--from", start), _day_option("--to", end))


@cli.command()
@model_option
@url_option
@_replay_options
@json_option
@_handle_errors
def backtest(
    model_path, url, start, end, every, horizon, won_horizon, reps, leads_per_rep, as_json
) -> None:
    """Replay the model over history: PQLs each period and what they went on to do.

    As of each date from --from to --to: users who became PQLs (and MQLs) since the date before,
    their conversion to opportunity and closed-won, days to convert, against non-PQLs; PQL vs
    MQL on the same people beside the rates practitioners quote; the threshold that fits sales
    capacity; and monitoring (conversion against its band, drift). Exit code 3 when monitoring
    raises an alert.
    """
    from ..learn import backtest as bt

    engine = Engine.open(model_path, url)
    every_d, hz, won = (
        _duration("--every", every),
        _duration("--horizon", horizon),
        _duration("--won-horizon", won_horizon),
    )
    s, e = _replay_window(engine, start, end)
    with _progress(_interactive(as_json)) as say:
        r = bt.replay(
            engine, bt.replay_dates(s, e, every_d), hz, every_d, won_horizon=won, progress=say
        )
    weeks, sbs = bt.weekly(r), bt.side_by_side(r)
    cap = bt.capacity_curve(r, reps * leads_per_rep)
    mon = bt.monitor(r)
    if as_json:
        render.emit_json(
            {
                "horizon_days": hz.days,
                "won_horizon_days": won.days,
                "every_days": every_d.days,
                "weekly": weeks,
                "pql_vs_mql": sbs,
                "capacity": cap,
                "monitor": mon,
            }
        )
    else:
        render.table(
            [
                {
                    "as of": f"{w['as_of']:%Y-%m-%d}" + ("" if w["complete"] else " (open)"),
                    "users": w["users"],
                    "new PQLs": w["new_pqls"],
                    "to opp.": _pct(w["new_pqls_to_opportunity"]),
                    "to won": _pct(w["new_pqls_to_closed_won"]),
                    "days to opp.": "-"
                    if w["new_pqls_days_to_opportunity"] is None
                    else f"{w['new_pqls_days_to_opportunity']:.0f}",
                    "non-PQLs to opp.": _pct(w["non_pqls_to_opportunity"]),
                    "new MQLs": w["new_mqls"],
                    "MQLs to opp.": _pct(w["new_mqls_to_opportunity"]),
                }
                for w in weeks
            ],
            [
                "as of",
                "users",
                "new PQLs",
                "to opp.",
                "to won",
                "days to opp.",
                "non-PQLs to opp.",
                "new MQLs",
                "MQLs to opp.",
            ],
            title=f"New PQLs every {every_d.days} days: opportunity within {hz.days} days, closed-won within {won.days} "
            "(open: horizon not over yet)",
        )
        g, ref = sbs["groups"], sbs["reference_ranges"]

        def quoted(key: str) -> str:
            lo, hi = ref[key]
            return f"{lo:.0%}-{hi:.0%}"

        render.table(
            [
                {
                    "": "PQL",
                    "people": g["PQL"]["people"],
                    "to opportunity": _pct(g["PQL"]["to_opportunity"]),
                    "quoted": quoted("pql_to_opportunity"),
                    "to closed-won": _pct(g["PQL"]["to_closed_won"]),
                    "quoted ": quoted("pql_to_closed_won"),
                    "share of all opps": _pct(g["PQL"]["share_of_opportunities"]),
                },
                {
                    "": "MQL",
                    "people": g["MQL"]["people"],
                    "to opportunity": _pct(g["MQL"]["to_opportunity"]),
                    "quoted": quoted("mql_to_opportunity"),
                    "to closed-won": _pct(g["MQL"]["to_closed_won"]),
                    "quoted ": "-",
                    "share of all opps": _pct(g["MQL"]["share_of_opportunities"]),
                },
                *(
                    {
                        "": name,
                        "people": o["people"],
                        "to opportunity": _pct(o["to_opportunity"]),
                        "quoted": "",
                        "to closed-won": _pct(o["to_closed_won"]),
                        "quoted ": "",
                        "share of all opps": "",
                    }
                    for name, o in sbs["overlap"].items()
                ),
            ],
            [
                "",
                "people",
                "to opportunity",
                "quoted",
                "to closed-won",
                "quoted ",
                "share of all opps",
            ],
            title=f"PQL vs MQL on the same {sbs['people']:,} people (each once, at the first date they qualified; "
            f"base rate {_pct(sbs['base_rate'])})",
        )
        best = cap["recommended"]
        render.out.print(
            f"Capacity {cap['capacity_per_week']:g} leads per {every_d.days} days: threshold "
            f"[bold]{cap['recommended_threshold']}[/bold] works {best['worked_conversions_per_week']:.1f} opportunities "
            f"from {best['leads_per_week']:.1f} new leads ({_pct(best['conversion'])} convert; the model's threshold is "
            f"{engine.model.thresholds.pql_score:g}). `pql report` draws the whole curve."
        )
        for alert in mon["alerts"]:
            render.warn(alert)
        if not mon["alerts"]:
            render.out.print("Monitoring: conversion within its expected band, no drift.")
    if mon["alerts"]:
        sys.exit(3)


@cli.command()
@model_option
@url_option
@_replay_options
@click.option(
    "-o",
    "--out",
    "out_path",
    default="pql-report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@json_option
@_handle_errors
def report(
    model_path, url, start, end, every, horizon, won_horizon, reps, leads_per_rep, out_path, as_json
) -> None:
    """Write one self-contained HTML report (opens offline): funnel, score distribution by
    outcome, signal lift, calibration, PQL vs MQL, the weekly backtest and the capacity curve."""
    from ..report.build import CHARTS, gather
    from ..report.build import render as render_html

    engine = Engine.open(model_path, url)
    s, e = _replay_window(engine, start, end)
    with _progress(_interactive(as_json)) as say:
        findings = gather(
            engine,
            horizon=_duration("--horizon", horizon),
            won_horizon=_duration("--won-horizon", won_horizon),
            every=_duration("--every", every),
            capacity=reps * leads_per_rep,
            start=s,
            end=e,
            progress=say,
        )
        html = render_html(findings)
    target = Path(out_path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    if as_json:
        render.emit_json(
            {
                "path": str(target),
                "bytes": len(html.encode()),
                "charts": list(CHARTS),
                "alerts": findings["monitor"]["alerts"],
            }
        )
        return
    render.out.print(
        f"Wrote {target} ({len(html.encode()) / 1024:.0f} KB, {len(CHARTS)} charts); open it in a browser."
    )
