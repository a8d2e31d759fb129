"""No poison message may stall storage: what the collector acknowledges can be stored, and
whatever still cannot be stored is quarantined with the raw line and the reason while the
flusher moves on (issue: hardening the collector)."""

from __future__ import annotations

import json
import socket
from datetime import datetime

import httpx
import pytest

from pqlkit.collect.log import DurableLog, LogReader
from pqlkit.collect.segment_api import ApiError, check_body
from pqlkit.collect.store import QUARANTINE, Flusher

from .test_collector import Server

NOW = datetime(2026, 11, 1, 12, 0, 0)


def _good(i: int) -> dict:
    return {
        "type": "track",
        "userId": f"u{i}",
        "event": "Project Created",
        "messageId": f"good-{i}",
        "timestamp": "2026-11-01T11:00:00Z",
        "properties": {"n": i},
    }


#: Messages a hostile or broken client sends; each must get a 400 naming its field.
POISON = {
    "year 1 with an offset": ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    "year 9999 with a negative offset": ({"timestamp": "9999-12-31T23:59:59-14:00"}, "timestamp"),
    "epoch far in the future": ({"timestamp": 1e20}, "timestamp"),
    "negative epoch": ({"timestamp": -1e15}, "timestamp"),
    "skew that leaves the calendar": (
        {"timestamp": "1971-01-01T00:00:00Z", "sentAt": "2199-01-01T00:00:00Z"},
        "timestamp",
    ),
    "properties as text": ({"properties": "plan=pro"}, "properties"),
    "properties as a list": ({"properties": [1, 2]}, "properties"),
    "context as a number": ({"context": 7}, "context"),
    "integrations as text": ({"integrations": "all"}, "integrations"),
    "userId as an object": ({"userId": {"id": 1}}, "userId"),
    "userId as a boolean": ({"userId": True}, "userId"),
    "event as a number": ({"event": 42}, "event"),
    "messageId as a list": ({"messageId": ["a"]}, "messageId"),
    "NUL in the user id": ({"userId": "u\x00x"}, "userId"),
    "NUL in a property": ({"properties": {"k": "v\x00"}}, "properties"),
    "nested too deep": ({"properties": json.loads('{"a":' * 40 + "1" + "}" * 40)}, "properties"),
    "sentAt not a time": ({"sentAt": {"at": 1}}, "sentAt"),
    "unicode digits as a time": ({"timestamp": "²³"}, "timestamp"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_the_request_path_refuses_what_cannot_be_stored(name):
    change, field = POISON[name]
    body = {"batch": [_good(1), {**_good(2), **change}, _good(3)]}
    with pytest.raises(ApiError) as info:
        check_body("batch", body, 500)
    assert info.value.status == 400
    assert f"batch[1].{field}" in info.value.message or (
        field in info.value.message and "batch[1]" in info.value.message
    ), info.value.message


def _line(body: dict, endpoint: str = "batch") -> bytes:
    return (
        json.dumps({"s": "web", "r": "2026-11-01T12:00:00Z", "e": endpoint, "b": body}).encode()
        + b"\n"
    )


def _flush_all(flusher: Flusher) -> None:
    while flusher.flush_once(limit=4):  # small batches: the poison meets good lines in every one
        pass


def test_poison_in_the_log_is_quarantined_and_every_good_message_stored(new_backend, tmp_path):
    """Lines a damaged disk, an older version or a bug could leave in the log, planted between
    good ones; and a value the database itself refuses (a CHECK constraint on a user's table)."""
    backend = new_backend()
    backend.run_sql(
        "CREATE TABLE events (message_id VARCHAR, source VARCHAR, user_id VARCHAR, "
        "anonymous_id VARCHAR, account_id VARCHAR, event VARCHAR CHECK (length(event) < 40), "
        '"timestamp" TIMESTAMP, received_at TIMESTAMP, properties VARCHAR)'
    )
    backend.tables()
    log = DurableLog(tmp_path / "log")
    poison = [
        b"this is not json\n",
        b'{"s": "web", "r": "2026-11-01T12:00:00Z", "e": "batch", "b": {"batch": "nope"}}\n',
        _line({"batch": [{**_good(900), "timestamp": "0001-01-01T00:00:00+01:00"}]}),
        _line({"batch": [{**_good(901), "properties": "text"}]}),
        b'{"s": "web", "r": "never", "e": "batch", "b": {"batch": []}}\n',
        b"\xff\xfe\x00 bad bytes\n",
        _line({"batch": [{**_good(902), "event": "x" * 60}]}),  # refused by the table's CHECK
    ]
    good_ids = []
    lines = []
    for i, bad in enumerate(poison):
        goods = [_good(10 * i + j) for j in range(3)]
        good_ids += [g["messageId"] for g in goods]
        lines += [_line({"batch": goods[:2]}), bad, _line({"batch": goods[2:]})]
    log.append(lines).result()
    flusher = Flusher(lambda: backend, LogReader(tmp_path / "log", lambda: log.durable))
    _flush_all(flusher)
    log.close()
    stored = sorted(r[0] for r in backend.run_sql("SELECT message_id FROM events"))
    assert stored == sorted(good_ids)
    assert flusher.quarantined == len(poison)
    reasons = [
        r[0]
        for r in backend.run_sql(f'SELECT reason FROM "{QUARANTINE}" ORDER BY segment, "offset"')
    ]
    assert len(reasons) == len(poison)
    assert any("refused" in r for r in reasons)  # the database's own refusal
    assert any("out of range" in r for r in reasons)
    raws = [r[0] for r in backend.run_sql(f'SELECT raw FROM "{QUARANTINE}"')]
    assert "this is not json" in raws and any("bad bytes" in r for r in raws)
    assert flusher.checkpoint == log.durable  # it moved on past everything
    # DuckDB could not read some of these batches at all (a line that is not JSON): the fast
    # path gave them up whole and the reference read every line; the good lines of the rest
    # it read itself
    assert flusher._fastpath is not None and flusher._fastpath.failures >= 1
    assert flusher.fast_lines >= 1 and flusher.reference_lines >= len(poison)


def test_the_collector_answers_4xx_to_poison_and_stores_every_good_message(tmp_path):
    server = Server(tmp_path)
    server.start()
    try:
        with httpx.Client(auth=("wk_web", ""), base_url=server.url) as http:
            sent = []
            for i, name in enumerate(sorted(POISON)):
                change, field = POISON[name]
                good = [_good(100 + 2 * i), _good(101 + 2 * i)]
                r = http.post(
                    "/v1/batch",
                    content=json.dumps({"batch": [good[0], {**_good(0), **change}]}),
                    headers={"content-type": "application/json"},
                )
                assert r.status_code == 400, (name, r.text)
                assert field in r.json()["message"], (name, r.json())
                r = http.post("/v1/batch", json={"batch": good})
                assert r.status_code == 200
                sent += [g["messageId"] for g in good]
            assert (
                http.post(
                    "/v1/batch", content=b"{}", headers={"content-encoding": "br"}
                ).status_code
                == 415
            )
            assert http.post("/v1/batch", content=b'{"batch": [}').status_code == 400
            assert http.post("/v1/batch", content=b'\xff{"batch": []}').status_code == 400
            import gzip

            truncated = gzip.compress(json.dumps({"batch": [_good(5)]}).encode())[:-6]
            assert (
                http.post(
                    "/v1/batch", content=truncated, headers={"content-encoding": "gzip"}
                ).status_code
                == 400
            )
            metrics = server.metrics()
        # a chunked body that never ends: the client gives up; nothing may be logged
        body = json.dumps({"batch": [_good(7777)]}).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic d2tfd2ViOg==\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n"
            )
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            assert s.recv(100) == b""  # no answer for an incomplete request
        assert metrics["accepted"] == len(sent)
        health = httpx.get(server.url + "/health").json()
        assert health["status"] == "ok" and health["quarantined"] == 0
    finally:
        server.stop()
    stored = [r[1] for r in server.events()]
    assert sorted(stored) == sorted(sent)  # the unfinished chunked request was not stored
    assert "good-7777" not in stored
