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
            "open_engine",
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


def _modules() -> dict[str, Path]:
    """Every module of pqlkit by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """What a file imports, anywhere in it (inside functions too), as dotted names: for `from
    P import N`, P.N when that is a module of ours, else P."""
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
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            subs = {f"{module}.{a.name}" for a in node.names} & set(MODULES)
            out |= subs
            if len(subs) < len(node.names):
                out.add(module)
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t in _imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pqlkit"


#: Which of pqlkit's packages each package may import (besides itself, `errors` and
#: `_version`): the house of ../shared/STYLE.md, drawn in docs/architecture.md. An allowlist:
#: a package not named here may import nothing of ours, and a new arrow is a decision.
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "scoring": {"model"},
    "features": {"model", "scoring"},
    "learn": {"features", "scoring", "model"},
    "backends": set(),
    "destinations": {"model"},
    "sinks": {"backends"},
    "templates": set(),
    "engine": {"features", "scoring", "model", "backends"},
    "collect": {"backends"},
    "demo": {"backends", "collect"},
    "report": {"learn", "templates"},
    "tracking": {"model", "features", "backends"},  # instrumentation health
    "handoff": {"engine", "collect", "destinations", "model", "scoring", "backends", "sinks"},
    "crm": {"engine", "handoff", "destinations", "model", "scoring", "backends", "sinks"},
    "access": set(),
    "usecases": {
        "access",
        "engine",
        "handoff",
        "crm",
        "collect",
        "report",
        "learn",
        "demo",
        "model",
        "scoring",
        "features",
        "backends",
        "sinks",
        "destinations",
        "tracking",
    },
    # the shells: parse, call a use case, render; the CLI starts the other two
    "server": {"usecases", "collect", "backends"},
    "web": {"usecases", "access", "templates", "report", "model", "backends"},
    "cli": {"usecases", "server", "web", "backends"},
    "pqlkit": {"engine", "model", "backends", "usecases"},  # the public API (pqlkit/__init__.py)
}
ANYONE = {"errors", "_version", "logs"}  # logs: what every running part writes


def test_every_import_is_allowed_by_the_house():
    """An allowlist per package, imports inside functions counted (the layers of STYLE.md)."""
    wrong = []
    for module, targets in _graph().items():
        layer = _layer(module)
        for target in sorted(targets):
            other = _layer(target)
            if other != layer and other not in ANYONE and other not in ALLOWED.get(layer, ()):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycle_anywhere():
    """No module reaches itself through imports, lazy ones included (Tarjan's strongly
    connected components over the module graph), and so no package either."""
    graph = _graph()

    def cycles(g: dict[str, set[str]]) -> list[list[str]]:
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in sorted(g.get(v, ())):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                part = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    part.append(w)
                    if w == v:
                        break
                if len(part) > 1:
                    found.append(sorted(part))

        for v in sorted(g):
            if v not in index:
                visit(v)
        return found

    assert cycles(graph) == []
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(_layer(module), set()).update(
            _layer(t) for t in targets if _layer(t) != _layer(module)
        )
    packages.pop("pqlkit", None)  # the public API imports what it exports, lazily
    assert cycles(packages) == []


def test_the_layer_test_sees_lazy_imports_and_cycles(tmp_path):
    """The graph reader itself: an import inside a function is an edge."""
    f = SRC / "engine" / "core.py"
    assert "pqlkit.backends" in _imports(f)
    assert "pqlkit.engine.core" in _graph()["pqlkit.engine.rescore"]
    assert set(ALLOWED) >= {_layer(m) for m in MODULES} - ANYONE


# What a layer may not import from outside pqlkit (its own packages are the allowlist's).
FORBIDDEN = {
    "model": ("ibis", "duckdb", "psycopg", "httpx", "starlette"),
    "scoring": ("ibis", "duckdb", "psycopg", "httpx", "starlette"),
    "features": ("duckdb", "psycopg", "httpx", "starlette"),
    "learn": ("duckdb", "psycopg", "httpx", "starlette"),
    "report": ("duckdb", "psycopg", "ibis", "httpx", "starlette"),
    # the shells do no engine work and import no database library
    "cli": ("ibis", "duckdb", "psycopg"),
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
            "sqlite3.connect(",  # the prompt API's store is a backend too (backends/serving.py)
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


def test_no_sql_is_written_by_hand_outside_backends():
    """Statements live in the backends' intent methods: no package but backends/ writes SQL
    text (or a PRAGMA)."""
    import re

    sql = re.compile(
        r"[\"'](INSERT INTO|DELETE FROM|CREATE TABLE|CREATE INDEX|DROP TABLE|UPDATE \"|"
        r"SELECT .* FROM|PRAGMA )",
        re.I,
    )
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] == "backends":
            continue
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


def test_open_engine_records_the_transitions_of_a_model_with_a_hand_off(tmp_path):
    """The public way in wires the engine as the CLI does; the bare engine refuses such a
    model rather than lose its transitions."""
    import pytest

    from pqlkit.demo.generate import DemoSize, generate
    from pqlkit.demo.load import load, write_model
    from pqlkit.errors import PqlkitError

    db, model = tmp_path / "d.duckdb", tmp_path / "pql.yml"
    backend = pqlkit.connect(str(db))
    load(backend, generate(DemoSize(accounts=10, users=40, days=14, seed=2)))
    backend.close()
    write_model(model, handoff=True)
    bare = pqlkit.Engine.open(str(model), str(db))
    with pytest.raises(PqlkitError, match="open_engine"):
        bare.run()
    bare.close()
    engine = pqlkit.open_engine(model, str(db))
    try:
        assert engine.run().transitions is not None
    finally:
        engine.close()
