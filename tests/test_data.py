"""Bad data gets a clear error naming where and how to fix it; nothing is half-written."""

from __future__ import annotations

from datetime import datetime

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pqlkit.backends import connect
from pqlkit.engine import USER_SCORES, Engine
from pqlkit.errors import DataQualityError, MappingError
from pqlkit.model.load import load_model

from .conftest import DEMO_END


def _engine(model_file, backend):
    return Engine(load_model(model_file), backend)


def _replace(backend, name: str, table: pa.Table) -> None:
    backend.write_table(name, table, overwrite=True)


def test_missing_mapped_column_names_table_column_and_columns_present(model_file, world_backend):
    text = model_file.read_text().replace(
        "  events: {table: events}", "  events: {table: events, columns: {event: event_name}}"
    )
    model_file.write_text(text)
    with pytest.raises(MappingError) as info:
        _engine(model_file, world_backend).run(DEMO_END)
    msg = str(info.value)
    assert "column 'event_name' is not in events" in msg
    assert "columns present: message_id, source, user_id" in msg
    assert "pql.yml:" in msg


def test_required_column_missing(model_file, world_backend, small_world):
    _replace(world_backend, "events", small_world.events.drop_columns(["timestamp"]))
    with pytest.raises(MappingError, match=r"has no column 'timestamp'.*sources\.events\.columns"):
        _engine(model_file, world_backend).run(DEMO_END)


def test_missing_table_lists_the_tables(model_file, new_backend):
    backend = new_backend()
    with pytest.raises(
        MappingError, match=r"the events table 'events' does not exist.*no tables yet"
    ):
        _engine(model_file, backend).run(DEMO_END)


def test_empty_events_table(model_file, world_backend, small_world):
    _replace(world_backend, "events", small_world.events.slice(0, 0))
    with pytest.raises(DataQualityError, match=r"the events table is empty.*'onboarded' earn"):
        _engine(model_file, world_backend).run(DEMO_END)
    assert not world_backend.has_table(USER_SCORES)
    # a model whose usage signals earn nothing (scored from traits alone) runs, with a warning
    import yaml

    raw = yaml.safe_load(model_file.read_text())
    for signal in raw["usage_signals"]:
        signal["points"] = 0
    model_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = _engine(model_file, world_backend).run(DEMO_END)
    assert any("only fit signals earn points" in w for w in result.warnings)


def test_traits_name_columns_a_condition_cannot_name(model_file, world_backend, small_world):
    """sources.<role>.traits gives a column with spaces a name conditions can use; a missing
    column, a canonical name or a name another column has is a located error."""
    users = small_world.users
    plans = users.column("plan")
    _replace(world_backend, "users", users.append_column("Plan Tier!", plans))
    text = model_file.read_text()
    model_file.write_text(
        text.replace(
            "  users: {table: users}", '  users: {table: users, traits: {plan_tier: "Plan Tier!"}}'
        )
        + "\n"
    )
    raw = model_file.read_text()
    assert "traits: {plan_tier" in raw
    engine = _engine(model_file, world_backend)
    rows = world_backend.rows(engine.bound.users.select("user_id", "plan", "plan_tier").limit(50))
    assert rows and all(r["plan"] == r["plan_tier"] for r in rows)
    for traits, message in (
        ('{plan_tier: "Plan Tierr"}', "column 'Plan Tierr' is not in users"),
        ('{plan: "Plan Tier!"}', "'plan' is a canonical users column"),
        ('{email: "Plan Tier!"}', "'email' is a canonical users column"),
        ('{role2: "Plan Tier!", account_id: "x"}', "canonical users column"),
    ):
        model_file.write_text(raw.replace('{plan_tier: "Plan Tier!"}', traits))
        with pytest.raises(MappingError, match=message) as info:
            _engine(model_file, world_backend).run(DEMO_END)
        assert "pql.yml:" in str(info.value)


def test_null_and_duplicate_user_ids(model_file, world_backend, small_world):
    users = small_world.users
    ids = users.column("user_id").to_pylist()
    ids[0] = None
    dup = pa.concat_tables([users.set_column(0, "user_id", pa.array(ids)), users.slice(5, 1)])
    _replace(world_backend, "users", dup)
    with pytest.raises(DataQualityError) as info:
        _engine(model_file, world_backend).run(DEMO_END)
    msg = str(info.value)
    assert "1 row(s) have no user_id" in msg
    assert "1 duplicate user_id row(s), e.g. 'u_000005'" in msg


