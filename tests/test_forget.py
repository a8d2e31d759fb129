"""`pql forget`: a user's rows are deleted everywhere, their later events are dropped, and their
personal data cannot be read from the database files afterwards."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pqlkit.cli import cli
from pqlkit.collect.forget import forget
from pqlkit.collect.importer import import_files
from pqlkit.model.load import load_model
from pqlkit.usecases.collecting import forget_users
from pqlkit.usecases.session import Session

from .test_identity import _collected

ANN, BO = b"ann@acme.io", b"bo@gmail.com"
HANDOFF = """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "http://127.0.0.1:9/x", secret_env: PQL_TEST_SECRET}
  routes:
    - {to: [hook]}
"""


def _database_files(backend, request) -> list[Path]:
    if backend.name == "duckdb":
        return [p for p in backend.path.parent.iterdir() if p.name.startswith(backend.path.name)]
    backend.run_sql("CHECKPOINT")  # the tests' server runs with fsync off: write pages out
    oid = backend.run_sql("SELECT oid FROM pg_database WHERE datname = current_database()")[0][0]
    return [
        p
        for p in (request.getfixturevalue("pg_server").data / "base" / str(oid)).iterdir()
        if p.is_file()
    ]


def _readable(backend, request, needle: bytes) -> bool:
    if backend.name == "duckdb":
        backend.run_sql("CHECKPOINT")
    return any(needle in p.read_bytes() for p in _database_files(backend, request))


def test_forget_deletes_everywhere_and_leaves_nothing_in_the_files(new_backend, tmp_path, request):
    backend = new_backend()
    engine = _collected(backend, tmp_path)
    model = tmp_path / "pql.yml"
    model.write_text(  # the hand-off records transitions whose payloads name the user
        model.read_text() + "thresholds: {pql_score: 0}\n" + HANDOFF
    )
    engine = Session(backend, load_model(model)).engine
    engine.run("2026-09-10")  # scores stored for u1 and u2
    outbox = backend.rows(backend.table("pql_outbox"))
    assert "u1" in {r["entity_id"] for r in outbox}
    assert _readable(backend, request, ANN) and _readable(backend, request, BO)

    [result] = forget_users(Session(backend), ["u1"])  # with the hand-off's eraser
    assert result.ids == ["anon-1", "legacy-9", "u1"]
    assert result.deleted["events"] == 5  # 3 anonymous, 1 under the old id, 1 as u1
    assert {
        "pql_messages",
        "pql_traits",
        "pql_identity_links",
        "pql_users",
        "pql_user_scores",
    } <= set(result.deleted)
    for table in backend.base_tables():
        cols = backend.table(table).columns
        for col in ("user_id", "anonymous_id", "previous_id", "champion_user_id"):
            if col in cols and table != "pql_suppressions":
                found = backend.run_sql(
                    f"SELECT count(*) FROM \"{table}\" WHERE \"{col}\" IN ('u1', 'anon-1', 'legacy-9')"
                )
                assert found == [(0,)], (table, col)
    assert result.deleted["pql_outbox"] >= 1 and result.deleted["pql_deliveries"] >= 1
    payloads = [r[0] for r in backend.run_sql("SELECT payload FROM pql_outbox")]
    assert payloads and not any('"u1"' in p for p in payloads)
    assert not _readable(backend, request, ANN)
    assert _readable(backend, request, BO)  # the scan does find what is still there
    suppressed = backend.run_sql("SELECT id FROM pql_suppressions ORDER BY id")
    assert [r[0] for r in suppressed] == ["anon-1", "legacy-9", "u1"]

    # importing the same export again stores nothing of theirs
    report = import_files(backend, [tmp_path / "export.jsonl"], fmt="segment")
    assert report.files[0].suppressed == 9 and report.imported == 0  # all 9 of theirs
    assert not _readable(backend, request, ANN)
    users = {r["user_id"] for r in backend.rows(backend.table("pql_users"))}
    assert users == {"u2"}


def test_pql_forget_command(tmp_path):
    from pqlkit.backends import connect

    db = tmp_path / "f.duckdb"
    backend = connect(str(db))
    _collected(backend, tmp_path)
    backend.close()
    out = CliRunner().invoke(cli, ["forget", "u1", "--url", str(db), "--json"])
    assert out.exit_code == 0, out.output
    [r] = json.loads(out.output)["forgotten"]
    assert (
        r["user_id"] == "u1" and r["deleted"]["events"] == 5 and r["rewritten"] == f"rewrote {db}"
    )
    assert ANN not in db.read_bytes()
    asked = CliRunner().invoke(cli, ["forget", "u2", "--url", str(db)], input="n\n")
    assert asked.exit_code == 1 and "Aborted" in asked.output
    assert BO in db.read_bytes()


def test_forget_reaches_the_collectors_log_while_it_runs(tmp_path):
    """Every file pqlkit wrote, the log's segments included, is scanned for the forgotten
    e-mail with the collector running: the log closes a segment within PQL_LOG_SECONDS of its
    first line and deletes it once stored, so within that bound (plus the flusher's lag) no
    copy is left, even when no other request comes to push it out."""
    import time

    import httpx

    from .serve import Serve

    server = Serve(tmp_path, env={"PQL_LOG_SECONDS": "1"})
    server.start()
    post = {"auth": ("wk_web", ""), "timeout": 10}

    def send(*messages: dict) -> None:
        assert httpx.post(
            server.url + "/v1/batch", json={"batch": list(messages)}, **post
        ).is_success

    def files() -> bytes:
        return b"".join(
            p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "server.err"
        )

    def wait(until, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not until():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    try:
        send(
            {"type": "identify", "userId": "u1", "traits": {"email": ANN.decode()}},
            {"type": "track", "userId": "u1", "event": "A", "properties": {"to": ANN.decode()}},
            {"type": "identify", "userId": "u2", "traits": {"email": BO.decode()}},
        )
        wait(lambda: server.metrics()["stored"] >= 1, "never stored")
        assert ANN in files()  # the scan finds it: in the database and the log
        forgot = CliRunner().invoke(cli, ["forget", "u1", "--url", server.db, "--yes"])
        assert forgot.exit_code == 0, forgot.output
        # a later request of theirs is dropped by the flusher, and its log segment goes too
        send({"type": "identify", "userId": "u1", "traits": {"email": ANN.decode()}})
        wait(lambda: server.metrics()["suppressed"] >= 1, "never suppressed")
        wait(lambda: ANN not in files(), "the forgotten e-mail is still in a file")
        log_files = [p for p in (tmp_path / "log").iterdir() if p.suffix == ".log"]
        assert all(BO not in p.read_bytes() for p in log_files)  # stored, so deleted there
    finally:
        server.stop()
    assert ANN not in files() and BO in files()  # the scan does find what is still there


def test_forget_deletes_the_quarantined_lines_that_name_them(new_backend):

    import pyarrow as pa

    from pqlkit.collect.store import QUARANTINE, QUARANTINE_SCHEMA, quarantine_row

    backend = new_backend()
    backend.ensure_table(QUARANTINE, QUARANTINE_SCHEMA)
    theirs = b'{"s":"web","r":"2026-11-01T12:00:00Z","e":"batch","b":{"batch":[{"userId": "u1", "traits": {"email": "ann@acme.io"}, "timestamp": 1e30}]}}\n'
    other = theirs.replace(b'"u1"', b'"u2"').replace(ANN, BO)
    rows = [quarantine_row((1, 10), theirs, "out of range"), quarantine_row((1, 20), other, "x")]
    backend.insert(QUARANTINE, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA))
    [result] = forget(backend, ["u1"], rewrite=False)
    assert result.deleted[QUARANTINE] == 1
    assert backend.run_sql(f'SELECT "offset" FROM {QUARANTINE}') == [(20,)]
