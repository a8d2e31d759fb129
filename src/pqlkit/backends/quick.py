"""A DuckDB file opened without Ibis, for a cold command that only reads what an earlier
run stored: `pql explain` runs the compiled SQL kept in ``pql_compiled`` and needs neither
Ibis, sqlglot nor pyarrow, which cost a cold process most of a second to import.

    reader = QuickDuckDB.open("demo.duckdb", wait=120)   # None: not a DuckDB file (yet)
    reader.source_columns(["events", "users"])          # one catalog query
    reader.cached_sql(key); reader.rows(sql)

The file is opened as :class:`~pqlkit.backends.duckdb.DuckDBBackend` opens it (that class
opens it through :func:`open_duckdb` too): the same turn on ``<file>.lock``, the same waits
and errors, times in UTC. Literals are written as Ibis and sqlglot write them for DuckDB
(tests/test_cold.py checks them against those compilers).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import BackendError, BackendUnavailable, RefusedValue
from .lock import FileLock

_PLAIN = re.compile(
    r"(VARCHAR|BIGINT|INTEGER|SMALLINT|TINYINT|DOUBLE|FLOAT|BOOLEAN|TIMESTAMP|DATE)(\[\])*"
)
"""The column types the driver and Arrow give the same Python values for."""
SQL_CACHE = "pql_compiled"
"""The table of compiled SQL (:class:`~pqlkit.backends.compiled.CompiledSql` writes it)."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def data_errors() -> tuple[type[BaseException], ...]:
    """DuckDB's exceptions that say a value cannot be stored."""
    import duckdb

    return (
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.OutOfRangeException,
        duckdb.ConstraintException,
        duckdb.TypeMismatchException,
    )


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """DuckDB's exceptions that say the file is gone or held (retryable)."""
    import duckdb

    return (duckdb.IOException, duckdb.ConnectionException)


def mapped(exc: BaseException, what: str) -> BackendError:
    """As :meth:`pqlkit.backends.base.Backend.mapped` maps a DuckDB error."""
    kind = RefusedValue if isinstance(exc, data_errors()) else BackendError
    kind = BackendUnavailable if isinstance(exc, unavailable_errors()) else kind
    return kind(f"{what}: {first_line(exc)}")


def duckdb_path(url: str) -> str:
    """The file (or ``:memory:``) of a DuckDB URL."""
    return url.removeprefix("duckdb://") or ":memory:"


def open_duckdb(path: str, wait: float) -> Any:
    """Open the file, waiting while a process outside pqlkit holds DuckDB's own lock; a
    DuckDB connection in UTC (as Ibis opens it: an absolute path, no replacement scans)."""
    import duckdb

    target = path if path == ":memory:" else str(Path(path).absolute())
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(target)
            con.execute("SET TimeZone = 'UTC'; SET python_enable_replacements = false")
            return con
        except duckdb.IOException as exc:
            text = str(exc)
            if "Could not set lock" not in text:
                raise mapped(exc, f"cannot open the DuckDB file {path}") from None
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            holder = re.search(r"held in (.*?) \(PID (\d+)\)", text)
            who = f" (process {holder.group(2)}, {holder.group(1)})" if holder else ""
            raise BackendUnavailable(
                f"the DuckDB file {path} is open in another program{who}; DuckDB allows one "
                "writer at a time. Close it, or point pqlkit at a copy"
            ) from None
        except duckdb.BinderException as exc:
            # Another thread of this process is closing its connection to the file: DuckDB's
            # instance cache still holds it for a moment (seen with the web app's keeper
            # letting go while a request opened the file under load). Transient: try again.
            if "Unique file handle conflict" not in str(exc):
                raise mapped(exc, f"cannot open the DuckDB file {path}") from None
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise BackendUnavailable(
                f"cannot open the DuckDB file {path}: {first_line(exc)}"
            ) from None
        except duckdb.Error as exc:
            raise mapped(exc, f"cannot open the DuckDB file {path}") from None


def table_columns(con: Any, names: list[str]) -> dict[str, list[list[str]] | None]:
    """Each table's (or view's) columns as [name, type, nullable] in order, read with one
    catalog query; None for a table that does not exist. A name may be ``schema.table``."""
    if not names:
        return {}
    parts = [n.rpartition(".") for n in names]
    # literals, not parameters: DuckDB imports pandas to look at a parameter's type
    where = " OR ".join(
        f"(schema_name = {string_literal(schema) if schema else 'current_schema()'} "
        f"AND table_name = {string_literal(table)})"
        for schema, _, table in parts
    )
    found = con.execute(  # duckdb_columns(): a fifth of information_schema's cost
        "SELECT schema_name = current_schema(), schema_name, table_name, column_name, "
        "data_type, CASE WHEN is_nullable THEN 'YES' ELSE 'NO' END FROM duckdb_columns() "
        f"WHERE database_name = current_database() AND ({where}) ORDER BY column_index"
    ).fetchall()
    columns: dict[tuple[str, str], list[list[str]]] = {}
    for current, schema, table, *column in found:
        columns.setdefault((schema, table), []).append(column)
        if current:
            columns.setdefault(("", table), columns[(schema, table)])
    return {
        n: columns.get((schema, table)) for n, (schema, _, table) in zip(names, parts, strict=True)
    }