def test_duplicate_account_ids(model_file, world_backend, small_world):
    _replace(
        world_backend,
        "accounts",
        pa.concat_tables([small_world.accounts, small_world.accounts.slice(3, 1)]),
    )
    with pytest.raises(DataQualityError, match=r"duplicate account_id row\(s\), e\.g\. 'a_00003'"):
        _engine(model_file, world_backend).run(DEMO_END)


def test_unknown_event_name_warns_and_lists_known(model_file, world_backend):
    text = model_file.read_text().replace("events: [upgrade_clicked]", "events: [upgrade_clicks]")
    model_file.write_text(text)
    result = _engine(model_file, world_backend).run(DEMO_END)
    [warning] = [w for w in result.warnings if "upgrade_clicks" in w]
    assert "never occurs in the events (did you mean 'upgrade_clicked'?)" in warning
    assert "known events:" in warning and "feature_used" in warning


def test_the_thorough_check_warns_of_events_without_a_user_and_repeated_message_ids(
    model_file, world_backend, small_world
):
    events = small_world.events
    users = events.column("user_id").to_pylist()
    users[0] = users[1] = None
    ids = events.column("message_id").to_pylist()
    ids[3] = ids[2]
    changed = events.set_column(1, "user_id", pa.array(users)).set_column(
        0, "message_id", pa.array(ids)
    )
    _replace(world_backend, "events", changed)
    engine = _engine(model_file, world_backend)
    assert not any(w.startswith("events:") for w in engine.check())
    warnings = engine.check(thorough=True)
    n = events.num_rows
    assert f"events: 2 of {n} events have no user_id and are not scored" in warnings
    assert "events: 1 events repeat a message_id already seen" in warnings


def test_referenced_attribute_missing(model_file, world_backend):
    text = model_file.read_text().replace("field: account.industry", "field: account.industy")
    model_file.write_text(text)
    with pytest.raises(
        MappingError,
        match=r"pql\.yml:\d+: .*account\.industy: the accounts table has no column 'industy' \(did you mean 'industry'\?\)",
    ):
        _engine(model_file, world_backend).run(DEMO_END)


# --- files and timestamps (DuckDB reads files) -----------------------------------------------------


def _file_model(model_file, sources: str):
    text = model_file.read_text()
    start = text.index("sources:")
    end = text.index("plans:")
    model_file.write_text(text[:start] + sources + "\n" + text[end:])


