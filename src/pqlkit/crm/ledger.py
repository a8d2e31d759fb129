"""The CRM tables: a ledger of what each record last received, an audit of every send, the
syncs, the read-back cursors and the outcomes read back."""

from __future__ import annotations

import pyarrow as pa

from ..backends import Backend

LEDGER = "pql_crm_ledger"
AUDIT = "pql_crm_audit"
SYNCS = "pql_crm_syncs"
CURSORS = "pql_crm_cursors"
OUTCOMES = "pql_crm_outcomes"

_TS = pa.timestamp("us")
LEDGER_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("object", pa.string()),
        ("key", pa.string()),
        ("crm_key", pa.string()),
        ("digest", pa.string()),
        ("fields", pa.string()),
        ("crm_id", pa.string()),
        ("synced_at", _TS),
        ("error", pa.string()),
        ("error_at", _TS),
        ("failures", pa.int64()),
    ]
)
AUDIT_SCHEMA = pa.schema(
    [
        ("sync_id", pa.string()),
        ("destination", pa.string()),
        ("object", pa.string()),
        ("key", pa.string()),
        ("crm_key", pa.string()),
        ("action", pa.string()),
        ("status", pa.int64()),
        ("crm_id", pa.string()),
        ("error", pa.string()),
        ("digest", pa.string()),
        ("sent_at", _TS),
    ]
)
SYNCS_SCHEMA = pa.schema(
    [
        ("sync_id", pa.string()),
        ("destination", pa.string()),
        ("direction", pa.string()),
        ("mode", pa.string()),
        ("started_at", _TS),
        ("finished_at", _TS),
        ("sent", pa.int64()),
        ("created", pa.int64()),
        ("updated", pa.int64()),
        ("failed", pa.int64()),
        ("skipped", pa.int64()),
        ("unchanged", pa.int64()),
        ("error", pa.string()),
    ]
)
CURSORS_SCHEMA = pa.schema(
    [("destination", pa.string()), ("object", pa.string()), ("since", _TS), ("updated_at", _TS)]
)
OUTCOMES_SCHEMA = pa.schema(
    [
        ("outcome_id", pa.string()),
        ("account_id", pa.string()),
        ("user_id", pa.string()),
        ("kind", pa.string()),
        ("created_at", _TS),
        ("closed_at", _TS),
        ("stage", pa.string()),
        ("amount", pa.float64()),
        ("source", pa.string()),
        ("crm_id", pa.string()),
        ("crm_stage", pa.string()),
        ("email", pa.string()),
        ("domain", pa.string()),
        ("modified_at", _TS),
    ]
)


def ensure(backend: Backend) -> None:
    backend.ensure_table(LEDGER, LEDGER_SCHEMA, primary_key=["destination", "object", "key"])
    backend.ensure_table(AUDIT, AUDIT_SCHEMA)
    backend.ensure_table(SYNCS, SYNCS_SCHEMA, primary_key=["sync_id"])
    backend.ensure_table(CURSORS, CURSORS_SCHEMA, primary_key=["destination", "object"])
    backend.ensure_table(OUTCOMES, OUTCOMES_SCHEMA, primary_key=["outcome_id"])
