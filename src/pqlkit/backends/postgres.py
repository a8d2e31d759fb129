"""PostgreSQL through psycopg 3 (the `postgres` extra)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import BackendError, BackendUnavailable
from ._sql import builtin
from .base import Backend, _q
from .quick import first_line


@builtin("jsonb_extract_path_text")
def _json_extract_path_text(j: dt.JSON, key: str) -> str:  # type: ignore[empty-body]
    """PostgreSQL: a JSON key's value as text."""


@builtin("jsonb_extract_path")
def _json_extract_path(j: dt.JSON, key: str) -> dt.JSON:
    """PostgreSQL: a JSON key's value."""


@builtin("jsonb_typeof")
def _json_typeof(j: dt.JSON) -> str:  # type: ignore[empty-body]
    """PostgreSQL: a JSON value's type (number, string, boolean, null, object, array)."""


def _as_json(properties: ir.Value) -> ir.Value:
    # via text, so that json and jsonb columns both work. The jsonb functions, because sqlglot
    # re-parses the json_* ones' keys as JSON paths and drops the quoting of a key with a quote.
    return properties.cast("string").cast(dt.JSON(binary=True))


class PostgresBackend(Backend):
    name = "postgres"
    schemes = ("postgres", "postgresql")
    driver_module = "psycopg"
    _full_url = ""  # the URL with its password, for a sibling connection; never shown

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    @classmethod
    def data_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)

    @classmethod
    def unavailable_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        # the server is down or restarting, the connection dropped, a lock or statement timed
        # out, a deadlock or serialization failure: all say "try again"
        return (psycopg.OperationalError, psycopg.InterfaceError)

    @classmethod
    def open(cls, url: str, wait: float) -> PostgresBackend:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BackendError(
                'the postgres backend needs an optional dependency: pip install "pqlkit[postgres]"'
            ) from None
        try:
            con = ibis.connect(url.replace("postgresql://", "postgres://", 1))
        except Exception as exc:  # psycopg's OperationalError, or ibis's parse of the URL
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL at {redact(url)}: {first_line(exc)} "
                "(check host, port, user, password and database in the URL)"
            ) from None
        backend = cls(redact(url), con)
        backend._full_url = url
        backend._execute("SET TIME ZONE 'UTC'")
        # PostgreSQL JIT-compiles a query whose estimated cost passes jit_above_cost; for the
        # scoring query's hundreds of expressions that costs seconds (0.25 s -> 3 s on 44k
        # events, measured) and gains nothing at these sizes.
        backend._execute("SET jit = off")
        return backend

    @property
    def _raw(self) -> Any:
        return self._con.con

    def _execute(self, sql: str) -> None:
        with self._raw.cursor() as cur:
            cur.execute(sql)

    def _fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._raw.cursor() as cur:
            cur.execute(sql)
            if cur.description is None:  # a statement, not a query
                return [], []
            return [d.name for d in cur.description], cur.fetchall()

    def arrow(self, sql: str) -> pa.Table:
        names, rows = self._fetch(sql)
        if not rows:
            return pa.table({n: pa.array([], pa.null()) for n in names})
        return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._raw.transaction():
            yield

    def _load_stage(self, name: str, rows: pa.Table) -> None:
        cols = ", ".join(_q(c) for c in rows.column_names)
        with self._raw.cursor() as cur, cur.copy(f"COPY {_q(name)} ({cols}) FROM STDIN") as copy:
            for row in zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True):
                copy.write_row(row)

    def _type_sql(self, dtype: dt.DataType) -> str:
        from ibis.backends.sql.datatypes import PostgresType

        sql: str = PostgresType.to_string(dtype)  # Ibis ships no types
        return sql

    # The key is a literal of its own (not a path to parse): any text is one member name.
    @staticmethod
    def json_text(properties: ir.Value, key: str) -> ir.StringValue:
        return _json_extract_path_text(_as_json(properties), key)

    @staticmethod
    def json_number(properties: ir.Value, key: str) -> ir.FloatingValue:
        j = _as_json(properties)
        return ibis.ifelse(
            _json_typeof(_json_extract_path(j, key)) == "number",
            _json_extract_path_text(j, key).cast("float64"),
            ibis.null("float64"),
        )

    @staticmethod
    def json_bool(properties: ir.Value, key: str) -> ir.BooleanValue:
        j = _as_json(properties)
        return ibis.ifelse(
            _json_typeof(_json_extract_path(j, key)) == "boolean",
            _json_extract_path_text(j, key) == "true",
            ibis.null("boolean"),
        )

    def analyze(self, tables: list[str]) -> None:
        for table in tables:
            self._execute(f"ANALYZE {_q(table)}")

    def purge(self, tables: list[str]) -> str:
        """Rewrite the tables without their deleted rows, and the planner's statistics too: its
        most-common values of a column (an e-mail, say) are copies of the data, kept in the
        pg_statistic catalog until the table is analysed again and the catalog rewritten."""
        if not tables:
            return "nothing to rewrite"
        for table in tables:
            self._execute(f"VACUUM FULL {_q(table)}")
            self._execute(f"ANALYZE {_q(table)}")  # statistics from what is left
        try:
            self._execute("VACUUM FULL pg_catalog.pg_statistic")
        except self.driver_errors() as exc:  # only a superuser (or the catalog's owner) may
            return (
                f"VACUUM FULL and ANALYZE on {len(tables)} table(s); the statistics catalog was not "
                f"rewritten ({first_line(exc)}): old statistics may stay in its file until a superuser runs "
                "VACUUM FULL pg_catalog.pg_statistic"
            )
        return f"VACUUM FULL and ANALYZE on {len(tables)} table(s), statistics catalog rewritten"

    def sibling(self) -> PostgresBackend:
        return type(self).open(self._full_url, 0.0)

    def interrupt(self) -> None:
        with contextlib.suppress(Exception):
            raw = self._raw
            getattr(raw, "cancel_safe", raw.cancel)()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.disconnect()


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
