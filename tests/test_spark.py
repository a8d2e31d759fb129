"""The same model, unchanged, on Apache Spark (local mode): every user's and account's result
equals DuckDB's on the demo world with anonymous events linked by identities (decay, windows,
JSON properties, identities, tiers), and on generated models of every signal kind; `pql demo`
runs on Spark in one command. The backend's own contract is tests/test_backend_conformance.py.

Why these tests take 30 s to two minutes each on a quiet machine (the file took 529 s in one
worker of a CI rehearsal of `make test`; `make check` leaves it out): Spark plans and runs each statement
in about a second whatever the rows, and a scoring run is dozens of statements (a write and a
count take 1.5 s). Smaller data would not make them faster; fewer runs would test less."""

from __future__ import annotations

import math
from datetime import timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from pqlkit.backends import connect
from pqlkit.demo.load import canonical_events, load
from pqlkit.engine import ACCOUNT_SCORES, RUNS, USER_COLUMNS, USER_SCORES, Engine
from pqlkit.model.load import load_model

from .conftest import DEMO_END, spark_backend, spark_url
from .test_signal_kinds import _check, world

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

AS_OF = DEMO_END


def _with_identities(backend, small_world) -> None:
    """The demo world plus anonymous visits of some users before they signed up, linked to
    them by identities (before as_of for some, after it for one: it must not count yet)."""
    load(backend, small_world)
    users = [u["user_id"] for u in small_world.users.select(["user_id"]).to_pylist()[:12]]
    events, links = [], []
    for i, user in enumerate(users):
        anon = f"anon_{i}"
        linked = AS_OF - timedelta(days=3) if i else AS_OF + timedelta(days=1)
        links.append({"id": anon, "user_id": user, "linked_at": linked})
        for j in range(3):
            events.append(
                {
                    "message_id": f"anon-{i}-{j}",
                    "user_id": None,
                    "anonymous_id": anon,
                    "account_id": None,
                    "event": "pricing_viewed" if j else "feature_used",
                    "timestamp": AS_OF - timedelta(days=5 + j, hours=i),
                    "properties": '{"feature": "reports", "plan": 3}',
                }
            )
    backend.insert(
        "events", canonical_events(pa.Table.from_pylist(events, schema=small_world.events.schema))
    )
    backend.write_table(
        "pql_identities",
        pa.Table.from_pylist(
            links,
            schema=pa.schema(
                [("id", pa.string()), ("user_id", pa.string()), ("linked_at", pa.timestamp("us"))]
            ),
        ),
    )


