"""Apache Spark through PySpark 4 (the `spark` extra), for events that outgrow one machine.

    spark://local[2]                      Spark in this process, 2 cores (the tests' choice)
    spark://host:7077                     a standalone cluster's master
    ...?warehouse=DIR                     where tables and their catalog live (default pql-spark)
    ...?database=NAME                     a database (schema) of that catalog, made if missing
    ...?spark.executor.memory=8g          any other parameter is a Spark setting

One process has one Spark session: the first URL's master and warehouse hold until it ends.
Or ``SparkBackend.from_session(spark)`` takes a session of your own (its catalog, settings).

Tables are Parquet tables in a Hive catalog (an embedded Derby metastore in the warehouse
folder, so they are still there for the next process). Spark has no transactions: a change to
stored rows (a run replacing its own rows, a delete, an upsert) writes the table's new contents
to a new table first and swaps it in only when that write has finished, so a failed run leaves
the previous results; :attr:`transactions` is False. SQL is ANSI with double-quoted identifiers,
so the statements pqlkit writes by hand read the same as on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from ..errors import BackendError, BackendUnavailable, MappingError
from . import _sql
from .base import Backend, ConflictRule, Schema, _q
from .quick import first_line
from .spark_json import _member, _to_json, _try_variant_get

DEFAULT_WAREHOUSE = "pql-spark"


class SparkBackend(Backend):
    name = "pyspark"
    sql_dialect = "spark"
    schemes = ("spark",)
    driver_module = "pyspark"
    transactions: ClassVar[bool] = False
    upserts: ClassVar[bool] = False
    reads_files: ClassVar[bool] = True

    def __init__(self, url: str, con: Any, session: Any, database: str | None = None):
        super().__init__(url, con)
        self.session = session
        self.database = database or session.catalog.currentDatabase()

    def _use(self) -> None:
        """The current database is the session's, shared by every backend on it: take ours
        back before each statement (another backend of this process may have moved it)."""
        catalog = self.session.catalog
        if catalog.currentDatabase() != self.database:
            catalog.setCurrentDatabase(self.database)

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        return (PySparkException, Py4JError)

    @classmethod
    def data_errors(cls) -> tuple[type[BaseException], ...]:
        from pyspark.errors import ArithmeticException, NumberFormatException

        return (ArithmeticException, NumberFormatException)

    @classmethod
    def unavailable_errors(cls) -> tuple[type[BaseException], ...]:
        from py4j.protocol import Py4JNetworkError  # the JVM (the driver) is gone

        return (Py4JNetworkError,)

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, wait: float) -> SparkBackend:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise BackendError(
                'the spark backend needs an optional dependency: pip install "pqlkit[spark]" '
                "(and Java 17 or 21 on the PATH)"
            ) from None
        rest = url.split("://", 1)[1] if "://" in url else ""
        host, _, query = rest.partition("?")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        host = host.strip("/") or "local[2]"
        master = host if host.startswith("local") else f"spark://{host}"
        warehouse = Path(options.pop("warehouse", DEFAULT_WAREHOUSE)).expanduser().resolve()
        database = options.pop("database", None)
        if not warehouse.parent.exists():
            raise BackendError(
                f"cannot use the Spark warehouse {warehouse}: folder {warehouse.parent} does not exist"
            )
        warehouse.mkdir(exist_ok=True)
        metastore = warehouse / "metastore_db"
        builder = (
            SparkSession.builder.master(master)
            .appName("pqlkit")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", options.pop("shuffle_partitions", "4"))
            .config("spark.sql.warehouse.dir", str(warehouse / "tables"))
            .config("spark.sql.catalogImplementation", "hive")
            .config(
                "spark.hadoop.javax.jdo.option.ConnectionURL",
                f"jdbc:derby:;databaseName={metastore};create=true",
            )
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        )
        for key, value in options.items():
            builder = builder.config(key, value)
        try:
            session = builder.enableHiveSupport().getOrCreate()
        except Exception as exc:  # no Java, a master that does not answer, a locked metastore
            raise BackendUnavailable(
                f"cannot start Spark at {master}: {first_line(exc)} (Java 17 or 21 must be "
                "installed; another process may be using the warehouse's catalog)"
            ) from None
        session.sparkContext.setLogLevel("ERROR")
        return cls.from_session(session, url, database=database)

    @classmethod
    def from_session(
        cls, session: Any, url: str = "spark://session", *, database: str | None = None
    ) -> SparkBackend:
        """A backend over a SparkSession you made (its catalog and settings are kept, but for
        what pqlkit needs: UTC, ANSI SQL with double-quoted identifiers), on ``database`` of
        its catalog (created if missing) or the current one."""
        session.conf.set("spark.sql.session.timeZone", "UTC")
        session.conf.set("spark.sql.ansi.enabled", "true")
        session.conf.set("spark.sql.ansi.doubleQuotedIdentifiers", "true")
        if database is not None:
            session.sql(f"CREATE DATABASE IF NOT EXISTS {_q(database)}")
            session.catalog.setCurrentDatabase(database)
        con = ibis.pyspark.connect(session)
        return cls(url, con, session, database)

    # --- primitives --------------------------------------------------------------------------
    def _execute(self, sql: str) -> None:
        self._use()
        self.session.sql(sql)

    def _fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        table = self.arrow(sql)
        names = table.column_names
        if not names:
            return [], []
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        return names, list(zip(*columns, strict=True))

    def arrow(self, sql: str) -> pa.Table:
        self._use()
        table = self.session.sql(sql).toArrow()
        # Spark's TIMESTAMP is an instant (UTC here); pqlkit's timestamps are naive UTC
        fields = []
        for f in table.schema:
            if pa.types.is_timestamp(f.type) and f.type.tz is not None:
                fields.append(pa.field(f.name, pa.timestamp("us")))
            else:
                fields.append(f)
        return table.cast(pa.schema(fields)) if fields != list(table.schema) else table

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def staged(self, rows: pa.Table) -> Iterator[str]:
        name = f"_pql_stage_{os.urandom(5).hex()}"
        self._frame(rows).createOrReplaceTempView(name)
        try:
            yield name
        finally:
            self.session.catalog.dropTempView(name)

    def _load_stage(self, name: str, rows: pa.Table) -> None:  # staged() needs no table
        raise NotImplementedError

    def _frame(self, rows: pa.Table) -> Any:
        """An Arrow table as a Spark DataFrame (naive timestamps become TIMESTAMP_NTZ)."""
        return self.session.createDataFrame(rows)

    def _type_sql(self, dtype: dt.DataType) -> str:
        from ibis.backends.sql.datatypes import PySparkType

        return str(PySparkType.to_string(dtype))

    @staticmethod
    def json_text(properties: ir.Value, key: str) -> ir.StringValue:
        member, kind = _member(properties, key)
        return ibis.cases(
            (kind == "STRING", _try_variant_get(member, "$", "string")),
            (kind == "VOID", ibis.null("string")),
            else_=_to_json(member),
        )

    @staticmethod
    def json_number(properties: ir.Value, key: str) -> ir.FloatingValue:
        member, kind = _member(properties, key)
        number = kind.isin(["BIGINT", "DOUBLE", "INT", "FLOAT"]) | kind.startswith("DECIMAL")
        return ibis.ifelse(number, _to_json(member).cast("float64"), ibis.null("float64"))

    @staticmethod
    def json_bool(properties: ir.Value, key: str) -> ir.BooleanValue:
        member, kind = _member(properties, key)
        return ibis.ifelse(kind == "BOOLEAN", _to_json(member) == "true", ibis.null("boolean"))

    # --- tables ------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        self._use()
        names = {t.name for t in self.session.catalog.listTables() if not t.isTemporary}
        self._tables = names
        self._opened = {}
        return sorted(names)

    def base_tables(self) -> list[str]:
        return self.tables()

    def table(self, name: str, *, role: str = "") -> ir.Table:
        self._use()
        return super().table(name, role=role)

    def read_file(self, path: Path | str, fmt: str, *, role: str) -> ir.Table:
        """Parquet, CSV (a header row), JSON lines or Delta at a path or URI Spark reads,
        as a temporary view with a name of its own (the same in every process, as compiled
        SQL stored by one process names it)."""
        text = str(path)
        if isinstance(path, Path) and not any(c in text for c in "*?[") and not path.exists():
            raise MappingError(f"sources.{role}: no such file {path}")
        view = f"pql_file_{role}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        reader = self.session.read
        try:
            if fmt == "csv":
                frame = reader.option("header", "true").option("inferSchema", "true").csv(text)
            elif fmt == "jsonl":
                frame = reader.json(text)
            else:
                frame = reader.format(fmt).load(text)
        except self.driver_errors() as exc:
            hint = ""
            if fmt == "delta" and "delta" in str(exc).lower():
                hint = (
                    " (Delta Lake is not on this Spark session: start it with the Delta "
                    "package, e.g. --url 'spark://...?spark.jars.packages=io.delta:"
                    "delta-spark_2.13:4.0.0&spark.sql.extensions=io.delta.sql."
                    "DeltaSparkSessionExtension', or pass a Delta-enabled session)"
                )
            raise MappingError(
                f"sources.{role}: cannot read {path} as {fmt}: {first_line(exc)}{hint}"
            ) from None
        frame.createOrReplaceTempView(view)
        return self._con.table(view)

    def _is_missing_table(self, exc: Exception) -> bool:
        return super()._is_missing_table(exc) or "TABLE_OR_VIEW_NOT_FOUND" in str(exc)

    def ensure_table(
        self,
        name: str,
        schema: Schema,
        *,
        primary_key: Any = (),
        not_null: Any = (),
        partition_by: Any = (),
    ) -> None:
        """Create ``name`` unless it exists, its rows stored apart by ``partition_by`` (Spark
        lists those columns last). Spark keeps no primary key: a key is kept by the writes
        (:meth:`upsert` and :meth:`insert_new` replace or skip by key)."""
        if self.has_table(name):
            return
        ibis_schema = (
            schema if isinstance(schema, ibis.Schema) else ibis.Schema.from_pyarrow(schema)
        )
        cols = ", ".join(f"{_q(c)} {self._type_sql(t)}" for c, t in ibis_schema.items())
        parts = ", ".join(_q(c) for c in partition_by)
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {_q(name)} ({cols}) USING parquet"
            + (f" PARTITIONED BY ({parts})" if parts else "")
        )
        self.tables()

    def _partitions(self, name: str) -> list[str]:
        self._use()
        columns = self.session.catalog.listColumns(f"`{self.database}`.`{name}`")
        return [c.name for c in columns if c.isPartition]

    def replace_rows(
        self,
        table: str,
        key: Mapping[str, Any],
        rows: pa.Table | list[dict[str, Any]] | ir.Table | str,
        columns: list[str] | None = None,
    ) -> None:
        """A table partitioned by ``key``'s columns has its one partition overwritten (the
        job writes the new files aside and swaps them in when it succeeds: a failed run
        leaves the previous rows); any other is rewritten without the rows, then added to."""
        parts = self._partitions(table)
        if not parts or set(parts) != set(key):
            super().replace_rows(table, key, rows, columns)
            return
        if isinstance(rows, list):
            if not rows:  # the run has no rows: its partition goes
                spec = ", ".join(f"{_q(c)} = {self._partition_value(key[c])}" for c in parts)
                self._execute(f"ALTER TABLE {_q(table)} DROP IF EXISTS PARTITION ({spec})")
                self._opened.pop(table, None)
                return
            rows = pa.Table.from_pylist(rows)
        if isinstance(rows, pa.Table):
            with self.staged(rows) as stage:
                self._overwrite(table, parts, key, f"SELECT * FROM {_q(stage)}", rows.column_names)
            return
        if isinstance(rows, str):
            if columns is None:
                raise ValueError("columns are needed with compiled SQL")
            self._overwrite(table, parts, key, rows, columns)
            return
        self._overwrite(table, parts, key, self.compile(rows), list(rows.columns))

    def _partition_value(self, value: Any) -> str:
        """A partition value as a constant (a PARTITION clause takes no function call)."""
        if isinstance(value, datetime):
            return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
        return self.string_literal(str(value))

    def _overwrite(
        self, table: str, parts: list[str], key: Mapping[str, Any], select: str, names: list[str]
    ) -> None:
        spec = ", ".join(f"{_q(c)} = {self._partition_value(key[c])}" for c in parts)
        data = [c for c in self.table(table).columns if c not in parts]
        aliases = ", ".join(_q(c) for c in names)
        self._execute(
            f"INSERT OVERWRITE TABLE {_q(table)} PARTITION ({spec}) "
            f"SELECT {', '.join(_q(c) for c in data)} FROM ({select}) AS _pql_src({aliases})"
        )
        self._opened.pop(table, None)

    def write_table(self, name: str, data: pa.Table | ir.Table, *, overwrite: bool = False) -> None:
        self._use()
        if isinstance(data, pa.Table):
            frame = self._frame(data)
        else:
            frame = self.session.sql(self.compile(data))
        if overwrite and self.has_table(name):
            self._swap(name, frame)
        else:
            frame.write.format("parquet").mode("errorifexists").saveAsTable(name)
        self.tables()

    def analyze(self, tables: list[str]) -> None:
        """Spark plans from file sizes; no statistics to refresh."""

    def replace_table(self, name: str, expr: ir.Table | str) -> None:
        select = expr if isinstance(expr, str) else self.compile(expr)
        self._use()
        frame = self.session.sql(select)
        if self.has_table(name):
            self._swap(name, frame)
        else:
            frame.write.format("parquet").saveAsTable(name)
        self.tables()

    def _swap(self, name: str, frame: Any, partition_by: list[str] | None = None) -> None:
        """Write the table's new contents to a table of their own, then put it in the old
        one's place: until the write has finished, the old rows are untouched."""
        fresh = f"_pql_new_{os.urandom(5).hex()}"
        self._use()
        frame.write.format("parquet").partitionBy(*(partition_by or [])).saveAsTable(fresh)
        self._execute(f"DROP TABLE {_q(name)}")
        self._execute(f"ALTER TABLE {_q(fresh)} RENAME TO {_q(name)}")
        self._opened.pop(name, None)
        self.tables()

    def _rewrite(self, name: str, select: str) -> None:
        """``name``'s rows replaced by ``select``'s, partitioned as they were."""
        self._use()
        parts = self._partitions(name)
        self._swap(name, self.session.sql(select), parts)

    # --- writing: rewrite and swap ----------------------------------------------------------
    def delete(self, table: str, where: _sql.Where) -> int:
        cond = _sql.condition(where)
        n = self.count(table, cond)
        if n:
            kept = f"SELECT * FROM {_q(table)} WHERE NOT COALESCE({_sql.sql(cond, 'spark')}, FALSE)"
            self._rewrite(table, kept)
        return n

    def update(self, table: str, values: Mapping[str, Any], where: _sql.Where) -> int:
        cond = _sql.condition(where)
        n = self.count(table, cond)
        if n:
            test = f"COALESCE({_sql.sql(cond, 'spark')}, FALSE)"
            schema = self.table(table).schema()
            select = ", ".join(
                f"CASE WHEN {test} THEN CAST({_sql.sql(_sql.literal(values[c]), 'spark')} "
                f"AS {self._type_sql(schema[c])}) ELSE {_q(c)} END AS {_q(c)}"
                if c in values
                else _q(c)
                for c in schema.names
            )
            self._rewrite(table, f"SELECT {select} FROM {_q(table)}")
        return n

    def replace_keys(
        self, name: str, key: str, expr: ir.Table, *, keys: ir.Table | None = None
    ) -> None:
        keys_sql = self.compile((keys if keys is not None else expr).select(key).distinct())
        cols = ", ".join(_q(c) for c in expr.columns)
        self._rewrite(
            name,
            f"SELECT {cols} FROM {_q(name)} WHERE {_q(key)} NOT IN ({keys_sql}) "
            f"UNION ALL SELECT {cols} FROM ({self.compile(expr)})",
        )

    def upsert(
        self, table: str, rows: pa.Table, key: Any, on_conflict: ConflictRule = "replace"
    ) -> None:
        if rows.num_rows == 0:
            return
        keys = list(key)
        cols = list(self.table(table).columns)
        new = list(rows.column_names)
        with self.staged(rows) as stage:
            part = ", ".join(_q(k) for k in keys)
            fresh = (
                f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY 1) "
                f"AS _pql_n FROM {_q(stage)}) WHERE _pql_n = 1"
            )
            on = " AND ".join(f"o.{_q(k)} <=> n.{_q(k)}" for k in keys)
            rules: Mapping[str, Any]
            if on_conflict == "ignore":
                rules = {c: "keep" for c in cols if c not in keys}
            elif isinstance(on_conflict, Mapping):
                rules = on_conflict
            else:
                rules = {c: "replace" for c in new if c not in keys}

            def merged(c: str) -> str:
                o, n = f"o.{_q(c)}", f"n.{_q(c)}"
                if c in keys:
                    return f"COALESCE({o}, {n})" if c in new else o
                rule = rules.get(c, "keep")
                if c not in new or rule == "keep":
                    return f"CASE WHEN o._pql_old THEN {o} ELSE {n} END" if c in new else o
                if rule == "replace":
                    return f"CASE WHEN n._pql_n IS NOT NULL THEN {n} ELSE {o} END"
                pick = "LEAST" if rule == "min" else "GREATEST"
                return (
                    f"CASE WHEN o._pql_old AND n._pql_n IS NOT NULL THEN {pick}({o}, {n}) "
                    f"WHEN o._pql_old THEN {o} ELSE {n} END"
                )

            select = ", ".join(f"{merged(c)} AS {_q(c)}" for c in cols)
            self._rewrite(
                table,
                f"SELECT {select} FROM (SELECT *, TRUE AS _pql_old FROM {_q(table)}) o "
                f"FULL OUTER JOIN ({fresh}) n ON {on}",
            )

    def purge(self, tables: list[str]) -> str:
        """Deleted rows went with the files a rewrite replaced; nothing more to do."""
        return f"{len(tables)} table(s) rewritten on delete; no old files kept"

    def _close(self) -> None:
        """The session stays (it may be the caller's, or serve the next connect); its catalog
        is released when the process ends."""
        self._opened = {}
