"""SQL compiled for a warehouse no test can reach (`pql compile --dialect snowflake|bigquery`)
parses back with sqlglot for its dialect and, transpiled to DuckDB, gives the very rows DuckDB's
own SQL gives: on the demo world, and on generated models of every signal kind with generated
events. A dialect bug (a mistyped interval, a JSON accessor with the wrong semantics, a lost
filter) then shows up here, before a user meets it on their warehouse.

sqlglot does not translate every warehouse function to DuckDB. Those few are defined below as
DuckDB macros with the semantics each vendor documents, so the rest of the statement (joins,
windows, decay, JSON paths, casts) is what runs; PostgreSQL needs none of this, it runs for real
in every backend test."""

from __future__ import annotations

import pyarrow as pa
import sqlglot
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from sqlglot import exp

from pqlkit.backends import connect
from pqlkit.demo.load import load
from pqlkit.engine import Engine
from pqlkit.model.load import load_model, parse_model

from .conftest import DEMO_END, EVENTS_SCHEMA, USERS_SCHEMA
from .test_signal_kinds import AS_OF, _model, world

DIALECTS = ["snowflake", "bigquery"]

_NUMBER = "CASE WHEN json_type(v) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN (v ->> '$')::DOUBLE END"
_BOOLEAN = "CASE WHEN json_type(v) = 'BOOLEAN' THEN (v ->> '$')::BOOLEAN END"
# What sqlglot leaves untranslated, as DuckDB macros with each vendor's documented meaning.
WAREHOUSE_FUNCTIONS = {
    "snowflake": [
        # AS_VARCHAR(variant): the string a VARIANT holds, NULL when it holds anything else
        "CREATE OR REPLACE MACRO as_varchar(v) AS "
        "CASE WHEN json_type(v) = 'VARCHAR' THEN v ->> '$' END",
        # AS_DOUBLE(variant) / AS_BOOLEAN(variant): the number or boolean a VARIANT holds, else NULL
        f"CREATE OR REPLACE MACRO as_double(v) AS {_NUMBER}",
        f"CREATE OR REPLACE MACRO as_boolean(v) AS {_BOOLEAN}",
        # TO_VARIANT(x): x as a VARIANT; ARRAY_CONTAINS compares the value itself
        "CREATE OR REPLACE MACRO to_variant(v) AS v",
    ],
    "bigquery": [
        # SAFE.STRING(json): the string a JSON value holds, NULL when it holds anything else
        "CREATE SCHEMA IF NOT EXISTS safe",
        "CREATE OR REPLACE MACRO safe.string(v) AS "
        "CASE WHEN json_type(v) = 'VARCHAR' THEN v ->> '$' END",
        # LAX_STRING(json): a JSON string, number or boolean as text, NULL for anything else
        "CREATE OR REPLACE MACRO lax_string(v) AS CASE WHEN json_type(v) IN "
        "('VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN') THEN v ->> '$' END",
        # SAFE.FLOAT64(json) / SAFE.BOOL(json): the number or boolean a JSON value holds, else NULL
        f"CREATE OR REPLACE MACRO safe.float64(v) AS {_NUMBER}",
        f"CREATE OR REPLACE MACRO safe.bool(v) AS {_BOOLEAN}",
        # IEEE_DIVIDE(x, y): floating-point division
        "CREATE OR REPLACE MACRO ieee_divide(a, b) AS CAST(a AS DOUBLE) / CAST(b AS DOUBLE)",
    ],
}


def _typed_arrays(node: exp.Expression) -> exp.Expression:
    """Snowflake's ARRAY has no element type and DuckDB's lists need one; pqlkit's only arrays
    are lists of text (an account's tech stack)."""
    array = exp.DataType.Type.ARRAY
    if isinstance(node, exp.DataType) and node.this == array and not node.expressions:
        return exp.DataType.build("ARRAY<TEXT>")
    return node


def _as_duckdb(engine: Engine, dialect: str, as_of) -> str:
    sql = engine.compile(dialect, as_of)
    statements = sqlglot.parse(sql, read=dialect)
    assert len(statements) == 1, f"{dialect}: {len(statements)} statements"
    assert statements[0] is not None
    return statements[0].transform(_typed_arrays).sql(dialect="duckdb")


def _same_rows(engine: Engine, as_of) -> None:
    b = engine.backend
    want = b.arrow(engine.compile("duckdb", as_of)).sort_by("user_id")
    assert want.num_rows > 0
    for dialect in DIALECTS:
        for statement in WAREHOUSE_FUNCTIONS[dialect]:
            b.run_sql(statement)
        got = b.arrow(_as_duckdb(engine, dialect, as_of)).sort_by("user_id")
        assert got.column_names == want.column_names, dialect
        for g, w in zip(got.to_pylist(), want.to_pylist(), strict=True):
            differ = {k: (g[k], w[k]) for k in w if g[k] != w[k]}
            assert not differ, f"{dialect} SQL gives other values for {w['user_id']}: {differ}"


def test_warehouse_sql_gives_the_demo_rows(small_world, model_file):
    backend = connect(":memory:")
    try:
        load(backend, small_world)
        engine = Engine(load_model(model_file), backend)
        for as_of in (DEMO_END, "2026-10-15"):
            _same_rows(engine, as_of)
    finally:
        backend.close()


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[
        Phase.explicit,
        Phase.generate,
    ],  # shrinking the large SQL is slow: print the case instead
)
@given(world())
def test_warehouse_sql_gives_the_same_rows_for_every_signal_kind(w):
    """Long because it compiles and transpiles the scoring SQL of every generated model to two
    warehouses and runs each on DuckDB (Hypothesis examples; about 30-60 s)."""
    signals, users, events = w
    backend = connect(":memory:")
    try:
        backend.write_table("users", pa.Table.from_pylist(users, schema=USERS_SCHEMA))
        backend.write_table("events", pa.Table.from_pylist(events, schema=EVENTS_SCHEMA))
        engine = Engine(parse_model(yaml.safe_dump(_model(signals)), "kinds.yml"), backend)
        _same_rows(engine, AS_OF)
    finally:
        backend.close()
