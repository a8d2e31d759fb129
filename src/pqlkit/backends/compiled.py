"""Compiled SQL reused: literals written by the dialect's own compiler, queries compiled once
with stand-in values and reused for any values, and compiled SQL kept in the database."""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as exp

from ..errors import BackendError


class CompiledSql(ABC):
    """Mixed into :class:`~pqlkit.backends.base.Backend`, which provides what is abstract here."""

    name: ClassVar[str]

    @abstractmethod
    def compile(self, expr: ir.Expr) -> str: ...

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abstractmethod
    def table(self, name: str, *, role: str = "") -> ir.Table: ...

    @abstractmethod
    def values(self, expr: ir.Table) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def ensure_table(self, *args: Any, **kwargs: Any) -> None: ...

    @abstractmethod
    def upsert(self, *args: Any, **kwargs: Any) -> Any: ...

    def timestamp_literal(self, when: datetime) -> str:
        """How this dialect writes a timestamp literal in compiled SQL."""
        return _literal_text(self.name, "datetime", when)

    def string_literal(self, text: str) -> str:
        """How this dialect writes ``text`` as a string literal in compiled SQL (quoted and
        escaped by the same compiler as the rest of the query)."""
        return _literal_text(self.name, "str", text)

    def reusable_sql(
        self,
        cache: dict[str, str],
        key: str,
        build: Callable[[Mapping[str, Any]], ir.Expr],
        values: Mapping[str, str | int | datetime],
    ) -> str:
        """The SQL of ``build(values)``, compiled once per ``key`` with stand-in values and
        reused for any values by swapping the stand-ins' literals for theirs (each literal
        written by this dialect's compiler). ``key`` must name everything else the SQL
        depends on. Compiling a large expression costs tens of milliseconds; a swap, none."""
        stand_ins: dict[str, str | int | datetime] = {}
        for i, (name, value) in enumerate(sorted(values.items())):
            if isinstance(value, datetime):
                stand_ins[name] = datetime(1901, 3, 4, 5, 6, 7, 100 + i)
            elif isinstance(value, int) and not isinstance(value, bool):
                stand_ins[name] = 918_273_645 + 7 * i
            elif isinstance(value, str):
                stand_ins[name] = f"pqlstandin{i}q{len(name)}"
            else:
                raise TypeError(f"{name}: a stand-in for {type(value).__name__} is not known")
        template = cache.get(key)
        if template is None:
            template = self.compile(build(stand_ins))
            if any(template.count(self._literal(v)) == 0 for v in stand_ins.values()):
                return self.compile(build(values))  # a value the compiler folded away
            cache[key] = template
        sql = template
        for name, stand_in in stand_ins.items():
            sql = sql.replace(self._literal(stand_in), self._literal(values[name]))
        return sql

    def _literal(self, value: str | int | datetime) -> str:
        return _literal_text(self.name, type(value).__name__, value)

    # --- compiled SQL kept in the database, so a later run (any as_of) skips compiling ------
    SQL_CACHE = "pql_compiled"
    _SQL_CACHE_SCHEMA = ibis.schema({"key": "string", "sql": "string", "created_at": "timestamp"})

    def cached_sql(self, key: str) -> str | None:
        if not self.has_table(self.SQL_CACHE):
            return None
        t = self.table(self.SQL_CACHE)
        found = self.values(t.filter(t.key == key).select("sql"))
        return found[0][0] if found else None

    def source_columns(self, names: list[str]) -> dict[str, list[list[str]] | None]:
        """Each table's columns as [name, type, nullable] (None: no such table): what compiled
        SQL kept in the database is keyed by (DuckDB reads them as :mod:`.quick` does)."""
        return {
            n: [[c, str(t), str(t.nullable)] for c, t in self.table(n).schema().items()]
            if "." in n or self.has_table(n)
            else None
            for n in names
        }

    def store_sql(self, key: str, sql: str, now: datetime) -> None:
        self.ensure_table(
            self.SQL_CACHE, self._SQL_CACHE_SCHEMA, primary_key=["key"], not_null=["sql"]
        )
        row = pa.table(
            {"key": [key], "sql": [sql], "created_at": pa.array([now], pa.timestamp("us"))}
        )
        self.upsert(self.SQL_CACHE, row, ["key"], "ignore")


#: sqlglot's names of the dialects whose Ibis names differ.
_SQLGLOT = {"pyspark": "spark"}


def _literal_by_ibis(dialect: str, value: str) -> str:
    """A string literal as Ibis compiles it (what :func:`_literal_text` must equal)."""
    t = ibis.table({"x": "int64"}, name="t")
    sql = str(ibis.to_sql(t.select(v=ibis.literal(value, "string")), dialect=dialect))
    match = re.search(r"SELECT\s+(.*)\s+AS\s+[\"`]?v[\"`]?\s+FROM", sql, re.S)
    if match is None:
        raise BackendError(f"cannot find the literal in {sql!r}")
    return match.group(1)


@functools.lru_cache(maxsize=4096)
def _literal_text(dialect: str, kind: str, value: str | int | datetime) -> str:
    """How ``dialect`` writes a literal ``value`` (``kind`` keeps 1 and True apart)."""
    if isinstance(value, str):  # what Ibis's compilers write: sqlglot's string literal
        return exp.Literal.string(value).sql(dialect=_SQLGLOT.get(dialect, dialect))
    t = ibis.table({"x": "int64"}, name="t")
    if isinstance(value, datetime):
        lit = ibis.timestamp(value)
    else:
        return str(int(value))
    sql = str(ibis.to_sql(t.select(v=lit), dialect=dialect))
    match = re.search(r"SELECT\s+(.*)\s+AS\s+[\"`]?v[\"`]?\s+FROM", sql, re.S)
    if match is None:
        raise BackendError(f"cannot find the literal in {sql!r}")
    return match.group(1)
