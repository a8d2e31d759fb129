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
from datetime import datetime
from typing import Any

from .records import RowError, parse_timestamp

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


def check_body(endpoint: str, body: Any, raw_size: int) -> int:
    """Validate one request to ``/v1/<endpoint>`` (raise ApiError naming the message and
    field); return how many messages it holds. This is all the collector does before a request
    is made durable: the messages are normalised later, by :func:`messages_from_body`."""
    items, shared, label = _items(endpoint, body, raw_size)
    _parse(shared.get("sentAt"), "batch.sentAt")
    big = raw_size > MAX_MESSAGE_BYTES and endpoint in ("batch", "import")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_message", f"{label.format(i=i)}: must be a JSON object")
        if big and len(_dumps(item)) > MAX_MESSAGE_BYTES:
            raise ApiError(400, "message_too_large",
                           f"{label.format(i=i)}: a message may be at most {MAX_MESSAGE_BYTES} bytes")
        try:
            _check(item, "", parse=False)
        except ApiError as exc:  # name the message only when something is wrong
            exc.message = label.format(i=i) + exc.message
            raise
    return len(items)


def messages_from_body(
    endpoint: str, body: Any, raw_size: int, received_at: datetime, id_prefix: str | None = None
) -> list[dict[str, Any]]:
    """Validated messages of one request to ``/v1/<endpoint>``, each with `type`,
    `messageId`, `receivedAt` and a clock-corrected `timestamp` (ISO 8601, UTC). A message
    without a messageId gets ``pql-<id_prefix>-<index>`` (deterministic, so a replay of the
    same log line gives the same ids), or a random one without a prefix."""
    items, shared, label = _items(endpoint, body, raw_size)
    out = []
    for i, item in enumerate(items):
        where = label.format(i=i)
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_message", f"{where}: must be a JSON object")
        if raw_size > MAX_MESSAGE_BYTES and endpoint in ("batch", "import") and len(_dumps(item)) > MAX_MESSAGE_BYTES:
            raise ApiError(400, "message_too_large", f"{where}: a message may be at most {MAX_MESSAGE_BYTES} bytes")
        message = _merge(shared, item)
        original, sent = _check(message, where)
        if original is None:
            timestamp = received_at
        elif sent is None:
            timestamp = original
        else:
            timestamp = received_at - (sent - original)  # the client's clock skew removed
        fallback = f"pql-{id_prefix}-{i}" if id_prefix is not None else f"pql-{uuid.uuid4()}"
        message["messageId"] = str(message.get("messageId") or fallback)
        message["receivedAt"] = received_at.isoformat() + "Z"
        if original is not None:
            message["originalTimestamp"] = original.isoformat() + "Z"
        message["timestamp"] = timestamp.isoformat() + "Z"
        out.append(message)
    return out


def _items(endpoint: str, body: Any, raw_size: int) -> tuple[list[Any], dict[str, Any], str]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    if endpoint in ("batch", "import"):
        if raw_size > MAX_BATCH_BYTES:
            raise ApiError(400, "batch_too_large", f"a batch may be at most {MAX_BATCH_BYTES} bytes, got {raw_size}")
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise ApiError(400, "invalid_request", "batch: must be a list of messages")
        if len(batch) > MAX_BATCH_MESSAGES:
            raise ApiError(400, "batch_too_large",
                           f"a batch may hold at most {MAX_BATCH_MESSAGES} messages, got {len(batch)}")
        return batch, {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}, "batch[{i}]"
    if endpoint in TYPES:
        if raw_size > MAX_MESSAGE_BYTES:
            raise ApiError(400, "message_too_large", f"a message may be at most {MAX_MESSAGE_BYTES} bytes, got {raw_size}")
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


def _check(message: dict[str, Any], where: str, parse: bool = True) -> tuple[datetime | None, datetime | None]:
    """The message's rules; returns its (timestamp, sentAt) parsed (or only checks them)."""
    kind = message.get("type")
    if kind not in TYPES:
        raise ApiError(400, "invalid_message", f"{where}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
    if not (message.get("userId") or message.get("anonymousId")):
        raise ApiError(400, "invalid_message", f"{where}: a message needs userId or anonymousId")
    if kind == "track" and not message.get("event"):
        raise ApiError(400, "invalid_message", f"{where}.event: a track needs an event")
    if kind == "alias" and not (message.get("userId") and message.get("previousId")):
        raise ApiError(400, "invalid_message", f"{where}: an alias needs userId and previousId")
    if kind == "group" and not message.get("groupId"):
        raise ApiError(400, "invalid_message", f"{where}.groupId: a group call needs a groupId")
    if not parse:
        for key in ("timestamp", "sentAt"):
            if message.get(key):
                _valid(message[key], f"{where}.{key}")
        return None, None
    return _parse(message.get("timestamp"), f"{where}.timestamp"), _parse(message.get("sentAt"), f"{where}.sentAt")


def _valid(value: Any, where: str) -> None:
    """Raise ApiError unless ``value`` is a time (the fast check the request path makes)."""
    if value.__class__ is str:
        try:
            datetime.fromisoformat(value)  # the common case, ISO 8601 (with Z) in well under a microsecond
            return
        except ValueError:
            pass
    _parse(value, where)


def _parse(value: Any, where: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(value, where.rsplit(".", 1)[-1])
    except RowError as exc:
        raise ApiError(400, "invalid_message", f"{where.rsplit('.', 1)[0]}.{exc}") from None


def _dumps(item: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(item, default=str)
    except ImportError:  # the server extra brings orjson; the pure rules work without it
        return json.dumps(item, default=str).encode()
