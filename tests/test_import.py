"""`pql import`: good rows in, bad rows reported with file and line, nothing stored twice."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pqlkit.cli import cli
from pqlkit.collect.importer import import_files
from pqlkit.demo.load import load
from pqlkit.engine import Engine
from pqlkit.errors import DataError
from pqlkit.model.load import load_model

from .conftest import DEMO_END, shared_path

CSV = """uid,what,when,props
u1,signed_up,2026-09-01T10:00:00Z,
u1,feature_used,2026-09-02 11:00:00+02:00,"{""feature"": ""reports""}"
,feature_used,2026-09-02T12:00:00Z,
u2,,2026-09-03T12:00:00Z,
u2,project_created,next tuesday,
u2,project_created,1790812800000,
u3,invite_sent,2026-09-04T00:00:00Z,not json
"""


def _csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    return path


MAP = {"user_id": "uid", "event": "what", "timestamp": "when", "properties": "props"}


def test_csv_with_mapping_keeps_good_rows_and_reports_bad_ones(new_backend, tmp_path):
    backend = new_backend()
    report = import_files(backend, [_csv(tmp_path)], mapping=MAP)
    [f] = report.files
    assert (f.read, f.accepted, report.imported, report.duplicates) == (7, 3, 3, 0)
    assert f.problems == [
        (4, "user_id: a row needs a user_id or an anonymous_id"),
        (5, "event: missing event name"),
        (
            6,
            "when: 'next tuesday' is not a time (use ISO 8601, e.g. 2024-05-01T12:00:00Z, or epoch seconds)",
        ),
        (8, "props: is not valid JSON"),
    ]
    rows = backend.rows(backend.table("events").order_by("timestamp"))
    assert [(r["user_id"], r["event"]) for r in rows] == [
        ("u1", "signed_up"),
        ("u1", "feature_used"),
        ("u2", "project_created"),
    ]
    assert rows[1]["timestamp"] == datetime(2026, 9, 2, 9, 0)  # +02:00 made UTC
    assert rows[2]["timestamp"] == datetime(2026, 10, 1)  # epoch milliseconds
    assert json.loads(rows[1]["properties"]) == {"feature": "reports"}


def test_importing_the_same_file_again_stores_nothing_new(new_backend, tmp_path):
    backend = new_backend()
    path = _csv(tmp_path)
    import_files(backend, [path], mapping=MAP)
    again = import_files(backend, [path], mapping=MAP)
    assert (again.imported, again.duplicates) == (0, 3)
    # ...but another source keeps its own ids
    other = import_files(backend, [path], mapping=MAP, source="backfill")
    assert other.imported == 3


def test_strict_imports_nothing_when_a_row_is_bad(new_backend, tmp_path):
    backend = new_backend()
    with pytest.raises(
        DataError,
        match=r"--strict: 4 bad row\(s\), nothing was imported:\n  .*events\.csv:4: user_id",
    ):
        import_files(backend, [_csv(tmp_path)], mapping=MAP, strict=True)
    assert not backend.has_table("events")


def test_segment_and_rudderstack_messages(new_backend, tmp_path):
    backend = new_backend()
    lines = [
        {
            "type": "track",
            "event": "Project Created",
            "userId": "u1",
            "messageId": "m1",
            "timestamp": "2026-09-01T10:00:00.000Z",
            "properties": {"plan": "free"},
        },
        {"type": "identify", "userId": "u1", "traits": {"email": "a@acme.com"}},
        {
            "type": "page",
            "name": "Pricing",
            "anonymousId": "anon-7",
            "messageId": "m2",
            "timestamp": "2026-09-01T11:00:00+01:00",
        },
        {"type": "track", "userId": "u1", "messageId": "m3", "timestamp": "2026-09-01T12:00:00Z"},
        {
            "type": "track",
            "event": "Project Created",
            "userId": "u1",
            "messageId": "m1",
            "timestamp": "2026-09-01T10:00:00.000Z",
        },
    ]
    path = tmp_path / "segment.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in lines) + "\n")
    report = import_files(backend, [path], fmt="segment")
    [f] = report.files
    assert (f.read, f.accepted, f.identity_messages, report.duplicates) == (5, 2, 1, 1)
    assert f.problems == [(4, "event: a track message needs an event")]
    rows = {r["message_id"]: r for r in backend.rows(backend.table("events"))}
    assert rows["m2"]["event"] == "Page Viewed: Pricing"
    assert rows["m2"]["anonymous_id"] == "anon-7" and rows["m2"]["user_id"] is None
    assert rows["m2"]["timestamp"] == datetime(2026, 9, 1, 10, 0)
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            {
                "batch": [
                    {
                        "type": "track",
                        "event": "X",
                        "userId": "u9",
                        "messageId": "b1",
                        "timestamp": "2026-09-02T00:00:00Z",
                    }
                ],
                "context": {"library": {"name": "analytics-python"}},
            }
        )
    )
    assert import_files(backend, [batch], fmt="rudderstack").imported == 1


def test_amplitude_export(new_backend, tmp_path):
    backend = new_backend()
    path = tmp_path / "amplitude.json"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "event_type": "Dashboard Created",
                    "user_id": "u1",
                    "device_id": "d1",
                    "insert_id": "i1",
                    "event_time": "2026-09-01 10:00:00.123000",
                    "event_properties": {"size": 3},
                },
                {
                    "event_type": "Dashboard Created",
                    "user_id": None,
                    "device_id": "d2",
                    "uuid": "i2",
                    "event_time": "2026-09-01 11:00:00",
                },
            ]
        )
        + "\n"
    )
    report = import_files(backend, [path], fmt="amplitude")
    assert report.imported == 2
    rows = {r["message_id"]: r for r in backend.rows(backend.table("events"))}
    assert rows["i2"]["anonymous_id"] == "d2" and rows["i1"]["user_id"] == "u1"


def test_imported_events_score_like_loaded_ones(new_backend, small_world, model_file, tmp_path):
    backend = new_backend()
    load(backend, small_world)
    reference = Engine(load_model(model_file), backend).scores(DEMO_END).drop("model_version")
    expected = {r["user_id"]: r for r in backend.rows(reference)}
    backend.run_sql('DROP TABLE "events"')
    backend.tables()
    pq.write_table(small_world.events, tmp_path / "events.parquet")
    report = import_files(backend, [tmp_path / "events.parquet"])
    assert report.imported == small_world.events.num_rows and report.skipped == 0
    engine = Engine(load_model(model_file), backend)
    got = {r["user_id"]: r for r in backend.rows(engine.scores(DEMO_END).drop("model_version"))}
    assert got == expected


def test_sparkify_log_with_a_mapping(new_backend):
    folder = shared_path("sparkify-eventsim", "log_data", "2018", "11")
    files = sorted(folder.glob("*.json"))
    backend = new_backend()
    report = import_files(
        backend,
        files,
        fmt="jsonl",
        mapping={"user_id": "userId", "event": "page", "timestamp": "ts"},
        source="sparkify",
    )
    assert sum(f.read for f in report.files) == 8056
    assert report.imported + report.skipped + report.duplicates == 8056
    reasons = {why for f in report.files for _, why in f.problems}
    assert reasons == {"user_id: a row needs a user_id or an anonymous_id"}  # logged-out events
    assert report.skipped == 8056 - 7770  # logged-in events all have a user id
    assert (
        backend.rows(
            backend.table("events").aggregate(n=backend.table("events").user_id.nunique())
        )[0]["n"]
        == 97
    )


def test_cli_import_summary_and_json(tmp_path):
    path = _csv(tmp_path)
    db = str(tmp_path / "x.duckdb")
    argv = [
        "import",
        str(path),
        "--url",
        db,
        "--map",
        "user_id=uid",
        "--map",
        "event=what",
        "--map",
        "timestamp=when",
        "--map",
        "properties=props",
    ]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert "7 rows read, 3 accepted" in result.output and f"{path}:4: user_id" in result.output
    assert "Imported 3 events into events" in result.output
    payload = json.loads(CliRunner().invoke(cli, [*argv, "--json"]).output)
    assert payload["imported"] == 0 and payload["duplicates"] == 3 and payload["skipped"] == 4
    bad = CliRunner().invoke(cli, ["import", str(path), "--url", db, "--map", "uid"])
    assert bad.exit_code == 1 and "write COLUMN=YOURS" in bad.output


def test_a_table_of_another_shape_is_refused(new_backend, tmp_path):
    backend = new_backend()
    backend.write_table("events", pa.table({"user_id": ["x"], "event": ["y"]}))
    with pytest.raises(
        DataError, match=r"table events has no column message_id, source, .*pql migrate.*--table"
    ):
        import_files(backend, [_csv(tmp_path)], mapping=MAP)
