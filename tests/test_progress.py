"""Progress on long commands: shown on a terminal, silent under --json or when the output is
piped, through one helper (cli/render.py) every long command uses."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

import pqlkit
from pqlkit.cli import options, render

ESC = b"\x1b["
SRC = str(Path(pqlkit.__file__).resolve().parents[1])


def _run(args: list[str], *, stdout_tty: bool, stderr_tty: bool, cwd) -> tuple[int, bytes, bytes]:
    """A `pql` command with its stdout and stderr each a terminal (a pty) or a pipe."""
    ends, readers, chunks = [], [], {"out": [], "err": []}
    for name, tty in (("out", stdout_tty), ("err", stderr_tty)):
        if tty:
            master, slave = pty.openpty()
            ends.append(slave)
        else:
            master, slave = None, subprocess.PIPE
        readers.append((name, master, slave))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    # the pqlkit under test, wherever the command runs from
    env |= {"TERM": "xterm-256color", "COLUMNS": "120", "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqlkit.cli", *args],
        stdout=readers[0][2],
        stderr=readers[1][2],
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    for fd in ends:
        os.close(fd)

    def drain(name: str, fd: int | None) -> None:
        stream = (proc.stdout if name == "out" else proc.stderr) if fd is None else None
        while True:
            try:
                data = stream.read(65536) if stream is not None else os.read(fd, 65536)
            except OSError:  # the terminal's other end closed: the command is done
                break
            if not data:
                break
            chunks[name].append(data)

    threads = [threading.Thread(target=drain, args=(n, m)) for n, m, _ in readers]
    for t in threads:
        t.start()
    code = proc.wait(timeout=600)
    for t in threads:
        t.join(timeout=30)
    for _, master, _ in readers:
        if master is not None:
            os.close(master)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return code, b"".join(chunks["out"]), b"".join(chunks["err"])


DEMO = ["demo", "--accounts", "30", "--users", "120", "--days", "20", "--top", "3"]


def test_json_stays_pure_json_and_piped_output_has_no_progress(tmp_path):
    # --json on a terminal: stdout is one JSON document, stderr holds no progress
    code, out, err = _run(
        [*DEMO, "--dir", "a", "--json"], stdout_tty=True, stderr_tty=True, cwd=tmp_path
    )
    assert code == 0, err
    assert json.loads(out.decode())["data"]["users"] == 120
    assert ESC not in out and ESC not in err
    # piped (as in a script or a log) while stderr is still a terminal: no escape codes at all
    code, out, err = _run([*DEMO, "--dir", "b"], stdout_tty=False, stderr_tty=True, cwd=tmp_path)
    assert code == 0, err
    assert b"pqlkit demo" in out
    assert ESC not in out and ESC not in err


def test_a_person_at_a_terminal_sees_the_steps(tmp_path):
    code, out, err = _run([*DEMO, "--dir", "c"], stdout_tty=True, stderr_tty=True, cwd=tmp_path)
    assert code == 0, err
    assert ESC in err  # the live display, drawn and erased on stderr
    assert b"generating 30 accounts" in err or b"loading" in err or b"scoring" in err
    assert b"pqlkit demo" in out
    assert b"next:" in out and b"@" in out  # the top PQLs as people, each with a next step


def test_a_counted_step_fills_a_bar_and_the_helper_is_the_one_the_commands_use(monkeypatch):
    buffer = io.StringIO()
    fake = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(render, "err", fake)
    monkeypatch.setattr(render, "out", fake)
    with render.progress(render.interactive(False)) as say:
        say("snapshot 3/12 as of 2026-01-05")
        say("fitting")
    drawn = buffer.getvalue()
    assert "snapshot 3/12 as of 2026-01-05" in drawn and " 3/12" in drawn.split("fitting")[0]
    assert "/12" not in drawn.split("fitting")[-1]  # a step without a count shows none
    assert render.interactive(True) is False  # --json: never
    assert options.progress is render.progress and options.interactive is render.interactive
    with render.progress(False) as say:  # disabled: a no-op
        say("anything")


def test_make_demo_says_what_it_installs_before_pip_and_lets_pip_show_progress(tmp_path):
    """`make demo` on a fresh clone: a line saying what is installed comes before pip, and the
    install's own pip shows its packages and downloads (not --quiet)."""
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(
        ["make", "-n", "-B", "-C", str(root), "VENV=" + str(tmp_path / "venv"), "demo"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pip = [i for i, line in enumerate(dry) if "pip install" in line and "-e" in line]
    said = [i for i, line in enumerate(dry) if line.startswith("echo") and "Installing" in line]
    assert said and pip and said[0] < pip[0], dry
    assert "--quiet" not in dry[pip[0]] and "-q " not in dry[pip[0]]
    assert "DuckDB" in dry[said[0]]
