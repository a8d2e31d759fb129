"""`pql forget`: delete a person everywhere and keep them deleted (delete and suppress).

Every table in the database that holds user ids is searched, for the user id and every id
linked to it (anonymous ids, old user ids): their rows are deleted (events, messages, traits,
links, scores, users, outcomes, quarantined raw lines naming them), a user named as an
account's champion is blanked, and the ids go into ``pql_suppressions`` so the collector and
the importer drop later messages for them. (The collector's log deletes its segments once
they are stored: see :mod:`pqlkit.collect.log`.)

Deleted must mean gone from the files: DuckDB can leave deleted rows readable in the database
file until the blocks are reused, so the file is rewritten (every table copied into a fresh
file, which then replaces the old one, while pqlkit's lock keeps other pqlkit processes out).
PostgreSQL tables that lost rows are rewritten with VACUUM FULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import pyarrow as pa

from ..errors import DataError
from . import identity
from .store import QUARANTINE, SUPPRESSIONS

#: Columns that hold a user id (rows deleted), and that name a user on another row (blanked).
USER_COLUMNS = ("user_id", "previous_id")
MENTION_COLUMNS = ("champion_user_id",)
SUPPRESSIONS_SCHEMA = pa.schema(
    [("id", pa.string()), ("user_id", pa.string()), ("forgotten_at", pa.timestamp("us"))]
)


@dataclass
class Forgotten:
    user_id: str
    ids: list[str]
    deleted: dict[str, int] = field(default_factory=dict)
    blanked: dict[str, int] = field(default_factory=dict)
    rewritten: str = ""

    def to_dict(self) -> dict:
        return {
            "user_id": self.user_id,
            "ids": self.ids,
            "deleted": self.deleted,
            "blanked": self.blanked,
            "rewritten": self.rewritten,
        }


Eraser = Callable[[Any, list[str], "Forgotten"], None]
"""Deletes (or blanks) what another part keeps about some ids where a plain match on a user
column cannot (the hand-off's payloads name users inside JSON); counts into the result."""


def forget(
    backend, user_ids: list[str], *, rewrite: bool = True, erasers: Sequence[Eraser] = ()
) -> list[Forgotten]:
    """Delete the users everywhere, record their suppression, and rewrite the storage.
    ``erasers`` run first, in the same transaction (the use case passes the hand-off's)."""
    if not user_ids:
        raise DataError("name at least one user id to forget")
    results = []
    touched: set[str] = set()
    now = datetime.now(UTC).replace(tzinfo=None)
    _ensure_suppressions(backend)
    with backend.transaction():
        for user_id in user_ids:
            ids = identity.ids_for(backend, user_id)
            result = Forgotten(user_id=user_id, ids=ids)
            for erase in erasers:
                erase(backend, ids, result)
            _delete(backend, ids, result)
            touched |= set(result.deleted) | set(result.blanked)
            rows = pa.table(
                {
                    "id": ids,
                    "user_id": [user_id] * len(ids),
                    "forgotten_at": pa.array([now] * len(ids), pa.timestamp("us")),
                }
            )
            backend.upsert(SUPPRESSIONS, rows, ["id"], "ignore")
            results.append(result)
    if rewrite:
        how = purge_files(backend, sorted(touched))
        for r in results:
            r.rewritten = how
    return results


def _ensure_suppressions(backend) -> None:
    backend.ensure_table(
        SUPPRESSIONS, SUPPRESSIONS_SCHEMA, primary_key=["id"], not_null=["user_id", "forgotten_at"]
    )


def _delete_quarantined(backend, ids: list[str], result: Forgotten) -> None:
    """Log lines the flusher could not store are kept whole, raw (pql_quarantine): a line
    naming one of the ids as a JSON string goes, whoever else it is about (it was never
    stored, and it may hold their e-mail)."""
    if not backend.has_table(QUARANTINE):
        return
    quarantine = backend.table(QUARANTINE)
    texts = {json.dumps(i) for i in ids} | {json.dumps(i, ensure_ascii=False) for i in ids}
    theirs = quarantine.filter(ibis.or_(*(quarantine.raw.contains(t) for t in sorted(texts))))
    lines = backend.values(theirs.select("segment", "offset"))
    n = backend.delete(QUARANTINE, [{"segment": s, "offset": o} for s, o in lines])
    if n:
        result.deleted[QUARANTINE] = n


def _delete(backend, ids: list[str], result: Forgotten) -> None:
    _delete_quarantined(backend, ids, result)
    for table in backend.base_tables():
        if table in (SUPPRESSIONS, QUARANTINE) or table.startswith("_pql_stage_"):
            continue
        columns = set(backend.table(table).columns)
        where: list[dict[str, Any]] = [{c: ids} for c in USER_COLUMNS if c in columns]
        if "anonymous_id" in columns:
            # an anonymous row is theirs; a row another user sent from a shared device is not
            where.append(
                {"anonymous_id": ids, **({"user_id": None} if "user_id" in columns else {})}
            )
        if table in (identity.LINKS, identity.IDENTITIES):
            where.append({"id": ids})
        if table == identity.TRAITS:
            where = [{"entity": "user", "id": ids}]
        if where:
            n = backend.delete(table, where)
            if n:
                result.deleted[table] = n
        for column in MENTION_COLUMNS:
            if column in columns:
                n = backend.update(table, {column: None}, {column: ids})
                if n:
                    result.blanked[table] = n


def purge_files(backend, tables: list[str]) -> str:
    """Make deleted rows unreadable in the database's files; say how."""
    return backend.purge(tables)


__all__ = ["Forgotten", "forget", "purge_files"]
