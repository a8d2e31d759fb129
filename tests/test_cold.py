"""A cold `pql explain` answered from the SQL an earlier explain stored, without Ibis, equal to
the engine's; `pql validate` and that explain import no Ibis, pyarrow, pandas or scikit-learn."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import pqlkit
from pqlkit.backends import connect
from pqlkit.backends.compiled import _literal_text
from pqlkit.backends.quick import QuickDuckDB, string_literal, timestamp_literal
from pqlkit.demo.load import load
from pqlkit.engine import explained
from pqlkit.errors import PqlkitError
from pqlkit.model.load import load_model
from pqlkit.usecases import validating
from pqlkit.usecases.scoring import explain, explain_stored, validate
from pqlkit.usecases.session import Session
from pqlkit.usecases.validating import validate_cold, validate_stored

from .conftest import DEMO_END

HEAVY = ("ibis", "sqlglot", "pyarrow", "pandas", "sklearn", "starlette", "httpx")


@pytest.fixture
def project(tmp_path, small_world):
    backend = connect(str(tmp_path / "pql.duckdb"))
    load(backend, small_world)
    backend.close()
    from pqlkit.cli import main

    with pytest.raises(SystemExit):
        main(["init", str(tmp_path / "pql.yml")])
    return tmp_path


def _users(project, n=6):
    backend = connect(str(project / "pql.duckdb"))
    try:
        return [
            r[0] for r in backend.run_sql(f"SELECT user_id FROM users ORDER BY user_id LIMIT {n}")
        ]
    finally:
        backend.close()


def test_literals_are_written_as_ibis_and_sqlglot_write_them_for_duckdb():
    rng = random.Random(29)
    times = [
        datetime(2026, 1, 2, 3, 4, 5),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    times += [
        datetime(1970, 1, 1) + timedelta(microseconds=rng.randrange(2**52)) for _ in range(300)
    ]
    for when in times:
        assert timestamp_literal(when) == _literal_text("duckdb", "datetime", when), when
    texts = ["", "it's", "''", "back\\slash", "nl\nx\ttab", "ü€😀", "\x00", 'a"b', "$$", "--x"]
    texts += ["".join(chr(rng.randrange(1, 0x3000)) for _ in range(12)) for _ in range(300)]
    for text in texts:
        assert string_literal(text) == _literal_text("duckdb", "str", text), text


def test_the_cold_path_names_features_as_the_features_do():
    from pqlkit.features import build, names

    columns = ["user__plan", "account__seats", "signal__x", "last_seen_at", "user__user_id"]
    assert explained.env_of is build.env_of is names.env_of  # one naming, no copy
    assert explained.env_of(columns) == {
        "user__plan": "user.plan",
        "account__seats": "account.seats",
        "signal__x": "signal.x",
        "user__user_id": "user.user_id",
    }


def test_a_stored_explain_equals_the_engines_and_reads_what_it_stored(project):
    url, loaded = str(project / "pql.duckdb"), load_model(project / "pql.yml")
    users = _users(project)
    when = DEMO_END - timedelta(days=3)
    assert explain_stored(url, loaded, users[0], when) is None  # nothing compiled yet
    with Session.open(url, loaded) as session:
        engine_side = [explain(session, u, when).to_dict() for u in users]
    cold = [explain_stored(url, loaded, u, when) for u in users]
    assert all(c is not None for c in cold)
    assert [c.to_dict() for c in cold] == engine_side  # type: ignore[union-attr]
    assert any(e["is_pql"] for e in engine_side) and not all(e["is_pql"] for e in engine_side)
    with pytest.raises(PqlkitError, match="no user 'nobody' known as of"):
        explain_stored(url, loaded, "nobody", when)
    with pytest.raises(PqlkitError, match='no user "it\'s" known'):
        explain_stored(url, loaded, "it's", when)


def test_a_changed_source_schema_is_not_read_with_the_old_sql(project):
    url, loaded = str(project / "pql.duckdb"), load_model(project / "pql.yml")
    [user] = _users(project, 1)
    with Session.open(url, loaded) as session:
        explain(session, user, DEMO_END)
        session.backend.run_sql("ALTER TABLE users ADD COLUMN nickname VARCHAR")
    assert explain_stored(url, loaded, user, DEMO_END) is None
    with Session.open(url, loaded) as session:  # the engine compiles it again, for the new schema
        expected = explain(session, user, DEMO_END).to_dict()
    assert explain_stored(url, loaded, user, DEMO_END).to_dict() == expected  # type: ignore[union-attr]


def test_the_catalog_is_read_alike_with_and_without_ibis(project):
    backend = connect(str(project / "pql.duckdb"))
    names = ["events", "users", "main.accounts", "no_such_table"]
    try:
        with_ibis = backend.source_columns(names)
    finally:
        backend.close()
    reader = QuickDuckDB.open(str(project / "pql.duckdb"), 5)
    assert reader is not None
    try:
        assert reader.source_columns(names) == with_ibis
    finally:
        reader.close()
    assert with_ibis["no_such_table"] is None
    assert with_ibis["main.accounts"] and ["user_id", "VARCHAR", "YES"] in with_ibis["users"]


def _pql(project, *argv):
    code = (
        "import sys; from pqlkit.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)"
    )
    src = str(Path(pqlkit.__file__).resolve().parents[1])  # this code, from the project's folder
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code, *argv],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, "PYTHONPATH": src},
        check=True,
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_validate_and_a_stored_explain_import_no_ibis_pyarrow_pandas_or_sklearn(project):
    [user] = _users(project, 1)
    where = ["-m", "pql.yml", "--url", "pql.duckdb"]
    out, (code, heavy) = _pql(project, "validate", "-m", "pql.yml", "--no-data")
    assert (code, heavy) == (0, []) and out.startswith("ok pql.yml")
    out, (code, heavy) = _pql(project, "explain", user, *where, "--as-of", "2026-09-20")
    assert code == 0 and "ibis" in heavy and user in out  # compiled, and stored
    cold, (code, heavy) = _pql(project, "explain", user, *where, "--as-of", "2026-09-20")
    assert (code, heavy) == (0, []) and cold == out
    _, (code, heavy) = _pql(project, "explain", "nobody", *where)
    assert (code, heavy) == (1, [])


def test_values_the_driver_reads_otherwise_than_arrow_are_left_to_the_engine(tmp_path):
    path = tmp_path / "t.duckdb"
    connect(str(path)).close()
    reader = QuickDuckDB.open(str(path), 5)
    assert reader is not None
    try:
        plain = "SELECT 'a' AS s, 1 AS i, 1.5::DOUBLE AS d, TIMESTAMP '2026-01-02' AS t, ['x'] AS l"
        assert reader.rows(plain) == [
            {"s": "a", "i": 1, "d": 1.5, "t": datetime(2026, 1, 2), "l": ["x"]}
        ]
        for other in ("TIMESTAMPTZ '2026-01-02'", "1.5::DECIMAL(9, 2)", "'{}'::JSON", "{'a': 1}"):
            assert reader.rows(f"SELECT {other} AS v") is None, other
    finally:
        reader.close()


def test_every_backend_reads_the_source_columns_compiled_sql_is_keyed_by(world_backend):
    found = world_backend.source_columns(["users", "no_such_table"])
    assert found["no_such_table"] is None
    assert found["users"] and [c[0] for c in found["users"]][:3] == [
        "user_id",
        "email",
        "account_id",
    ]
    assert found == world_backend.source_columns(["users", "no_such_table"])


# --- `pql validate`'s data checks, stored and run cold ----------------------------------------

BAD_DATA = {
    "as made": [],
    "ids missing and repeated": [
        "UPDATE users SET user_id = NULL WHERE user_id = (SELECT min(user_id) FROM users)",
        "INSERT INTO users SELECT * FROM users WHERE user_id = (SELECT max(user_id) FROM users)",
        "INSERT INTO accounts SELECT * FROM accounts WHERE account_id = "
        "(SELECT min(account_id) FROM accounts)",
    ],
    "an event name never seen": [
        "UPDATE events SET event = 'upgrade_clickd' WHERE event = 'upgrade_clicked'"
    ],
    "events without a user, message ids repeated": [
        "UPDATE events SET user_id = NULL WHERE message_id IN "
        "(SELECT message_id FROM events ORDER BY message_id LIMIT 2)",
        "UPDATE events SET message_id = 'twice' WHERE message_id IN "
        "(SELECT message_id FROM events ORDER BY message_id DESC LIMIT 3)",
    ],
    "text timestamps that do not parse": [
        "ALTER TABLE events ALTER timestamp TYPE VARCHAR",
        "UPDATE events SET timestamp = 'yesterday' WHERE message_id IN "
        "(SELECT message_id FROM events ORDER BY message_id LIMIT 2)",
        "UPDATE events SET timestamp = '03/04/2026 10:00' WHERE message_id = "
        "(SELECT max(message_id) FROM events)",
    ],
    "no events": ["DELETE FROM events"],
    "a mapped column missing": ["ALTER TABLE events DROP COLUMN event"],
}


def _outcome(check):
    """What a check says: its warnings, or its error's kind and text."""
    try:
        return "ok", check()
    except PqlkitError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("case", BAD_DATA)
