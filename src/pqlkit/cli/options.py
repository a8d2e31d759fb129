"""Options defined once and shared by the commands that take them; progress for people is
:func:`pqlkit.cli.render.progress` (named here too, where the commands import it from)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from .render import interactive as interactive
from .render import progress as progress

model_option = click.option(
    "-m",
    "--model",
    "model_path",
    default="pql.yml",
    show_default=True,
    envvar="PQL_MODEL",
    type=click.Path(dir_okay=False),
    help="The model file.",
)
url_option = click.option(
    "--url",
    default=None,
    envvar="PQL_DATABASE_URL",
    help="Database: a DuckDB file (default pql.duckdb) or postgresql://user@host:port/db.",
)
as_of_option = click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Score as of this time (ISO 8601, UTC unless an offset is given). Default: now.",
)
JSON_MODE = "pqlkit.json"
"""Key in the click context's meta (shared by every context of a command line) set when the
command was given --json: the command group then prints an error as JSON too."""


def _note_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_MODE] = True
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=_note_json,
    help="Print JSON for programs (an error too: one object with its code, on stdout).",
)


def outcome_options(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def pct(v: float | None) -> str:
    """A share as a percentage; "-" when there is none (None, or NaN: nothing to divide by)."""
    return "-" if v is None or math.isnan(v) else f"{v:.1%}"


def num(v: float | None, digits: int = 3) -> str:
    """A figure such as an AUC; "-" when there is none (None or NaN)."""
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def open_session(
    url: str | None, model_path: str | None = None, *, challenger: str | None = None
) -> Any:
    """The command's session (:class:`pqlkit.usecases.session.Session`): the model loaded first
    (a bad model opens no database), then one connection, closed when the command ends."""
    from ..usecases.session import Session

    return Session.open(url, model_path, challenger=challenger)
