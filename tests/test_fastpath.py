"""The flusher's fast path (DuckDB normalising log lines) gives the reference path's rows for
every line it takes, and takes the lines real clients send.

The reference is :func:`store.messages_of` + :func:`records.from_segment`, the code that ran
alone before. Bodies are generated around the edges of what the fast path claims to read
exactly: ids with spaces of every kind, numbers (past 64 bits too, and floats), empty text;
times with offsets, fractions, epochs and impossible dates; clock skew from batch and message
sentAt; groupIds in either context; properties with nesting, repeated keys, big numbers and
escapes; page and screen names; single-message endpoints. Only bodies the collector accepts
are used (``check_body``), because only those reach the log.
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqlkit.collect.fastpath import FastPath
from pqlkit.collect.records import from_segment, parse_timestamp
from pqlkit.collect.segment_api import ApiError, check_body
from pqlkit.collect.store import EVENTS_SCHEMA, is_suppressed, messages_of

from .fuzz_bodies import body as fuzz_body

SPACES = [" ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\u0085"]
_ids = st.one_of(
    st.sampled_from(["u1", "u2", "anon-7", "x@acme.io", "ü-1", "💥", 'k"e', "a\\b", "ид"]),
    st.builds(
        lambda s, w, side: (w + s) if side else (s + w),
        st.just("u1"),
        st.sampled_from(SPACES),
        st.booleans(),
    ),
    st.sampled_from(["", " ", None, 3, 3.0, 0, 7.5, 10**20]),
    st.text(min_size=1, max_size=6),
    # past 64 bits a JSON parser reads a float, its digits lost: refused, never another id
    st.sampled_from(
        [2**64 - 1, 2**64 + 1, -(2**63), -(2**63) - 1, 1234567890123456789012345, 2**53 + 1]
    ),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False, allow_infinity=False, width=64),  # floats as ids
    st.sampled_from([-0.0, 1e15, 2.0**53, 9007199254740993.0, 1e300]),
    st.sampled_from(["1234567890123456789012345", "18446744073709551617"]),  # as text: kept
)
_times = st.one_of(
    st.sampled_from(
        [
            "2026-11-01T12:00:00Z",
            "2026-11-01T12:00:00.5Z",
            "2026-11-01T12:00:00.123456Z",
            "2026-11-01T12:00:00.1234567Z",
            "2026-11-01T12:00:00+05:30",
            "2026-11-01T12:00:00-14:00",
            "2026-11-01T12:00:00",
            "2026-11-01 12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2024-02-29T23:59:59.999999+00:00",
            "1970-01-01T00:00:00Z",
            "2199-12-31T23:59:59Z",
            "1700000000",
            "",
            None,
        ]
    ),
    st.sampled_from([1_700_000_000, 1_700_000_000_000, 1.7e9]),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2190, 1, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),
)
_scalars = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
)
_properties = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=5), _scalars, max_size=4),
    st.dictionaries(
        st.sampled_from(["plan", "n", "items"]),
        st.one_of(
            _scalars,
            st.lists(_scalars, max_size=2),
            st.dictionaries(st.just("a"), _scalars, max_size=1),
        ),
        max_size=3,
    ),
)


_plain_ids = st.sampled_from(["u1", "u2", "anon-7", "x@acme.io", "ü-1", "💥", 'k"e', "a\\b", "ид"])
_plain_times = st.one_of(
    st.sampled_from(["2026-11-01T12:00:00.5Z", "2026-11-01T12:00:00+05:30", "2026-11-01T12:00:00"]),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2190, 1, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),
)


@st.composite
def messages(draw, plain: bool = False) -> dict[str, Any]:
    """A message; ``plain`` ones stay within what real clients send (ids are text, times are
    ISO 8601), so that most of them are taken by the fast path and compared."""
    _ids_, _times_ = (_plain_ids, _plain_times) if plain else (_ids, _times)
    kind = draw(
        st.sampled_from(["track"] * 5 + ["page", "screen"] + ([] if plain else ["identify"]))
    )
    message: dict[str, Any] = {"type": kind}
    for key, strategy, p in (
        ("userId", _ids_, 0.85),
        ("anonymousId", _ids_, 0.4),
        ("previousId", _ids_, 0.1),
        ("messageId", st.one_of(st.builds(lambda n: f"m-{n}", st.integers(0, 10**6)), _ids_), 0.8),
        ("timestamp", _times_, 0.8),
        ("originalTimestamp", _times_, 0.15),
        ("sentAt", _times_, 0.2),
        ("properties", _properties, 0.7),
        ("name", _ids_, 0.5 if kind in ("page", "screen") else 0.05),
    ):
        if draw(st.floats(0, 1)) < p:
            message[key] = draw(strategy)
    if kind == "track":
        message["event"] = draw(
            st.one_of(st.sampled_from(["Feature Used", "Pricing Viewed", "é Ü"]), _ids_)
        )
    if draw(st.booleans()):
        context: dict[str, Any] = {"library": {"name": "analytics-python", "version": "2.3"}}
        if draw(st.booleans()):
            context["groupId"] = draw(_ids_ if plain else st.one_of(_ids, st.just({"id": 1})))
        if draw(st.floats(0, 1)) < 0.2:  # a groupId that is not the context's own
            context["page"] = {"groupId": "nested", "title": '"groupId":"in text"'}
        message["context"] = context
    return message


@st.composite
def requests(draw) -> tuple[str, bytes, datetime]:
    endpoint = draw(st.sampled_from(["batch"] * 4 + ["track", "page", "screen"]))
    plain = draw(st.booleans())
    received = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
    if endpoint == "batch":
        doc: dict[str, Any] = {"batch": draw(st.lists(messages(plain), min_size=1, max_size=5))}
        if draw(st.booleans()):
            doc["sentAt"] = draw(_times)
        if draw(st.floats(0, 1)) < 0.2:
            doc["context"] = {"groupId": draw(_ids)} if draw(st.booleans()) else {"ip": "1.2.3.4"}
    else:
        doc = draw(messages(plain))
        doc.pop("type", None)
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))
    dup = draw(
        st.sampled_from(
            [None] * (8 if plain else 1)
            + ["userId", "event", "batch", "plan", "groupId", "library"]
        )
    )
    if dup is not None:  # a repeated key: orjson (the reference) keeps the last one
        raw = raw.replace(f'"{dup}":', f'"{dup}": "first", "{dup}":', 1)
    return endpoint, raw.encode(), received


def _line(endpoint: str, raw: bytes, received: datetime) -> bytes:
    """The log line the collector writes for an accepted request."""
    stamp = received.isoformat() + "Z"
    return (
        b'{"s":"web","r":"'
        + stamp.encode()
        + b'","e":'
        + json.dumps(endpoint).encode()
        + b',"b":'
        + raw.replace(b"\r", b" ").replace(b"\n", b" ")
        + b"}\n"
    )


def _reference(line: bytes, prefix: tuple[int, int], suppressed: set[str]) -> list[dict[str, Any]]:
    source, msgs = messages_of(line, prefix)
    rows = []
    for m in msgs:
        if is_suppressed(m, suppressed):
            continue
        record = from_segment(m, source, parse_timestamp(m["receivedAt"]))
        if record is not None:
            rows.append(record)
    return rows


def _canonical(rows: list[dict[str, Any]]) -> list[tuple]:
    return sorted(
        (
            tuple(json.loads(r[c]) if c == "properties" else r[c] for c in EVENTS_SCHEMA.names)
            for r in rows
        ),
        key=repr,
    )


@pytest.fixture(scope="module")
def fast() -> FastPath:
    return FastPath(EVENTS_SCHEMA)


def _compare(fast: FastPath, lines: list[bytes], suppressed: set[str]) -> int:
    """Run both paths over accepted lines; return how many lines the fast path took."""
    got = fast.take([(f"7.{i}", line) for i, line in enumerate(lines)], suppressed)
    assert got is not None, "the fast path failed on lines the collector accepted"
    rows = got.events.to_pylist()
    for k, line in enumerate(lines):
        if k not in got.taken:
            continue
        mine = [r for r, key in zip(rows, _line_of(got), strict=True) if key == k]
        assert _canonical(mine) == _canonical(_reference(line, (7, k), suppressed)), line
    return len(got.taken)


def _line_of(got) -> list[int]:
    return got.line_index.to_pylist()


def _accepted(endpoint: str, raw: bytes, received: datetime) -> bool:
    try:
        import orjson

        check_body(endpoint, orjson.loads(raw), len(raw), received_at=received)
    except (ApiError, ValueError):
        return False
    return True


@settings(
    max_examples=int(os.environ.get("PQLKIT_FASTPATH_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(requests(), min_size=1, max_size=6), st.sampled_from([set(), {"u1"}, {"u1", "anon-7"}])
)
def test_the_fast_path_gives_the_reference_rows_for_every_line_it_takes(fast, reqs, suppressed):
    lines = [_line(e, raw, r) for e, raw, r in reqs if _accepted(e, raw, r)]
    if lines:
        _compare(fast, lines, suppressed)


def test_the_fast_path_agrees_on_the_fuzzers_bodies(fast):
    rng = random.Random(11)
    lines = []
    for n in range(3000):
        endpoint, raw, headers = fuzz_body(rng, n)
        received = datetime(2026, 11, 1, 12, 0, rng.randint(0, 59), rng.randint(0, 999_999))
        if "content-encoding" not in headers and _accepted(endpoint, raw, received):
            lines.append(_line(endpoint, raw, received))
    assert len(lines) > 300
    for start in range(0, len(lines), 200):
        _compare(fast, lines[start : start + 200], {"u3"})


def test_the_fast_path_takes_what_real_clients_send(fast):
    """Batches as analytics-python, analytics.js and RudderStack send them (with context,
    sentAt, flat properties, anonymous ids, page calls) are taken, every one."""
    lines = []
    for n in range(50):
        batch = [
            {
                "type": t,
                "messageId": f"{n}-{i}-6b1c9f2e",
                "userId": f"user-{i}" if i % 3 else None,
                "anonymousId": f"5e1c4c2a-{i}",
                "event": "Project Created" if t == "track" else None,
                "name": "Pricing" if t == "page" else None,
                "timestamp": f"2026-11-01T11:59:{i % 60:02d}.{i:03d}Z",
                "properties": {"plan": "free", "seats": i, "ratio": 0.5, "ok": True, "tags": ["a"]},
                "context": {
                    "library": {"name": "analytics.js", "version": "5.2"},
                    "groupId": "acc-1",
                },
                "integrations": {"All": True},
            }
            for i, t in enumerate(["track", "page", "screen", "track"] * 5)
        ]
        raw = json.dumps({"batch": batch, "sentAt": "2026-11-01T12:00:01.000Z"}).encode()
        lines.append(_line("batch", raw, datetime(2026, 11, 1, 12, 0, 0, 250_000)))
        lines.append(_line("track", json.dumps(batch[0]).encode(), datetime(2026, 11, 1, 12, 0, 1)))
    assert _compare(fast, lines, set()) == len(lines)


def test_lines_the_collector_never_wrote_are_left_to_the_reference(fast):
    good = _line("track", b'{"userId": "u1", "event": "E"}', datetime(2026, 11, 1))
    lines = [
        b"not json\n",
        b"\xff\xfe bad bytes\n",
        b'{"s": 1}\n',
        good,
        b"[]\n",
        b'{"e": "batch"}\n',
    ]
    got = fast.take([(f"1.{i}", line) for i, line in enumerate(lines)])
    assert got is None or got.taken <= {3}


def test_a_flusher_with_the_fast_path_stores_what_the_reference_stores(new_backend, tmp_path):
    """Two flushers over the same log (accepted fuzz bodies, plain batches, identify calls,
    repeats of the same message ids, a suppressed user), one with the fast path and one
    without, leave the same rows in every table they write, on DuckDB and PostgreSQL."""
    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import Flusher

    rng = random.Random(5)
    lines = []
    for n in range(400):
        endpoint, raw, headers = fuzz_body(rng, n % 150)  # ids repeat: dedup is exercised
        received = datetime(2026, 11, 1, 12, rng.randint(0, 59), 0, rng.randint(0, 999_999))
        if "content-encoding" not in headers and _accepted(endpoint, raw, received):
            lines.append(_line(endpoint, raw, received))
    for n in range(60):  # plain batches, as real clients send them, some from the same users
        batch = [
            {
                "type": "track" if i % 4 else "page",
                "messageId": f"plain-{n % 45}-{i}",
                "userId": f"u{(n + i) % 9}",
                "anonymousId": f"anon-{i}",
                "event": "Feature Used",
                "timestamp": f"2026-11-01T11:{n % 60:02d}:{i:02d}.5Z",
                "properties": {"n": n, "plan": "free"},
                "context": {"groupId": f"acc-{n % 4}"},
            }
            for i in range(10)
        ]
        raw = json.dumps({"batch": batch, "sentAt": "2026-11-01T12:00:00Z"}).encode()
        lines.insert(rng.randint(0, len(lines)), _line("batch", raw, datetime(2026, 11, 1, 12)))
    assert len(lines) > 100
    log = DurableLog(tmp_path / "log")
    log.append(lines).result()
    databases = []
    for fast in (True, False):
        backend = new_backend()
        backend.ensure_table("pql_suppressions", pa.schema([("id", pa.string())]))
        backend.run_sql("INSERT INTO pql_suppressions VALUES ('u7')")
        backend.tables()
        flusher = Flusher(
            lambda b=backend: b, LogReader(tmp_path / "log", lambda: log.durable), fast=fast
        )
        while flusher.flush_once(limit=37):  # batches cut across requests
            pass
        flusher.resolve()  # users, accounts and identities derived (finish would close it)
        databases.append((backend, flusher))
    log.close()
    (fast_db, fast_flusher), (ref_db, ref_flusher) = databases
    assert fast_flusher._fastpath is not None and ref_flusher._fastpath is None
    assert (fast_flusher.stored, fast_flusher.duplicates, fast_flusher.suppressed) == (
        ref_flusher.stored,
        ref_flusher.duplicates,
        ref_flusher.suppressed,
    )
    assert fast_flusher.stored > 400 and fast_flusher.suppressed > 0
    assert fast_flusher.duplicates > 0
    for table in sorted(set(fast_db.tables()) - {"pql_collector_offsets"}):
        columns = [c for c in fast_db.table(table).columns if c not in ("updated_at",)]
        fast_rows = fast_db.values(fast_db.table(table).select(columns))
        ref_rows = ref_db.values(ref_db.table(table).select(columns))
        if table == "events":
            i = columns.index("properties")
            fast_rows = [(*r[:i], json.loads(r[i]), *r[i + 1 :]) for r in fast_rows]
            ref_rows = [(*r[:i], json.loads(r[i]), *r[i + 1 :]) for r in ref_rows]
        assert sorted(fast_rows, key=repr) == sorted(ref_rows, key=repr), table


def test_lines_read_ahead_are_stored_with_the_suppressions_of_when_they_are_stored(
    new_backend, tmp_path
):
    """The fast path reads the next lines while a flush stores these; a `pql forget` that
    lands in between still keeps the forgotten user's messages out, and nothing is stored
    twice or lost whichever batch was read ahead."""
    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import SUPPRESSIONS, Flusher

    def batch(n: int) -> bytes:
        messages = [
            {
                "type": "track",
                "messageId": f"m-{n}-{i}",
                "userId": f"u{i % 5}",
                "event": "Feature Used",
                "timestamp": "2026-11-01T11:00:00Z",
                "properties": {"n": n},
            }
            for i in range(10)
        ]
        return _line("batch", json.dumps({"batch": messages}).encode(), datetime(2026, 11, 1, 12))

    log = DurableLog(tmp_path / "log")
    log.append([batch(n) for n in range(30)]).result()
    backend = new_backend()
    flusher = Flusher(lambda: backend, LogReader(tmp_path / "log", lambda: log.durable))
    assert flusher.flush_once(limit=10) == 10  # lines 0-9 stored, 10-19 read meanwhile
    backend.ensure_table(SUPPRESSIONS, pa.schema([("id", pa.string())]))
    backend.run_sql("INSERT INTO pql_suppressions VALUES ('u3')")  # `pql forget u3` lands
    while flusher.flush_once(limit=10):
        pass
    log.close()
    assert flusher._ahead is not None and flusher._ahead.used == 2  # 10-19 and 20-29
    rows = backend.run_sql("SELECT user_id, count(*) FROM events GROUP BY user_id ORDER BY 1")
    assert rows == [("u0", 60), ("u1", 60), ("u2", 60), ("u3", 20), ("u4", 60)]
    assert flusher.suppressed == 40 and flusher.stored == 260
    assert backend.run_sql("SELECT count(DISTINCT message_id) FROM events") == [(260,)]


def test_of_two_lines_with_one_message_id_and_time_the_first_in_the_log_is_stored(
    new_backend, tmp_path
):
    """A single-message request before a batch, both received in the same microsecond and
    carrying the same message id: the fast path (which reads the two kinds of line apart)
    keeps the log's order, as the reference does, on DuckDB and PostgreSQL."""
    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import Flusher

    at = datetime(2026, 11, 1, 12)
    track = {"userId": "u1", "event": "First", "messageId": "same"}
    batch = {"batch": [{**track, "type": "track", "event": "Second"}]}
    lines = [
        _line("track", json.dumps(track).encode(), at),
        _line("batch", json.dumps(batch).encode(), at),
    ]
    log = DurableLog(tmp_path / "log")
    log.append(lines).result()
    for fast in (True, False):
        backend = new_backend()
        flusher = Flusher(
            lambda b=backend: b, LogReader(tmp_path / "log", lambda: log.durable), fast=fast
        )
        while flusher.flush_once():
            pass
        assert flusher.fast_lines == (2 if fast else 0)
        assert backend.run_sql("SELECT event FROM events") == [("First",)], fast
    log.close()