def test_a_stored_validate_says_what_the_engine_says(project, case):
    url, loaded = str(project / "pql.duckdb"), load_model(project / "pql.yml")
    backend = connect(url)
    try:
        for sql in BAD_DATA[case]:
            backend.run_sql(sql)
    finally:
        backend.close()
    assert validate_stored(url, loaded) is None  # nothing stored yet

    def engine_side():
        with Session.open(url, loaded) as session:
            return validate(loaded.path, session).warnings

    expected = _outcome(engine_side)
    assert _outcome(engine_side) == expected  # the second time from the SQL it stored
    if expected[0] == "MappingError":  # the sources did not bind: nothing to store
        assert validate_stored(url, loaded) is None
        return
    assert _outcome(lambda: validate_stored(url, loaded)) == expected
    assert _outcome(lambda: validate_cold(url, project / "pql.yml").warnings) == expected
    # the checks before a run (probes, no thorough warnings) find the same errors
    if expected[0] != "ok":
        with Session.open(url, loaded) as session:
            assert _outcome(session.engine.check) == expected
    said = expected[1] if isinstance(expected[1], str) else "\n".join(expected[1])
    assert {
        "as made": lambda: expected == ("ok", []),
        "ids missing and repeated": lambda: (
            "users: 1 row(s) have no user_id" in said
            and "users: 1 duplicate user_id row(s), e.g. 'u_" in said
            and "accounts: 1 duplicate account_id row(s), e.g. 'a_" in said
        ),
        "an event name never seen": lambda: (
            "event 'upgrade_clicked' is referenced by the model"
            " but never occurs in the events (did you mean 'upgrade_clickd'?)" in said
        ),
        "events without a user, message ids repeated": lambda: (
            "events: 2 of " in said and "events: 2 events repeat a message_id already seen" in said
        ),
        "text timestamps that do not parse": lambda: (
            "events.timestamp: 3 value(s) are not timestamps, e.g. '03/04/2026 10:00'" in said
        ),
        "no events": lambda: "the events table is empty" in said,
    }[case](), expected


