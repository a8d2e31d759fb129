"""Generated request bodies for the collector: Segment-shaped messages with hostile values in
every field (wrong types, deep nesting, huge numbers, ids past 64 bits, odd strings and times),
plus damaged raw bytes (bad UTF-8, truncation, odd encodings, gzip of two members or with bytes
after its end). Used by tests/test_fuzz.py, test_http_fuzz.py and test_fastpath.py."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

FIELDS = (
    "type",
    "userId",
    "anonymousId",
    "event",
    "name",
    "groupId",
    "previousId",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "properties",
    "traits",
    "context",
    "integrations",
)
TYPES = ("track", "identify", "group", "page", "screen", "alias")

_STRINGS = [
    "",
    " ",
    "u1",
    "x" * 300,
    "ü💥",
    "a\x00b",
    "'; DROP TABLE events; --",
    'k"e',
    "k'e",
    "a\\b",
    "\u202e",
    "=1+1",
    "\n\r\t",
    "null",
    "2026-11-01T12:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
    "1e20",
    "²",
    "2026-13-45",
    "-1",
    "1700000000000",
]
_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**63,
    2**64 + 1,
    10**30,
    -(10**30),
    1e20,
    -1e15,
    1.5,
    1e308,
    1700000000,
    1700000000000,
    99999999999999,
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(_STRINGS)
    if pick < 0.5:
        return rng.choice(_NUMBERS)
    if pick < 0.6:
        return rng.choice([True, False, None])
    if depth > 45 or pick < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.1:  # deep chains
        out: Any = 1
        for _ in range(rng.randint(20, 60)):
            out = {"a": out}
        return out
    return {
        rng.choice([*_STRINGS, "plan", "n"]): _value(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def _message(rng: random.Random, n: int) -> dict[str, Any]:
    kind = rng.choice(TYPES)
    message: dict[str, Any] = {
        "type": kind,
        "userId": f"u{rng.randint(0, 50)}",
        "messageId": f"fz-{n}",
        "timestamp": "2026-11-01T11:00:00Z",
    }
    if kind == "track":
        message["event"] = rng.choice(["Project Created", "Pricing Viewed", "Feature Used"])
    if kind == "alias":
        message["previousId"] = f"anon-{rng.randint(0, 50)}"
    if kind == "group":
        message["groupId"] = f"acc-{rng.randint(0, 20)}"
    if rng.random() < 0.5:
        message["properties"] = {"n": rng.randint(0, 9), "plan": rng.choice(["free", "pro"])}
    if kind in ("identify", "group") and rng.random() < 0.7:
        message["traits"] = {
            "email": f"x{rng.randint(0, 9)}@acme.io",
            "employees": rng.randint(1, 5000),
        }
    # corrupt some fields
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        field = rng.choice(FIELDS)
        if rng.random() < 0.15:
            message.pop(field, None)
        else:
            message[field] = _value(rng)
    if isinstance(message.get("messageId"), str | int | float) and not isinstance(
        message["messageId"], bool
    ):
        # every message id stays unique, so that stored rows can be counted against acknowledged ones
        message["messageId"] = f"fz-{n}-{message['messageId']}"
    return message


def body(rng: random.Random, n: int) -> tuple[str, bytes, dict[str, str]]:
    """(endpoint, raw body, headers) of one generated request."""
    endpoint = rng.choice(["batch"] * 6 + list(TYPES))
    if endpoint == "batch":
        doc: Any = {"batch": [_message(rng, n * 100 + i) for i in range(rng.randint(0, 6))]}
        if rng.random() < 0.3:
            doc["sentAt"] = rng.choice([*_STRINGS, *_NUMBERS, None, {}])
        if rng.random() < 0.2:
            doc["context"] = _value(rng)
        if rng.random() < 0.05:
            doc["batch"] = _value(rng)
    else:
        doc = _message(rng, n * 100)
        doc.pop("type", None) if rng.random() < 0.5 else None
    if rng.random() < 0.03:
        doc = _value(rng)  # not even an object
    raw = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=False, default=str).encode()
    headers = {"content-type": "application/json"}
    roll = rng.random()
    if roll < 0.03:
        raw = raw[: rng.randint(0, len(raw))]  # truncated
    elif roll < 0.06:
        i = rng.randint(0, len(raw))
        raw = raw[:i] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xED])]) + raw[i:]  # bad UTF-8
    elif roll < 0.12:
        cut = rng.randint(0, len(raw))
        raw = (  # one gzip member, or two (read whole, as gzip.decompress does)
            gzip.compress(raw)
            if rng.random() < 0.7
            else gzip.compress(raw[:cut]) + gzip.compress(raw[cut:])
        )
        headers["content-encoding"] = "gzip"
        if rng.random() < 0.2:
            raw = raw[: max(1, len(raw) - rng.randint(1, 10))]
        elif rng.random() < 0.1:  # bytes after the end: refused
            raw += rng.choice([b"\x00", b"garbage", b"\x1f\x8b", b"\n"])
    elif roll < 0.14:
        headers["content-encoding"] = rng.choice(["br", "deflate", "identity", "GZIP", "x-unknown"])
    elif roll < 0.16:
        raw = raw.replace(b'"', b"'", 1)
    elif roll < 0.2:  # an id as a number past 64 bits, written as digits (no float can hold it)
        field = rng.choice([b"userId", b"anonymousId", b"groupId", b"previousId", b"messageId"])
        digits = rng.choice(
            [b"1234567890123456789012345", b"18446744073709551617", b"-9223372036854775809"]
        )
        raw = raw.replace(b'"' + field + b'": "', b'"' + field + b'": ' + digits + b', "x": "', 1)
    return endpoint, raw, headers
