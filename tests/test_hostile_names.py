"""Text from data and from the model never reaches SQL as code: property keys, event names,
labels, tier names and condition values with quotes, backslashes, semicolons, comments,
newlines and unicode score the same on DuckDB and PostgreSQL as in plain Python, and the SQL
compiled for another dialect parses back (or the model is refused with a clear message)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
import sqlglot
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pqlkit.engine import Engine
from pqlkit.errors import PqlkitError
from pqlkit.model.load import load_model

from .conftest import EVENTS_SCHEMA, USERS_SCHEMA

NASTY = [
    'k"e',
    "k'e",
    "a;b",
    "x\\y",
    "-- c",
    "/* c */",
    "a\nb",
    "ü💥",
    "a.b",
    "a]b[",
    "$.x",
    "~/",
    "'); DROP TABLE events; --",
    '=HYPERLINK("http://x")',
    "@SUM(A1)",
    "+1",
]
AS_OF = datetime(2026, 10, 1)


def _model(tmp_path) -> str:
    usage = []
    for i, key in enumerate(NASTY):
        usage.append(
            {
                "id": f"distinct_{i}",
                "kind": "distinct_features",
                "events": [f"used {key}"],
                "property": key,
                "label": f"Used {{value}} of {key}",
                "points": 1,
                "per_unit": True,
            }
        )
        usage.append(
            {
                "id": f"where_{i}",
                "kind": "event_count",
                "events": [f"used {key}"],
                "where": {key: key},
                "label": f"Where {key} ({{value}})",
                "points": 2,
            }
        )
        usage.append(
            {
                "id": f"sum_{i}",
                "kind": "property_threshold",
                "events": [f"used {key}"],
                "property": key + "#n",
                "agg": "sum",
                "min": 3,
                "label": f"{key} sum",
                "points": 3,
            }
        )
    model = {
        "name": "hostile",
        "sources": {"events": {"table": "events"}, "users": {"table": "users"}, "accounts": None},
        "icp": {
            "profiles": [
                {
                    "id": "all",
                    "when": {
                        "any": [
                            {"field": "user.role", "in": NASTY},
                            {"field": "user.role", "contains": "'"},
                            {"field": "user.role", "equals": 'k"e'},
                        ]
                    },
                }
            ]
        },
        "usage_signals": usage,
        "activation": {"signal": "distinct_0"},
        "tiers": {
            "kind": "bands",
            "bands": [{"tier": "A'; --", "min_score": 10}, {"tier": 'B"\\', "min_score": 0}],
        },
    }
    path = tmp_path / "pql.yml"
    path.write_text(yaml.safe_dump(model, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(path)


def _world(backend) -> None:
    users, events = [], []
    for u in range(len(NASTY) * 2):
        key = NASTY[u % len(NASTY)]
        users.append(
            {
                "user_id": f"{key}{u}",
                "email": f"{key}@x.io",
                "account_id": None,
                "created_at": AS_OF - timedelta(days=30),
                "plan": "free",
                "role": key,
            }
        )
        for j in range(u % 4 + 1):
            props = {key: key if j % 2 == 0 else f"{key}{j}", key + "#n": j + 1, "other": 1}
            events.append(
                {
                    "message_id": f"m{u}-{j}",
                    "user_id": f"{key}{u}",
                    "anonymous_id": None,
                    "account_id": None,
                    "event": f"used {key}",
                    "timestamp": AS_OF - timedelta(days=1, hours=j),
                    "properties": json.dumps(props),
                }
            )
    backend.write_table("users", pa.Table.from_pylist(users, schema=USERS_SCHEMA))
    backend.write_table("events", pa.Table.from_pylist(events, schema=EVENTS_SCHEMA))


def test_hostile_text_scores_as_data(new_backend, tmp_path):
    backend = new_backend()
    _world(backend)
    engine = Engine(load_model(_model(tmp_path)), backend)
    result = engine.run(AS_OF)
    stored = {
        r["user_id"]: r
        for r in backend.rows(engine.stored_users(result.as_of, result.model_version))
    }
    python = {r["user_id"]: r for r in engine.python_scores(AS_OF)}
    assert stored.keys() == python.keys() and len(stored) == len(NASTY) * 2
    for uid, row in stored.items():
        for field in ("score", "tier", "reasons", "icp_profile", "is_pql"):
            assert row[field] == python[uid][field], (uid, field)
    # the values are what a person computes: every user's first event matches its `where`
    for i, key in enumerate(NASTY):
        first = stored[f"{key}{i}"]
        assert f"Where {key} (" in first["reasons"], (key, first["reasons"])
        assert first["icp_profile"] == "all"
    assert {r["tier"] for r in stored.values()} <= {"A'; --", 'B"\\'}
    assert backend.count("events") == sum(
        u % 4 + 1 for u in range(len(NASTY) * 2)
    )  # nothing dropped


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "bigquery"])
def test_hostile_text_compiles_to_sql_that_parses(tmp_path, dialect):
    from pqlkit.backends import connect

    backend = connect(":memory:")
    _world(backend)
    engine = Engine(load_model(_model(tmp_path)), backend)
    try:
        sql = engine.compile(dialect, AS_OF)
    except PqlkitError as exc:  # a dialect without a safe JSON accessor says so, clearly
        assert dialect in ("snowflake", "bigquery") and "cannot be compiled for" in str(exc)
        return
    finally:
        backend.close()
    parsed = sqlglot.parse(sql, read=dialect)
    assert len(parsed) == 1  # one statement: no `;` escaped into a second one


def test_csv_exports_neutralise_formulas_unless_asked(tmp_path):
    """OWASP CSV injection: a trait or reason that starts with = + - @ (or a tab) must not run
    when a rep opens the export in a spreadsheet."""
    import csv

    from click.testing import CliRunner

    from pqlkit.backends import connect
    from pqlkit.cli import cli

    backend = connect(str(tmp_path / "w.duckdb"))
    _world(backend)
    backend.close()
    model = _model(tmp_path)
    runner = CliRunner()
    for flags, expect_safe in (([], True), (["--csv-formulas"], False)):
        out = tmp_path / f"scores{len(flags)}.csv"
        done = runner.invoke(
            cli,
            [
                "score",
                "-m",
                model,
                "--url",
                str(tmp_path / "w.duckdb"),
                "--as-of",
                AS_OF.isoformat(),
                "--out",
                str(out),
                *flags,
            ],
        )
        assert done.exit_code == 0, done.output
        with out.open(encoding="utf-8", newline="") as fh:
            cells = [c for row in csv.reader(fh) for c in row]
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert bool(risky) != expect_safe, risky[:3]
        if expect_safe:  # neutralised, not dropped
            assert '\'=HYPERLINK("http://x")13' in cells and "'-- c4" in cells
    from pqlkit.sinks.files import neutralise_formulas

    table = neutralise_formulas(
        pa.table({"a": ["=1+1", "+x", "-5", "@SUM(A1)", "\tx", "ok", None], "n": [-1] * 7})
    )
    assert table.column("a").to_pylist() == ["'=1+1", "'+x", "'-5", "'@SUM(A1)", "'\tx", "ok", None]
    assert table.column("n").to_pylist() == [-1] * 7


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=st.text(min_size=0, max_size=20))
def test_swapped_string_literals_are_written_as_ibis_writes_them(text):
    """The compile-once queries swap literals written by sqlglot for speed; each dialect's
    must be what Ibis's compiler writes (quotes, backslashes, any character)."""
    from pqlkit.backends.compiled import _literal_by_ibis, _literal_text

    for dialect in ("duckdb", "postgres", "pyspark", "snowflake", "bigquery"):
        assert _literal_text(dialect, "str", text) == _literal_by_ibis(dialect, text), dialect
