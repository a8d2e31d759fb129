"""The `pql` command group: where every command's errors are mapped, once.

Errors are mapped once, in the group. A library error (PqlkitError) or a driver's error (mapped
by type, as `Backend.errors` does) exits with its class's exit code: 1, or 75 when the same
command may work later (the database is locked or down); usage errors exit 2; Ctrl-C 130;
anything else is a bug: exit 70, and PQL_DEBUG=1 shows the traceback. Without --json the
error is one readable message on stderr, printed as text (no markup, no emoji codes), never a
traceback; with --json it is one JSON object on stdout: code, family, message, exit_code,
retryable and, where known, file, line, field and hint (README, "Exit codes").
`pql --help` and `pql init` import no Ibis, DuckDB or pyarrow (the commands import the use
cases on use). A command's module is imported when the command is asked for
(:data:`COMMAND_MODULES`), so `pql explain` does not pay for importing `pql serve`'s.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from . import render
from .options import JSON_MODE

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
_ARGV = "pqlkit.argv"

#: Each command of `pql` and the module of this package that adds it, imported when the
#: command is asked for (tests/test_cli.py checks that it names every command).
COMMAND_MODULES = {
    **dict.fromkeys(("init", "validate", "score", "accounts", "explain", "compile"), "scoring"),
    **dict.fromkeys(("import", "doctor", "forget", "migrate", "serve"), "collecting"),
    **dict.fromkeys(("compare", "history", "promote"), "champion"),
    **dict.fromkeys(("deliver", "deliveries", "feedback"), "handoff"),
    **dict.fromkeys(("learn", "evaluate"), "learning"),
    **dict.fromkeys(("backtest", "report"), "replay"),
    **dict.fromkeys(("tracking", "tracking-plan"), "tracking"),
    **dict.fromkeys(("ui", "users"), "ui"),
    "demo": "demo",
    "sync": "crm",
}


def load_commands(name: str | None = None) -> None:
    """Import the module that adds the command ``name``; every module for None (the help
    lists every command) or a name not in the table (a command added since, found anyway)."""
    module = COMMAND_MODULES.get(name) if name is not None else None
    for m in [module] if module else sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__package__}.{m}")


class Group(click.Group):
    """The command group: maps every command's errors in one place."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self is cli and cmd_name not in self.commands:
            load_commands(cmd_name)
            if cmd_name not in self.commands:
                load_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        if self is cli:
            load_commands()
        return super().list_commands(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(_ARGV, list(args))  # for a usage error under --json (see _as_json)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except click.ClickException as exc:
            if not _as_json(ctx, exc):
                raise  # click prints it with the usage line
            code = "usage" if isinstance(exc, click.UsageError) else "error"
            payload = {"code": code, "family": code, "message": exc.format_message()}
            _fail(payload, exc.exit_code, as_json=True)
        except KeyboardInterrupt:
            message = "interrupted; nothing was half-written (runs are atomic)"
            payload = {"code": "interrupted", "family": "interrupted", "message": message}
            _fail(payload, EXIT_INTERRUPTED, as_json=bool(ctx.meta.get(JSON_MODE)))
        except Exception as exc:
            payload, exit_code = _describe(exc)
            _fail(payload, exit_code, as_json=bool(ctx.meta.get(JSON_MODE)))


def _describe(exc: Exception) -> tuple[dict[str, Any], int]:
    """The error's JSON form and exit code."""
    from ..errors import PqlkitError

    if isinstance(exc, PqlkitError):
        return exc.to_dict(), exc.exit_code
    if os.environ.get("PQL_DEBUG"):
        raise exc
    if "pqlkit.backends" in sys.modules:  # a driver error outside every Backend.errors block
        from ..backends import mapped

        known = mapped(exc, "the database reported an error")
        if known is not None:
            return known.to_dict(), known.exit_code
    text = str(exc).strip()
    payload = {
        "code": "internal",
        "family": "internal",
        "message": f"unexpected {type(exc).__name__}: {text.splitlines()[0] if text else ''}",
        "hint": "This is a bug in pqlkit; rerun with PQL_DEBUG=1 for the traceback and report it",
    }
    return payload, EXIT_INTERNAL


def _as_json(ctx: click.Context, exc: click.ClickException) -> bool:
    """Whether the failing command was given --json. Its option notes that when it is read;
    a usage error may come before it is, so the arguments are looked at then."""
    if ctx.meta.get(JSON_MODE):
        return True
    failed = getattr(exc, "ctx", None)
    argv: list[str] = ctx.meta.get(_ARGV, [])
    argv = argv[: argv.index("--")] if "--" in argv else argv
    return (
        failed is not None
        and "--json" in argv
        and any(p.name == "as_json" for p in failed.command.params)
    )


def _fail(payload: dict[str, Any], exit_code: int, *, as_json: bool) -> None:
    """Print the error (one JSON object on stdout, or one message on stderr) and exit."""
    payload = {**payload, "exit_code": exit_code, "retryable": payload.get("retryable", False)}
    if as_json:
        render.emit_json(payload)
    elif "pqlkit.logs" in sys.modules and sys.modules["pqlkit.logs"].active() == "json":
        # a running part's stderr stays JSON lines to the last (`--log-format json`)
        fields = {k: v for k, v in payload.items() if k != "message"}
        sys.modules["pqlkit.logs"].get("cli").error(payload["message"], extra=fields)
    else:
        hint = payload.get("hint")
        message = payload["message"]
        render.error(f"{message}\n{hint}" if hint and hint not in message else message)
    sys.exit(exit_code)


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


__all__ = ["EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE", "Group", "cli", "main"]
