"""Database connections: the only place pqlkit opens one.

Ibis is the portability layer; this module holds only what Ibis leaves non-portable:
turning a connection URL into a backend, reading files, transactions and writing results.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import BackendError, MappingError

__all__ = ["DEFAULT_URL", "Backend", "connect"]

DEFAULT_URL = "pql.duckdb"

_INSTALL_HINTS = {
    "postgres": 'pip install "pqlkit[postgres]"',
}


@dataclass(eq=False)
class Backend:
    """An Ibis connection plus the few things Ibis does not make portable."""

    url: str
    name: str
    con: Any
    _tables: set[str] | None = None
    _lock: Any = None
    """The open lock file that gives this process the DuckDB file (see :func:`connect`)."""

    @property
    def path(self) -> Path | None:
        """The database file, for a DuckDB file backend."""
        return Path(self.url) if self.name == "duckdb" and self.url != ":memory:" else None

    # --- capabilities -------------------------------------------------------------------
    @property
    def bitmask_days(self) -> bool:
        """Count active days as a bitmask with bit_count (much faster than COUNT DISTINCT)."""
        return self.name == "duckdb"

    @property
    def reads_files(self) -> bool:
        return self.name == "duckdb"

    # --- tables --------------------------------------------------------------------------
    def tables(self) -> list[str]:
        self._tables = set(self.con.list_tables())
        return sorted(self._tables)

    def base_tables(self) -> list[str]:
        """Stored tables of the current schema (no views, no temporary tables)."""
        rows = self.fetch_all(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema = current_schema() ORDER BY table_name"
        )
        return [r[0] for r in rows]

    def has_table(self, name: str) -> bool:
        # The catalog is asked again only on a miss: tables appear, they rarely vanish mid-run.
        if self._tables is not None and name in self._tables:
            return True
        return name in self.tables()

    def table(self, name: str, *, role: str = "") -> ir.Table:
        schema, _, table = name.rpartition(".")
        try:
            return self.con.table(table, database=schema or None)
        except Exception as exc:
            if not _is_missing_table(exc):
                raise BackendError(f"cannot read table {name!r}: {_first_line(exc)}") from None
        known = self.tables()
        hint = f"tables here: {', '.join(known)}" if known else "the database has no tables yet"
        what = f"the {role} table" if role else "table"
        raise MappingError(
            f"{what} {name!r} does not exist in {self.url} ({hint}); "
            f"create it, or point sources.{role or '<table>'} at the right table or file"
        )

    def read_file(self, path: Path, fmt: str, *, role: str) -> ir.Table:
        if not self.reads_files:
            raise MappingError(
                f"sources.{role}: files can only be read with the DuckDB backend; "
                f"load {path} into a {self.name} table and use `table:` instead"
            )
        text = str(path)
        has_glob = any(ch in text for ch in "*?[")
        if not has_glob and not path.exists():
            raise MappingError(f"sources.{role}: no such file {path}")
        try:
            if fmt == "parquet":
                return self.con.read_parquet(text)
            if fmt == "csv":
                return self.con.read_csv(text)
            return self.con.read_json(text)
        except Exception as exc:
            raise MappingError(f"sources.{role}: cannot read {path} as {fmt}: {_first_line(exc)}") from None

    # --- statements ----------------------------------------------------------------------
    def compile(self, expr: ir.Expr) -> str:
        return str(ibis.to_sql(expr, dialect=self.name))

    def execute_sql(self, sql: str) -> None:
        if self.name == "duckdb":
            self.con.con.execute(sql)
        else:
            with self.con.con.cursor() as cur:
                cur.execute(sql)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""
        raw = self.con.con
        if self.name == "duckdb":
            raw.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        else:
            with raw.transaction():
                yield

    def create_table_if_missing(self, name: str, expr: ir.Table) -> None:
        if not self.has_table(name):
            self.con.create_table(name, schema=expr.schema())
            self.tables()

    def insert_select(self, table: str, expr: ir.Table) -> None:
        """INSERT INTO table (columns) <compiled expr>, inside the caller's transaction."""
        self.insert_sql(table, list(expr.columns), self.compile(expr))

    def insert_sql(self, table: str, columns: list[str], select_sql: str) -> None:
        cols = ", ".join(_quote(c) for c in columns)
        self.execute_sql(f"INSERT INTO {_quote(table)} ({cols}) {select_sql}")

    # --- compiled SQL kept in the database, so a later run (any as_of) skips compiling ------
    SQL_CACHE = "pql_compiled"

    def cached_sql(self, key: str) -> str | None:
        if not self.has_table(self.SQL_CACHE):
            return None
        row = self.fetch_one(f"SELECT sql FROM {_quote(self.SQL_CACHE)} WHERE key = {_sql_literal(key)}")
        return row[0] if row else None

    def store_sql(self, key: str, sql: str) -> None:
        if not self.has_table(self.SQL_CACHE):
            self.execute_sql(
                f"CREATE TABLE IF NOT EXISTS {_quote(self.SQL_CACHE)} "
                "(key VARCHAR PRIMARY KEY, sql TEXT NOT NULL, created_at TIMESTAMP)"
            )
            self.tables()
        self.execute_sql(
            f"INSERT INTO {_quote(self.SQL_CACHE)} VALUES ({_sql_literal(key)}, {_sql_literal(sql)}, "
            "CURRENT_TIMESTAMP) ON CONFLICT DO NOTHING"
        )

    def rows(self, expr: ir.Expr) -> list[dict[str, Any]]:
        """Run a small query through the driver and return its rows as dicts. (Ibis's own
        to_pyarrow imports pandas on DuckDB, a quarter second per process.)"""
        sql = self.compile(expr)
        if self.name == "duckdb":
            cur = self.con.con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        with self.con.con.cursor() as cur:
            cur.execute(sql)
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def arrow(self, sql: str) -> pa.Table:
        """A query's result as an Arrow table, through the driver."""
        if self.name == "duckdb":
            return self.con.con.execute(sql).to_arrow_table()
        with self.con.con.cursor() as cur:
            cur.execute(sql)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows]) if rows else \
            pa.table({n: pa.array([], pa.null()) for n in names})

    def fetch_all(self, sql: str) -> list[tuple]:
        if self.name == "duckdb":
            return self.con.con.execute(sql).fetchall()
        with self.con.con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def fetch_one(self, sql: str):
        if self.name == "duckdb":
            return self.con.con.execute(sql).fetchone()
        with self.con.con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()

    def timestamp_literal(self, when) -> str:
        """How this dialect writes a timestamp literal in compiled SQL."""
        t = ibis.table({"x": "int64"}, name="t")
        sql = str(ibis.to_sql(t.select(v=ibis.timestamp(when)), dialect=self.name))
        match = re.search(r"SELECT\s+(.*?)\s+AS\s+\"?v\"?\s", sql, re.S)
        if match is None:
            raise BackendError(f"cannot find the timestamp literal in {sql!r}")
        return match.group(1)

    @contextlib.contextmanager
    def staged(self, rows) -> Iterator[str]:
        """A temporary table holding ``rows`` (a pyarrow Table) for the length of the block,
        dropped after; nothing else is left registered on the connection."""
        name = f"_pql_stage_{os.urandom(5).hex()}"
        self.con.create_table(name, schema=rows.schema, temp=True)
        try:
            cols = ", ".join(_quote(c) for c in rows.column_names)
            if self.name == "duckdb":
                view = f"{name}_arrow"
                self.con.con.register(view, rows)
                try:
                    self.con.con.execute(f"INSERT INTO {_quote(name)} SELECT {cols} FROM {_quote(view)}")
                finally:
                    self.con.con.unregister(view)
            else:
                with self.con.con.cursor() as cur, cur.copy(f"COPY {_quote(name)} ({cols}) FROM STDIN") as copy:
                    for row in zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True):
                        copy.write_row(row)
            yield name
        finally:
            self.execute_sql(f"DROP TABLE IF EXISTS {_quote(name)}")

    def insert_row(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(_quote(c) for c in row)
        values = ", ".join(_sql_literal(v) for v in row.values())
        self.execute_sql(f"INSERT INTO {_quote(table)} ({cols}) VALUES ({values})")

    def delete_where(self, table: str, where: dict[str, Any]) -> None:
        clauses = " AND ".join(f"{_quote(k)} = {_sql_literal(v)}" for k, v in where.items())
        self.execute_sql(f"DELETE FROM {_quote(table)} WHERE {clauses}")

    def reopen(self, between) -> None:
        """Close the DuckDB file, call ``between()``, and open it again, keeping pqlkit's lock
        all along (so no other pqlkit process sees the file in between)."""
        self.con.disconnect()
        between()
        self.con = ibis.duckdb.connect(self.url)
        self.con.con.execute("SET TimeZone = 'UTC'")
        self._tables = None

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            _OPENED.remove(self)
        with contextlib.suppress(Exception):
            self.con.disconnect()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


_OPENED: list[Backend] = []


def opened_count() -> int:
    return len(_OPENED)


def close_opened_since(mark: int) -> None:
    """Close the backends opened after ``opened_count()`` returned ``mark``."""
    for backend in list(_OPENED[mark:]):
        backend.close()


#: How long to wait for a DuckDB file another pqlkit process holds (seconds); PQL_LOCK_TIMEOUT.
LOCK_TIMEOUT = 120.0


def connect(url: str | None = None, *, wait: float | None = None) -> Backend:
    """A backend from a connection URL: a DuckDB file path (default ``pql.duckdb``),
    ``duckdb:///path``, ``:memory:``, or ``postgresql://user@host:port/db``.

    DuckDB lets one process at a time open a file for writing. pqlkit processes take turns:
    each holds an exclusive lock on ``<file>.lock`` while it has the file open and waits up to
    ``wait`` seconds (default PQL_LOCK_TIMEOUT or 120) for another to finish. The collector
    holds the file only while it flushes, so `pql score` and `pql serve` share one database.
    """
    url = url or os.environ.get("PQL_DATABASE_URL") or DEFAULT_URL
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("postgres", "postgresql"):
        _require("postgres", "psycopg")
        try:
            con = ibis.connect(url.replace("postgresql://", "postgres://", 1))
        except Exception as exc:
            raise BackendError(
                f"cannot connect to PostgreSQL at {_redact(url)}: {_first_line(exc)} "
                "(check host, port, user, password and database in the URL)"
            ) from None
        backend = Backend(url=_redact(url), name="postgres", con=con)
        backend.execute_sql("SET TIME ZONE 'UTC'")
        _OPENED.append(backend)
        return backend
    if scheme in ("", "duckdb") or (len(scheme) == 1 and os.name == "nt"):
        path = url.removeprefix("duckdb://") if scheme == "duckdb" else url
        path = path or ":memory:"
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.exists():
                raise BackendError(f"cannot create the DuckDB file {path}: folder {parent} does not exist")
        if wait is None:
            wait = float(os.environ.get("PQL_LOCK_TIMEOUT", LOCK_TIMEOUT))
        lock = None
        if path != ":memory:":
            try:
                lock = _FileLock.take(path, wait)
            except PermissionError:
                lock = None  # a read-only folder: no turn-taking, DuckDB's own lock still applies
        try:
            con = _open_duckdb(path, wait)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        con.con.execute("SET TimeZone = 'UTC'")
        backend = Backend(url=path, name="duckdb", con=con, _lock=lock)
        _OPENED.append(backend)
        return backend
    raise BackendError(
        f"unsupported database URL {_redact(url)!r}: use a DuckDB file path (pql.duckdb) "
        "or postgresql://user@host:port/database"
    )


class _FileLock:
    """An exclusive flock on ``<db>.lock``, shared by the connections of one process (DuckDB
    shares one database instance within a process too)."""

    _held: ClassVar[dict[Path, list]] = {}  # lock path -> [file, count]
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self._open = True

    @classmethod
    def take(cls, db_path: str, wait: float) -> _FileLock:
        path = Path(db_path).expanduser().resolve()
        path = path.with_name(path.name + ".lock")
        with cls._guard:
            held = cls._held.get(path)
            if held is not None:
                held[1] += 1
                return cls(path)
        fh = open(path, "a+b")  # noqa: SIM115  (closed when the last connection closes)
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise BackendError(
                        f"the DuckDB file {db_path} is in use by another pqlkit process (for example "
                        f"`pql score`, or `pql serve` flushing) and stayed busy for {wait:.0f}s; "
                        "try again, or raise PQL_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        with cls._guard:
            held = cls._held.get(path)
            if held is not None:  # another thread of ours got there first
                held[1] += 1
                fh.close()
            else:
                cls._held[path] = [fh, 1]
        return cls(path)

    def sole(self) -> bool:
        """Whether this is the process's only connection to the file."""
        with self._guard:
            return self._held.get(self.path, [None, 0])[1] == 1

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        with self._guard:
            held = self._held[self.path]
            held[1] -= 1
            if held[1] == 0:
                del self._held[self.path]
                held[0].close()  # releases the flock


def _open_duckdb(path: str, wait: float):
    """Open the file, waiting while a process outside pqlkit holds DuckDB's own lock."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return ibis.duckdb.connect(path)
        except Exception as exc:
            text = str(exc)
            if "Could not set lock" in text and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            if "Could not set lock" in text:
                holder = re.search(r"held in (.*?) \(PID (\d+)\)", text)
                who = f" (process {holder.group(2)}, {holder.group(1)})" if holder else ""
                raise BackendError(
                    f"the DuckDB file {path} is open in another program{who}; DuckDB allows one "
                    "writer at a time. Close it, or point pqlkit at a copy"
                ) from None
            raise BackendError(f"cannot open the DuckDB file {path}: {_first_line(exc)}") from None


def _require(extra: str, module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise BackendError(
            f"the {extra} backend needs an optional dependency: {_INSTALL_HINTS[extra]}"
        ) from None


def _is_missing_table(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("not found", "notfound", "does not exist", "catalog", "no such", "undefined"))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if hasattr(value, "isoformat"):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return str(value)
