"""`pql sync crm`: write what changed to a CRM, batch by batch, with a ledger and an audit.

For each object (accounts first, then users): the rows to write come from the current state
(in the database: only PQLs and PQAs and records written before, unless the destination syncs
everyone); records are built and compared with the ledger; what changed goes in batches of the
CRM's size. Before a batch is sent its records are written to the audit as `sending`; after,
the ledger and the audit take the CRM's answer for each record, in one transaction, while the
next batch is in flight. A process killed in between sends again the batch in flight and the
one marked after it (an upsert by key: a repeat is harmless, and the audit shows both), a record the CRM refused keeps its error and is sent
again next time, and a CRM that keeps limiting or failing stops the sync with the rest unsent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from ..backends import Backend
from ..model.crm import CrmDestination
from . import ledger, records
from .hubspot import Result
from .records import Record
from .sides import Side, sides
from .transport import CrmError, CrmUnavailable

Progress = Callable[[str, int, int], None]


@dataclass
class ObjectReport:
    object: str
    considered: int = 0
    unchanged: int = 0
    sent: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    """The first 100 records refused or skipped: key, crm_key, error."""
    diff: list[dict[str, Any]] = field(default_factory=list)
    """With --dry-run: each record that would be sent and the fields it changes."""
    by_key: dict[str, tuple[str, str | None]] = field(default_factory=dict, repr=False)
    """With named entities (a hand-off's deliveries): key → (written | unchanged | failed |
    skipped, error) for each record considered."""


@dataclass
class SyncReport:
    destination: str
    mode: str
    sync_id: str
    objects: list[ObjectReport] = field(default_factory=list)
    stopped: str | None = None
    """Why the sync stopped before the end (the CRM kept failing, a limit); the rest is sent
    at the next sync."""
    calls: int = 0
    waited_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "mode": self.mode,
            "sync_id": self.sync_id,
            "stopped": self.stopped,
            "calls": self.calls,
            "waited_seconds": round(self.waited_seconds, 3),
            "seconds": round(self.seconds, 3),
            "objects": [
                {k: v for k, v in o.__dict__.items() if k != "by_key"} for o in self.objects
            ],
        }


def _rows(
    backend: Backend,
    side: Side,
    dest: CrmDestination,
    table: ir.Table,
    entities: list[str] | None,
    known: bool,
) -> list[dict[str, Any]]:
    t = table
    if entities is not None:
        t = t.filter(t[side.key].isin(entities)) if entities else t.filter(ibis.literal(False))
    if dest.sync == "pqls":
        wanted = t[side.flag].fill_null(False)
        if known:
            lg = backend.table(ledger.LEDGER)
            written = lg.filter(lg.destination == dest.id, lg.object == side.object).key
            wanted = wanted | t[side.key].isin(written)
        t = t.filter(wanted)
    needed = {side.key, side.crm_key, *side.mapping.values()}
    if side.entity == "user":
        needed |= {"email", "company", "domain"}
        needed -= {"last_name"}
    cols = [c for c in needed if c in t.columns]
    rows: list[dict[str, Any]] = backend.arrow(backend.compile(t.select(*sorted(cols)))).to_pylist()
    return rows


def _ledger(backend: Backend, dest_id: str, obj: str, known: bool) -> dict[str, tuple[Any, ...]]:
    if not known:
        return {}
    lg = backend.table(ledger.LEDGER)
    rows = backend.values(
        lg.filter(lg.destination == dest_id, lg.object == obj).select(
            "key", "digest", "fields", "crm_id", "failures"
        )
    )
    return {r[0]: r[1:] for r in rows}


def _audit(
    sync_id: str,
    dest_id: str,
    obj: str,
    rows: Sequence[tuple[Record, str, Result | None]],
    now: datetime,
) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "sync_id": sync_id,
                "destination": dest_id,
                "object": obj,
                "key": rec.key,
                "crm_key": rec.crm_key,
                "action": action,
                "status": res.status if res else None,
                "crm_id": res.crm_id if res else None,
                "error": res.error if res else None,
                "digest": rec.digest,
                "sent_at": now,
            }
            for rec, action, res in rows
        ],
        schema=ledger.AUDIT_SCHEMA,
    )


def _action(res: Result, before: tuple[Any, ...] | None) -> str:
    """created, updated or failed; `recreated` when the CRM created a record it had held
    before (deleted there since: the upsert brought it back)."""
    if res.ok and res.action == "created" and before is not None and before[2]:
        return "recreated"
    return res.action


def _ledger_rows(
    dest_id: str,
    obj: str,
    pairs: list[tuple[Record, Result]],
    old: dict[str, tuple[Any, ...]],
    now: datetime,
) -> pa.Table:
    out = []
    for rec, res in pairs:
        digest, fields, crm_id, failures = old.get(rec.key, (None, None, None, 0))
        if res.ok:
            row = {
                "digest": rec.digest,
                "fields": json.dumps(rec.fields, sort_keys=True),
                "crm_id": res.crm_id or crm_id,
                "synced_at": now,
                "error": None,
                "error_at": None,
                "failures": 0,
            }
        else:
            row = {
                "digest": digest,
                "fields": fields,
                "crm_id": crm_id,
                "synced_at": None,
                "error": res.error,
                "error_at": now,
                "failures": int(failures or 0) + 1,
            }
        out.append(
            {"destination": dest_id, "object": obj, "key": rec.key, "crm_key": rec.crm_key, **row}
        )
    return pa.Table.from_pylist(out, schema=ledger.LEDGER_SCHEMA)


def sync(
    backend: Backend,
    dest: CrmDestination,
    secrets: list[str],
    client: httpx.Client,
    users: ir.Table | None,
    accounts: ir.Table | None,
    *,
    now: Callable[[], datetime],
    full: bool = False,
    dry_run: bool = False,
    entities: dict[str, list[str]] | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
    give_up_after: float = 300.0,
) -> SyncReport:
    """Write what changed (everything with ``full``; only the named user and account ids with
    ``entities``) to one CRM destination."""
    started = time.perf_counter()
    mode = (
        "dry-run"
        if dry_run
        else ("full" if full else ("entities" if entities is not None else "changes"))
    )
    report = SyncReport(dest.id, mode, "sync_" + uuid.uuid4().hex[:20])
    run = _Run(backend, dest, report, now, backend.has_table(ledger.LEDGER), full, entities)
    if not dry_run:
        ledger.ensure(backend)
        run.known = True
        _begin(backend, report, now())
    error: str | None = None
    the_sides = sides(dest, secrets, client, sleep=sleep, give_up_after=give_up_after)
    try:
        for side in the_sides:
            table = users if side.entity == "user" else accounts
            part = ObjectReport(side.object)
            report.objects.append(part)
            if table is None:
                continue
            plan, old = _plan(run, side, table, part)
            if dry_run:
                part.diff = _diff(plan, old)
                part.sent = len(plan.send)
                continue
            _send(run, side, plan.send, old, part, progress)
    except CrmUnavailable as exc:
        report.stopped = error = str(exc)
    except CrmError as exc:
        error = str(exc)
        if dry_run:
            raise
        _finish(backend, report, now, error)
        raise
    finally:
        for side in the_sides[:1]:
            transport = side.transport
            report.calls, report.waited_seconds = transport.calls, transport.waited
    report.seconds = time.perf_counter() - started
    if not dry_run:
        _finish(backend, report, now, error)
    return report


@dataclass
class _Run:
    """What every object of one sync shares."""

    backend: Any
    dest: CrmDestination
    report: SyncReport
    now: Callable[[], datetime]
    known: bool
    """The ledger exists (records written before are read from it)."""
    full: bool
    entities: dict[str, list[str]] | None


def _begin(backend: Backend, report: SyncReport, at: datetime) -> None:
    """The sync's row in `pql_crm_syncs`, written before anything is sent."""
    with backend.transaction():
        backend.insert(
            ledger.SYNCS,
            pa.Table.from_pylist(
                [
                    {
                        "sync_id": report.sync_id,
                        "destination": report.destination,
                        "direction": "write",
                        "mode": report.mode,
                        "started_at": at,
                    }
                ],
                schema=ledger.SYNCS_SCHEMA,
            ),
        )


