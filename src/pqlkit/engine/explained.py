"""One user's explanation by the plain-Python decision path, and what compiled SQL kept in the
database is keyed by. Light: no Ibis, so that a cold `pql explain` whose SQL an earlier run
compiled reads the user's features with the stored SQL and decides here, in a fraction of
the time importing Ibis would take (:func:`cached_explanation`).

    Engine.explain        compiles (or finds) the SQL, runs it, then explain_row
    cached_explanation    finds the SQL through a light reader (backends.quick), runs it,
                          then explain_row; None when nothing is stored for this model
    cached_check          `pql validate`'s data checks alike: the one query Engine.check
                          stored, its counts read by features.findings.data_findings
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ..errors import PqlkitError
from ..features.findings import data_findings
from ..features.names import ROLES, env_of
from ..model.load import LoadedModel
from ..scoring.decide import decide, signal_breakdown
from ..scoring.ops import PyOps
from .results import Explanation

AS_OF_SENTINEL = datetime(1901, 2, 3, 4, 5, 6, 789012)
"""Expressions are compiled once for this stand-in as_of; the SQL is then reused for any as_of
by swapping its one timestamp literal (see features.signals.AsOf)."""
USER_SENTINEL = "pql-explain-user-5f0c2b9e"
"""A stand-in user id in the compiled SQL of `explain`, swapped for the id asked about."""
STORED_LAYOUT = "4"
"""The layout of :data:`~pqlkit.engine.core.FEATURES` and of the SQL that writes and reads it,
part of every compiled statement's cache key: SQL compiled for another layout is never reused."""
CHECK_KIND = "check"
"""The key prefix of the thorough data check's one query (features.checks.check_query)."""


def explain_row(loaded: LoadedModel, row: Mapping[str, Any], when: datetime) -> Explanation:
    """The explanation of one user's row of features, by the plain-Python decision logic."""
    fields = env_of(row)
    env = {fields[c]: v for c, v in row.items() if c in fields}
    ops = PyOps()
    outputs = decide(loaded.model, env, ops)
    outputs["last_seen_at"] = row.get("last_seen_at")
    return Explanation(
        user_id=str(row["user__user_id"]),
        as_of=when,
        model_version=loaded.version,
        outputs=outputs,
        signals=signal_breakdown(loaded.model, env, ops),
        attributes={k: v for k, v in env.items() if not k.startswith("signal.")},
    )


def unknown_user(user_id: str, when: datetime) -> PqlkitError:
    return PqlkitError(
        f"no user {user_id!r} known as of {when.isoformat()} (not in the users table, "
        "or created after as_of); check the id or pass a later --as-of"
    )


# --- what compiled SQL is keyed by ----------------------------------------------------------


def source_tables(loaded: LoadedModel) -> dict[str, str] | None:
    """Each source's table by role; None when a source is a file (its schema is read by
    opening it, which only the Ibis backends do)."""
    tables = {}
    for role in ROLES:
        source = getattr(loaded.model.sources, role)
        if source is None:
            continue
        if source.table is None:
            return None
        tables[role] = source.table
    return tables


def fingerprint(loaded: LoadedModel, backend: Any, schemas: Mapping[str, Any]) -> str:
    """What compiled SQL depends on: versions, the model file, the sources and their
    schemas (``schemas`` by role), the dialect and its capabilities."""
    from importlib.metadata import version

    from .._version import __version__

    parts = {
        "versions": [__version__, version("ibis-framework"), version("sqlglot")],
        "model": loaded.version,
        "base": str(loaded.base_dir),
        "backend": [backend.name, backend.bitmask_days],
        "schemas": dict(schemas),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def table_schemas(tables: Mapping[str, str], reader: Any) -> dict[str, Any]:
    """The catalog's columns of each source table, by role (a missing table: None)."""
    columns = reader.source_columns(list(dict.fromkeys(tables.values())))
    return {role: columns[name] for role, name in tables.items()}


# --- a cold explain -------------------------------------------------------------------------


class Reader(Protocol):
    """What :func:`cached_explanation` needs of a database (backends.quick.QuickDuckDB)."""

    name: str
    bitmask_days: bool

    def source_columns(self, names: list[str]) -> dict[str, list[list[str]] | None]: ...

    def cached_sql(self, key: str) -> str | None: ...

    def rows(self, sql: str) -> list[dict[str, Any]] | None: ...

    def timestamp_literal(self, when: datetime) -> str: ...

    def string_literal(self, text: str) -> str: ...


def cached_explanation(
    loaded: LoadedModel, reader: Reader, user_id: str, when: datetime
) -> Explanation | None:
    """:meth:`Engine.explain <pqlkit.engine.core.Engine.explain>` from the SQL an earlier
    explain compiled for this model and these source schemas; None when none is stored (or
    a source is a file): the engine then compiles it."""
    tables = source_tables(loaded)
    if tables is None:
        return None
    key = f"explain:{STORED_LAYOUT}:{fingerprint(loaded, reader, table_schemas(tables, reader))}"
    template = reader.cached_sql(key)
    if template is None:
        return None
    sql = template.replace(
        reader.timestamp_literal(AS_OF_SENTINEL), reader.timestamp_literal(when)
    ).replace(reader.string_literal(USER_SENTINEL), reader.string_literal(str(user_id)))
    rows = reader.rows(sql)
    if rows is None:  # values the driver reads otherwise than the engine does
        return None
    if not rows:
        raise unknown_user(user_id, when)
    return explain_row(loaded, rows[0], when)


def cached_check(loaded: LoadedModel, reader: Reader, started: Any = None) -> list[str] | None:
    """:meth:`Engine.check(thorough=True) <pqlkit.engine.core.Engine.check>` from the query an
    earlier check stored for this model and these source schemas: raises DataQualityError or
    returns the warnings, as the engine does; None when none is stored (or a source is a
    file, or the counts come back in types the driver reads otherwise): the engine checks.
    A stored query means the sources bound for these very schemas: a missing table or
    column changes the schemas, so the engine binds them again and says what is wrong.

    ``started``: the newest stored check, already running (backends.quick.Started, begun
    while the model loaded); its rows are used only when it is this very query."""
    tables = source_tables(loaded)
    key = None
    if tables is not None:
        schemas = table_schemas(tables, reader)
        key = f"{CHECK_KIND}:{STORED_LAYOUT}:{fingerprint(loaded, reader, schemas)}"
    if started is not None and started.key == key:
        rows = started.rows()
    else:
        if started is not None:
            started.cancel()
        sql = None if key is None else reader.cached_sql(key)
        rows = None if sql is None else reader.rows(sql)
    if not rows:
        return None
    return data_findings(rows[0], loaded, thorough=True)