@pytest.fixture(scope="module")
def engines(small_world, spark_warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_parity")
    model = folder / "pql.yml"
    from pqlkit.demo.load import write_model

    write_model(model)
    duck = connect(str(folder / "d.duckdb"))
    spark = spark_backend(spark_warehouse)
    for backend in (duck, spark):
        _with_identities(backend, small_world)
    pair = Engine(load_model(model), duck), Engine(load_model(model), spark)
    for engine in pair:
        engine.run(AS_OF)
    yield pair
    duck.close()
    spark.close()


def _same(a: list[dict], b: list[dict], key: str) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(sorted(a, key=lambda r: r[key]), sorted(b, key=lambda r: r[key]), strict=True):
        for col, value in y.items():
            got = x[col]
            if isinstance(value, float) and got is not None:
                assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (x[key], col)
            else:
                assert got == value, (x[key], col, got, value)


def test_every_user_and_account_equals_duckdb(engines):
    duck, spark = engines
    for table, key in ((USER_SCORES, "user_id"), (ACCOUNT_SCORES, "account_id")):
        b, d = spark.backend, duck.backend
        _same(b.rows(b.table(table)), d.rows(d.table(table)), key)
    # the anonymous events linked before as_of count, on both: not an equality of blanks
    links = {r["id"]: r["user_id"] for r in duck.backend.rows(duck.backend.table("pql_identities"))}
    for engine in engines:
        e = engine.explain(links["anon_1"], AS_OF)
        pricing = next(s for s in e.signals if s.id == "viewed_pricing")
        assert pricing.value and pricing.value > 0


def test_explanations_equal_duckdb(engines):
    duck, spark = engines
    t = duck.backend.table(USER_SCORES)
    ids = [r[0] for r in duck.backend.values(t.order_by("user_id").select("user_id").limit(3))]
    for user in ids:
        a, b = spark.explain(user, AS_OF), duck.explain(user, AS_OF)
        assert a.outputs == b.outputs
        assert [(s.id, s.points) for s in a.signals] == [(s.id, s.points) for s in b.signals]
        for x, y in zip(a.signals, b.signals, strict=True):  # decay: the last bit may differ
            assert x.value == pytest.approx(y.value, rel=1e-12), (user, x.id)


def test_a_run_again_replaces_its_own_rows(engines):
    _, spark = engines
    b = spark.backend
    before = b.values(b.table(USER_SCORES).order_by("user_id"))
    tables = set(b.tables())
    spark.run(AS_OF)
    assert b.values(b.table(USER_SCORES).order_by("user_id")) == before  # replaced, not added
    assert set(b.tables()) == tables  # no table of the swap left behind


def test_results_are_partitioned_by_run_and_a_failed_write_keeps_the_last(engines):
    """Each run's rows are a partition of their own (as_of, model_version), overwritten
    alone; a write that fails while it runs leaves the partition's previous rows."""
    _, spark = engines
    b = spark.backend
    for table in (USER_SCORES, ACCOUNT_SCORES, RUNS):
        shown = [r[0] for r in b.run_sql(f"SHOW PARTITIONS {table}")]
        assert len(shown) == 1 and shown[0].startswith("as_of=") and "/model_version=" in shown[0]
    before = b.values(b.table(USER_SCORES).order_by("user_id"))
    rows = b.arrow(b.compile(b.table(USER_SCORES).select(*USER_COLUMNS)))
    key = {"as_of": AS_OF, "model_version": spark.loaded.version}
    with b.staged(rows) as stage:  # fails in the tasks, row by row, after some were written
        failing = f'SELECT * FROM "{stage}" WHERE raise_error(user_id) IS NULL'
        with pytest.raises(Exception, match="u"):
            b.replace_rows(USER_SCORES, key, failing, list(USER_COLUMNS))
    assert b.values(b.table(USER_SCORES).order_by("user_id")) == before
    assert not [t for t in b.tables() if t.startswith("_pql_")]


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(w=world())
def test_every_signal_kind_equals_its_reference_on_spark(spark_warehouse, w):
    backend = spark_backend(spark_warehouse)
    try:
        _check(backend, *w)
    finally:
        backend.close()


def test_pql_demo_and_score_run_on_spark_from_the_command_line(spark_warehouse, tmp_path):
    """What the README shows, through the CLI, on this process's Spark (a new database of its
    catalog; a second process cannot share the embedded catalog while this one holds it)."""
    import json

    from click.testing import CliRunner

    from pqlkit.cli import cli

    url = spark_url(spark_warehouse, "demo_cli")
    demo = CliRunner().invoke(
        cli,
        [
            *("demo", "--url", url, "--dir", str(tmp_path / "demo"), "--json"),
            *("--accounts", "15", "--users", "60", "--days", "20"),
        ],
        catch_exceptions=False,
    )
    assert demo.exit_code == 0, demo.output
    model = str(tmp_path / "demo" / "pql.yml")
    score = CliRunner().invoke(
        cli,
        ["score", "-m", model, "--url", url, "--as-of", "2026-11-01", "--json", "--limit", "3"],
        catch_exceptions=False,
    )
    assert score.exit_code == 0, score.output
    out = json.loads(score.output)
    assert out["users"] > 0 and out["as_of"].startswith("2026-11-01")
    assert len(out["rows"]) == out["users"] and {"user_id", "score", "tier"} <= set(out["rows"][0])


def test_learning_evaluation_backtest_and_report_equal_duckdb(engines):
    """`pql learn`, `pql evaluate`, `pql backtest` and `pql report` on Spark: point-in-time
    snapshots, labels from the outcomes, the same lifts, fitted points and figures as DuckDB's,
    and the report renders from them."""
    from pqlkit.learn.learn import learn
    from pqlkit.report.build import CHARTS, render
    from pqlkit.usecases.learning import ReplayOptions, findings

    options = ReplayOptions(
        start=AS_OF - timedelta(days=28), end=AS_OF, every="14d", horizon="14d", won_horizon="14d"
    )

    def figures(engine) -> tuple[dict, dict]:
        learned = learn(
            engine, "opportunity", timedelta(days=14), snapshots=2, until=AS_OF, reference=False
        )
        return learned.to_dict(), findings(engine, options)

    (learn_duck, found_duck), (learn_spark, found_spark) = (figures(e) for e in engines)
    _close(learn_spark, learn_duck)
    assert learn_duck["lifts"] and learn_duck["rows"] > 0
    stamped = {k: v for k, v in found_spark.items() if k != "generated_at"}
    _close(stamped, {k: v for k, v in found_duck.items() if k != "generated_at"})
    assert found_duck["weekly"] and any(w.get("new_pqls") for w in found_duck["weekly"])
    html = render(found_spark)
    assert html.count("<svg") >= len(CHARTS) - 2 and "PQL vs MQL" in html


def _close(a, b, where: str = "") -> None:
    """Equal, floats to 1e-9 (sums in another order differ in the last bits)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), where
        for k in b:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list | tuple):
        assert isinstance(a, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(b, float) and isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b), where
    else:
        assert a == b, (where, a, b)


def test_backends_on_one_session_keep_their_own_databases(spark_warehouse):
    """A process has one Spark session and so one current database: each backend takes its
    own back before it reads or writes (seen: a CLI call on another database moved it)."""
    one, two = spark_backend(spark_warehouse), spark_backend(spark_warehouse)
    one.write_table("t", pa.table({"x": [1]}))
    two.write_table("t", pa.table({"x": [2, 3]}))
    assert one.count("t") == 1 and two.count("t") == 2
    assert one.values(one.table("t")) == [(1,)]
    assert two.tables() == ["t"] and one.tables() == ["t"]


def test_file_sources_score_like_duckdb_and_again(small_world, spark_warehouse, tmp_path):
    """Parquet (a glob over a folder), CSV, JSON lines and Parquet read by Spark give
    DuckDB's rows from the same files, and a second engine (compiled SQL stored by the first,
    naming the files' views) gives them again; a Delta path without Delta says what to do."""
    import json

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pqlkit.demo.load import starter_text
    from pqlkit.errors import MappingError

    data = tmp_path / "data"
    (data / "events").mkdir(parents=True)
    events = small_world.events
    half = events.num_rows // 2
    pq.write_table(events.slice(0, half), data / "events" / "part-0.parquet")
    pq.write_table(events.slice(half), data / "events" / "part-1.parquet")
    pacsv.write_csv(small_world.users, data / "users.csv")
    with open(data / "accounts.jsonl", "w") as fh:
        for row in small_world.accounts.to_pylist():
            fh.write(json.dumps(row) + "\n")
    pq.write_table(small_world.outcomes, data / "outcomes.parquet")
    text = starter_text()
    sources = """sources:
  events: {path: "data/events/*.parquet", format: parquet}
  users: {path: data/users.csv}
  accounts: {path: data/accounts.jsonl}
  outcomes: {path: data/outcomes.parquet}
"""
    model = tmp_path / "pql.yml"
    model.write_text(text[: text.index("sources:")] + sources + text[text.index("plans:") :])

    def scores(backend) -> list[dict]:
        engine = Engine(load_model(model), backend)
        result = engine.run(AS_OF)
        rows = backend.rows(engine.stored_users(result.as_of, result.model_version))
        return sorted(rows, key=lambda r: r["user_id"])

    duck = connect(str(tmp_path / "d.duckdb"))
    spark = spark_backend(spark_warehouse)
    try:
        expected = scores(duck)
        _same(scores(spark), expected, "user_id")
        _same(scores(spark), expected, "user_id")  # a second engine, the stored SQL
        delta = tmp_path / "delta.yml"
        delta.write_text(
            model.read_text().replace(
                'events: {path: "data/events/*.parquet", format: parquet}',
                "events: {path: data/events, format: delta}",
            )
        )
        with pytest.raises(MappingError, match=r"sources\.events: cannot read .* as delta"):
            Engine(load_model(delta), spark).run(AS_OF)
        with pytest.raises(MappingError, match=r"Delta tables .* are read by the Spark backend"):
            Engine(load_model(delta), duck).run(AS_OF)
    finally:
        duck.close()
        spark.close()
