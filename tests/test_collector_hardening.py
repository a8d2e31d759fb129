"""The collector's edges an independent attack found (issue 27): ids past 64 bits, gzip bodies
with more than one member or bytes after the end, a message id sent as two kinds of message,
and /metrics without a key."""

from __future__ import annotations

import gzip
import re
import time
from datetime import datetime

import duckdb
import httpx
import orjson
import pytest

from pqlkit.collect.importer import import_files
from pqlkit.collect.records import RowError, text_or_none
from pqlkit.collect.segment_api import ApiError, check_body, messages_from_body
from pqlkit.server.wire import MAX_BODY, gunzip

from .serve import METRICS_AUTH, Serve

NOW = datetime(2026, 11, 1, 12, 0, 0)
#: Integers a JSON parser reads as floats (past 64 bits), so their digits are already lost.
BIG = ("1234567890123456789012345", "18446744073709551617", "-9223372036854775809")


def _track(field: str, digits: str) -> bytes:
    message = {"type": "track", "event": "A", "userId": "u", "messageId": "m1"}
    text = orjson.dumps({"batch": [message]}).decode()
    if field == "context.groupId":
        return text.replace('"event"', f'"context":{{"groupId":{digits}}},"event"').encode()
    if f'"{field}"' in text:
        return re.sub(f'"{field}":"[^"]*"', f'"{field}":{digits}', text).encode()
    return text.replace('"event"', f'"{field}":{digits},"event"').encode()


@pytest.mark.parametrize("digits", BIG)
@pytest.mark.parametrize(
    "field", ["userId", "anonymousId", "groupId", "previousId", "messageId", "context.groupId"]
)
def test_an_id_past_64_bits_is_refused_naming_the_field(field, digits):
    raw = _track(field, digits)
    with pytest.raises(ApiError, match=re.escape(f"batch[0].{field}: a number as an id")) as info:
        check_body("batch", orjson.loads(raw), len(raw), NOW)
    assert info.value.status == 400 and "send the id as text" in str(info.value)


@pytest.mark.parametrize("value", [7.5, 0.1, 2.0**53, -(2.0**60)])
def test_a_number_whose_digits_cannot_be_kept_is_refused(value):
    body = {"batch": [{"type": "identify", "userId": value}]}
    with pytest.raises(ApiError, match=r"batch\[0\]\.userId: a number as an id"):
        check_body("batch", body, 100, NOW)


def test_ids_within_64_bits_keep_their_digits():
    raw = (
        b'{"batch":[{"type":"track","event":"A","userId":18446744073709551615,'
        b'"anonymousId":-9223372036854775808,"messageId":3.0}]}'
    )
    [m] = messages_from_body("batch", orjson.loads(raw), len(raw), NOW)
    assert text_or_none(m["userId"]) == "18446744073709551615"
    assert text_or_none(m["anonymousId"]) == "-9223372036854775808"
    assert text_or_none(3.0) == "3"
    with pytest.raises(RowError, match=r"user_id: 1\.2345678901234568e"):
        text_or_none(1234567890123456789012345.0, "user_id")


