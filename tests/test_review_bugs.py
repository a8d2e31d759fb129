"""The bugs a review of the house found, each with a test that failed before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from pqlkit.engine import Engine
from pqlkit.model.load import load_model

from .conftest import DEMO_END, ROOT


def _edit(model_file, change) -> None:
    data = yaml.safe_load(model_file.read_text())
    change(data)
    model_file.write_text(yaml.safe_dump(data, sort_keys=False))


def test_limit_reached_by_usage_as_the_only_event_signal_scores(model_file, world_backend):
    """`"*" in getattr(s, "events", [])` met a limit_reached signal whose events is None."""

    def only_the_limit(data):
        data["usage_signals"] = [s for s in data["usage_signals"] if s["kind"] == "limit_reached"]
        data["mql_signals"] = []
        data["activation"] = {"signal": "hit_free_limit"}
        data.pop("segments", None)
        data.pop("routing", None)
        data.pop("playbooks", None)  # its plays name the segments and motions just removed

    _edit(model_file, only_the_limit)
    engine = Engine(load_model(model_file), world_backend)
    result = engine.run(DEMO_END)
    assert result.users > 0
    rows = engine.stored_users(result.as_of, result.model_version).to_pyarrow().to_pylist()
    hit = [r for r in rows if "free plan's project quota" in (r["reasons"] or "")]
    assert hit, "some users of the demo use up the free quota"
    # and the value agrees with the plain-Python path
    python = {r["user_id"]: r for r in engine.python_scores(DEMO_END)}
    assert all(python[r["user_id"]]["reasons"] == r["reasons"] for r in rows)


_SCRIPT = """
import json, sys
from pqlkit.engine import Engine
from pqlkit.model.load import load_model
from pqlkit.backends import connect
engine = Engine(load_model(sys.argv[1]), connect(sys.argv[2]))
result = engine.run(sys.argv[3])
print(json.dumps({"users": result.users, "pqls": result.pqls}))
"""


def test_file_sources_score_again_in_a_second_process(model_file, small_world, tmp_path):
    """The stored SQL named a temporary view (ibis_read_csv_...) of the first process."""
    pacsv.write_csv(small_world.users, tmp_path / "users.csv")
    pq.write_table(small_world.events, tmp_path / "events.parquet")
    pq.write_table(small_world.accounts, tmp_path / "accounts.parquet")
    pq.write_table(small_world.outcomes, tmp_path / "outcomes.parquet")
    text = model_file.read_text()
    text = (
        text.replace("{table: events}", "{path: events.parquet}")
        .replace("{table: users}", "{path: users.csv}")
        .replace("{table: accounts}", "{path: accounts.parquet}")
        .replace("{table: outcomes}", "{path: outcomes.parquet}")
    )
    model_file.write_text(text)
    db = tmp_path / "files.duckdb"
    outs = []
    for as_of in (DEMO_END - timedelta(days=3), DEMO_END):
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(model_file), str(db), as_of.isoformat()],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        outs.append(json.loads(done.stdout))
    assert outs[0]["users"] > 0 and outs[1]["users"] >= outs[0]["users"]
    # and learning reads the same files in a third process
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pqlkit.cli",
            "learn",
            "-m",
            str(model_file),
            "--url",
            str(db),
            "--snapshots",
            "3",
            "--no-propose",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode in (0, 3), done.stderr
    assert "ibis_read" not in done.stderr


def test_a_programming_error_in_a_run_is_a_bug_not_a_backend_error(
    model_file, world_backend, monkeypatch
):
    """Engine.run turned every exception into 'BackendError: ... rolled back' (exit 1)."""
    from pqlkit.errors import BackendError

    engine = Engine(load_model(model_file), world_backend)

    def broken(*_args, **_kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(engine, "_counts", broken)
    with pytest.raises(TypeError, match="a bug"):
        engine.run(DEMO_END)
    # a driver error is still a BackendError, and the run is rolled back
    monkeypatch.undo()
    good = engine.run(DEMO_END)

    def driver_fails(*_args, **_kwargs):
        world_backend.run_sql("SELECT * FROM no_such_table_here")

    monkeypatch.setattr(engine, "_counts", driver_fails)
    with pytest.raises(BackendError, match="rolled back"):
        engine.run(DEMO_END)
    monkeypatch.undo()
    assert engine.run(DEMO_END).users == good.users


def test_a_bug_exits_70_and_pql_debug_shows_the_traceback(tmp_path):
    script = (
        "import sys\n"
        "from pqlkit.cli import main\n"
        "import pqlkit.engine as e\n"
        "def boom(*a, **k):\n"
        "    raise ZeroDivisionError('planted')\n"
        "e.Engine.run = boom\n"
        "main(sys.argv[1:])\n"
    )
    (tmp_path / "pql.yml").write_text((ROOT / "src/pqlkit/model/starter.yml").read_text())
    args = [
        sys.executable,
        "-c",
        script,
        "score",
        "-m",
        str(tmp_path / "pql.yml"),
        "--url",
        str(tmp_path / "x.duckdb"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 70
    assert "This is a bug in pqlkit" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=tmp_path, env={**_env(), "PQL_DEBUG": "1"}
    )
    assert "Traceback" in done.stderr and "planted" in done.stderr


def _env():
    import os

    return dict(os.environ)


def test_threads_opening_and_closing_one_duckdb_file_never_fail(tmp_path):
    """The web app opens the file per request while its keeper lets go of it: DuckDB's instance
    cache may still hold a closing connection ("Unique file handle conflict"). Seen as a 503
    under load; opening waits it out now."""
    import threading

    from pqlkit.backends import connect

    path = str(tmp_path / "x.duckdb")
    b = connect(path)
    b.run_sql("CREATE TABLE t AS SELECT 1 AS a")
    b.close()
    errors: list[str] = []

    def worker() -> None:
        for _ in range(150):
            try:
                x = connect(path)
                x.run_sql("SELECT * FROM t")
                x.close()
            except Exception as exc:  # any failure to open is the bug
                errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
