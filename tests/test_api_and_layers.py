"""The public API is pinned, `import pqlkit` stays light, and layer arrows point down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pqlkit

SRC = Path(pqlkit.__file__).resolve().parent


def test_public_api_is_pinned():
    assert sorted(pqlkit.__all__) == sorted(
        [
            "BackendError",
            "DataError",
            "DataQualityError",
            "Engine",
            "Explanation",
            "ExportError",
            "MappingError",
            "Model",
            "ModelError",
            "ModelValidationError",
            "PqlkitError",
            "RunResult",
            "__version__",
            "connect",
            "load_model",
            "parse_model",
        ]
    )
    for name in pqlkit.__all__:
        assert getattr(pqlkit, name) is not None


def test_import_is_light():
    code = "import sys, pqlkit; print(','.join(m for m in ('ibis','duckdb','psycopg','pydantic','rich') if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                out.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.add(node.module)
    return out


# What each layer may not import (see ../shared/STYLE.md: arrows point down).
FORBIDDEN = {
    "model": (
        "ibis",
        "duckdb",
        "psycopg",
        "httpx",
        "starlette",
        "pqlkit.features",
        "pqlkit.scoring",
        "pqlkit.engine",
        "pqlkit.backends",
        "pqlkit.sinks",
        "pqlkit.cli",
        "pqlkit.demo",
    ),
    "scoring": (
        "ibis",
        "duckdb",
        "psycopg",
        "httpx",
        "starlette",
        "pqlkit.features",
        "pqlkit.engine",
        "pqlkit.backends",
        "pqlkit.sinks",
        "pqlkit.cli",
        "pqlkit.demo",
    ),
    "features": (
        "duckdb",
        "psycopg",
        "httpx",
        "starlette",
        "pqlkit.engine",
        "pqlkit.backends",
        "pqlkit.sinks",
        "pqlkit.cli",
    ),
    "backends": ("pqlkit.engine", "pqlkit.cli", "pqlkit.features", "pqlkit.scoring"),
    "sinks": ("pqlkit.engine", "pqlkit.cli", "pqlkit.features"),
    "server": ("pqlkit.engine", "pqlkit.cli", "pqlkit.features", "pqlkit.scoring"),
    "collect": ("pqlkit.engine", "pqlkit.cli", "pqlkit.features", "pqlkit.scoring"),
    "engine": ("pqlkit.cli", "pqlkit.usecases"),
    # the shells call use cases; they do no engine work and import no database library
    "cli": (
        "ibis",
        "duckdb",
        "psycopg",
        "pqlkit.engine",
        "pqlkit.features",
        "pqlkit.learn",
        "pqlkit.collect",
        "pqlkit.report",
        "pqlkit.scoring",
        "pqlkit.server",
    ),
    "usecases": ("pqlkit.cli",),
    "handoff": ("pqlkit.cli", "pqlkit.usecases", "pqlkit.server", "pqlkit.learn"),
    "learn": (
        "duckdb",
        "psycopg",
        "httpx",
        "starlette",
        "pqlkit.cli",
        "pqlkit.backends",
        "pqlkit.server",
        "pqlkit.collect",
        "pqlkit.report",
    ),
    "report": (
        "duckdb",
        "psycopg",
        "ibis",
        "httpx",
        "starlette",
        "pqlkit.cli",
        "pqlkit.backends",
        "pqlkit.server",
        "pqlkit.collect",
        "pqlkit.features",
    ),
}


def test_layer_arrows_point_down():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        layer = rel.parts[0].removesuffix(".py")
        for name in _imports(path):
            for banned in FORBIDDEN.get(layer, ()):
                if name == banned or name.startswith(banned + "."):
                    wrong.append(f"{rel} imports {name}")
    assert wrong == []


def test_only_backends_hold_connections():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("backends",):
            continue
        text = path.read_text()
        for needle in (
            "duckdb.connect(",
            "psycopg.connect(",
            "ibis.connect(",
            "ibis.duckdb.connect(",
        ):
            if needle in text:
                offenders.append(f"{rel}: {needle}")
    assert offenders == []


def test_no_private_part_of_a_backend_is_touched_outside_backends():
    """Backends are used through their methods only: no `.con`, `._con`, `._raw`, `._lock`,
    `._execute(` or `._fetch(` outside pqlkit/backends (and no SQL written by hand there)."""
    import re

    needle = re.compile(r"\.(_?con|_raw|_lock|_execute|_fetch|_tables)\b(?!\w)")
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "backends":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if needle.search(line) and "backend" in line:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_collect_and_the_engine_write_no_sql_by_hand():
    """Statements live in the backends' intent methods."""
    import re

    sql = re.compile(
        r"[\"'](INSERT INTO|DELETE FROM|CREATE TABLE|DROP TABLE|UPDATE \"|SELECT .* FROM)", re.I
    )
    offenders = []
    for folder in ("collect", "engine.py", "learn", "report", "features", "scoring", "cli"):
        base = SRC / folder
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if sql.search(line):
                    offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


def test_help_and_init_import_no_database_library(tmp_path):
    code = (
        "import sys; from pqlkit.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(','.join(m for m in ('ibis', 'duckdb', 'pyarrow', 'psycopg') if m in sys.modules), file=sys.stderr)"
    )
    for args in (["--help"], ["init", str(tmp_path / "m.yml")], ["score", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
        )
        assert done.stderr.strip().splitlines()[-1:] in ([], [""]), (args, done.stderr)


def test_no_source_file_is_a_god_module():
    """One responsibility a file: none over ~500 lines (../shared/STYLE.md)."""
    long = [
        f"{p.relative_to(SRC)}: {n}"
        for p in sorted(SRC.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 520
    ]
    assert long == []
