"""The `pql` command: a thin shell that parses input, calls a use case, renders the result.

Errors are mapped once, in the group: a library error (PqlkitError) is one readable message
on stderr and exit code 1; an error the database reports is exit 1 too; usage errors exit 2;
anything else is a bug: exit 70, and PQL_DEBUG=1 shows the traceback. `pql --help` and
`pql init` import no Ibis, DuckDB or pyarrow (the commands import the use cases on use).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from . import render

EXIT_ERROR = 1
EXIT_INTERNAL = 70


class Group(click.Group):
    """The command group: maps every command's errors in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            render.error("interrupted; nothing was half-written (runs are atomic)")
            sys.exit(130)
        except Exception as exc:
            sys.exit(_exit_code(exc))


def _exit_code(exc: Exception) -> int:
    from ..errors import PqlkitError

    if isinstance(exc, PqlkitError):
        render.error(str(exc))
        return EXIT_ERROR
    if os.environ.get("PQL_DEBUG"):
        raise exc
    from ..backends import driver_errors, first_line

    if isinstance(exc, driver_errors()):  # the database said no: not a bug of ours
        render.error(f"the database reported an error: {first_line(exc)}")
        return EXIT_ERROR
    text = str(exc).strip()
    render.error(
        f"unexpected {type(exc).__name__}: {text.splitlines()[0] if text else ''}\n"
        "This is a bug in pqlkit; rerun with PQL_DEBUG=1 for the traceback and report it."
    )
    return EXIT_INTERNAL


@click.group(
    cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="pqlkit", prog_name="pql")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """pqlkit: Product-Qualified Leads from your product data, scored in your database."""

    def close_connections() -> None:  # a command's connections close when it ends
        if "pqlkit.backends" in sys.modules:
            from ..backends import close_opened_since

            close_opened_since(mark)

    mark = sys.modules["pqlkit.backends"].opened_count() if "pqlkit.backends" in sys.modules else 0
    ctx.call_on_close(close_connections)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `pql` command; callable from code with an argument list."""
    return cli.main(args=argv, prog_name="pql")


from . import collecting, crm, demo, handoff, learning, replay, scoring, ui  # noqa: E402,F401  (register the commands)

__all__ = ["cli", "main"]
