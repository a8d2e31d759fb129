"""Signed-in sessions of the web app, kept in the database (table ``pql_ui_sessions``) and
named by an opaque random id: the cookie holds that id and nothing else.

The table keeps a SHA-256 of the id, never the id itself, so whoever reads the database cannot
act as anyone. A session ends when its row goes: at sign-out, when its 8 hours are up, and with
every other session of its user when `pql users add NAME --reset` or `pql users remove NAME`
changes them (see :func:`end_all`, called inside those transactions). A row also keeps the
fingerprint of the password hash it signed in with, so a sign-in racing a reset cannot outlive it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

SESSIONS = "pql_ui_sessions"
SCHEMA = pa.schema(
    [
        ("id_hash", pa.string()),
        ("name", pa.string()),
        ("fingerprint", pa.string()),
        ("csrf", pa.string()),
        ("flash", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("expires_at", pa.timestamp("us")),
    ]
)
COOKIE = "pql_session"
MAX_AGE = 8 * 3600


def utc_now() -> datetime:
    """Now, as the database keeps times: naive UTC, whole seconds (web/ stands apart from the
    engine, so not the engine's twin)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    fingerprint: str
    csrf: str
    flash: str | None


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def ensure(backend) -> None:
    backend.ensure_table(
        SESSIONS, SCHEMA, primary_key=["id_hash"], not_null=["name", "csrf", "expires_at"]
    )


def start(backend, name: str, fingerprint: str, *, max_age: int = MAX_AGE) -> Session:
    """A new session for ``name`` (their sessions past their time are dropped meanwhile)."""
    ensure(backend)
    now = utc_now()
    session = Session(secrets.token_urlsafe(32), name, fingerprint, secrets.token_urlsafe(32), None)
    t = backend.table(SESSIONS)
    expired = backend.values(t.filter((t.name == name) & (t.expires_at <= now)).select("id_hash"))
    row = {
        "id_hash": _hash(session.id),
        "name": name,
        "fingerprint": fingerprint,
        "csrf": session.csrf,
        "flash": None,
        "created_at": now,
        "expires_at": now + timedelta(seconds=max_age),
    }
    with backend.transaction():
        for (old,) in expired:
            backend.delete(SESSIONS, {"id_hash": old})
        backend.insert(SESSIONS, pa.Table.from_pylist([row], schema=SCHEMA))
    return session


def load(backend, session_id: str | None) -> Session | None:
    """The live session named by a cookie's id, else None (unknown, ended or past its time)."""
    if not session_id or len(session_id) > 128 or not backend.has_table(SESSIONS):
        return None
    t = backend.table(SESSIONS)
    rows = backend.values(
        t.filter((t.id_hash == _hash(session_id)) & (t.expires_at > utc_now())).select(
            "name", "fingerprint", "csrf", "flash"
        )
    )
    return Session(session_id, *rows[0]) if rows else None


def end(backend, session_id: str) -> None:
    if backend.has_table(SESSIONS):
        with backend.transaction():
            backend.delete(SESSIONS, {"id_hash": _hash(session_id)})


def end_all(backend, name: str) -> int:
    """End every session of ``name``, inside the caller's transaction; how many there were."""
    return backend.delete(SESSIONS, {"name": name}) if backend.has_table(SESSIONS) else 0


def flash(backend, session: Session, text: str | None) -> None:
    """Keep ``text`` to show on the session's next page (None: it was shown)."""
    with backend.transaction():
        backend.update(SESSIONS, {"flash": text}, {"id_hash": _hash(session.id)})
