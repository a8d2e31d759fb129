"""The Segment HTTP Tracking API's rules, as pure functions over parsed request bodies.

Limits as Segment documents them: 32 KB per message, 500 KB per batch request, 2,500 messages
per batch. A message needs `userId` or `anonymousId`; a track needs `event`; an alias needs
`userId` and `previousId`. Batch-level `context`, `integrations` and `sentAt` merge into each
message. Timestamps are corrected for the client's clock as Segment does:
``timestamp = receivedAt - (sentAt - originalTimestamp)``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import EXACT_FLOAT, RowError, parse_timestamp, text_or_none

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
TYPES = ("track", "identify", "group", "page", "screen", "alias")


@dataclass
class ApiError(Exception):
    """A request that must not be retried as it is (HTTP 400), or not authorised (401)."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def check_body(endpoint: str, body: Any, raw_size: int, received_at: datetime | None = None) -> int:
    """Validate one request to ``/v1/<endpoint>`` (raise ApiError naming the message and
    field); return how many messages it holds.

    This runs every rule :func:`messages_from_body` applies when the flusher normalises the
    logged request (one validator, not two): what the collector acknowledges can be stored."""
    return len(messages_from_body(endpoint, body, raw_size, received_at or _now(), build=False))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def messages_from_body(
    endpoint: str,
    body: Any,
    raw_size: int,
    received_at: datetime,
    id_prefix: str | None = None,
    *,
    build: bool = True,
) -> list[dict[str, Any]]:
    """Validated messages of one request to ``/v1/<endpoint>``, each with `type`,
    `messageId`, `receivedAt` and a clock-corrected `timestamp` (ISO 8601, UTC). A message
    without a messageId gets ``pql-<id_prefix>-<index>`` (deterministic, so a replay of the
    same log line gives the same ids), or a random one without a prefix. With ``build=False``
    every rule is checked but no message is built (the request path)."""
    items, shared, label = _items(endpoint, body, raw_size)
    _check_shared(shared)
    sent_default = _parse(shared.get("sentAt"), "batch.sentAt")
    out = []
    big = raw_size > MAX_MESSAGE_BYTES and endpoint in ("batch", "import")
    for i, item in enumerate(items):
        where = label.format(i=i)
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_message", f"{where}: must be a JSON object")
        if big and len(_dumps(item)) > MAX_MESSAGE_BYTES:
            raise ApiError(
                400,
                "message_too_large",
                f"{where}: a message may be at most {MAX_MESSAGE_BYTES} bytes",
            )
        original, sent = _check(item, where)
        if sent is None:
            sent = sent_default
        if original is None:
            timestamp = received_at
        elif sent is None:
            timestamp = original
        else:
            timestamp = received_at - (sent - original)  # the client's clock skew removed
            if not (EARLIEST <= timestamp <= LATEST):
                raise ApiError(
                    400,
                    "invalid_message",
                    f"{where}.timestamp: with sentAt it gives {timestamp.isoformat()}, out of range",
                )
        if not build:
            continue
        message = _merge(shared, item)
        fallback = f"pql-{id_prefix}-{i}" if id_prefix is not None else f"pql-{uuid.uuid4()}"
        # the id as every table keeps it (text, trimmed, 3.0 as "3"), so that events and
        # identify/group/alias rows, and deduplication across them, read one id
        message["messageId"] = text_or_none(message.get("messageId"), "messageId") or fallback
        message["receivedAt"] = received_at.isoformat() + "Z"
        if original is not None:
            message["originalTimestamp"] = original.isoformat() + "Z"
        message["timestamp"] = timestamp.isoformat() + "Z"
        out.append(message)
    return out if build else [None] * len(items)  # type: ignore[list-item]


def _items(endpoint: str, body: Any, raw_size: int) -> tuple[list[Any], dict[str, Any], str]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    if endpoint in ("batch", "import"):
        if raw_size > MAX_BATCH_BYTES:
            raise ApiError(
                400,
                "batch_too_large",
                f"a batch may be at most {MAX_BATCH_BYTES} bytes, got {raw_size}",
            )
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise ApiError(400, "invalid_request", "batch: must be a list of messages")
        if len(batch) > MAX_BATCH_MESSAGES:
            raise ApiError(
                400,
                "batch_too_large",
                f"a batch may hold at most {MAX_BATCH_MESSAGES} messages, got {len(batch)}",
            )
        return (
            batch,
            {k: body[k] for k in ("context", "integrations", "sentAt") if k in body},
            "batch[{i}]",
        )
    if endpoint in TYPES:
        if raw_size > MAX_MESSAGE_BYTES:
            raise ApiError(
                400,
                "message_too_large",
                f"a message may be at most {MAX_MESSAGE_BYTES} bytes, got {raw_size}",
            )
        return [{**body, "type": endpoint}], {}, "message"
    raise ApiError(404, "not_found", f"no endpoint /v1/{endpoint}")


