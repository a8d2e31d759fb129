"""The collector's edges an independent attack found (issue 27): ids past 64 bits, gzip bodies
with more than one member or bytes after the end, a message id sent as two kinds of message,
and /metrics without a key."""

from __future__ import annotations

import gzip
import re
from datetime import datetime

import duckdb
import httpx
import orjson
import pytest

from pqlkit.collect.importer import import_files
from pqlkit.collect.records import RowError, text_or_none
from pqlkit.collect.segment_api import ApiError, check_body, messages_from_body
from pqlkit.server.app import MAX_BODY, _gunzip

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
    assert _gunzip(gzip.compress(one) + gzip.compress(two), MAX_BODY) == one + two
    assert _gunzip(gzip.compress(one + two), MAX_BODY) == one + two
    for tail in (b"garbage", b"\x00\x00\x00\x00", b"x" * 100):
        with pytest.raises(ApiError, match=f"{len(tail)} byte.s. after its end") as info:
            _gunzip(gzip.compress(one + two) + tail, MAX_BODY)
        assert info.value.status == 400 and info.value.code == "invalid_gzip"
    with pytest.raises(ApiError, match="truncated"):  # a second member cut short
        _gunzip(gzip.compress(one) + gzip.compress(two)[:-4], MAX_BODY)
    # the limit holds on all members together, not on each
    half = b" " * (MAX_BODY // 2 + 10)
    with pytest.raises(ApiError, match="uncompressed") as info:
        _gunzip(gzip.compress(half) + gzip.compress(half), MAX_BODY)
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
        "quarantined": 0,
    }

    server.stop()
    with duckdb.connect(server.db, read_only=True) as con:
        rows = con.execute("SELECT message_id, user_id FROM events ORDER BY 1").fetchall()
    assert rows == [("m-exact", "18446744073709551615"), ("m-g1", "g")]