def test_the_importer_keeps_big_csv_ids_as_their_digits(new_backend, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text(
        "uid,event,timestamp\n"
        "1234567890123456789012345,a,2026-09-01T00:00:00Z\n"
        "18446744073709551617,b,2026-09-01T00:00:00Z\n"
        "7,c,2026-09-01T00:00:00Z\n"
    )
    backend = new_backend()
    report = import_files(backend, [path], mapping={"user_id": "uid"})
    assert report.imported == 3
    got = sorted(r[0] for r in backend.run_sql("SELECT user_id FROM events"))
    assert got == ["1234567890123456789012345", "18446744073709551617", "7"]


def test_a_gzip_body_is_read_member_by_member_and_trailing_bytes_are_refused():
    one, two = b'{"batch":[', b"]}"
    assert gunzip(gzip.compress(one) + gzip.compress(two), MAX_BODY) == one + two
    assert gunzip(gzip.compress(one + two), MAX_BODY) == one + two
    for tail in (b"garbage", b"\x00\x00\x00\x00", b"x" * 100):
        with pytest.raises(ApiError, match=f"{len(tail)} byte.s. after its end") as info:
            gunzip(gzip.compress(one + two) + tail, MAX_BODY)
        assert info.value.status == 400 and info.value.code == "invalid_gzip"
    with pytest.raises(ApiError, match="truncated"):  # a second member cut short
        gunzip(gzip.compress(one) + gzip.compress(two)[:-4], MAX_BODY)
    # the limit holds on all members together, not on each
    half = b" " * (MAX_BODY // 2 + 10)
    with pytest.raises(ApiError, match="uncompressed") as info:
        gunzip(gzip.compress(half) + gzip.compress(half), MAX_BODY)
    assert info.value.code == "batch_too_large"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Serve(tmp_path_factory.mktemp("hardening"))
    s.start()
    yield s
    if s.proc and s.proc.poll() is None:
        s.stop()


def test_over_http_big_ids_gzip_members_and_the_metrics_key(server):
    post = {"auth": ("wk_web", ""), "timeout": 10}
    url = server.url + "/v1/batch"
    refused = httpx.post(url, content=_track("userId", BIG[0]), **post)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("batch[0].userId: a number as an id")
    exact = _track("userId", "18446744073709551615").replace(b'"m1"', b'"m-exact"')
    assert httpx.post(url, content=exact, **post).status_code == 200
    first = orjson.dumps(
        {"batch": [{"type": "track", "event": "A", "userId": "g", "messageId": "m-g1"}]}
    )
    second = first.replace(b"m-g1", b"m-g2")
    gz = {"content-encoding": "gzip"}
    # two members: both read (as gzip.decompress does), not only the first
    both = httpx.post(
        url, content=gzip.compress(first[:-2]) + gzip.compress(b"]}"), headers=gz, **post
    )
    assert both.status_code == 200
    tail = httpx.post(url, content=gzip.compress(second) + b"junk", headers=gz, **post)
    assert tail.status_code == 400 and "after its end" in tail.json()["message"]

    anonymous = httpx.get(server.url + "/metrics")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["message"]
    wrong = httpx.get(server.url + "/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    write_key = httpx.get(server.url + "/metrics", auth=("wk_web", ""))
    assert write_key.status_code == 401  # write keys are public in web pages
    assert httpx.get(server.url + "/metrics", headers=METRICS_AUTH).json()["accepted"] == 2
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json() == {
        "status": "ok",
        "refusing_events": False,
        "flusher_restarts": 0,
        "quarantined": 0,
    }

    server.stop()
    with duckdb.connect(server.db, read_only=True) as con:
        rows = con.execute("SELECT message_id, user_id FROM events ORDER BY 1").fetchall()
    assert rows == [("m-exact", "18446744073709551615"), ("m-g1", "g")]


def _logged(body: dict, endpoint: str = "batch", source: str = "web") -> bytes:
    return (
        orjson.dumps({"s": source, "r": "2026-11-01T12:00:00Z", "e": endpoint, "b": body}) + b"\n"
    )


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "reference"])
def test_one_message_id_is_one_message_whatever_its_type(new_backend, tmp_path, fast):
    """An id sent as an identify and as a track (or the other way round, or a group and a
    page) is stored once per source: the first in the log, in the same flush or a later one."""
    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import Flusher

    def track(mid: str, user: str = "u1", kind: str = "track") -> dict:
        return {"type": kind, "event": "A", "name": "P", "userId": user, "messageId": mid}

    def identify(mid: str, user: str = "u1") -> dict:
        return {"type": "identify", "userId": user, "messageId": mid, "traits": {"plan": "x"}}

    backend = new_backend()
    log = DurableLog(tmp_path / "log")
    flusher = Flusher(lambda: backend, LogReader(tmp_path / "log", lambda: log.durable), fast=fast)
    log.append(
        [
            _logged({"batch": [identify("a"), track("a")]}),  # same line: the identify first
            _logged({"batch": [track("b")]}),  # separate lines: the track first
            _logged({"batch": [identify("b")]}),
            _logged(track("c", kind="page"), endpoint="page"),  # a page, then a group
            _logged({"batch": [{**identify("c"), "type": "group", "groupId": "g1"}]}),
            _logged({"batch": [identify("d")]}),  # another source may reuse an id
            _logged({"batch": [track("d")]}, source="app"),
            # one id however it is written: trimmed, and 8.0 is "8" (an identify kept the raw
            # text, a track the trimmed one, so these were two messages before)
            _logged({"batch": [identify(" e\t"), track("e")]}),
            _logged({"batch": [track(8.0), identify("8")]}),
        ]
    ).result()
    while flusher.flush_once(limit=2):
        pass
    # a later flush: both kinds are already stored
    log.append([_logged({"batch": [track("a"), identify("b"), identify("c")]})]).result()
    while flusher.flush_once():
        pass
    log.close()
    events = sorted(backend.run_sql("SELECT source, message_id, event FROM events"))
    messages = sorted(backend.run_sql("SELECT source, message_id, type FROM pql_messages"))
    assert events == [
        ("app", "d", "A"),
        ("web", "8", "A"),
        ("web", "b", "A"),
        ("web", "c", "Page Viewed: P"),
    ]
    assert messages == [
        ("web", "a", "identify"),
        ("web", "d", "identify"),
        ("web", "e", "identify"),
    ]
    assert flusher.duplicates == 8 and flusher.stored == 4


def test_the_importer_stores_one_message_per_id_whatever_its_type(new_backend, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(
        '{"type":"identify","userId":"u1","messageId":"x","timestamp":"2026-09-01T00:00:00Z"}\n'
        '{"type":"track","userId":"u1","event":"A","messageId":"x","timestamp":"2026-09-01T00:00:00Z"}\n'
        '{"type":"track","userId":"u1","event":"A","messageId":"y","timestamp":"2026-09-01T00:00:00Z"}\n'
    )
    second.write_text('{"type":"group","userId":"u1","groupId":"g","messageId":"y"}\n')
    backend = new_backend()
    import_files(backend, [first], fmt="segment")
    report = import_files(backend, [second], fmt="segment")
    assert report.imported == 0
    assert backend.run_sql("SELECT message_id FROM events") == [("y",)]
    assert backend.run_sql("SELECT message_id, type FROM pql_messages") == [("x", "identify")]


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_a_bad_log_seconds_is_refused_naming_the_variable(monkeypatch, tmp_path, value):
    from pqlkit.errors import PqlkitError
    from pqlkit.server.app import Collector

    monkeypatch.setenv("PQL_LOG_SECONDS", value)
    with pytest.raises(PqlkitError, match=f"PQL_LOG_SECONDS='{value}': .* a positive number"):
        Collector(str(tmp_path / "c.duckdb"), tmp_path / "log", {"web": "k"})


def test_the_log_deletes_a_closed_segment_once_stored_and_keeps_the_rest(tmp_path):
    from pqlkit.collect.log import DurableLog, drop_stored

    stored = (0, 0)
    log = DurableLog(tmp_path, rotate_seconds=0.2, stored=lambda: stored)
    first = log.append([b'{"a": 1}\n']).result()
    deadline = time.monotonic() + 10
    while log.segments() == [1]:  # idle: the segment is closed on its age alone
        assert time.monotonic() < deadline, "never rotated"
        time.sleep(0.05)
    assert log.segments() == [1, 2] and log.durable == first  # nothing new to read
    stored = (1, first[1] - 1)  # not all of it: kept
    time.sleep(1.5)
    assert log.segments() == [1, 2]
    stored = first  # all of it: deleted by the writer's next tidy
    while 1 in log.segments():
        assert time.monotonic() < deadline, "never deleted"
        time.sleep(0.05)
    log.close()
    assert drop_stored(tmp_path, (9, 0), 2) == []  # never the segment being written
