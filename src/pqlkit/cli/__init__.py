"""The `pql` command: a thin shell that parses input, calls the engine and renders output.

Library errors become one readable line (or a list) on stderr and exit code 1; usage errors
exit 2. Set PQL_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import click

from ..errors import ModelValidationError, PqlkitError
from . import render

EXIT_ERROR = 1
EXIT_INTERNAL = 70


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModelValidationError as exc:
            render.error(str(exc))
            sys.exit(EXIT_ERROR)
        except PqlkitError as exc:
            render.error(str(exc))
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            render.error("interrupted; nothing was half-written (runs are atomic)")
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("PQL_DEBUG"):
                raise
            from ..backends import driver_errors, first_line

            if isinstance(exc, driver_errors()):  # the database said no: not a bug of ours
                render.error(f"the database reported an error: {first_line(exc)}")
                sys.exit(EXIT_ERROR)
            render.error(
                f"unexpected {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}\n"
                "This is a bug in pqlkit; rerun with PQL_DEBUG=1 for the traceback and report it."
            )
            sys.exit(EXIT_INTERNAL)

    return wrapper


# Options defined once, shared by the commands that take them.
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
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pqlkit", prog_name="pql")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """pqlkit: Product-Qualified Leads from your product data, scored in your database."""
    from ..backends import close_opened_since, opened_count

    # A command's connections close when it ends (a DuckDB file is free for others at once).
    mark = opened_count()
    ctx.call_on_close(lambda: close_opened_since(mark))


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `pql` command; callable from code with an argument list."""
    return cli.main(args=argv, prog_name="pql")


from . import commands as _commands  # noqa: E402,F401  (registers the commands)

__all__ = ["as_of_option", "cli", "json_option", "main", "model_option", "url_option"]