def test_an_id_past_64_bits_in_the_log_is_another_id_on_neither_path(fast):
    """A line an older collector logged with an integer id past 64 bits: the fast path leaves
    it, and the reference refuses it (the flusher quarantines it) rather than store the float
    the parser made of it as another user's id."""
    line = _line(
        "batch",
        b'{"batch":[{"type":"track","event":"A","userId":1234567890123456789012345}]}',
        datetime(2026, 11, 1),
    )
    got = fast.take([("1.0", line)])
    assert got is None or not got.taken
    with pytest.raises(ApiError, match=r"batch\[0\]\.userId: a number as an id"):
        messages_of(line, (1, 0))


def test_a_trickle_is_not_read_ahead_so_what_came_during_a_flush_is_in_the_next(
    new_backend, tmp_path
):
    """Reading ahead pays behind a backlog; of a live trickle it took the few lines that had
    come when a flush began, and the next flush stored only those: an event that came while
    the flush stored and rescored waited for one flush more (event to webhook doubled)."""
    from pqlkit.collect.log import DurableLog, LogReader
    from pqlkit.collect.store import Flusher

    def line(n: int) -> bytes:
        message = {"type": "track", "messageId": f"m-{n}", "userId": f"u{n}", "event": "Seen",
                   "timestamp": "2026-11-01T11:00:00Z"}  # fmt: skip
        return _line("track", json.dumps(message).encode(), datetime(2026, 11, 1, 12))

    log = DurableLog(tmp_path / "log")
    log.append([line(0)]).result()
    backend = new_backend()
    flusher = Flusher(lambda: backend, LogReader(tmp_path / "log", lambda: log.durable))
    batch = flusher.reader.batch

    def arriving(*args, **kwargs):  # a line comes just after the flush read its batch
        lines = batch(*args, **kwargs)
        if lines and len(lines) == 1 and b"m-0" in lines[0][1]:
            log.append([line(1)]).result()
        return lines

    flusher.reader.batch = arriving
    assert flusher.flush_once() == 1
    log.append([line(2)]).result()  # and another while it stored
    assert flusher.flush_once() == 2  # both, in the next flush (before: only m-1)
    log.close()
    assert backend.run_sql("SELECT count(*) FROM events") == [(3,)]
