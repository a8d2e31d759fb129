"""The SQL each dialect would run for a small model, snapshotted so that a change in the
compiled SQL is visible in review. Regenerate with PQLKIT_UPDATE_SNAPSHOTS=1 and read the diff."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from pqlkit.backends import connect
from pqlkit.engine import Engine
from pqlkit.model.load import parse_model

SNAPSHOTS = Path(__file__).parent / "snapshots"
MODEL = """\
name: snapshot
icp:
  profiles:
    - {id: fit, when: {all: [{field: account.employees, between: [50, 999]}, {email: business}]}}
  exclusions:
    - {id: students, reason: student, when: {field: user.role, contains: student}}
fit_signals:
  - {id: senior, label: "Senior role", points: 10, when: {field: user.role, matches: '(?i)vp'}}
usage_signals:
  - {id: active, kind: active_days, label: "Active {value} days", window: 30d, min: 3, points: 2, per_unit: true, cap: 20}
  - {id: features, kind: distinct_features, events: [feature_used], property: feature, min: 3, points: 10}
  - {id: pricing, kind: event_count, events: [pricing_viewed], half_life: 7d, points: 5}
  - {id: sales, kind: hand_raise, events: [demo_requested], points: 15}
activation: {signal: features}
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap")
    (path / "pql.yml").write_text(MODEL)
    backend = connect(":memory:")
    empty = {
        "events": {
            "message_id": pa.string(),
            "user_id": pa.string(),
            "anonymous_id": pa.string(),
            "account_id": pa.string(),
            "event": pa.string(),
            "timestamp": pa.timestamp("us"),
            "properties": pa.string(),
        },
        "users": {
            "user_id": pa.string(),
            "email": pa.string(),
            "account_id": pa.string(),
            "created_at": pa.timestamp("us"),
            "plan": pa.string(),
            "role": pa.string(),
        },
        "accounts": {
            "account_id": pa.string(),
            "domain": pa.string(),
            "industry": pa.string(),
            "employees": pa.int64(),
            "tech_stack": pa.list_(pa.string()),
            "seats": pa.int64(),
        },
    }
    for name, cols in empty.items():
        backend.write_table(name, pa.schema(cols).empty_table())
    from pqlkit.model.load import LoadedModel

    parsed = parse_model(MODEL, str(path / "pql.yml"))
    loaded = LoadedModel(parsed.model, parsed.path, "snapshot0000", parsed.lines)
    yield Engine(loaded, backend)
    backend.close()


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "bigquery"])
def test_compiled_sql_matches_snapshot(engine, dialect):
    sql = engine.compile(dialect, datetime(2026, 10, 1)).strip() + "\n"
    snapshot = SNAPSHOTS / f"user_scores.{dialect}.sql"
    if os.environ.get("PQLKIT_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(sql)
    assert snapshot.exists(), (
        f"no snapshot {snapshot.name}; create it with PQLKIT_UPDATE_SNAPSHOTS=1"
    )
    assert sql == snapshot.read_text(), (
        f"compiled {dialect} SQL changed; if intended, rerun with PQLKIT_UPDATE_SNAPSHOTS=1 "
        "and review the diff of tests/snapshots/"
    )


def test_the_postgres_snapshot_is_the_sql_that_runs_on_postgresql(engine, request):
    """Compiling for postgres from a DuckDB engine gives what a PostgreSQL engine runs, and it runs."""
    server = request.getfixturevalue("pg_server")
    backend = connect(server.create_database())
    try:
        for name in ("events", "users", "accounts"):
            backend.write_table(name, engine.backend.table(name).to_pyarrow())
        on_pg = Engine(engine.loaded, backend)
        sql = on_pg.compile("postgres", datetime(2026, 10, 1))
        assert sql == engine.compile("postgres", datetime(2026, 10, 1))
        assert backend.run_sql(sql) == []  # no users, but it runs
    finally:
        backend.close()
