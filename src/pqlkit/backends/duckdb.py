"""DuckDB: a file (or memory) database in this process, shared between pqlkit processes by
taking turns on an flock of ``<file>.lock``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import BackendError, DataError, MappingError
from . import _sql, quick
from .base import Backend, _q
from .lock import FileLock
from .quick import first_line


@_sql.builtin("json_extract_string")
def _json_extract_string(j: dt.JSON, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB: a JSON path's value as text."""


@_sql.builtin("json_type")
def _json_type(j: dt.JSON, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB: the JSON type at a path (BIGINT, UBIGINT, DOUBLE, VARCHAR, BOOLEAN, NULL, ...)."""


_NUMBER_TYPES = ["BIGINT", "UBIGINT", "DOUBLE", "HUGEINT"]


def _path(key: str) -> str:
    """A JSON pointer naming one member, whatever its name holds. (A JSON path such as
    '$."k"' would do too, but sqlglot re-parses JSON paths and drops the quoting of a key with
    a quote in it; pointers it leaves alone.)"""
    return "/" + key.replace("~", "~0").replace("/", "~1")


@functools.lru_cache(maxsize=1024)
def _dtype(text: str, nullable: bool) -> dt.DataType:
    """A DuckDB type name as an Ibis type (parsing one costs a few hundred microseconds, and
    a page opens a dozen tables of a few dozen columns each)."""
    from ibis.backends.sql.datatypes import DuckDBType

    return DuckDBType.from_string(text, nullable=nullable)


class DuckDBBackend(Backend):
    name = "duckdb"
    schemes = ("", "duckdb")
    driver_module = "duckdb"
    bitmask_days: ClassVar[bool] = True
    ordered_first: ClassVar[bool] = True
    reads_files: ClassVar[bool] = True
    # the collector's deduplication asks an index of these hashes (see .keyed)
    key_hash: ClassVar[str | None] = "hash(CAST({scope} AS VARCHAR), CAST({ident} AS VARCHAR))"
    key_second: ClassVar[str | None] = (
        "CAST(least(greatest(floor(epoch({time})), 0), 4294967295) AS UINTEGER)"
    )

    def __init__(self, url: str, con: Any, lock: FileLock | None):
        super().__init__(url, con)
        self._lock = lock

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        import duckdb

        return (duckdb.Error,)

    @classmethod
    def data_errors(cls) -> tuple[type[BaseException], ...]:
        return quick.data_errors()

    @classmethod
    def unavailable_errors(cls) -> tuple[type[BaseException], ...]:
        return quick.unavailable_errors()

    @classmethod
    def open(cls, url: str, wait: float) -> DuckDBBackend:
        path = quick.duckdb_path(url)
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.exists():
                raise BackendError(
                    f"cannot create the DuckDB file {path}: folder {parent} does not exist"
                )
        lock = None
        if path != ":memory:":
            try:
                lock = FileLock.take(path, wait)
            except PermissionError:
                lock = None  # a read-only folder: no turn-taking, DuckDB's own lock still applies
        try:
            # opened as a cold command's reader opens it (pqlkit.backends.quick)
            con = ibis.duckdb.from_connection(quick.open_duckdb(path, wait))
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return cls(path, con, lock)

    @property
    def path(self) -> Path | None:
        return Path(self.url) if self.url != ":memory:" else None

    def sibling(self) -> DuckDBBackend | None:
        if self.path is None:  # another in-memory connection would be another database
            return None
        return type(self).open(self.url, 120.0)  # this process: the same instance, no wait

    def interrupt(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.interrupt()

    def wanted_elsewhere(self) -> bool:
        """Whether another pqlkit process waits for this file (see :mod:`.lock`)."""
        return self.path is not None and FileLock.wanted_elsewhere(self.url)

    @property
    def _raw(self) -> Any:
        return self._con.con

    def _execute(self, sql: str) -> None:
        self._raw.execute(sql)

    def _fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._raw.execute(sql)
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def arrow(self, sql: str) -> pa.Table:
        return self._raw.execute(sql).to_arrow_table()

    def source_columns(self, names: list[str]) -> dict[str, list[list[str]] | None]:
        return quick.table_columns(self._raw, names)

    def _stream(self, sql: str) -> pa.RecordBatchReader:
        return self._raw.execute(sql).to_arrow_reader(1_000_000)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._raw.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        self._raw.execute("COMMIT")

    @contextlib.contextmanager
    def staged(self, rows: pa.Table) -> Iterator[str]:
        """The rows registered as a view over the Arrow table itself (no copy, no temporary
        table: ten times cheaper for the small batches the hand-off and the CRM sync write);
        columns of Arrow's null or dictionary types take the general path."""
        if any(pa.types.is_null(f.type) or pa.types.is_dictionary(f.type) for f in rows.schema):
            with super().staged(rows) as name:
                yield name
            return
        name = f"_pql_stage_{os.urandom(5).hex()}"
        self._raw.register(name, rows)
        try:
            yield name
        finally:
            self._raw.unregister(name)

    def _load_stage(self, name: str, rows: pa.Table) -> None:
        view = f"{name}_arrow"
        self._raw.register(view, rows)
        try:
            cols = ", ".join(_q(c) for c in rows.column_names)
            self._raw.execute(f"INSERT INTO {_q(name)} SELECT {cols} FROM {_q(view)}")
        finally:
            self._raw.unregister(view)

    def _type_sql(self, dtype: dt.DataType) -> str:
        from ibis.backends.sql.datatypes import DuckDBType

        sql: str = DuckDBType.to_string(dtype)  # Ibis ships no types
        return sql

    @staticmethod
    def json_text(properties: ir.Value, key: str) -> ir.StringValue:
        return _json_extract_string(properties, _path(key))

    @staticmethod
    def json_number(properties: ir.Value, key: str) -> ir.FloatingValue:
        path = _path(key)
        return ibis.ifelse(
            _json_type(properties, path).isin(_NUMBER_TYPES),
            _json_extract_string(properties, path).cast("float64"),
            ibis.null("float64"),
        )

    @staticmethod
    def json_bool(properties: ir.Value, key: str) -> ir.BooleanValue:
        path = _path(key)
        return ibis.ifelse(
            _json_type(properties, path) == "BOOLEAN",
            _json_extract_string(properties, path) == "true",
            ibis.null("boolean"),
        )

    def _open_table(self, table: str, database: str | None) -> ir.Table:
        """Ibis's table, its schema read with one DESCRIBE and the type names parsed once
        per process (Ibis parses every column's type each time a table is opened)."""
        import duckdb
        from ibis.common.exceptions import TableNotFound
        from ibis.expr import operations as ops

        if database is not None:
            return self._con.table(table, database=database)
        try:
            meta = self._con.con.sql(f"DESCRIBE {_q(table)}").fetch_arrow_table()
        except duckdb.CatalogException:
            raise TableNotFound(table) from None
        schema = ibis.Schema(
            {
                n: _dtype(t, null == "YES")
                for n, t, null in zip(
                    meta["column_name"].to_pylist(),
                    meta["column_type"].to_pylist(),
                    meta["null"].to_pylist(),
                    strict=True,
                )
            }
        )
        if schema.geospatial:
            return self._con.table(table)
        namespace = ops.Namespace(catalog=None, database=None)
        return ops.DatabaseTable(
            table, schema=schema, source=self._con, namespace=namespace
        ).to_expr()

    def read_file(self, path: Path | str, fmt: str, *, role: str) -> ir.Table:
        text = str(path)
        if fmt == "delta":
            raise MappingError(
                f"sources.{role}: Delta tables ({path}) are read by the Spark backend "
                "(--url spark://...); with DuckDB, export the table as Parquet"
            )
        if isinstance(path, str):
            raise MappingError(
                f"sources.{role}: DuckDB reads local files, not {path}; copy it here, or "
                "use the Spark backend"
            )
        has_glob = any(ch in text for ch in "*?[")
        if not has_glob and not path.exists():
            raise MappingError(f"sources.{role}: no such file {path}")
        # A name of our own, the same in every process: compiled SQL stored by one process
        # (pql_compiled) names this view, and a later process registers it again at bind.
        view = f"pql_file_{role}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        try:
            if fmt == "parquet":
                return self._con.read_parquet(text, table_name=view)
            if fmt == "csv":
                return self._con.read_csv(text, table_name=view)
            return self._con.read_json(text, table_name=view)
        except self.driver_errors() as exc:
            raise MappingError(
                f"sources.{role}: cannot read {path} as {fmt}: {first_line(exc)}"
            ) from None

    def analyze(self, tables: list[str]) -> None:
        """DuckDB keeps its statistics as it writes."""

    def purge(self, tables: list[str]) -> str:
        if self.path is None:
            return "in memory"
        self._rewrite()
        return f"rewrote {self.path}"

    def _rewrite(self) -> None:
        """Copy every table into a fresh file and put it in place of the old one, keeping
        pqlkit's lock all along (no other pqlkit process sees the file in between)."""
        path = self.path
        assert path is not None  # checked by purge
        if self._lock is None:
            raise DataError(
                f"cannot rewrite {path}: its folder is not writable (the rows are deleted; "
                "copy the file somewhere writable and run `pql forget` there to purge it)"
            )
        if not self._lock.sole():
            raise DataError(
                f"cannot rewrite {path}: this process has it open more than once; close the other connections"
            )
        fresh = path.with_name(path.name + ".rewrite")
        fresh.unlink(missing_ok=True)
        raw = self._raw
        raw.execute("CHECKPOINT")
        current = raw.execute("SELECT current_database()").fetchone()[0]
        raw.execute(f"ATTACH {_sql.sql(_sql.literal(str(fresh)), self.name)} AS pql_rewrite")
        try:
            raw.execute(f"COPY FROM DATABASE {_q(current)} TO pql_rewrite")
        finally:
            raw.execute("DETACH pql_rewrite")
        with open(fresh, "rb") as fh:
            os.fsync(fh.fileno())

        def swap() -> None:
            # the old file's write-ahead log (empty after the checkpoint, unless a crash left
            # one) goes before the fresh file takes its name: replayed onto the fresh file it
            # would write the old file's blocks into it
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + ".wal").unlink()
            os.replace(fresh, path)

        self._reopen(swap)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _reopen(self, between: Callable[[], None]) -> None:
        self._con.disconnect()
        between()
        self._con = ibis.duckdb.connect(self.url)
        self._raw.execute("SET TimeZone = 'UTC'")
        self._tables = None
        self._opened = {}

    @contextlib.contextmanager
    def uncompressed_writes(self) -> Iterator[None]:
        # a setting of the database instance: rows another thread writes meanwhile (the
        # flusher of `pql serve --ui`) are only stored larger, never wrong
        self._execute("SET force_compression = 'uncompressed'")
        try:
            yield
        finally:
            self._execute("RESET force_compression")

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.disconnect()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def scratch() -> Any:
    """An in-memory DuckDB connection for computing over data held in the process (Arrow
    tables registered on it), never over a user's database: the collector's fast path reads
    log lines with it whatever database the rows go to. Times are in UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con