def _merge(shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    message = dict(item)
    for key in ("context", "integrations"):
        if isinstance(shared.get(key), dict):
            message[key] = {**shared[key], **(item.get(key) or {})}
    if "sentAt" in shared and "sentAt" not in message:
        message["sentAt"] = shared["sentAt"]
    return message


#: Fields that name something: text (or a number, made text), never an object, a list or a boolean.
_ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId", "messageId")
#: Fields that are text.
_TEXT_FIELDS = ("event", "name", "category")
#: Fields that are JSON objects.
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")
#: How deep objects and lists may nest inside a message.
MAX_DEPTH = 32
#: Times outside this range are refused (no product event happened before 1970 or after 2200).
EARLIEST, LATEST = datetime(1970, 1, 1), datetime(2200, 1, 1)


def _check_shared(shared: dict[str, Any]) -> None:
    for key in ("context", "integrations"):
        if key in shared and shared[key] is not None and not isinstance(shared[key], dict):
            raise ApiError(400, "invalid_request", f"batch.{key}: must be a JSON object")
        if isinstance(shared.get(key), dict):
            _check_nesting(shared[key], f"batch.{key}")
    if isinstance(shared.get("context"), dict):
        _check_number(shared["context"].get("groupId"), "batch.context.groupId")


def _check(message: dict[str, Any], where: str) -> tuple[datetime | None, datetime | None]:
    """The message's rules; returns its (timestamp, sentAt) parsed."""
    kind = message.get("type")
    if kind not in TYPES:
        raise ApiError(
            400,
            "invalid_message",
            f"{where}.type: must be one of {', '.join(TYPES)}, got {_short(kind)}",
        )
    for key in _ID_FIELDS:
        value = message.get(key)
        if value is not None and (value.__class__ not in (str, int, float)):
            raise ApiError(
                400, "invalid_message", f"{where}.{key}: must be text, got {_kind(value)}"
            )
        if value.__class__ is str and "\x00" in value:
            raise ApiError(400, "invalid_message", f"{where}.{key}: must not contain NUL (\\u0000)")
        _check_number(value, f"{where}.{key}")
    context = message.get("context")
    if context.__class__ is dict:
        _check_number(context.get("groupId"), f"{where}.context.groupId")
    for key in _TEXT_FIELDS:
        value = message.get(key)
        if value is not None and value.__class__ is not str:
            raise ApiError(
                400, "invalid_message", f"{where}.{key}: must be text, got {_kind(value)}"
            )
        if value.__class__ is str and "\x00" in value:
            raise ApiError(400, "invalid_message", f"{where}.{key}: must not contain NUL (\\u0000)")
    for key in _OBJECT_FIELDS:
        value = message.get(key)
        if value is not None:
            if value.__class__ is not dict:
                raise ApiError(
                    400,
                    "invalid_message",
                    f"{where}.{key}: must be a JSON object, got {_kind(value)}",
                )
            _check_nesting(value, f"{where}.{key}")
    if not (_present(message.get("userId")) or _present(message.get("anonymousId"))):
        raise ApiError(400, "invalid_message", f"{where}: a message needs userId or anonymousId")
    if kind == "track" and not _present(message.get("event")):
        raise ApiError(400, "invalid_message", f"{where}.event: a track needs an event")
    if kind == "alias" and not (
        _present(message.get("userId")) and _present(message.get("previousId"))
    ):
        raise ApiError(400, "invalid_message", f"{where}: an alias needs userId and previousId")
    if kind == "group" and not _present(message.get("groupId")):
        raise ApiError(400, "invalid_message", f"{where}.groupId: a group call needs a groupId")
    times = [_parse(message.get(key), f"{where}.{key}") for key in _TIME_FIELDS]
    return times[0] or times[2], times[1]


def _check_number(value: Any, where: str) -> None:
    """A number as an id must keep its digits: a whole number that the JSON parser held
    exactly (an integer within 64 bits, or a float below 2**53, 3.0 being 3). Integers past
    64 bits reach here as floats that already lost digits, and a fraction's digits are not
    kept as sent (7.50 reads as 7.5): both are refused rather than stored as another id."""
    if value.__class__ is float and not (value.is_integer() and abs(value) < EXACT_FLOAT):
        raise ApiError(
            400,
            "invalid_message",
            f"{where}: a number as an id must be a whole number within 64 bits, got "
            f"{value!r} (its digits cannot be kept exactly); send the id as text",
        )


def _present(value: Any) -> bool:
    """An id that is there: text with something in it, or a number."""
    if value.__class__ is str:
        return bool(value.strip())
    return value is not None


def _check_nesting(value: Any, where: str) -> None:
    """Objects and lists nest at most MAX_DEPTH deep, and no text holds NUL (PostgreSQL's text
    cannot). Iterative: a hostile body cannot exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(
                400, "invalid_message", f"{where}: nested more than {MAX_DEPTH} levels deep"
            )
        if item.__class__ is dict:
            for k, v in item.items():
                if "\x00" in k:
                    raise ApiError(400, "invalid_message", f"{where}: a key contains NUL (\\u0000)")
                if v.__class__ in (dict, list):
                    stack.append((v, depth + 1))
                elif v.__class__ is str and "\x00" in v:
                    raise ApiError(
                        400,
                        "invalid_message",
                        f"{where}.{_short(k)}: must not contain NUL (\\u0000)",
                    )
        elif item.__class__ is list:
            for v in item:
                if v.__class__ in (dict, list):
                    stack.append((v, depth + 1))
                elif v.__class__ is str and "\x00" in v:
                    raise ApiError(
                        400, "invalid_message", f"{where}: a list item contains NUL (\\u0000)"
                    )


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", str: "text"}.get(
        value.__class__, type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        when = parse_timestamp(value, where.rsplit(".", 1)[-1])
    except RowError as exc:
        raise ApiError(400, "invalid_message", f"{where.rsplit('.', 1)[0]}.{exc}") from None
    if not (EARLIEST <= when <= LATEST):
        raise ApiError(
            400,
            "invalid_message",
            f"{where}: {_short(value)} is out of range ({EARLIEST.year} to {LATEST.year})",
        )
    return when


def _dumps(item: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(item, default=str)
    except ImportError:  # the server extra brings orjson; the pure rules work without it
        return json.dumps(item, default=str).encode()
