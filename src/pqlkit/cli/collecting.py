"""`pql import`, `forget`, `serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import render
from .group import cli
from .options import interactive, json_option, open_session, progress, url_option


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
def import_(files, fmt, maps, table, source, strict, url, as_json) -> None:
    """Import events from CSV, JSON lines, Parquet, or Segment, RudderStack and Amplitude exports."""
    from ..usecases.collecting import import_events, parse_mapping

    mapping = parse_mapping(maps)
    with progress(interactive(as_json)) as say:
        report = import_events(
            open_session(url),
            list(files),
            fmt=fmt,
            mapping=mapping,
            table=table,
            source=source,
            strict=strict,
            progress=lambda step, n: say(f"{step}: {n:,} rows"),
        )
    if as_json:
        render.emit_json(report.to_dict())
        return
    for f in report.files:
        reasons = ", ".join(f"{n} {why}" for why, n in f.reasons().most_common(3))
        render.out.print(
            render.escape(
                f"{f.path} ({f.format}): {f.read:,} rows read, {f.accepted:,} accepted"
                + (
                    f", {f.identity_messages:,} identify/group/alias messages kept for identities"
                    if f.identity_messages
                    else ""
                )
                + (f", {f.suppressed:,} rows of forgotten users dropped" if f.suppressed else "")
                + (f", {f.skipped:,} skipped ({reasons})" if f.skipped else "")
            )
        )
        for line, why in f.problems[:5]:
            render.warn(f"{f.path}:{line}: {why}")
        if f.skipped > 5:
            render.warn(f"... and {f.skipped - 5} more skipped rows (--json lists them)")
    render.out.print(
        f"Imported {report.imported:,} events into {render.escape(report.table)} (source "
        f"{render.escape(report.source)}); {report.duplicates:,} duplicates not stored again; "
        f"{report.skipped:,} rows skipped; {report.seconds:.1f}s."
    )


@cli.command()
@click.argument("user_ids", nargs=-1, required=True)
@url_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def forget(user_ids, url, yes, as_json) -> None:
    """Delete users everywhere and suppress their later events (a privacy request).

    Deletes the rows of each USER_ID and of every id linked to it (anonymous ids, aliases) in
    every table, records a suppression so the collector and `pql import` drop their later
    messages, and rewrites the database file so the deleted data cannot be read from it.
    """
    from ..usecases.collecting import forget_users

    if not yes and not as_json:
        click.confirm(
            f"Delete {', '.join(user_ids)} everywhere in {url or 'pql.duckdb'}? This cannot be undone",
            abort=True,
            err=True,
        )
    with progress(interactive(as_json)) as say:
        say("deleting and rewriting the database")
        results = forget_users(open_session(url), list(user_ids))
    if as_json:
        render.emit_json({"forgotten": [r.to_dict() for r in results]})
        return
    for r in results:
        rows = ", ".join(f"{n:,} from {t}" for t, n in sorted(r.deleted.items())) or "no rows"
        render.out.print(
            render.escape(f"Forgot {r.user_id} (ids: {', '.join(r.ids)}): deleted {rows}.")
        )
        if r.blanked:
            render.out.print(
                "  Blanked mentions: "
                + ", ".join(f"{n:,} in {t}" for t, n in sorted(r.blanked.items()))
            )
    render.out.print(
        f"Suppressed: later messages for these ids are dropped. Storage: {results[0].rewritten}."
    )


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
@click.option(
    "--model",
    "model_path",
    default=None,
    envvar="PQL_MODEL",
    type=click.Path(dir_okay=False),
    help="Score live with this model: rescore touched users after each flush, hand off "
    "transitions within seconds, answer GET /v1/prompts/{user_id} and POST /v1/feedback.",
)
@click.option(
    "--full-every",
    default="1h",
    show_default=True,
    help="With --model: how often a full pass scores everyone (what time alone changes: "
    "windows, decay).",
)
@click.option(
    "--product-key",
    "product_keys",
    multiple=True,
    metavar="KEY",
    help="With --model: a key the product sends as 'Authorization: Bearer KEY' to the prompt "
    "and feedback API (repeatable); or PQL_PRODUCT_KEY.",
)
@click.option(
    "--ui",
    "with_ui",
    is_flag=True,
    help="With --model: serve the web app too, on the same port (the whole system in one "
    "command; sessions signed with $PQL_UI_SECRET).",
)
@click.option(
    "--https-only", is_flag=True, help="With --ui: session cookies only over HTTPS (behind TLS)."
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="CIDR",
    help="With --ui: a reverse proxy whose X-Forwarded-For names the client (repeatable; else "
    "$PQL_TRUSTED_PROXIES).",
)
@click.option(
    "--tracking-plan",
    "plan_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Without --model: count the requests that break this model's tracking plan (unknown "
    "events, missing or mistyped properties) in /metrics and /health, refusing none.",
)
@click.option(
    "--metrics-key",
    "metrics_keys",
    multiple=True,
    metavar="KEY",
    help="A key to read GET /metrics with, sent as 'Authorization: Bearer KEY' (repeatable); "
    "or PQL_METRICS_KEY. Without one, /metrics answers 401.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="What the server, the flusher, deliveries and CRM syncs write on stderr: text, or "
    "JSON lines for a log shipper (one object a line: time, level, part, message, fields); "
    "or $PQLKIT_LOG_FORMAT.",
)
def serve(
    host,
    port,
    url,
    log_dir,
    write_keys,
    table,
    resolve_every,
    model_path,
    full_every,
    product_keys,
    with_ui,
    metrics_keys,
    https_only,
    trusted_proxies,
    log_format,
    plan_path,
) -> None:
    """Run the Segment-compatible collector (POST /v1/batch, /v1/track, ...); with --model,
    score live and hand off (and sync CRMs on the model's schedules); with --ui too, the web
    app on the same port: the whole system."""
    import faulthandler
    import sys

    err = sys.__stderr__
    if err is not None and not faulthandler.is_enabled():  # a fatal signal (an abort in
        faulthandler.enable(file=err)  # DuckDB, a segfault) prints every thread's stack
    stopping = _exit_zero_after_draining()  # from here on a SIGTERM stops the server cleanly
    from .. import logs
    from ..server.app import Collector
    from ..usecases.collecting import check_writable, collector
    from ..usecases.collecting import write_keys as parse_keys

    as_json = logs.setup(log_format) == "json"
    keys = parse_keys(write_keys)
    with open_session(url) as checked:  # closed before serving: the flusher takes turns with it
        check_writable(checked, table=table)
    setup = collector(
        url,
        log_dir,
        keys,
        table=table,
        resolve_every=resolve_every,
        model=model_path,
        full_every=full_every,
        product_keys=list(product_keys),
        metrics_keys=list(metrics_keys),
        tracking_plan=plan_path,
    )
    app: Any = Collector.from_setup(setup)
    if with_ui:
        app = _with_web_app(app, model_path, url, https_only, list(trusted_proxies), as_json)
    started = (
        f"pqlkit collector on http://{host}:{port} (sources: {', '.join(keys)}; log {log_dir})"
        + (f"; web app on http://{host}:{port}/inbox" if with_ui else "")
    )
    if as_json:
        logs.get("server").info(started, extra={"host": host, "port": port, "ui": with_ui})
    else:
        render.err.print(started)
    server = _uvicorn_server(app, host, port, as_json)
    stopping.append(server)
    if stopping[0]:  # a SIGTERM came while starting: nothing was acknowledged yet
        return
    server.run()
    if not server.started:  # the port was taken (uvicorn said why): as uvicorn.run exits
        raise SystemExit(3)
    running = app.collector if with_ui else app
    if running.flusher is not None and running.flusher.gave_up:
        from ..errors import BackendUnavailable

        raise BackendUnavailable(
            f"the flusher kept stopping ({running.flusher.last_death}); everything acknowledged "
            "is in the log and is stored when pql serve starts again"
        )


def _uvicorn_server(app: Any, host: str, port: int, as_json: bool) -> Any:
    """The HTTP server `pql serve` runs. X-Forwarded-For is the web app's to trust or not
    (--trusted-proxy), never uvicorn's; with JSON lines, uvicorn's loggers write through
    pqlkit's (log_config None keeps them)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
        log_config=None if as_json else uvicorn.config.LOGGING_CONFIG,
    )
    return uvicorn.Server(config)


