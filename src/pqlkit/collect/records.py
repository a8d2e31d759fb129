"""Canonical event records from the shapes events arrive in: mapped table rows, Segment and
RudderStack messages, Amplitude exports. Pure functions: no files, no database.

A bad row raises :class:`RowError` with the field and what is wrong; callers add the file and
line. A record without a message id gets a deterministic one, so importing the same file twice
stores its events once.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

#: The columns of a collected events table, in order.
EVENT_COLUMNS = (
    "message_id",
    "source",
    "user_id",
    "anonymous_id",
    "account_id",
    "event",
    "timestamp",
    "received_at",
    "properties",
)

#: Export formats that carry messages rather than table rows.
MESSAGE_FORMATS = ("segment", "rudderstack", "amplitude")


class RowError(ValueError):
    """One row cannot be imported."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_timestamp(value: Any, field: str = "timestamp") -> datetime:
    """ISO 8601 text (with or without an offset; naive means UTC) or epoch seconds or
    milliseconds, as a naive UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool) or value is None or value == "":
        raise RowError(field, "missing")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise RowError(field, f"{value!r} is not a time")
        seconds = value / 1000.0 if abs(value) > 100_000_000_000 else float(value)
        try:
            dt = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise RowError(field, f"{value!r} is out of range for a time") from None
    elif isinstance(value, str):
        text = value.strip()
        if text.replace(".", "", 1).isdigit() and text.isascii():
            return parse_timestamp(float(text), field)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RowError(
                field,
                f"{value!r} is not a time (use ISO 8601, e.g. 2024-05-01T12:00:00Z, or epoch seconds)",
            ) from None
    else:
        raise RowError(field, f"{value!r} is not a time")
    if dt.tzinfo is not None:
        try:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise RowError(field, f"{value!r} is out of range for a time") from None
    return dt


#: A float holds every whole number below 2**53 exactly. A number at or past it, read as a
#: float (JSON parsers read integers past 64 bits so, a CSV column of big ids may be typed so),
#: may already have lost digits: 1234567890123456789012345 reads as 1234567890123456824475648.
EXACT_FLOAT = 2**53


def text_or_none(value: Any, field: str = "id") -> str | None:
    """An id as text (numbers too, 3.0 as "3"); None when missing or blank. A float too large
    to hold its digits exactly raises :class:`RowError`: it is not guessed into another id."""
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= EXACT_FLOAT:
            raise RowError(
                field,
                f"{value!r} is a number too large to keep its digits exactly; store ids as text",
            )
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def _properties(value: Any, field: str = "properties") -> str:
    if value is None or value == "":
        return "{}"
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise RowError(field, "is not valid JSON") from None
    else:
        parsed = value
    if not isinstance(parsed, dict):
        raise RowError(field, "must be a JSON object")
    return json.dumps(parsed, sort_keys=True, default=str, separators=(",", ":"))


def _message_id(source: str, record: dict[str, Any]) -> str:
    key = json.dumps(
        [
            source,
            record["user_id"],
            record["anonymous_id"],
            record["event"],
            record["timestamp"].isoformat(),
            record["properties"],
        ],
        separators=(",", ":"),
    )
    return "pql-" + hashlib.sha1(key.encode()).hexdigest()


def finish(record: dict[str, Any], source: str, received_at: datetime) -> dict[str, Any]:
    """Validate the common fields and fill in source, received_at and a message id."""
    if record.get("user_id") is None and record.get("anonymous_id") is None:
        raise RowError("user_id", "a row needs a user_id or an anonymous_id")
    if record.get("event") is None:
        raise RowError("event", "missing event name")
    record["source"] = source
    record["received_at"] = received_at
    if record.get("message_id") is None:
        record["message_id"] = _message_id(source, record)
    return {c: record.get(c) for c in EVENT_COLUMNS}


def from_row(
    row: dict[str, Any], mapping: dict[str, str], source: str, received_at: datetime
) -> dict[str, Any]:
    """A table row (CSV, JSON lines, Parquet) with canonical names or a mapping to them."""

    def get(canonical: str) -> Any:
        return row.get(mapping.get(canonical, canonical))

    record = {
        "message_id": text_or_none(get("message_id"), mapping.get("message_id", "message_id")),
        "user_id": text_or_none(get("user_id"), mapping.get("user_id", "user_id")),
        "anonymous_id": text_or_none(
            get("anonymous_id"), mapping.get("anonymous_id", "anonymous_id")
        ),
        "account_id": text_or_none(get("account_id"), mapping.get("account_id", "account_id")),
        "event": text_or_none(get("event")),
        "timestamp": parse_timestamp(get("timestamp"), mapping.get("timestamp", "timestamp")),
        "properties": _properties(get("properties"), mapping.get("properties", "properties")),
    }
    return finish(record, source, received_at)


def from_segment(
    message: dict[str, Any], source: str, received_at: datetime
) -> dict[str, Any] | None:
    """A Segment or RudderStack message (their exports and HTTP API share the shape).

    track, page and screen become events (page and screen named "Page Viewed: <name>" and
    "Screen Viewed: <name>"); identify, group and alias carry no event and return None.
    """
    kind = message.get("type", "track")
    if kind not in ("track", "page", "screen", "identify", "group", "alias"):
        raise RowError("type", f"unknown message type {kind!r}")
    if kind in ("identify", "group", "alias"):
        return None
    if kind == "track":
        event = text_or_none(message.get("event"))
        if event is None:
            raise RowError("event", "a track message needs an event")
    else:
        name = text_or_none(message.get("name")) or ""
        event = f"{'Page' if kind == 'page' else 'Screen'} Viewed" + (f": {name}" if name else "")
    stamp = message.get("timestamp") or message.get("originalTimestamp") or message.get("sentAt")
    context = message.get("context") or {}
    groups = context.get("groupId") if isinstance(context, dict) else None
    record = {
        "message_id": text_or_none(message.get("messageId"), "messageId"),
        "user_id": text_or_none(message.get("userId"), "userId"),
        "anonymous_id": text_or_none(message.get("anonymousId"), "anonymousId"),
        "account_id": text_or_none(groups, "context.groupId"),
        "event": event,
        "timestamp": parse_timestamp(stamp) if stamp is not None else received_at,
        "properties": _properties(message.get("properties")),
    }
    return finish(record, source, received_at)


def from_amplitude(row: dict[str, Any], source: str, received_at: datetime) -> dict[str, Any]:
    """A row of an Amplitude export (JSON lines)."""
    record = {
        "message_id": text_or_none(
            row.get("insert_id") or row.get("$insert_id") or row.get("uuid"), "insert_id"
        ),
        "user_id": text_or_none(row.get("user_id"), "user_id"),
        "anonymous_id": text_or_none(row.get("device_id"), "device_id"),
        "account_id": text_or_none((row.get("groups") or {}).get("company"), "groups.company")
        if isinstance(row.get("groups"), dict)
        else None,
        "event": text_or_none(row.get("event_type")),
        "timestamp": parse_timestamp(
            row.get("event_time") or row.get("client_event_time"), "event_time"
        ),
        "properties": _properties(row.get("event_properties")),
    }
    return finish(record, source, received_at)
