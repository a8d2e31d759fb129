"""What the product's in-app prompt API reads: each user's live state, kept in a small SQLite
file beside the collector's log, and the prompts shown, in another.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..model.handoff import Prompt, Prompts
from ..model.signals import duration_seconds

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
)


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


@dataclass(frozen=True)
class Answer:
    show: bool
    prompt: Prompt | None = None
    state: dict[str, Any] | None = None

    def to_dict(self, user_id: str) -> dict[str, Any]:
        if not self.show or self.prompt is None or self.state is None:
            # the same answer for an unknown user and a user with nothing to show: the API
            # does not tell who exists
            return {"user_id": user_id, "show": False, "prompt": None}
        s = self.state
        return {
            "user_id": user_id,
            "show": True,
            "prompt": {"id": self.prompt.id, "data": dict(self.prompt.data)},
            "user": {
                "score": s["score"],
                "tier": s["tier"],
                "segment": s["segment"],
                "motion": s["motion"],
                "icp_profile": s["icp_profile"],
                "is_pql": bool(s["is_pql"]),
            },
            "as_of": s["as_of"],
        }


def matches(prompt: Prompt, state: dict[str, Any]) -> bool:
    w = prompt.when
    if w.pql is not None and bool(state["is_pql"]) != w.pql:
        return False
    return w.admits(state)


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


class PromptDesk:
    """The HTTP process's side: answers whether to show a prompt now, and records it shown."""

    def __init__(self, folder: str | Path, prompts: Prompts, reader: StateReader | None = None):
        self.folder = Path(folder)
        self.prompts = prompts
        self.cooldown = timedelta(seconds=duration_seconds(prompts.cooldown))
        self.window = timedelta(seconds=duration_seconds(prompts.cap_window))
        self.reader = reader or StateReader(folder)
        self.shown = _open(self.folder / SHOWN_FILE)
        self.shown.execute(
            "CREATE TABLE IF NOT EXISTS shown (user_id TEXT NOT NULL, prompt_id TEXT NOT NULL, "
            "at TEXT NOT NULL)"
        )
        self.shown.execute("CREATE INDEX IF NOT EXISTS shown_user ON shown (user_id, at)")

    def answer(self, user_id: str, now: datetime) -> Answer:
        state = self.reader.get(user_id)
        if state is None:
            return Answer(False)
        prompt = next((p for p in self.prompts.rules if matches(p, state)), None)
        if prompt is None:
            return Answer(False)
        since = _t(now - self.window)
        times = [
            r[0]
            for r in self.shown.execute(
                "SELECT at FROM shown WHERE user_id = ? AND at >= ? ORDER BY at DESC",
                (user_id, min(since, _t(now - self.cooldown))),
            )
        ]
        if times and times[0] > _t(now - self.cooldown):
            return Answer(False)
        if sum(1 for t in times if t >= since) >= self.prompts.cap:
            return Answer(False)
        self.shown.execute("INSERT INTO shown VALUES (?, ?, ?)", (user_id, prompt.id, _t(now)))
        return Answer(True, prompt, state)

    def close(self) -> None:
        self.shown.close()
        self.reader.close()


__all__ = ["Answer", "PromptDesk", "StateReader", "StateWriter", "matches"]