def _plan(
    run: _Run, side: Side, table: ir.Table, part: ObjectReport
) -> tuple[records.Plan, dict[str, tuple[Any, ...]]]:
    """The records of one object that changed since the ledger's (all of them when full), and
    the ledger's rows; what was considered, unchanged and skipped goes in the report."""
    wanted = None if run.entities is None else run.entities.get(side.entity, [])
    rows = _rows(run.backend, side, run.dest, table, wanted, run.known)
    recs, skipped = records.build(
        rows,
        object=side.object,
        key=side.key,
        crm_key=side.crm_key,
        mapping=side.mapping,
        kinds=side.kinds,
        flavour=side.flavour,
        fold_case=side.fold_case,
    )
    old = _ledger(run.backend, run.dest.id, side.object, run.known)
    p = records.plan(side.object, recs, skipped, {k: v[:2] for k, v in old.items()}, full=run.full)
    part.considered, part.unchanged, part.skipped = len(rows), p.unchanged, len(skipped)
    part.errors += [{"key": s.key, "crm_key": None, "error": s.why} for s in skipped[:100]]
    if run.entities is not None:
        part.by_key.update({s.key: ("skipped", s.why) for s in skipped})
        sending = {r.key for r in p.send}
        part.by_key.update({r.key: ("unchanged", None) for r in recs if r.key not in sending})
    return p, old