@cli.command()
@url_option
@click.option(
    "--table", default="events", show_default=True, help="The events table the collector writes."
)
@json_option
def migrate(url, table, as_json) -> None:
    """Upgrade a database an older pqlkit made, in place: add the columns the collector, the
    importer and the demo now write (existing rows keep their values)."""
    from ..usecases.collecting import migrate as run

    added = run(open_session(url), table=table)
    if as_json:
        render.emit_json({"added": added})
        return
    if not added:
        render.out.print("Nothing to do: every table has the columns pqlkit writes.")
    for name, columns in added.items():
        render.out.print(render.escape(f"{name}: added {', '.join(columns)}"))


def _with_web_app(
    collector: Any,
    model_path: str | None,
    url: str | None,
    https_only: bool = False,
    trusted_proxies: list[str] | None = None,
    as_json: bool = False,
) -> Any:
    """The collector and the web app behind one port (see pqlkit.server.combined)."""
    from ..errors import PqlkitError
    from ..server.combined import Combined
    from ..usecases import ui as use

    if model_path is None:
        raise PqlkitError("--ui serves the web app over the live state: give --model pql.yml too")
    use.require_ui()
    key, from_env = use.secret()
    if not from_env:
        warning = (
            f"${use.SECRET_ENV} is not set: sessions are signed with a random key and end when "
            "this process stops"
        )
        if as_json:
            from .. import logs

            logs.get("web").warning(warning)
        else:
            render.warn(warning)
    import os

    from ..web.app import create_app

    web = create_app(
        model_path,
        url,
        secret=key,
        https_only=https_only,
        trusted_proxies=trusted_proxies or [os.environ.get(use.TRUSTED_ENV, "")],
    )
    return Combined(collector, web)