def test_a_cold_validate_with_data_imports_no_ibis_and_says_what_the_engine_said(project):
    where = ["-m", "pql.yml", "--url", "pql.duckdb"]
    out, (code, heavy) = _pql(project, "validate", *where)
    assert code == 0 and "ibis" in heavy and "data checked" in out  # compiled, and stored
    cold, (code, heavy) = _pql(project, "validate", *where)
    assert (code, heavy) == (0, []) and cold == out
    as_json, (code, heavy) = _pql(project, "validate", *where, "--json")
    assert (code, heavy) == (0, []) and json.loads(as_json).keys() == {
        "ok",
        "model",
        "version",
        "warnings",
    }


class _Running:
    """A stored check begun early (backends.quick.Started), as cached_check sees it."""

    def __init__(self, key, rows):
        self.key, self._rows, self.cancelled = key, rows, False

    def rows(self):
        return self._rows

    def cancel(self):
        self.cancelled = True


def test_a_check_begun_early_counts_only_when_the_loaded_model_keys_that_very_query(project):
    url, loaded = str(project / "pql.duckdb"), load_model(project / "pql.yml")
    with Session.open(url, loaded) as session:
        expected = validate(loaded.path, session).warnings
    assert validate_stored(url, loaded) == expected
    assert explained.CHECK_KIND + ":" == validating.CHECK_PREFIX
    reader = QuickDuckDB.open(url, 5)
    assert reader is not None
    try:
        key, _ = reader.newest_sql(validating.CHECK_PREFIX)  # type: ignore[misc]
        other = _Running("check:3:another-model", [{"users_n": 0}])
        assert explained.cached_check(loaded, reader, other) == expected  # its rows unread
        assert other.cancelled
        mine = _Running(key, [{"users_n": 0, "events_n": 1, "event_names": []}])
        with pytest.raises(PqlkitError, match="the users table is empty"):
            explained.cached_check(loaded, reader, mine)  # these rows, not the database's
        started = reader.start(key, reader.cached_sql(key))  # type: ignore[arg-type]
        assert explained.cached_check(loaded, reader, started) == expected
        started.cancel()
    finally:
        reader.close()


def test_a_bad_model_is_reported_before_the_data_with_the_database_let_go(project):
    where = ["-m", "pql.yml", "--url", "pql.duckdb"]
    assert _pql(project, "validate", *where)[1][0] == 0  # stored: the next one begins it early
    good = (project / "pql.yml").read_text()
    (project / "pql.yml").write_text(good.replace("usage_signals:", "usage_signalz:", 1))
    _, (code, heavy) = _pql(project, "validate", *where)
    assert code != 0 and "ibis" not in heavy
    (project / "pql.yml").write_text(good)
    reader = QuickDuckDB.open(str(project / "pql.duckdb"), 0)  # nobody holds it
    assert reader is not None
    reader.close()
