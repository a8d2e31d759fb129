"""The prompt API's store: each user's live state and the prompts shown, in two small SQLite
files beside the collector's log. The only SQL of the prompt API; what to show is decided by
:mod:`pqlkit.handoff.prompts` over what this returns.

`pql serve` answers HTTP in one process and writes the database in another (the flusher); a
DuckDB file cannot be read by one process while another writes it. So the flusher copies the
few columns a prompt needs into ``serving.sqlite3`` (SQLite in WAL mode: readers never wait for
the writer) after each rescore, and the HTTP process looks a user up by primary key (tens of
microseconds, whatever the number of users). The prompts shown are written by the HTTP process
alone into ``prompts.sqlite3``, so neither process ever waits for the other's writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

STATE_FILE = "serving.sqlite3"
SHOWN_FILE = "prompts.sqlite3"
COLUMNS = (
    "user_id",
    "account_id",
    "as_of",
    "score",
    "tier",
    "segment",
    "motion",
    "icp_profile",
    "is_pql",
    "reasons",
    "quiet_until",
)
"""The state columns a prompt reads (of pql_user_state), and until when a rep's feedback keeps
the user quiet (pql_feedback), the last."""


def _t(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")  # fixed width: text order is time order


def _open(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    con.execute("PRAGMA busy_timeout=5000")
    return con


class StateWriter:
    """The flusher's side: users' live state, replaced whole after a full pass, row by row
    after a rescore, each in one transaction."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / STATE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = _open(self.path)
        cols = ", ".join(
            f"{c} {'INTEGER' if c in ('score', 'is_pql') else 'TEXT'}" for c in COLUMNS
        )
        have = [r[1] for r in self.con.execute("PRAGMA table_info(users)")]
        if have and tuple(have) != COLUMNS:  # a copy an older pqlkit wrote: the full pass that
            self.con.execute("DROP TABLE users")  # follows every start writes it again whole
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS users ({cols}, PRIMARY KEY (user_id)) WITHOUT ROWID"
        )

    def write(self, rows: Iterable[dict[str, Any]], *, replace_all: bool = False) -> int:
        values = [
            tuple(
                (r[c].isoformat() if isinstance(r[c], datetime) else r[c])
                if c != "is_pql"
                else int(bool(r[c]))
                for c in COLUMNS
            )
            for r in rows
        ]
        marks = ", ".join("?" for _ in COLUMNS)
        self.con.execute("BEGIN IMMEDIATE")
        try:
            if replace_all:
                self.con.execute("DELETE FROM users")
            self.con.executemany(f"INSERT OR REPLACE INTO users VALUES ({marks})", values)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return len(values)

    def close(self) -> None:
        self.con.close()


class StateReader:
    """The HTTP process's view of the users' live state (read-only)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._con: sqlite3.Connection | None = None

    def get(self, user_id: str) -> dict[str, Any] | None:
        if self._con is None:
            path = self.folder / STATE_FILE
            if not path.exists():  # nothing scored yet
                return None
            self._con = _open(path, readonly=True)
        try:
            row = self._con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # the table is not created yet
            return None
        return dict(zip(COLUMNS, row, strict=True)) if row else None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


class ShownLog:
    """The prompts shown, written by the HTTP process alone."""

    def __init__(self, folder: str | Path):
        self.con = _open(Path(folder) / SHOWN_FILE)
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS shown (user_id TEXT NOT NULL, prompt_id TEXT NOT NULL, "
            "at TEXT NOT NULL)"
        )
        self.con.execute("CREATE INDEX IF NOT EXISTS shown_user ON shown (user_id, at)")

    def since(self, user_id: str, since: datetime) -> list[str]:
        """When ``user_id`` was shown a prompt at or after ``since``, latest first (fixed-width
        ISO text, so text order is time order)."""
        return [
            r[0]
            for r in self.con.execute(
                "SELECT at FROM shown WHERE user_id = ? AND at >= ? ORDER BY at DESC",
                (user_id, _t(since)),
            )
        ]

    def add(self, user_id: str, prompt_id: str, at: datetime) -> None:
        self.con.execute("INSERT INTO shown VALUES (?, ?, ?)", (user_id, prompt_id, _t(at)))

    def close(self) -> None:
        self.con.close()


__all__ = ["COLUMNS", "ShownLog", "StateReader", "StateWriter", "stamp"]
stamp = _t
"""A time as the shown log writes it (fixed-width ISO text)."""
