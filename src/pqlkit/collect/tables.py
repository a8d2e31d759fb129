"""The tables the collector and the importer write, declared once: events, the identity
calls kept for resolution (messages), reps' feedback, lines that could not be stored
(quarantine), and the flusher's place in the log."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

OFFSETS = "pql_collector_offsets"
MESSAGES = "pql_messages"
DEDUP_WINDOW = timedelta(days=7)

EVENTS_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("source", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("account_id", pa.string()),
        ("event", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")),
        ("properties", pa.string()),
    ]
)
FEEDBACK = "pql_feedback"
"""Reps' feedback (done, disqualify): from the log (POST /v1/feedback) or `pql feedback`."""
FEEDBACK_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("action", pa.string()),
        ("reason", pa.string()),
        ("by", pa.string()),
        ("at", pa.timestamp("us")),
        ("quiet_until", pa.timestamp("us")),
    ]
)
QUARANTINE = "pql_quarantine"
QUARANTINE_SCHEMA = pa.schema(
    [
        ("segment", pa.int64()),
        ("offset", pa.int64()),
        ("source", pa.string()),
        ("received_at", pa.timestamp("us")),
        ("reason", pa.string()),
        ("raw", pa.string()),
        ("quarantined_at", pa.timestamp("us")),
    ]
)
OFFSETS_SCHEMA = pa.schema([("name", pa.string()), ("segment", pa.int64()), ("offset", pa.int64())])
MESSAGES_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("source", pa.string()),
        ("type", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("group_id", pa.string()),
        ("previous_id", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("received_at", pa.timestamp("us")),
        ("traits", pa.string()),
    ]
)
