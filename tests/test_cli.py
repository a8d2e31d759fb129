"""The `pql` command: callable from code, --json for programs, errors without tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pqlkit.cli import cli
from pqlkit.demo.load import load

from .conftest import DEMO_END

ROOT = Path(__file__).resolve().parent.parent
PQL = [sys.executable, "-m", "pqlkit.cli"]


def run(*args, cwd=None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path, small_world):
    from pqlkit.backends import connect

    backend = connect(str(tmp_path / "pql.duckdb"))
    load(backend, small_world)
    backend.close()
    result = run("init", str(tmp_path / "pql.yml"))
    assert result.exit_code == 0, result.output
    return tmp_path


def args(project, *rest):
    return [*rest, "-m", str(project / "pql.yml"), "--url", str(project / "pql.duckdb")]


def test_init_refuses_to_overwrite(project):
    result = run("init", str(project / "pql.yml"))
    assert result.exit_code == 1
    assert "already exists; pass --force" in result.output


def test_validate_ok_and_json(project):
    result = run(*args(project, "validate"))
    assert result.exit_code == 0 and "ok" in result.output and "data checked" in result.output
    result = run(*args(project, "validate", "--json"))
    payload = json.loads(result.output)
    assert payload["ok"] is True and len(payload["version"]) == 12


def test_score_table_json_and_exports(project):
    asof = DEMO_END.isoformat()
    result = run(*args(project, "score", "--as-of", asof, "--limit", "3"))
    assert result.exit_code == 0, result.output
    assert re.search(
        r"Scored 600 users and \d+ accounts as of 2026-10-01 00:00:00 UTC", result.output
    )
    payload = json.loads(run(*args(project, "score", "--as-of", asof, "--json")).output)
    assert payload["users"] == 600 and len(payload["rows"]) == 600
    assert {"score", "reasons", "segment", "motion", "tier"} <= payload["rows"][0].keys()
    for fmt in ("csv", "parquet", "jsonl"):
        out = project / f"scores.{fmt}"
        result = run(*args(project, "score", "--as-of", asof, "--out", str(out)))
        assert result.exit_code == 0 and out.exists(), result.output
    lines = (project / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 600 and json.loads(lines[0])["as_of"].startswith("2026-10-01")
    import csv

    with open(project / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 600 and list(rows[0])[:3] == ["as_of", "model_version", "user_id"]


def test_score_keeps_features_unless_told_not_to(project):
    """`pql score` keeps every user's features for the lead page; --no-features scores in one
    query and gives the same scores; the stored features explain what the run stored."""
    from pqlkit.backends import connect
    from pqlkit.engine import FEATURES, USER_SCORES, Engine
    from pqlkit.model.load import load_model

    asof = DEMO_END.isoformat()
    lean = json.loads(
        run(*args(project, "score", "--as-of", asof, "--no-features", "--json")).output
    )
    backend = connect(str(project / "pql.duckdb"))
    try:
        assert not backend.has_table(FEATURES)
    finally:
        backend.close()
    kept = json.loads(run(*args(project, "score", "--as-of", asof, "--json")).output)
    assert kept["rows"] == lean["rows"] and kept["users"] == 600
    backend = connect(str(project / "pql.duckdb"))
    try:
        assert backend.count(FEATURES) == 600
        engine = Engine(load_model(project / "pql.yml"), backend)
        t = backend.table(USER_SCORES)
        for row in backend.rows(t.order_by("user_id").limit(25)):
            e = engine.stored_explanation(row["user_id"], DEMO_END)
            assert e is not None and e.outputs["score"] == row["score"], row["user_id"]
            assert e.outputs["reasons"] == row["reasons"]
        assert engine.stored_explanation("u_nobody", DEMO_END) is None
        assert engine.stored_explanation(row["user_id"], DEMO_END.replace(day=2)) is None
    finally:
        backend.close()


def test_accounts_and_explain(project):
    asof = DEMO_END.isoformat()
    result = run(*args(project, "accounts", "--as-of", asof, "--json"))
    rows = json.loads(result.output)["rows"]
    assert rows and {"champion_user_id", "is_pqa", "seat_share_active"} <= rows[0].keys()
    pql = next(
        r["user_id"]
        for r in json.loads(run(*args(project, "score", "--as-of", asof, "--json")).output)["rows"]
        if r["is_pql"]
    )
    result = run(*args(project, "explain", pql, "--as-of", asof))
    assert result.exit_code == 0 and "PQL, score" in result.output and "Signals" in result.output
    detail = json.loads(run(*args(project, "explain", pql, "--as-of", asof, "--json")).output)
    assert detail["is_pql"] is True
    assert sum(s["points"] for s in detail["signals"] if s["group"] != "mql") >= detail["score"]


def test_compile_prints_sql_per_dialect(project):
    for dialect, marker in (
        ("duckdb", "BIT_COUNT"),
        ("postgres", "COUNT(DISTINCT"),
        ("snowflake", "SELECT"),
        ("bigquery", "SELECT"),
    ):
        result = run(*args(project, "compile", "--dialect", dialect, "--as-of", "2026-10-01"))
        assert result.exit_code == 0, result.output
        assert marker in result.output.upper() if marker.isupper() else marker in result.output


def _subprocess(*argv, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PQL_DEBUG", None)
    return subprocess.run([*PQL, *argv], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["validate", "-m", "missing.yml"],
            "missing.yml: no such model file (create a starter one with `pql init missing.yml`)",
        ),
        (["score", "--url", "mysql://x/y"], "unsupported database URL"),
        (["score", "--as-of", "tomorrowish"], "is not a date or timestamp"),
        (["score", "--url", "nowhere/x.duckdb"], "folder"),
    ],
)
def test_errors_have_no_traceback_and_exit_1(project, argv, message):
    if argv[0] == "score" and "-m" not in argv:
        argv = [*argv, "-m", str(project / "pql.yml")]
    result = _subprocess(*argv, cwd=project)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr.replace("\n", " ")


def test_invalid_model_lists_every_problem(project):
    path = project / "pql.yml"
    path.write_text(
        path.read_text()
        .replace("priority: 1", "priorty: 1")
        .replace("kind: recency", "kind: recent")
    )
    result = _subprocess("validate", "-m", str(path), "--no-data", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "2 problems in the model" in result.stderr
    assert (
        "did you mean 'priority'?" in result.stderr and "did you mean 'recency'?" in result.stderr
    )


def test_usage_errors_exit_2(project):
    result = _subprocess("score", "--format", "xml", cwd=project)
    assert result.returncode == 2


def test_export_to_a_device_writes_through_and_keeps_it(tmp_path, small_world):
    """--out /dev/stdout (or any non-regular file) is written to, never renamed over."""
    import stat

    from pqlkit.sinks.files import export

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    n = export(small_world.accounts, fifo, "jsonl")
    out, _ = reader.communicate(timeout=30)
    assert n == small_world.accounts.num_rows == len(out.splitlines())
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_failed_export_leaves_no_file(tmp_path, small_world):
    from pqlkit.errors import ExportError
    from pqlkit.sinks.files import export

    with pytest.raises(ExportError, match=r"cannot tell the export format of .*scores\.xlsx"):
        export(small_world.accounts, tmp_path / "scores.xlsx")
    with pytest.raises(ExportError, match=r"folder .* does not exist"):
        export(small_world.accounts, tmp_path / "nope" / "scores.csv")
    assert list(tmp_path.iterdir()) == []


def test_the_command_table_names_every_command_and_its_module():
    """`pql` imports a command's module when the command is asked for: the table it imports
    them by must name each command, and the module that adds it."""
    from pqlkit.cli.group import COMMAND_MODULES, load_commands

    load_commands()
    found = {name: cmd.callback.__module__ for name, cmd in cli.commands.items()}
    assert found == {name: f"pqlkit.cli.{m}" for name, m in COMMAND_MODULES.items()}


def test_a_command_imports_only_its_own_module():
    code = (
        "import sys; from pqlkit.cli import main\n"
        "try:\n    main(['init', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('pqlkit.cli.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.strip().splitlines()[-1].split(","))
    assert "pqlkit.cli.scoring" in loaded
    assert not loaded & {"pqlkit.cli.champion", "pqlkit.cli.collecting", "pqlkit.cli.ui"}
