"""PostgreSQL through psycopg 3 (the `postgres` extra)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import BackendError
from .base import Backend, _q, first_line


@ibis.udf.scalar.builtin(name="json_extract_path_text")
def _json_extract_path_text(j: dt.JSON, key: str) -> str:  # type: ignore[empty-body]
    """PostgreSQL: a JSON key's value as text."""


class PostgresBackend(Backend):
    name = "postgres"
    schemes = ("postgres", "postgresql")
    driver_module = "psycopg"
    json_text_native: ClassVar[bool] = True

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    @classmethod
    def data_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)

    @classmethod
    def open(cls, url: str, wait: float) -> PostgresBackend:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BackendError('the postgres backend needs an optional dependency: pip install "pqlkit[postgres]"') from None
        try:
            con = ibis.connect(url.replace("postgresql://", "postgres://", 1))
        except Exception as exc:  # psycopg's OperationalError, or ibis's parse of the URL
            raise BackendError(
                f"cannot connect to PostgreSQL at {redact(url)}: {first_line(exc)} "
                "(check host, port, user, password and database in the URL)"
            ) from None
        backend = cls(redact(url), con)
        backend._execute("SET TIME ZONE 'UTC'")
        return backend

    @property
    def _raw(self) -> Any:
        return self._con.con

    def _execute(self, sql: str) -> None:
        with self._raw.cursor() as cur:
            cur.execute(sql)

    def _fetch(self, sql: str) -> tuple[list[str], list[tuple]]:
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

        return PostgresType.to_string(dtype)

    def json_text(self, properties: ir.Value, key: str) -> ir.StringValue:
        # via text, so that jsonb columns work too; the key is a bound literal, any text is fine
        return _json_extract_path_text(properties.cast("string").cast("json"), key)

    def purge(self, tables: list[str]) -> str:
        for table in tables:
            self._execute(f"VACUUM FULL {_q(table)}")
        return f"VACUUM FULL on {len(tables)} table(s)" if tables else "nothing to rewrite"

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.disconnect()


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