def _exit_zero_after_draining() -> list[Any]:
    """SIGTERM (systemd's stop, `docker stop`) drains: uvicorn stops taking requests, the
    collector's lifespan stores everything acknowledged, then the process exits 0. uvicorn
    raises the signal again once it has drained, and this handler is what it finds then (the
    default action would end the process with -15).

    Installed before anything is set up, it also covers a SIGTERM that comes before uvicorn
    installs its own handler: the returned list starts with whether one came, and once the
    server is appended, a late one before uvicorn's handler is there asks the server to stop
    (uvicorn checks after its start-up, so the lifespan still stops what it started)."""
    import signal

    stopping: list[Any] = [False]

    def stop(*_: Any) -> None:
        stopping[0] = True
        for server in stopping[1:]:
            server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    return stopping


@cli.command()
@url_option
@click.option(
    "--table", default="events", show_default=True, help="The events table the collector writes."
)
@json_option
def doctor(url, table, as_json) -> None:
    """Check the database: every table read through (a damaged file is found), and every table
    pqlkit writes has the columns it needs; says what to do. Exit 1 when something is wrong."""
    from ..usecases.doctor import checkup

    report = checkup(open_session(url), events=table)
    if as_json:
        render.emit_json(report.to_dict())
    else:
        render.table(report.tables, ["table", "rows", "error"], title="Tables")
        for name, columns in report.lacking.items():
            render.warn(f"{name} lacks {', '.join(columns)}")
        for line in report.advice:
            render.warn(line)
        if report.ok:
            render.out.print("The database is whole and pqlkit can write to it.")
    if not report.ok:
        raise SystemExit(1)
