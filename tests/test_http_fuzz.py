"""The collector fuzzed over real HTTP: `pql serve` (uvicorn, its flusher process, a DuckDB
file) gets generated bodies from concurrent connections (tests/fuzz_bodies.py: hostile values
in every field, ids past 64 bits, bad UTF-8, truncated, two-member and trailing-byte gzip).
No answer may be a 5xx other than the 503 that sheds load (which real clients retry, and so
does this one), every request is answered (a connection closed as a request went out, which a
100,000-body run met once on a loaded machine, is sent again once, as real clients do, and
counted), and every acknowledged message is stored exactly once (message ids are unique across the run, so events and pql_messages together hold one
row per acknowledged message and each acknowledged id).

The everyday run sends ten thousand bodies; the long one (``@pytest.mark.long``) a million.
``PQLKIT_HTTP_FUZZ_BODIES`` sets the everyday count (e.g. 100000 for a run by hand).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import os
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import httptools
import orjson
import pytest
import uvloop

from pqlkit.collect.records import text_or_none
from pqlkit.collect.segment_api import ApiError, messages_from_body

from .fuzz_bodies import body
from .serve import Serve

CONCURRENCY = 16


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    unanswered: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    shed: int = 0  # 503 with Retry-After, retried
    resets: list[str] = field(default_factory=list)  # closed without an answer, sent again
    acknowledged: int = 0  # messages in requests answered 200
    ids: set[str] = field(default_factory=set)  # their message ids, where they had one


def _acknowledged(endpoint: str, raw: bytes, headers: dict[str, str]) -> list[dict]:
    """The messages of a request the collector answered 200, as it read them."""
    if headers.get("content-encoding", "").lower() in ("gzip", "x-gzip"):
        raw = gzip.decompress(raw)
    from datetime import datetime

    return messages_from_body(endpoint, orjson.loads(raw), len(raw), datetime(2026, 11, 1, 12))


class _Connection:
    """One kept-alive HTTP/1.1 connection, raw: the request's bytes out, the answer parsed by
    httptools (uvicorn's own parser). httpx spent 2.6 ms of CPU a request, more than the
    collector it tested, so a million bodies took hours; this is a fifth of it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"POST {path} HTTP/1.1\r\nHost: fuzz\r\nAuthorization: {_AUTH}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(raw)}\r\n\r\n"
        self.writer.write(head.encode() + raw)
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.complete:
            data = await asyncio.wait_for(self.reader.read(65536), 60)
            if not data:
                raise ConnectionResetError("closed before the answer")
            parser.feed_data(data)
        if not parser.should_keep_alive():
            await self.close()
        return parser.get_status_code(), answer.headers, bytes(answer.body)


class _Answer:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


_AUTH = "Basic " + base64.b64encode(b"wk_web:").decode()
_CLOSED = (ConnectionError, asyncio.IncompleteReadError, httptools.HttpParserError)


async def _send(conn: _Connection, n: int, seed: int, tally: Tally) -> None:
    endpoint, raw, headers = body(random.Random(seed), n)
    resets = 0
    for _attempt in range(50):
        try:
            status, answer_headers, text = await conn.post(f"/v1/{endpoint}", raw, headers)
        except _CLOSED as exc:
            # a kept-alive connection closed as the request went out (the server's keep-alive
            # timeout racing a loaded client): real clients send again, and so does this one,
            # once; what was acknowledged is still counted exactly below
            await conn.close()
            tally.resets.append(f"{seed}: {type(exc).__name__}")
            resets += 1
            if resets > 1:
                tally.unanswered.append(f"{seed}: {type(exc).__name__}: {exc} (twice)")
                return
            continue
        except (OSError, TimeoutError) as exc:
            await conn.close()
            tally.unanswered.append(f"{seed}: {type(exc).__name__}: {exc}")
            return
        tally.statuses[status] += 1
        if status == 503 and answer_headers.get("retry-after"):
            tally.shed += 1
            await asyncio.sleep(float(answer_headers["retry-after"]))
            continue
        if status >= 500:
            tally.server_errors.append(f"{seed}: {status} {text[:200]!r}")
        elif status == 200:
            try:
                messages = _acknowledged(endpoint, raw, headers)
            except (ApiError, ValueError, OSError, EOFError, zlib.error) as exc:
                raise AssertionError(f"seed {seed}: acknowledged, yet not readable: {exc}") from exc
            tally.acknowledged += len(messages)
            for m in messages:
                if not m["messageId"].startswith(
                    "pql-"
                ):  # a generated id names its place in the log
                    tally.ids.add(text_or_none(m["messageId"]) or "")
        return
    tally.server_errors.append(f"{seed}: still shed after 50 tries")


async def _fuzz(url: str, bodies: int, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    seeds = [rng.getrandbits(32) for _ in range(bodies)]
    queue = iter(enumerate(seeds))
    host, port = url.removeprefix("http://").split(":")
    done = [0]

    async def worker() -> None:
        conn = _Connection(host, int(port))
        try:
            for n, s in queue:
                await _send(conn, n, s, tally)
                done[0] += 1
                if bodies >= 100_000 and done[0] % 50_000 == 0:
                    print(f"  {done[0]:,} of {bodies:,} bodies sent", flush=True)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _run(tmp_path, bodies: int) -> None:
    server = Serve(tmp_path)
    server.start()
    tally = Tally()
    started = time.monotonic()
    try:
        uvloop.run(_fuzz(server.url, bodies, 27, tally))
        sent = time.monotonic() - started
        metrics = server.metrics()
    finally:
        server.stop()  # the flusher stores everything acknowledged before it exits
    with duckdb.connect(server.db, read_only=True) as con:
        stored = [
            r[0]
            for r in con.execute(
                "SELECT message_id FROM events UNION ALL SELECT message_id FROM pql_messages"
            ).fetchall()
        ]
        quarantined = con.execute("SELECT count(*) FROM pql_quarantine").fetchone()[0]
    print(
        f"\nHTTP fuzz over `pql serve`: {bodies} bodies in {sent:.0f} s "
        f"({bodies / sent:.0f}/s), statuses {sorted(tally.statuses.items())}, "
        f"{tally.shed} shed and retried, {len(tally.resets)} closed unanswered and sent again "
        f"{tally.resets[:3]}, {len(tally.unanswered)} unanswered, "
        f"{tally.acknowledged} messages acknowledged, {len(stored)} stored, "
        f"{quarantined} quarantined"
    )
    assert not tally.unanswered, tally.unanswered[:5]
    assert not tally.server_errors, tally.server_errors[:5]
    # a request whose answer was lost and was sent again may have been acknowledged twice
    assert metrics["accepted"] == tally.acknowledged or (
        tally.resets and metrics["accepted"] > tally.acknowledged
    )
    assert quarantined == 0
    assert len(stored) == len(set(stored)) == tally.acknowledged  # each exactly once
    assert tally.ids <= set(stored)


def test_fuzzed_bodies_over_http_get_no_5xx_and_are_stored_once(tmp_path):
    """10,000 fuzzed bodies over a real `pql serve` (about 8 s); a million behind `long`."""
    _run(tmp_path, int(os.environ.get("PQLKIT_HTTP_FUZZ_BODIES", "10000")))


@pytest.mark.long
def test_a_million_fuzzed_bodies_over_http(tmp_path):
    _run(tmp_path, 1_000_000)
