"""Errors by type with stable codes: the tree in errors.py is the classes' own, driver errors
are classified by type, and every `--json` command prints its error as one JSON object."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import pqlkit.errors as errors
from pqlkit.backends import connect
from pqlkit.cli import cli
from pqlkit.cli.group import load_commands
from pqlkit.crm.transport import CrmAuthError, CrmError, CrmUnavailable
from pqlkit.errors import (
    AuthError,
    BackendError,
    BackendUnavailable,
    DeliveryError,
    ModelValidationError,
    PqlkitError,
    RefusedValue,
)

CLASSES = [
    c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, PqlkitError)
] + [CrmError, CrmUnavailable, CrmAuthError]


def invoke(*argv: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(argv), input=stdin, catch_exceptions=False)


# --- the tree --------------------------------------------------------------------------------


def test_the_tree_in_the_docstring_is_the_classes_codes_and_exit_codes():
    rows = {}
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^[\s│├└─]*([\w.]+)\s+([a-z_]+)\s+(\d+)\s{2,}", line)
        if m and m.group(1) != "class":
            rows[m.group(1).rsplit(".", 1)[-1]] = (m.group(2), int(m.group(3)))
    drawn = {c.__name__ for c in CLASSES if c is not CrmAuthError}
    assert set(rows) == drawn
    for cls in CLASSES:
        if cls.__name__ in rows:
            assert rows[cls.__name__] == (cls.code, cls.exit_code), cls
    codes = [c.code for c in CLASSES]
    assert len(codes) == len(set(codes)), "codes are unique"


def test_families_and_kinds():
    assert RefusedValue("x").family() == "backend" and isinstance(RefusedValue("x"), BackendError)
    assert BackendUnavailable("x").to_dict() == {
        "code": "backend_unavailable",
        "family": "backend",
        "message": "x",
        "exit_code": 75,
        "retryable": True,
    }
    assert CrmUnavailable.family() == "delivery" and CrmUnavailable.retryable
    assert issubclass(CrmError, DeliveryError)
    assert issubclass(CrmAuthError, AuthError) and CrmAuthError.family() == "auth"
    assert PqlkitError("x", file="a.yml", line=3, hint="do y").to_dict()["line"] == 3


def test_a_model_error_carries_every_issue_and_survives_pickling():
    import pickle

    from pqlkit.errors import ModelIssue

    exc = ModelValidationError(
        [ModelIssue("m.yml", 9, "b", "late"), ModelIssue("m.yml", 2, "a", "early", "fix a")]
    )
    payload = exc.to_dict()
    assert (payload["file"], payload["line"], payload["field"], payload["hint"]) == (
        "m.yml",
        2,
        "a",
        "fix a",
    )
    assert [i["line"] for i in payload["issues"]] == [2, 9]
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.issues == exc.issues


# --- driver errors, classified by type -----------------------------------------------------


def test_duckdb_errors_are_mapped_by_what_they_mean(tmp_path):
    backend = connect(str(tmp_path / "x.duckdb"))
    try:
        backend.run_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, n TINYINT NOT NULL)")
        backend.run_sql("INSERT INTO t VALUES (1, 1)")
        for bad in ("INSERT INTO t VALUES (1, 2)", "INSERT INTO t VALUES (2, 1000)"):
            with (
                pytest.raises(RefusedValue, match="writing t: ") as caught,
                backend.errors("writing t"),
            ):
                backend.run_sql(bad)
            assert caught.value.to_dict()["code"] == "refused_value"
        with pytest.raises(BackendError, match="reading: ") as caught, backend.errors("reading"):
            backend.run_sql("SELEC 1")
        assert type(caught.value) is BackendError and not caught.value.retryable
    finally:
        backend.close()
    import duckdb

    gone = type(backend).mapped(duckdb.IOException("No space left on device"), "writing")
    assert isinstance(gone, BackendUnavailable) and gone.exit_code == 75


def test_postgres_and_spark_errors_are_mapped_by_type():
    import psycopg
    import psycopg.errors

    from pqlkit.backends.postgres import PostgresBackend
    from pqlkit.backends.spark import SparkBackend

    assert type(PostgresBackend.mapped(psycopg.OperationalError("server closed"), "w")) is (
        BackendUnavailable
    )
    assert type(PostgresBackend.mapped(psycopg.errors.LockNotAvailable("lock"), "w")) is (
        BackendUnavailable
    )
    assert type(PostgresBackend.mapped(psycopg.errors.UniqueViolation("dup"), "w")) is (
        RefusedValue
    )
    assert type(PostgresBackend.mapped(psycopg.errors.SyntaxError("syntax"), "w")) is BackendError
    pytest.importorskip("pyspark")
    from py4j.protocol import Py4JNetworkError

    assert type(SparkBackend.mapped(Py4JNetworkError("gone"), "w")) is BackendUnavailable


HOLD = """
import sys, time
{open}
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(
    ("holder", "message"),
    [
        ("import duckdb; con = duckdb.connect(sys.argv[1])", "is open in another program"),
        (
            "from pqlkit.backends import connect; b = connect(sys.argv[1])",
            "in use by another pqlkit process",
        ),
    ],
    ids=["another-program", "another-pqlkit"],
)
def test_a_locked_database_is_unavailable_and_exits_75(tmp_path, holder, message):
    path = tmp_path / "held.duckdb"
    connect(str(path)).close()
    src = str(Path(errors.__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(open=holder), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        with pytest.raises(BackendUnavailable, match=message):
            connect(str(path), wait=0.3)
        result = CliRunner(env={"PQL_LOCK_TIMEOUT": "0.3"}).invoke(
            cli, ["users", "list", "--url", str(path), "--json"], catch_exceptions=False
        )
        assert result.exit_code == 75
        payload = json.loads(result.stdout)
        assert payload["code"] == "backend_unavailable" and payload["retryable"] is True
        assert message in payload["message"]
    finally:
        proc.communicate("", timeout=30)


# --- the CLI: every --json command, an error as JSON ----------------------------------------


def _json_commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    load_commands()  # each command's module is imported when it is asked for
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _json_commands(cmd, (*path, name))
        elif any(p.name == "as_json" for p in cmd.params):
            yield " ".join((*path, name))


def _model_at_line_100(folder: Path) -> Path:
    """A starter model with an unknown key on line 100, its name holding markup and an emoji
    code (`[bold]`, `:smile:`), neither of which may be eaten on the way out."""
    assert invoke("init", str(folder / "starter.yml")).exit_code == 0
    pad = "".join(f"# {i}\n" for i in range(1, 100))
    bad = folder / "bad.yml"
    bad.write_text(pad + '"[bold]:smile:": 1\n' + (folder / "starter.yml").read_text())
    return bad


# Each command with --json and an input it must refuse: the code the JSON has to carry.
BAD: dict[str, tuple[list[str], str]] = {
    "import": (["import", "{tmp}/missing.csv", "--url", "{tmp}/x.duckdb"], "data"),
    "forget": (["forget", "u1", "--yes", "--url", "{tmp}/nowhere/x.duckdb"], "backend"),
    "migrate": (["migrate", "--url", "{tmp}/nowhere/x.duckdb"], "backend"),
    "doctor": (["doctor", "--url", "{tmp}/nowhere/x.duckdb"], "backend"),
    "sync crm": (["sync", "crm", "-m", "{bad}"], "model_invalid"),
    "sync outcomes": (["sync", "outcomes", "-m", "{bad}"], "model_invalid"),
    "demo": (["demo", "--dir", "{tmp}/demo", "--accounts", "0"], "error"),
    "deliver": (["deliver", "-m", "{bad}"], "model_invalid"),
    "deliveries": (["deliveries", "--url", "{tmp}/nowhere/x.duckdb"], "backend"),
    "feedback": (["feedback", "u1", "done", "-m", "{bad}"], "model_invalid"),
    "learn": (["learn", "-m", "{bad}"], "model_invalid"),
    "evaluate": (["evaluate", "-m", "{bad}"], "model_invalid"),
    "backtest": (["backtest", "-m", "{bad}"], "model_invalid"),
    "compare": (["compare", "-m", "{bad}"], "model_invalid"),
    "promote": (["promote", "{bad}", "-m", "{bad}", "--why", "x"], "model_invalid"),
    "history": (["history", "-m", "{bad}"], "model_invalid"),
    "report": (["report", "-m", "{bad}"], "model_invalid"),
    "validate": (["validate", "-m", "{bad}"], "model_invalid"),
    "score": (["score", "-m", "{bad}"], "model_invalid"),
    "accounts": (["accounts", "-m", "{bad}"], "model_invalid"),
    "explain": (["explain", "u1", "-m", "{bad}"], "model_invalid"),
    "tracking-plan": (["tracking-plan", "-m", "{bad}"], "model_invalid"),
    "tracking": (["tracking", "-m", "{bad}"], "model_invalid"),
    "users add": (
        ["users", "add", "ann", "--password-stdin", "--url", "{tmp}/nowhere/x.duckdb"],
        "backend",
    ),
    "users list": (["users", "list", "--url", "{tmp}/nowhere/x.duckdb"], "backend"),
}


def test_every_json_command_has_a_bad_input_here():
    assert set(_json_commands()) == set(BAD)


@pytest.mark.parametrize("command", sorted(BAD))
def test_every_json_command_prints_its_error_as_json(tmp_path, command):
    bad = _model_at_line_100(tmp_path)
    argv, code = BAD[command]
    argv = [a.format(tmp=tmp_path, bad=bad) for a in argv]
    result = invoke(*argv, "--json", stdin="a-long-enough-password\n")
    payload = json.loads(result.stdout)  # one object, nothing else on stdout
    assert payload["code"] == code, payload
    assert result.exit_code == payload["exit_code"] == 1
    assert payload["message"] and payload["retryable"] is False
    assert result.stderr == "", "under --json the error is on stdout only"
    if code == "model_invalid":
        assert (payload["file"], payload["line"], payload["field"]) == (
            str(bad),
            100,
            "[bold]:smile:",
        )
    # the same without --json: one message on stderr, no traceback, nothing on stdout
    plain = invoke(*argv, stdin="a-long-enough-password\n")
    assert plain.exit_code == 1 and plain.stdout == ""
    assert plain.stderr.startswith("error: ") and "Traceback" not in plain.stderr


def test_a_model_error_on_line_100_keeps_its_place_and_its_text(tmp_path):
    """Issue 27: rich read `:100:` as an emoji code and printed `bad.yml💯`."""
    bad = _model_at_line_100(tmp_path)
    result = invoke("validate", "-m", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:100: [bold]:smile:: unknown key '[bold]:smile:'" in result.stderr
    assert "💯" not in result.stderr and "😄" not in result.stderr


def test_a_long_error_is_one_line_and_markup_in_it_is_text(monkeypatch):
    import pqlkit.usecases.validating as use  # what `pql validate` calls

    text = "x.yml:100: [bold]not bold[/bold] :smile: [/] " + "very long " * 40

    def fail(*_a, **_k):
        raise PqlkitError(text)

    monkeypatch.setattr(use, "validate_cold", fail)
    result = invoke("validate", "--no-data")
    assert result.exit_code == 1 and result.stderr == f"error: {text}\n"


def test_usage_internal_and_driver_errors_under_json(monkeypatch):
    import duckdb

    import pqlkit.usecases.validating as use  # what `pql validate` calls

    result = invoke("score", "--json", "--limit", "many")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["code"] == "usage" and "--limit" in result.stdout
    result = invoke("score", "--limit", "many", "--json")  # --json after the bad value
    assert result.exit_code == 2 and json.loads(result.stdout)["code"] == "usage"
    result = invoke("init", "--json")  # init has no --json: click's own usage error
    assert result.exit_code == 2 and "No such option" in result.stderr and result.stdout == ""

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.delenv("PQL_DEBUG", raising=False)
    monkeypatch.setattr(use, "validate_cold", broken)
    result = invoke("validate", "--no-data", "--json")
    payload = json.loads(result.stdout)
    assert result.exit_code == 70 and payload["code"] == "internal"
    assert "ZeroDivisionError: boom" in payload["message"] and "PQL_DEBUG=1" in payload["hint"]
    plain = invoke("validate", "--no-data")
    assert plain.exit_code == 70 and "This is a bug in pqlkit" in plain.stderr

    def refused(*_a, **_k):  # a driver error no Backend.errors block caught
        raise duckdb.ConstraintException("Constraint Error: NOT NULL constraint failed: t.id")

    monkeypatch.setattr(use, "validate_cold", refused)
    payload = json.loads(invoke("validate", "--no-data", "--json").stdout)
    assert payload["code"] == "refused_value" and "NOT NULL" in payload["message"]

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(use, "validate_cold", interrupted)
    result = invoke("validate", "--no-data", "--json")
    assert result.exit_code == 130 and json.loads(result.stdout)["code"] == "interrupted"


def test_exit_codes_in_the_readme_are_the_ones_used():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Exit codes") :]
    section = section[: section.index("\n## ", 4)]
    rows = {
        int(exit_code): set(re.findall(r"`([a-z_]+)`", codes))
        for exit_code, codes in re.findall(r"^\| (\d+) \|([^|]*)\|", section, re.M)
    }
    assert set(rows) == {c.exit_code for c in CLASSES} | {0, 2, 3, 70, 130}
    for cls in CLASSES:
        assert cls.code in rows[cls.exit_code], cls
    cli_codes = {"usage": 2, "internal": 70, "interrupted": 130}
    assert all(code in rows[exit_code] for code, exit_code in cli_codes.items())
    documented = set().union(*rows.values())
    assert documented == {c.code for c in CLASSES} | set(cli_codes), "no code is left over"


def test_no_class_of_the_tree_is_missing_from_the_module_api():
    assert {c.__name__ for c in CLASSES if c.__module__ == "pqlkit.errors"} <= set(errors.__all__)
    assert all(inspect.getdoc(c) for c in CLASSES)


def test_a_crm_refusing_the_token_is_an_auth_error_naming_its_setting():
    import httpx

    from pqlkit.crm import hubspot
    from pqlkit.model.crm import HubSpotDestination

    from .fakes import Running
    from .fakes.hubspot import FakeHubSpot

    fake = FakeHubSpot()
    with Running(fake.app) as srv, httpx.Client() as http:
        dest = HubSpotDestination(id="h", kind="hubspot", token_env="HS_TOKEN", base_url=srv.url)
        with pytest.raises(CrmAuthError, match="HS_TOKEN") as caught:
            hubspot.HubSpot(dest, "wrong", http).ensure_properties("contacts", {}, {}, None)
    payload = caught.value.to_dict()
    assert (payload["code"], payload["family"], payload["exit_code"]) == ("crm_auth", "auth", 1)


def test_a_postgres_server_that_does_not_answer_is_unavailable(tmp_path):
    from .conftest import free_port

    url = f"postgresql://pql@127.0.0.1:{free_port()}/nothing"  # no server listens there
    result = invoke("users", "list", "--url", url, "--json")
    payload = json.loads(result.stdout)
    assert result.exit_code == 75 and payload["code"] == "backend_unavailable"
    assert "cannot connect to PostgreSQL" in payload["message"]