def test_files_with_a_column_mapping_score_like_tables(model_file, small_world, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    events = small_world.events.rename_columns(
        ["id", "uid", "anon", "acct", "event_name", "ts", "props"]
    )
    pq.write_table(events, data / "events.parquet")
    pacsv.write_csv(small_world.users, data / "users.csv")
    with open(data / "accounts.jsonl", "w") as fh:
        import json

        for row in small_world.accounts.to_pylist():
            fh.write(json.dumps(row) + "\n")
    pq.write_table(small_world.outcomes, data / "outcomes.parquet")
    _file_model(
        model_file,
        """sources:
  events:
    path: data/events.parquet
    columns: {message_id: id, user_id: uid, anonymous_id: anon, account_id: acct,
              event: event_name, timestamp: ts, properties: props}
  users: {path: data/users.csv}
  accounts: {path: data/accounts.jsonl}
  outcomes: {path: data/outcomes.parquet}
""",
    )
    (tmp_path / "pql.yml").write_text(model_file.read_text())
    from_files = Engine(load_model(tmp_path / "pql.yml"), connect(str(tmp_path / "f.duckdb")))
    tables_backend = connect(str(tmp_path / "t.duckdb"))
    from pqlkit.demo.load import load, starter_text

    load(tables_backend, small_world)
    (tmp_path / "t.yml").write_text(starter_text())
    from_tables = Engine(load_model(tmp_path / "t.yml"), tables_backend)
    a = from_files.scores(DEMO_END).drop("model_version").to_pyarrow().sort_by("user_id")
    b = from_tables.scores(DEMO_END).drop("model_version").to_pyarrow().sort_by("user_id")
    assert a.to_pylist() == b.to_pylist()


def test_text_timestamps_with_offsets_become_utc(model_file, small_world, tmp_path):
    ts = small_world.events.column("timestamp")
    # the same instants written with a +02:00 offset
    shifted = pc.add(ts, pa.scalar(7200 * 1_000_000, pa.duration("us")))
    text = pc.strftime(shifted, format="%Y-%m-%dT%H:%M:%S+02:00")
    events = small_world.events.set_column(5, "timestamp", text)
    backend = connect(str(tmp_path / "x.duckdb"))
    from pqlkit.demo.load import load

    load(backend, small_world)
    reference = _engine(model_file, backend).scores(DEMO_END).to_pyarrow().sort_by("user_id")
    _replace(backend, "events", events)
    engine = _engine(model_file, backend)
    engine.check()
    assert engine.scores(DEMO_END).to_pyarrow().sort_by("user_id").equals(reference)


def test_unparsable_timestamps_are_reported_with_an_example(model_file, small_world, tmp_path):
    text = pc.strftime(
        small_world.events.column("timestamp"), format="%Y-%m-%d %H:%M:%S"
    ).to_pylist()
    text[10] = "03/04/2026 10:00"
    text[11] = "yesterday"
    events = small_world.events.set_column(5, "timestamp", pa.array(text))
    backend = connect(str(tmp_path / "x.duckdb"))
    from pqlkit.demo.load import load

    load(backend, small_world)
    _replace(backend, "events", events)
    with pytest.raises(
        DataQualityError,
        match=r"events\.timestamp: 2 value\(s\) are not timestamps, e\.g\. '03/04/2026 10:00'.*ISO 8601",
    ):
        _engine(model_file, backend).run(DEMO_END)


def test_files_need_duckdb_or_spark(model_file, request, small_world):
    server = request.getfixturevalue("pg_server")
    _file_model(model_file, "sources:\n  events: {path: events.parquet}\n")
    backend = connect(server.create_database())
    try:
        with pytest.raises(
            MappingError, match="files can only be read with the DuckDB and Spark backends"
        ):
            _engine(model_file, backend).run(DEMO_END)
    finally:
        backend.close()


def test_epoch_millisecond_timestamps(model_file, small_world, tmp_path):
    ms = pc.cast(pc.cast(small_world.events.column("timestamp"), pa.int64()), pa.int64())
    ms = pc.divide(ms, 1000)  # microseconds -> milliseconds
    events = small_world.events.set_column(5, "timestamp", ms)
    backend = connect(str(tmp_path / "x.duckdb"))
    from pqlkit.demo.load import load

    load(backend, small_world)
    reference = _engine(model_file, backend).scores(DEMO_END).to_pyarrow().sort_by("user_id")
    _replace(backend, "events", events)
    assert (
        _engine(model_file, backend)
        .scores(DEMO_END)
        .to_pyarrow()
        .sort_by("user_id")
        .equals(reference)
    )


def test_bad_as_of_is_explained():
    from pqlkit.engine import as_utc
    from pqlkit.errors import PqlkitError

    with pytest.raises(PqlkitError, match="--as-of 'last week' is not a date"):
        as_utc("last week")
    assert as_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1)


def test_a_lookup_by_id_reads_the_same_rows_as_the_plain_filter(
    model_file, world_backend, small_world
):
    """Bound.where compares the source's own column first (so the database can skip rows as
    it scans): for a renamed column, empty ids, quotes, spaces and ids no row has, it gives
    exactly the rows of the canonical filter."""
    users = small_world.users
    ids = users.column("user_id").to_pylist()
    ids[1], ids[2], ids[3] = "", "u'2", ids[0] + " "
    emails = users.column("email").to_pylist()
    emails[4] = ""
    users = users.set_column(0, "uid", pa.array(ids)).set_column(
        users.schema.get_field_index("email"), "email", pa.array(emails)
    )
    _replace(world_backend, "users", users)
    text = model_file.read_text().replace(
        "  users: {table: users}", "  users: {table: users, columns: {user_id: uid}}"
    )
    assert text != model_file.read_text()
    model_file.write_text(text)
    bound = _engine(model_file, world_backend).bound
    u = bound.users
    values = [
        ids[0],
        "",
        "u'2",
        ids[0] + " ",
        emails[0],
        small_world.users["account_id"][0].as_py(),
    ]
    for column in ("user_id", "email", "account_id"):
        for value in [*values, "nobody"]:
            plain = world_backend.rows(u.filter(u[column] == value).order_by("user_id"))
            narrowed = bound.where("users", column, value)
            assert world_backend.rows(narrowed.order_by("user_id")) == plain, (column, value)
    assert len(world_backend.rows(bound.where("users", "user_id", ids[0]))) == 1
    # the source's own column is compared before it is made canonical
    assert '"uid" = ' in world_backend.compile(bound.where("users", "user_id", ids[0]))
    assert bound.narrowers["users"]("created_at", ibis.literal("x")) is None  # not an id
