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


def messages_from_body(
    endpoint: str, body: Any, raw_size: int, received_at: datetime
) -> list[dict[str, Any]]:
    """Validated messages of one request to ``/v1/<endpoint>``, each with `type`,
    `messageId`, `receivedAt` and a clock-corrected `timestamp` (ISO 8601, UTC)."""
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
        shared = {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}
        items = batch
        label = "batch[{i}]"
    elif endpoint in TYPES:
        if raw_size > MAX_MESSAGE_BYTES:
            raise ApiError(400, "message_too_large", f"a message may be at most {MAX_MESSAGE_BYTES} bytes, got {raw_size}")
        shared = {}
        items = [{**body, "type": endpoint}]
        label = "message"
    else:
        raise ApiError(404, "not_found", f"no endpoint /v1/{endpoint}")
    out = []
    for i, item in enumerate(items):
        where = label.format(i=i)
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_message", f"{where}: must be a JSON object")
        message = _merge(shared, item)
        if endpoint in ("batch", "import") and len(json.dumps(item, default=str)) > MAX_MESSAGE_BYTES:
            raise ApiError(400, "message_too_large", f"{where}: a message may be at most {MAX_MESSAGE_BYTES} bytes")
        out.append(_normalise(message, where, received_at))
    return out


def _merge(shared: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    message = dict(item)
    for key in ("context", "integrations"):
        if isinstance(shared.get(key), dict):
            message[key] = {**shared[key], **(item.get(key) or {})}
    if "sentAt" in shared and "sentAt" not in message:
        message["sentAt"] = shared["sentAt"]
    return message


def _normalise(message: dict[str, Any], where: str, received_at: datetime) -> dict[str, Any]:
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
    try:
        original = parse_timestamp(message["timestamp"], "timestamp") if message.get("timestamp") else None
        sent = parse_timestamp(message["sentAt"], "sentAt") if message.get("sentAt") else None
    except RowError as exc:
        raise ApiError(400, "invalid_message", f"{where}.{exc}") from None
    if original is None:
        timestamp = received_at
    elif sent is None:
        timestamp = original
    else:
        timestamp = received_at - (sent - original)  # the client's clock skew removed
    message["messageId"] = str(message.get("messageId") or f"pql-{uuid.uuid4()}")
    message["receivedAt"] = received_at.isoformat() + "Z"
    if original is not None:
        message["originalTimestamp"] = original.isoformat() + "Z"
    message["timestamp"] = timestamp.isoformat() + "Z"
    return message
