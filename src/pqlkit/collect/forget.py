"""`pql forget`: delete a person everywhere and keep them deleted (delete and suppress).

Every table in the database that holds user ids is searched, for the user id and every id
linked to it (anonymous ids, old user ids): their rows are deleted (events, messages, traits,
links, scores, users, outcomes), a user named as an account's champion is blanked, and the ids
go into ``pql_suppressions`` so the collector and the importer drop later messages for them.

Deleted must mean gone from the files: DuckDB can leave deleted rows readable in the database
file until the blocks are reused, so the file is rewritten (every table copied into a fresh
file, which then replaces the old one, while pqlkit's lock keeps other pqlkit processes out).
PostgreSQL tables that lost rows are rewritten with VACUUM FULL.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import DataError
from . import identity
from .store import SUPPRESSIONS

#: Columns that hold a user id (rows deleted), and that name a user on another row (blanked).
USER_COLUMNS = ("user_id", "previous_id")
MENTION_COLUMNS = ("champion_user_id",)


@dataclass
class Forgotten:
    user_id: str
    ids: list[str]
    deleted: dict[str, int] = field(default_factory=dict)
    blanked: dict[str, int] = field(default_factory=dict)
    rewritten: str = ""

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "ids": self.ids, "deleted": self.deleted,
                "blanked": self.blanked, "rewritten": self.rewritten}


def forget(backend, user_ids: list[str], *, rewrite: bool = True) -> list[Forgotten]:
    """Delete the users everywhere, record their suppression, and rewrite the storage."""
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
            _delete(backend, ids, result)
            touched |= set(result.deleted) | set(result.blanked)
            for id_ in ids:
                backend.execute_sql(
                    f'INSERT INTO "{SUPPRESSIONS}" (id, user_id, forgotten_at) VALUES '
                    f"({_lit(id_)}, {_lit(user_id)}, TIMESTAMP '{now.isoformat(sep=' ')}') ON CONFLICT DO NOTHING"
                )
            results.append(result)
    if rewrite:
        how = purge_files(backend, sorted(touched))
        for r in results:
            r.rewritten = how
    return results


def _ensure_suppressions(backend) -> None:
    if not backend.has_table(SUPPRESSIONS):
        backend.execute_sql(
            f'CREATE TABLE IF NOT EXISTS "{SUPPRESSIONS}" '
            "(id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL, forgotten_at TIMESTAMP NOT NULL)"
        )
        backend.tables()


def _delete(backend, ids: list[str], result: Forgotten) -> None:
    listed = ", ".join(_lit(i) for i in ids)
    for table in backend.base_tables():
        if table == SUPPRESSIONS or table.startswith("_pql_stage_"):
            continue
        columns = set(backend.table(table).columns)
        where = [f'"{c}" IN ({listed})' for c in USER_COLUMNS if c in columns]
        if "anonymous_id" in columns:
            # an anonymous row is theirs; a row another user sent from a shared device is not
            where.append(f'("anonymous_id" IN ({listed}) AND "user_id" IS NULL)' if "user_id" in columns
                         else f'"anonymous_id" IN ({listed})')
        if table in (identity.LINKS, identity.IDENTITIES):
            where.append(f'"id" IN ({listed})')
        if table == identity.TRAITS:
            where = [f"(\"entity\" = 'user' AND \"id\" IN ({listed}))"]
        if where:
            n = _count(backend, table, " OR ".join(where))
            if n:
                backend.execute_sql(f'DELETE FROM "{table}" WHERE ' + " OR ".join(where))
                result.deleted[table] = n
        for column in MENTION_COLUMNS:
            if column in columns:
                cond = f'"{column}" IN ({listed})'
                n = _count(backend, table, cond)
                if n:
                    backend.execute_sql(f'UPDATE "{table}" SET "{column}" = NULL WHERE {cond}')
                    result.blanked[table] = n


def _count(backend, table: str, where: str) -> int:
    return int(backend.fetch_one(f'SELECT count(*) FROM "{table}" WHERE {where}')[0])


def purge_files(backend, tables: list[str]) -> str:
    """Make deleted rows unreadable in the database's files; say how."""
    if backend.name == "postgres":
        for table in tables:
            backend.execute_sql(f'VACUUM FULL "{table}"')
        return f"VACUUM FULL on {len(tables)} table(s)" if tables else "nothing to rewrite"
    if backend.path is None:
        return "in memory"
    rewrite_duckdb(backend)
    return f"rewrote {backend.path}"


def rewrite_duckdb(backend) -> None:
    """Copy every table into a fresh file and put it in place of the old one."""
    path = backend.path
    if backend._lock is None:
        raise DataError(f"cannot rewrite {path}: its folder is not writable (the rows are deleted; "
                        "copy the file somewhere writable and run `pql forget` there to purge it)")
    if not backend._lock.sole():
        raise DataError(
            f"cannot rewrite {path}: this process has it open more than once; close the other connections"
        )
    fresh = path.with_name(path.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    con = backend.con.con
    con.execute("CHECKPOINT")
    current = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH {_lit(str(fresh))} AS pql_rewrite")
    try:
        con.execute(f'COPY FROM DATABASE "{current}" TO pql_rewrite')
    finally:
        con.execute("DETACH pql_rewrite")
    with open(fresh, "rb") as fh:
        os.fsync(fh.fileno())
    backend.reopen(lambda: os.replace(fresh, path))
    wal = path.with_name(path.name + ".wal")
    with contextlib.suppress(FileNotFoundError):
        wal.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


__all__ = ["Forgotten", "forget", "purge_files"]