def _diff(p: records.Plan, old: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """With --dry-run: each record that would be sent and the fields it changes."""
    return [
        {
            "key": r.key,
            "crm_key": r.crm_key,
            "action": "update" if r.key in old and old[r.key][0] else "create",
            "changes": records.changes(r, p.previous.get(r.key)),
        }
        for r in p.send
    ]


def _send(
    run: _Run,
    side: Side,
    send: list[Record],
    old: dict[str, tuple[Any, ...]],
    part: ObjectReport,
    progress: Progress | None,
) -> None:
    """Send one object's changed records batch by batch, the ledger and audit kept as it goes.

    One batch in flight while the database records the last one's answers and marks the next
    one `sending`: a batch is always marked before it goes, and answered after the CRM
    answers; killed, a sync resends at most the batch in flight and the next one (upserts by
    key: harmless, and the audit shows it)."""
    if send:
        side.prepare()
    sync_id, dest_id, obj = run.report.sync_id, run.dest.id, side.object
    done = 0
    answered: list[tuple[Record, Result]] = []  # the last batch's, not yet recorded
    batches = list(records.batches(send, side.batch))
    pool = ThreadPoolExecutor(1, thread_name_prefix="pqlkit-crm")
    try:
        if batches:
            _record(run.backend, sync_id, dest_id, obj, [], batches[0], old, run.now())
        for i, batch in enumerate(batches):
            call = pool.submit(side.upsert, batch)
            following = batches[i + 1] if i + 1 < len(batches) else []
            _record(run.backend, sync_id, dest_id, obj, answered, following, old, run.now())
            answered.clear()
            pairs = list(zip(batch, call.result(), strict=True))
            answered.extend(pairs)
            _tally(part, pairs, named=run.entities is not None)
            done += len(batch)
            if progress is not None:
                progress(obj, done, len(send))
    finally:
        pool.shutdown(wait=True)
        if answered:
            _record(run.backend, sync_id, dest_id, obj, answered, [], old, run.now())


def _tally(part: ObjectReport, answered: list[tuple[Record, Result]], *, named: bool) -> None:
    """Count the CRM's answers to one batch in the object's report."""
    for rec, res in answered:
        part.sent += 1
        if named:
            part.by_key[rec.key] = ("written", None) if res.ok else ("failed", res.error)
        if res.ok:
            part.created += res.action == "created"
            part.updated += res.action == "updated"
        else:
            part.failed += 1
            if len(part.errors) < 100:
                part.errors.append({"key": rec.key, "crm_key": rec.crm_key, "error": res.error})


def _record(
    backend: Backend,
    sync_id: str,
    dest_id: str,
    obj: str,
    answered: list[tuple[Record, Result]],
    before: list[Record],
    old: dict[str, tuple[Any, ...]],
    at: datetime,
) -> None:
    """One transaction: the CRM's answers to the last batch (ledger and audit) and the next
    batch as `sending`, written before it is sent."""
    with backend.transaction():
        if answered:
            backend.upsert(
                ledger.LEDGER,
                _ledger_rows(dest_id, obj, answered, old, at),
                ["destination", "object", "key"],
            )
            actions = [(r, _action(x, old.get(r.key)), x) for r, x in answered]
            backend.insert(ledger.AUDIT, _audit(sync_id, dest_id, obj, actions, at))
        if before:
            sending = [(r, "sending", None) for r in before]
            backend.insert(ledger.AUDIT, _audit(sync_id, dest_id, obj, sending, at))


def _finish(
    backend: Backend, report: SyncReport, now: Callable[[], datetime], error: str | None
) -> None:
    totals = {
        k: sum(getattr(o, k) for o in report.objects)
        for k in ("sent", "created", "updated", "failed", "skipped", "unchanged")
    }
    with backend.transaction():
        backend.update(
            ledger.SYNCS,
            {"finished_at": now(), "error": error, **totals},
            {"sync_id": report.sync_id},
        )
