"""Making and upgrading tables: the DDL a backend writes, from a schema (a mixin of
:class:`~pqlkit.backends.base.Backend`, which provides the primitives it calls)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

import ibis
import pyarrow as pa
import sqlglot.expressions as exp

from . import _sql

Schema: TypeAlias = pa.Schema | ibis.Schema


def _ibis_schema(schema: Schema) -> ibis.Schema:
    return schema if isinstance(schema, ibis.Schema) else ibis.Schema.from_pyarrow(schema)


class TableDdl:
    """``ensure_table``, ``missing_columns``, ``add_columns``."""

    _opened: dict[str, Any]

    # what the mixin calls: the Backend's own (it comes first in Backend's bases only for the
    # methods above; these stand-ins are never reached)
    @property
    def _sqlglot(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def has_table(self, name: str) -> bool:  # pragma: no cover
        raise NotImplementedError

    def table(self, name: str, *, role: str = "") -> Any:  # pragma: no cover
        raise NotImplementedError

    def tables(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _execute(self, sql: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def _type_sql(self, dtype: Any) -> str:  # pragma: no cover
        raise NotImplementedError

    def ensure_table(
        self,
        name: str,
        schema: Schema,
        *,
        primary_key: Iterable[str] = (),
        not_null: Iterable[str] = (),
        partition_by: Iterable[str] = (),
    ) -> None:
        """Create ``name`` with these columns unless it exists. ``partition_by`` names the
        columns whose values a run replaces together (see :meth:`replace_rows`): a backend
        that partitions tables (Spark) stores each value's rows apart; others need not."""
        if self.has_table(name):
            return
        ibis_schema = _ibis_schema(schema)
        required = set(not_null) | set(primary_key)
        columns: list[exp.Expression] = [
            exp.ColumnDef(
                this=_sql.ident(col),
                kind=exp.DataType.build(self._type_sql(typ), dialect=self._sqlglot),
                constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]
                if col in required
                else [],
            )
            for col, typ in ibis_schema.items()
        ]
        key = list(primary_key)
        if key:
            columns.append(exp.PrimaryKey(expressions=[_sql.ident(k) for k in key]))
        ddl = exp.Create(
            this=exp.Schema(this=_sql.table(name), expressions=columns), kind="TABLE", exists=True
        )
        self._execute(_sql.sql(ddl, self._sqlglot))
        self.tables()

    def missing_columns(self, name: str, schema: Schema) -> list[str]:
        """The columns of ``schema`` that an existing table ``name`` lacks (none when the table
        does not exist yet: ``ensure_table`` makes it whole)."""
        if not self.has_table(name):
            return []
        have = set(self.table(name).columns)
        return [c for c in _ibis_schema(schema).names if c not in have]

    def add_columns(self, name: str, schema: Schema) -> list[str]:
        """Add to ``name`` the columns of ``schema`` it lacks (nullable, empty in the rows it
        has): how `pql migrate` upgrades a table an older pqlkit made. Returns those added."""
        missing = self.missing_columns(name, schema)
        types = _ibis_schema(schema)
        for col in missing:
            alter = exp.Alter(
                this=_sql.table(name),
                kind="TABLE",
                actions=[
                    exp.ColumnDef(
                        this=_sql.ident(col),
                        kind=exp.DataType.build(self._type_sql(types[col]), dialect=self._sqlglot),
                    )
                ],
            )
            self._execute(_sql.sql(alter, self._sqlglot))
        if missing:
            self._opened.pop(name, None)
            self.tables()
        return missing

    def verify_table(self, name: str) -> int:
        """Read every value of every column of ``name`` (a hash of each, summed), so that the
        database checks every block it stores (DuckDB verifies a block's checksum when it reads
        it); the number of rows. Raises the driver's error on a damaged table."""
        t = self.table(name)
        sums = {f"h{i}": t[c].hash().sum() for i, c in enumerate(t.columns)}
        return int(self.rows(t.aggregate(n=t.count(), **sums))[0]["n"] or 0)

    def rows(self, expr: Any) -> list[dict[str, Any]]:  # pragma: no cover - Backend's
        raise NotImplementedError
