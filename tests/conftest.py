"""Shared fixtures: a throwaway PostgreSQL server, a backend factory run on DuckDB and
PostgreSQL, and a small seeded demo world."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest
from hypothesis import settings

from pqlkit.backends import Backend, connect
from pqlkit.demo.generate import DemoData, DemoSize, generate
from pqlkit.demo.load import load, starter_text

# No time limit on a generated example: speed is measured in bench/, and a loaded machine (three
# test workers on two cores) once made a DuckDB connection take 252 ms, past Hypothesis's 200.
settings.register_profile("pqlkit", deadline=None)
settings.load_profile("pqlkit")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEMO_END = datetime(2026, 10, 1)

#: The canonical users and events columns, for tests that write small hand-made tables.
USERS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("email", pa.string()),
        ("account_id", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("plan", pa.string()),
        ("role", pa.string()),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("account_id", pa.string()),
        ("event", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("properties", pa.string()),
    ]
)


def _require(var: str) -> bool:
    return os.environ.get(var) == "1" or os.environ.get("CI") == "true"


def shared_path(*parts: str) -> Path:
    """A file under ../shared/datasets; skips when absent unless PQLKIT_REQUIRE_SHARED=1."""
    path = SHARED.joinpath("datasets", *parts)
    if not path.exists():
        if os.environ.get("PQLKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is missing and PQLKIT_REQUIRE_SHARED=1 is set")
        pytest.skip(f"{path} is not here (clone ../shared beside the project to run this test)")
    return path


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def chromium() -> str | None:
    """The machine's Chromium (scripts/ensure-chromium installs it), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    host: str
    port: int
    data: Path
    """The server's data folder (tests read its files)."""

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{db}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if _require("PQLKIT_REQUIRE_POSTGRES"):
            pytest.fail(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; run `make test`, "
                "which installs them"
            )
        pytest.skip("PostgreSQL server binaries not found (install postgresql to run these tests)")
    base = Path(tempfile.mkdtemp(prefix="pqlkit-pg-"))
    data = base / "data"
    port = free_port()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    # autovacuum off: its background ANALYZE copies column values into pg_statistic at moments
    # no test controls (test_forget reads the files for a forgotten e-mail; one ANALYZE that
    # began before the delete and ended after forget's purge left it there once, under load)
    opts = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
        "-c autovacuum=off"
    )
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PgServer("127.0.0.1", port, data)
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


# --- backends --------------------------------------------------------------------------------------

BACKENDS = ["duckdb", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


#: Spark in this process (local mode, 2 cores): one session per test process, as in Spark.
SPARK = pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.xdist_group("spark")])


@pytest.fixture(scope="session")
def spark_warehouse(tmp_path_factory) -> Path:
    """The Spark warehouse of this test process (its catalog and tables)."""
    return tmp_path_factory.mktemp("spark")


#: The test JVM's options: the quick C1 compiler only (C2 spends seconds of a core optimising
#: code that a test with a few hundred rows runs a few times) and one garbage-collector thread.
#: A session start and the parity fixture's load and run took 59 CPU-s of the JVM against
#: 105 (start 14.5 against 27.6, load and run 44.5 against 77.5); what Spark computes is the same.
SPARK_TEST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def spark_url(warehouse: Path, database: str) -> str:
    """The URL of ``database`` in the process's Spark catalog (the session starts with the
    test JVM's options when this is the process's first Spark URL)."""
    jvm = quote(SPARK_TEST_JVM)
    return (
        f"spark://local[2]?warehouse={warehouse}&database={database}"
        f"&spark.driver.defaultJavaOptions={jvm}"
    )


def spark_backend(warehouse: Path) -> Backend:
    """A fresh, empty database of the process's Spark catalog."""
    return connect(spark_url(warehouse, f"t_{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def new_backend(backend_name, request, tmp_path):
    """A factory of fresh, empty databases on the parametrized backend."""
    opened: list[Backend] = []

    def make() -> Backend:
        if backend_name == "duckdb":
            b = connect(str(tmp_path / f"{uuid.uuid4().hex[:8]}.duckdb"))
        elif backend_name == "spark":
            b = spark_backend(request.getfixturevalue("spark_warehouse"))
        else:
            server = request.getfixturevalue("pg_server")
            b = connect(server.create_database())
        opened.append(b)
        return b

    yield make
    for b in opened:
        with contextlib.suppress(Exception):
            b.close()


@pytest.fixture(scope="session")
def small_world() -> DemoData:
    """A small seeded demo world: enough users for every segment and motion."""
    return generate(DemoSize(accounts=150, users=600, days=60, seed=11), end=DEMO_END)


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "pql.yml"
    path.write_text(starter_text(), encoding="utf-8")
    return path


@pytest.fixture
def world_backend(new_backend, small_world) -> Backend:
    backend = new_backend()
    load(backend, small_world)
    return backend


@contextlib.contextmanager
def demo_engine_in(folder: Path, size: DemoSize):
    """An engine over a generated demo world in a DuckDB file in ``folder``, with the starter model."""
    from pqlkit.demo.load import write_model
    from pqlkit.engine import Engine
    from pqlkit.model.load import load_model

    backend = connect(str(folder / "d.duckdb"))
    load(backend, generate(size, end=DEMO_END))
    write_model(folder / "pql.yml")
    try:
        yield Engine(load_model(folder / "pql.yml"), backend)
    finally:
        backend.close()
