"""The collector fuzzed over real HTTP: `pql serve` (uvicorn, its flusher process, a DuckDB
file) gets generated bodies from concurrent connections (tests/fuzz_bodies.py: hostile values
in every field, ids past 64 bits, bad UTF-8, truncated, two-member and trailing-byte gzip).
No answer may be a 5xx other than the 503 that sheds load (which real clients retry, and so
does this one), every request is answered (a connection closed as a request went out, which a
100,000-body run met once on a loaded machine, is sent again once, as real clients do, and
counted), and every acknowledged message is stored exactly once (message ids are unique across the run, so events and pql_messages together hold one
row per acknowledged message and each acknowledged id).

The everyday run sends a few thousand bodies; the long one (``@pytest.mark.long``) a million.
``PQLKIT_HTTP_FUZZ_BODIES`` sets the everyday count (e.g. 100000 for a run by hand).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import httpx
import orjson
import pytest

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


async def _send(client: httpx.AsyncClient, n: int, seed: int, tally: Tally) -> None:
    endpoint, raw, headers = body(random.Random(seed), n)
    resets = 0
    for _attempt in range(50):
        try:
            r = await client.post(f"/v1/{endpoint}", content=raw, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # a kept-alive connection closed as the request went out (the server's keep-alive
            # timeout racing a loaded client): real clients send again, and so does this one,
            # once; what was acknowledged is still counted exactly below
            tally.resets.append(f"{seed}: {type(exc).__name__}")
            resets += 1
            if resets > 1:
                tally.unanswered.append(f"{seed}: {type(exc).__name__}: {exc} (twice)")
                return
            continue
        except httpx.HTTPError as exc:
            tally.unanswered.append(f"{seed}: {type(exc).__name__}: {exc}")
            return
        tally.statuses[r.status_code] += 1
        if r.status_code == 503 and r.headers.get("retry-after"):
            tally.shed += 1
            await asyncio.sleep(float(r.headers["retry-after"]))
            continue
        if r.status_code >= 500:
            tally.server_errors.append(f"{seed}: {r.status_code} {r.text[:200]}")
        elif r.status_code == 200:
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
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, auth=("wk_web", ""), timeout=60, limits=limits
    ) as client:

        async def worker() -> None:
            for n, s in queue:
                await _send(client, n, s, tally)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _run(tmp_path, bodies: int) -> None:
    server = Serve(tmp_path)
    server.start()
    tally = Tally()
    started = time.monotonic()
    try:
        asyncio.run(_fuzz(server.url, bodies, 27, tally))
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
    """3,000 fuzzed bodies over a real `pql serve`. Long because a body is a real HTTP request
    and the store is checked at the end (about 40 s); a million behind `long`."""
    _run(tmp_path, int(os.environ.get("PQLKIT_HTTP_FUZZ_BODIES", "3000")))


@pytest.mark.long
def test_a_million_fuzzed_bodies_over_http(tmp_path):
    _run(tmp_path, 1_000_000)
