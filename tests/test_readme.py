"""The README's commands still run: the set-up commands exist, and the quick tour works."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _block(lang: str) -> list[str]:
    blocks = re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)
    return [line for b in blocks for line in b.splitlines()]


def test_the_two_setup_commands_are_make_targets_and_ci_runs_the_test_one():
    commands = [line.split("#")[0].strip() for line in _block("sh") if line.strip()]
    assert commands[:2] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: install\n\t\$\(BIN\)/pql demo$", makefile, flags=re.M)
    assert re.search(r"^test: install$", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_quick_tour_commands_run(tmp_path):
    """Every command of the README's quick tour runs, each in a process of its own. Long
    because each starts the CLI and scores or compiles (about 30-40 s in all)."""
    tour = [line[2:] for line in _block("console") if line.startswith("$ pql ")]
    assert len(tour) >= 5
    pql = [sys.executable, "-m", "pqlkit.cli"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # `make demo` runs `pql demo`; the tour then runs against what it made.
    demo = subprocess.run(
        [*pql, "demo", "--users", "800", "--accounts", "200", "--days", "45"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr
    assert "Top 10 PQLs and why" in demo.stdout and "pql-demo/demo.duckdb" in demo.stdout
    for line in tour:
        argv = shlex.split(line)[1:]
        if argv[0] == "explain":  # the README names a user of the default demo size
            argv[1] = "u_000001"
        result = subprocess.run(
            [*pql, *argv], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        assert "Traceback" not in result.stderr
    assert (tmp_path / "pql-demo" / "october.parquet").exists()
