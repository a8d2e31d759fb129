"""The backend interface: an Ibis connection plus what Ibis leaves non-portable.

A backend class per database. What a database can do is said by class attributes
(capabilities); what pqlkit needs done is said by intent methods (``ensure_table``,
``upsert``, ``insert_new``, ``replace_rows``, ``replace_table``, ``delete``, ``purge``,
``json_text``), so no SQL text is written outside this package. Statements are built with
sqlglot's expression builders (identifiers and literals quoted for the dialect).

Driver errors are mapped by type, once, in :meth:`Backend.mapped` (the model is httpx's
``map_exceptions``): to a ``RefusedValue``, a ``BackendUnavailable`` or another
``BackendError`` (:mod:`pqlkit.errors`); anything else is a bug and propagates unchanged.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as exp

from ..errors import BackendError, BackendUnavailable, MappingError, RefusedValue
from . import _sql
from .compiled import CompiledSql
from .ddl import TableDdl
from .keyed import KeyedInsert
from .quick import first_line

ConflictRule = Literal["ignore", "replace"] | Mapping[str, Literal["min", "max", "replace"]]
"""What an upsert does with a row whose key is stored already: keep the stored row
("ignore"), replace it ("replace"), or per column keep the min, the max or the new value."""

Schema: TypeAlias = pa.Schema | ibis.Schema


class Backend(TableDdl, CompiledSql, KeyedInsert, ABC):
    """One open database. Subclasses set the capabilities and implement the primitives."""

    #: The dialect name (sqlglot and Ibis).
    name: ClassVar[str]
    #: sqlglot's name for the dialect, where it differs from Ibis's (Spark: "spark").
    sql_dialect: ClassVar[str] = ""
    #: URL schemes this class opens (``postgresql://...``); "" is a bare file path.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: The driver's top-level module (its errors are mapped; see :meth:`errors`).
    driver_module: ClassVar[str]
    # --- capabilities --------------------------------------------------------------------------
    transactions: ClassVar[bool] = True
    """Statements can be grouped so that they commit together or not at all."""
    upserts: ClassVar[bool] = True
    """INSERT ... ON CONFLICT against a primary key."""
    bitmask_days: ClassVar[bool] = False
    """Active days as a bitmask with bit_count (faster than COUNT DISTINCT)."""
    ordered_first: ClassVar[bool] = False
    """``first(x ORDER BY ...)`` as an aggregate, NULLs kept: an account's champion is picked
    in the rollup's GROUP BY rather than by a window."""
    reads_files: ClassVar[bool] = False
    """Sources may be CSV, JSON lines or Parquet files."""

    def __init__(self, url: str, con: Any):
        self.url = url
        self._con = con
        self._tables: set[str] | None = None
        self._opened: dict[str, ir.Table] = {}  # tables by name, until the catalog is re-read
        self._compiled: dict[Any, str] = {}  # SQL by expression (see compile)
        self.on_close: list[Callable[[Backend], None]] = []

    @property
    def _sqlglot(self) -> str:
        return self.sql_dialect or self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # --- errors ------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        """The exception types this database's driver (and Ibis over it) raises."""

    @classmethod
    @abstractmethod
    def data_errors(cls) -> tuple[type[BaseException], ...]:
        """The driver's exceptions that say a value cannot be stored (out of range, not
        convertible, a constraint), as opposed to the database being unavailable."""

    @classmethod
    def unavailable_errors(cls) -> tuple[type[BaseException], ...]:
        """The driver's exceptions that say the database is down, gone or locked (retryable)."""
        return ()

    @classmethod
    def mapped(cls, exc: BaseException, what: str) -> BackendError:
        """A driver's exception as what it means, by type: a refused value, an unavailable
        database, or another failure of the database; ``what`` says what failed."""
        kind = RefusedValue if isinstance(exc, cls.data_errors()) else BackendError
        kind = BackendUnavailable if isinstance(exc, cls.unavailable_errors()) else kind
        return kind(f"{what}: {first_line(exc)}")

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Driver errors inside the block become the BackendError they mean (:meth:`mapped`)."""
        try:
            yield
        except self.driver_errors() as exc:
            raise self.mapped(exc, what) from exc

    # --- primitives each database implements --------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str) -> None: ...

    @abstractmethod
    def _fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    @abstractmethod
    def arrow(self, sql: str) -> pa.Table:
        """A query's result as an Arrow table, through the driver."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """All statements inside commit together or not at all."""

    @abstractmethod
    def _load_stage(self, name: str, rows: pa.Table) -> None:
        """Copy ``rows`` into the (empty, temporary) table ``name``."""

    # JSON access with the key as data, never parsed as a path: a property named `k"e`, `a.b`
    # or `x;--` is one member. Static: `pql compile --dialect` uses another database's too.
    @staticmethod
    @abstractmethod
    def json_text(properties: ir.Value, key: str) -> ir.StringValue:
        """A JSON object's value at ``key`` as text (numbers too), NULL when absent."""

    @staticmethod
    @abstractmethod
    def json_number(properties: ir.Value, key: str) -> ir.FloatingValue:
        """The value at ``key`` when it is a JSON number, else NULL."""

    @staticmethod
    @abstractmethod
    def json_bool(properties: ir.Value, key: str) -> ir.BooleanValue:
        """The value at ``key`` when it is a JSON boolean, else NULL."""

    @abstractmethod
    def purge(self, tables: list[str]) -> str:
        """Make deleted rows of ``tables`` unreadable in the database's files; say how."""

    @abstractmethod
    def _close(self) -> None: ...

    def close(self) -> None:
        """Close the connection (and release what it holds); closing twice is harmless."""
        self._close()
        for callback in self.on_close:
            callback(self)
        self.on_close = []

    @property
    def path(self) -> Path | None:
        """The database file, for a file-backed backend."""
        return None

    # --- tables --------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """The tables, read from the catalog again (every pqlkit DDL calls this after)."""
        self._tables = set(self._con.list_tables())
        self._opened = {}
        return sorted(self._tables)

    def base_tables(self) -> list[str]:
        """Stored tables of the current schema (no views, no temporary tables)."""
        _, rows = self._fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema = current_schema() ORDER BY table_name"
        )
        return [r[0] for r in rows]

    def known_tables(self) -> set[str]:
        """The tables as last read from the catalog (read now if never), for a short-lived
        reader that asks about many tables, some missing, without a catalog query for each.
        Tables this connection creates are in it (every pqlkit DDL lists the tables after)."""
        if self._tables is None:
            self.tables()
        assert self._tables is not None
        return self._tables

    def wanted_elsewhere(self) -> bool:
        """Whether another process waits for this database (a warm connection then lets go);
        only a file that one process at a time may open (DuckDB) says yes."""
        return False

    def has_table(self, name: str) -> bool:
        # The catalog is asked again only on a miss: tables appear, they rarely vanish mid-run.
        if self._tables is not None and name in self._tables:
            return True
        return name in self.tables()

    def table(self, name: str, *, role: str = "") -> ir.Table:
        schema, _, table = name.rpartition(".")
        if not schema and not self.has_table(table):
            return self._missing_table(name, role)
        known = self._opened.get(name)
        if known is not None:  # reading a schema costs a catalog query and type parsing
            return known
        try:
            opened = self._open_table(table, schema or None)
            self._opened[name] = opened
            return opened
        except Exception as exc:
            if not self._is_missing_table(exc):
                if isinstance(exc, self.driver_errors()):
                    raise MappingError(f"cannot read table {name!r}: {first_line(exc)}") from None
                raise
        return self._missing_table(name, role)

    def _open_table(self, table: str, database: str | None) -> ir.Table:
        return self._con.table(table, database=database)

    def _missing_table(self, name: str, role: str) -> ir.Table:
        known = self.tables()
        hint = f"tables here: {', '.join(known)}" if known else "the database has no tables yet"
        what = f"the {role} table" if role else "table"
        if name.startswith("pql_crm_"):
            hint += "; `pql sync outcomes` creates it and fills it from your CRM"
        raise MappingError(
            f"{what} {name!r} does not exist in {self.url} ({hint}); "
            f"create it, or point sources.{role or '<table>'} at the right table or file"
        )

    def _is_missing_table(self, exc: Exception) -> bool:
        from ibis.common.exceptions import TableNotFound

        return isinstance(exc, TableNotFound)

    def read_file(self, path: Path | str, fmt: str, *, role: str) -> ir.Table:
        """The file (or folder, glob, URI) at ``path`` in format ``fmt`` as a table."""
        raise MappingError(
            f"sources.{role}: files can only be read with the DuckDB and Spark backends; "
            f"load {path} into a {self.name} table and use `table:` instead"
        )

    @abstractmethod
    def _type_sql(self, dtype: dt.DataType) -> str: ...

    def write_table(self, name: str, data: pa.Table | ir.Table, *, overwrite: bool = False) -> None:
        """Create ``name`` holding ``data`` (replacing an existing table with ``overwrite``)."""
        self._con.create_table(name, data, overwrite=overwrite)
        self.tables()
        self.analyze([name])

    @abstractmethod
    def analyze(self, tables: list[str]) -> None:
        """Refresh the planner's statistics after a bulk write (nothing where the database keeps
        them itself). A planner that believes a freshly filled table is empty can pick a plan
        hundreds of times slower."""

    def run_sql(self, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL text as it is and return its rows (none for a statement). For tools and
        tests; pqlkit's own code says what it needs through the intent methods."""
        self._opened = {}  # it may change a table
        return self._fetch(sql)[1]

    def replace_table(self, name: str, expr: ir.Table | str) -> None:
        """(Re)create ``name`` as the result of ``expr`` (an expression or compiled SELECT
        text), inside the caller's transaction."""
        select = expr if isinstance(expr, str) else self.compile(expr)
        self._execute(
            _sql.sql(exp.Drop(this=_sql.table(name), kind="TABLE", exists=True), self._sqlglot)
        )
        self._execute(f"CREATE TABLE {_sql.sql(_sql.table(name), self._sqlglot)} AS {select}")
        self.tables()

    def move_table(self, source: str, name: str) -> None:
        """Put table ``source`` in the place of ``name`` (which is dropped), inside the caller's
        transaction: a table computed beside the live one replaces it at once."""
        self._execute(
            _sql.sql(exp.Drop(this=_sql.table(name), kind="TABLE", exists=True), self._sqlglot)
        )
        self._execute(f"ALTER TABLE {_q(source)} RENAME TO {_q(name)}")
        self.tables()

    def sibling(self) -> Backend | None:
        """A second connection to the same database, for work beside this connection's
        transactions (a full pass beside live rescoring); None where there is none (an
        in-memory database, Spark)."""
        return None

    def interrupt(self) -> None:
        """Stop the statement running on this connection from another thread (it fails and
        its transaction rolls back); nothing where the driver cannot."""

    def uncompressed_writes(self) -> contextlib.AbstractContextManager[None]:
        """Tables written in the block are stored uncompressed where the database compresses
        as it writes (DuckDB): for a table replaced every run, where compressing is half the
        cost of the write. A no-op elsewhere."""
        return contextlib.nullcontext()

    def replace_keys(
        self, name: str, key: str, expr: ir.Table, *, keys: ir.Table | None = None
    ) -> None:
        """Replace the rows of ``name`` whose ``key`` appears in ``expr`` (or in ``keys``, a
        table with that column: rows whose key is not in ``expr`` are then deleted) by
        ``expr``'s rows (the others stay), inside the caller's transaction."""
        select = self.compile(expr)
        keys_sql = self.compile((keys if keys is not None else expr).select(key).distinct())
        self._execute(f"DELETE FROM {_q(name)} WHERE {_q(key)} IN ({keys_sql})")
        self._insert_select(name, list(expr.columns), select)

    # --- writing -------------------------------------------------------------------------------
    def insert(
        self,
        table: str,
        rows: pa.Table | list[dict[str, Any]] | ir.Table | str,
        columns: list[str] | None = None,
    ) -> None:
        """Insert rows (Arrow, a list of dicts, an Ibis expression, or compiled SELECT text
        with ``columns``) inside the caller's transaction."""
        if isinstance(rows, list):
            if not rows:
                return
            rows = pa.Table.from_pylist(rows)
        if isinstance(rows, pa.Table):
            if rows.num_rows == 0:
                return
            with self.staged(rows) as stage:
                self._insert_select(table, rows.column_names, f"SELECT * FROM {_q(stage)}")
            return
        if isinstance(rows, str):
            if columns is None:
                raise ValueError("columns are needed with compiled SQL")
            self._insert_select(table, columns, rows)
            return
        self._insert_select(table, list(rows.columns), self.compile(rows))

    def _insert_select(self, table: str, columns: list[str], select: str) -> None:
        cols = ", ".join(_q(c) for c in columns)
        self._execute(f"INSERT INTO {_q(table)} ({cols}) {select}")

    def delete(self, table: str, where: _sql.Where) -> int:
        """Delete the rows matching ``where`` (column = value, or in a list of values, for each
        item; a list of such mappings, any of them; or a sqlglot condition); return how many
        there were."""
        cond = _sql.condition(where)
        n = self.count(table, cond)
        if n:
            self._execute(_sql.sql(exp.delete(_sql.table(table), where=cond), self._sqlglot))
        return n

    def update(self, table: str, values: Mapping[str, Any], where: _sql.Where) -> int:
        """Set ``values`` on the rows matching ``where`` (as :meth:`delete` reads it); return
        how many there were."""
        where = _sql.condition(where)
        n = self.count(table, where)
        if n:
            stmt = exp.update(
                _sql.table(table),
                {_sql.ident(k): _sql.literal(v) for k, v in values.items()},
                where=where,
            )
            self._execute(_sql.sql(stmt, self._sqlglot))
        return n

    def count(self, table: str, where: exp.Expression | None = None) -> int:
        query = exp.select(exp.Count(this=exp.Star())).from_(_sql.table(table))
        if where is not None:
            query = query.where(where)
        _, rows = self._fetch(_sql.sql(query, self._sqlglot))
        return int(rows[0][0])

    def replace_rows(
        self,
        table: str,
        key: Mapping[str, Any],
        rows: pa.Table | list[dict[str, Any]] | ir.Table | str,
        columns: list[str] | None = None,
    ) -> None:
        """Replace the rows whose columns equal ``key`` (a run's rows) by ``rows``, inside the
        caller's transaction."""
        self.delete(table, key)
        self.insert(table, rows, columns)

    def upsert(
        self, table: str, rows: pa.Table, key: Iterable[str], on_conflict: ConflictRule = "replace"
    ) -> None:
        """Insert ``rows``; a row whose ``key`` is stored already follows ``on_conflict``.
        The table needs a primary key on ``key``. Call inside a transaction."""
        if rows.num_rows == 0:
            return
        keys = list(key)
        cols = rows.column_names
        t = _q(table)
        if on_conflict == "ignore":
            action = "DO NOTHING"
        else:
            rules = (
                on_conflict
                if isinstance(on_conflict, Mapping)
                else {c: "replace" for c in cols if c not in keys}
            )
            merge = {"min": "LEAST", "max": "GREATEST"}
            sets = [
                f"{_q(c)} = excluded.{_q(c)}"
                if rule == "replace"
                else f"{_q(c)} = {merge[rule]}({t}.{_q(c)}, excluded.{_q(c)})"
                for c, rule in rules.items()
            ]
            action = "DO UPDATE SET " + ", ".join(sets) if sets else "DO NOTHING"
        with self.staged(rows) as stage:
            # the subquery keeps one row per key: ON CONFLICT cannot touch a row twice
            ranked = (
                f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {', '.join(_q(k) for k in keys)}) "
                f"AS _pql_n FROM {_q(stage)}) s WHERE _pql_n = 1"
            )
            select = f"SELECT {', '.join(_q(c) for c in cols)} FROM ({ranked}) s2 WHERE TRUE"
            self._execute(
                f"INSERT INTO {t} ({', '.join(_q(c) for c in cols)}) {select} "
                f"ON CONFLICT ({', '.join(_q(k) for k in keys)}) {action}"
            )

    @contextlib.contextmanager
    def staged(self, rows: pa.Table) -> Iterator[str]:
        """A temporary table holding ``rows`` for the length of the block, dropped after;
        nothing else is left registered on the connection."""
        name = f"_pql_stage_{os.urandom(5).hex()}"
        self._con.create_table(name, schema=ibis.Schema.from_pyarrow(rows.schema), temp=True)
        drop = f"DROP TABLE IF EXISTS {_q(name)}"
        try:
            self._load_stage(name, rows)
            yield name
        except BaseException:
            # the caller's transaction may be aborted; its rollback drops the table then
            with contextlib.suppress(*self.driver_errors()):
                self._execute(drop)
            raise
        self._execute(drop)

    # --- reading -------------------------------------------------------------------------------
    _COMPILED_MAX = 256

    def compile(self, expr: ir.Expr) -> str:
        """The SQL of ``expr``. Expressions are compared by structure (tables by name and
        schema, literals by value), so the statements a live rescore builds again on every
        pass compile once per process."""
        cache = self._compiled
        key = expr.op()
        sql = cache.get(key)
        if sql is None:
            sql = str(ibis.to_sql(expr, dialect=self.name))
            if len(cache) >= self._COMPILED_MAX:
                cache.pop(next(iter(cache)))
            cache[key] = sql
        return sql

    def execute(self, expr: ir.Table) -> None:
        """Run an expression for its side effects (rarely wanted; prefer rows/arrow)."""
        self._execute(self.compile(expr))

    def rows(self, expr: ir.Expr) -> list[dict[str, Any]]:
        """Run a small query through the driver and return its rows as dicts. (Ibis's own
        to_pyarrow imports pandas on DuckDB, a quarter second per process.)"""
        names, rows = self._fetch(self.compile(expr))
        return [dict(zip(names, r, strict=True)) for r in rows]

    def values(self, expr: ir.Table) -> list[tuple[Any, ...]]:
        """The rows of a small query as tuples."""
        return self._fetch(self.compile(expr))[1]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