def timestamp_literal(when: datetime) -> str:
    """A timestamp as Ibis's DuckDB compiler writes it (naive, UTC)."""
    seconds = when.second + when.microsecond / 1_000_000
    return f"MAKE_TIMESTAMP({when.year}, {when.month}, {when.day}, {when.hour}, {when.minute}, {seconds!r})"


def string_literal(text: str) -> str:
    """Text as sqlglot writes a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def _rows(con: Any, sql: str) -> list[dict[str, Any]] | None:
    import duckdb

    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        raise mapped(exc, "the database reported an error") from exc
    if not all(_PLAIN.fullmatch(str(d[1])) for d in cur.description):
        return None
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


class Started:
    """A query running in a thread on its own cursor (:meth:`QuickDuckDB.start`): ``rows()``
    waits for its rows, ``cancel()`` interrupts it. ``key`` names the stored SQL it runs."""

    def __init__(self, key: str, cursor: Any, sql: str):
        self.key = key
        self._cursor = cursor
        self._done: tuple[Any, BaseException | None] = (None, None)
        self._thread = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self._thread.start()

    def _run(self, sql: str) -> None:
        try:
            self._done = (_rows(self._cursor, sql), None)
        except BaseException as exc:  # handed to the caller of rows()
            self._done = (None, exc)

    def rows(self) -> list[dict[str, Any]] | None:
        self._thread.join()
        found, error = self._done
        if error is not None:
            raise error
        return found  # type: ignore[no-any-return]

    def cancel(self) -> None:
        """Stop it if it still runs, and let go of its cursor (again: nothing)."""
        if self._thread.is_alive():
            self._cursor.interrupt()
        self._thread.join()
        self._cursor.close()


class QuickDuckDB:
    """A DuckDB file opened for reading what earlier runs stored, without Ibis."""

    name = "duckdb"
    bitmask_days = True  # as DuckDBBackend: the capability is part of compiled SQL's key

    def __init__(self, url: str, con: Any, lock: FileLock | None):
        self.url = url
        self._con = con
        self._lock = lock

    @classmethod
    def open(cls, url: str, wait: float) -> QuickDuckDB | None:
        """The file at ``url``, or None when there is none yet (opening one through the
        full backend creates it, or says why it cannot)."""
        path = duckdb_path(url)
        if path == ":memory:" or not Path(path).expanduser().is_file():
            return None
        try:
            lock = FileLock.take(path, wait)
        except PermissionError:
            lock = None  # a read-only folder: no turn-taking, DuckDB's own lock still applies
        try:
            return cls(path, open_duckdb(path, wait), lock)
        except BaseException:
            if lock is not None:
                lock.close()
            raise

    def source_columns(self, names: list[str]) -> dict[str, list[list[str]] | None]:
        return table_columns(self._con, names)

    def cached_sql(self, key: str) -> str | None:
        """The compiled SQL kept under ``key``; None when there is none."""
        if self.source_columns([SQL_CACHE])[SQL_CACHE] is None:
            return None
        found = self._con.execute(
            f"SELECT sql FROM {SQL_CACHE} WHERE key = {string_literal(key)}"
        ).fetchone()
        return None if found is None else str(found[0])

    def newest_sql(self, prefix: str) -> tuple[str, str] | None:
        """The compiled SQL stored last under a key that starts with ``prefix``, and its key."""
        if self.source_columns([SQL_CACHE])[SQL_CACHE] is None:
            return None
        found = self._con.execute(
            f"SELECT key, sql FROM {SQL_CACHE} WHERE starts_with(key, {string_literal(prefix)}) "
            "ORDER BY created_at DESC, key LIMIT 1"
        ).fetchone()
        return None if found is None else (str(found[0]), str(found[1]))

    def rows(self, sql: str) -> list[dict[str, Any]] | None:
        """A small query's rows as dicts, through the driver; None when a column is of a type
        the driver may give other Python values for than Arrow does (the engine reads
        features through Arrow): a time zone, a decimal, JSON, a struct."""
        return _rows(self._con, sql)

    def start(self, key: str, sql: str) -> Started:
        """:meth:`rows` of ``sql`` run in a thread on a cursor of its own, while the caller
        works on: DuckDB lets go of the GIL while a query runs."""
        return Started(key, self._con.cursor(), sql)

    timestamp_literal = staticmethod(timestamp_literal)
    string_literal = staticmethod(string_literal)

    def close(self) -> None:
        try:
            self._con.close()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None
