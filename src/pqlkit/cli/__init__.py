"""The `pql` command: a thin shell that parses input, calls a use case, renders the result.

The group and its error mapping are in :mod:`.group`; each module here adds its commands to
it (importing the group, never this package, so no import goes round in a circle), and is
imported when one of its commands is asked for (``group.COMMAND_MODULES``). `pql --help` and
`pql init` import no Ibis, DuckDB or pyarrow (the commands import the use cases on use).
"""

from __future__ import annotations

from .group import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, Group, cli, main

__all__ = ["EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE", "Group", "cli", "main"]
