"""Stored score tables written by an older version, brought up to this one's columns.

A users' scores table from before the ranking (no ``points``, ``likelihood``, ``grade``,
``ranking``) keeps its history: the columns are added, empty for the old runs, instead of the
table being refused. Any other difference is refused, naming the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ibis
import ibis.expr.schema as sch

from ..backends.base import Backend
from ..errors import BackendError

#: The columns this version added to the users' scores, and so may add to an older table.
ADDED_COLUMNS = ("points", "likelihood", "grade", "ranking")


def ensure_columns(
    backend: Backend, name: str, columns: Sequence[str], schema: Callable[[], sch.Schema]
) -> None:
    """Make the stored table ``name`` hold exactly ``columns``: add :data:`ADDED_COLUMNS` when
    only they are missing (``schema`` gives their types, asked for only then), else refuse."""
    old = backend.table(name)
    missing = [c for c in ADDED_COLUMNS if c not in old.columns]
    if missing and sorted([*old.columns, *missing]) == sorted(columns):
        wanted = schema()
        # read whole, then written back: a table cannot be recreated from itself in one
        # statement (its history's size, once, on the upgrade)
        rows = backend.arrow(
            backend.compile(
                old.select(
                    *[
                        (old[c] if c in old.columns else ibis.null(t)).cast(t).name(c)
                        for c, t in wanted.items()
                    ]
                )
            )
        )
        # typed as written (a driver returns an all-null column as type null)
        backend.write_table(name, rows.cast(wanted.to_pyarrow()), overwrite=True)
        old = backend.table(name)
    if sorted(old.columns) != sorted(columns):  # Spark lists partitions last
        raise BackendError(
            f"table {name} has columns {', '.join(old.columns)}, which this version "
            "of pqlkit does not write; rename or drop it to start a new history"
        )


__all__ = ["ADDED_COLUMNS", "ensure_columns"]
