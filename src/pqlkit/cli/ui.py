"""`pql ui` (the web app for reps and RevOps) and `pql users` (who may sign in)."""

from __future__ import annotations

import os
import sys

import click

from . import render
from .group import cli
from .options import json_option, model_option, open_session, url_option


@cli.command()
@model_option
@url_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--proposal",
    type=click.Path(dir_okay=False),
    default=None,
    help="A proposed model to show as a diff on the model page [default: <model>.proposed.yml].",
)
@click.option(
    "--https-only",
    is_flag=True,
    help="Send the session cookie over HTTPS only (behind a TLS-terminating proxy).",
)
@click.option(
    "--keep-open",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a DuckDB file stays open after the last request (0: closed after each).",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="CIDR",
    help="A reverse proxy whose X-Forwarded-For names the client (repeatable; else "
    "$PQL_TRUSTED_PROXIES, comma-separated). Without one, the peer's address is the client's.",
)
def ui(model_path, url, host, port, proposal, https_only, keep_open, trusted_proxies) -> None:
    """Serve the web app: the PQL inbox, leads, accounts, model health and deliveries.

    Sign-in only; create users with `pql users add`. Sessions are kept in the database;
    $PQL_UI_SECRET signs the cookies of browsers that signed in before (without it, a random
    key: those browsers are strangers again when the app stops)."""
    from ..usecases import ui as use

    key, from_env = use.secret()
    use.require_ui()
    from ..web.app import create_app

    app = create_app(
        model_path,
        url,
        secret=key,
        proposal=proposal,
        https_only=https_only,
        keep_open=keep_open,
        trusted_proxies=trusted_proxies or [os.environ.get(use.TRUSTED_ENV, "")],
    )
    if not from_env:
        render.warn(
            f"${use.SECRET_ENV} is not set: a random key signs the cookies of browsers that "
            "signed in before, so they count as new ones after this process stops"
        )
    import uvicorn

    render.err.print(f"pqlkit web app on http://{host}:{port} (model {model_path})")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


@cli.group()
def users() -> None:
    """Who may sign in to the web app (`pql ui`)."""


@users.command("add")
@click.argument("name")
@url_option
@click.option("--role", type=click.Choice(["rep", "admin"]), default="rep", show_default=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
@click.option("--reset", is_flag=True, help="Give an existing user a new password and role.")
@json_option
def users_add(name, url, role, password_stdin, reset, as_json) -> None:
    """Create a user NAME (asks for the password twice)."""
    from ..usecases import ui as use

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = use.add_user(open_session(url), name, role, password, reset=reset)
    if as_json:
        render.emit_json({"name": user.name, "role": user.role, "reset": reset})
        return
    render.out.print(f"{'Reset' if reset else 'Added'} {user.name} ({user.role}).")


@users.command("list")
@url_option
@json_option
def users_list(url, as_json) -> None:
    """List who may sign in."""
    from ..usecases import ui as use

    rows = use.users(open_session(url))
    if as_json:
        render.emit_json(rows)
        return
    render.table(rows, ["name", "role", "created_at", "updated_at"], title="Web app users")


@users.command("remove")
@click.argument("name")
@url_option
def users_remove(name, url) -> None:
    """Remove a user (their sessions end at once)."""
    from ..usecases import ui as use

    use.remove_user(open_session(url), name)
    render.out.print(f"Removed {name}.")
