"""Who may sign in to the web app: names, roles and Argon2id password hashes, kept in the
database beside the scores (table ``pql_ui_users``), managed with `pql users`.

Passwords are hashed by argon2-cffi (Argon2id, its default parameters: OWASP's first choice);
a hash made with weaker parameters is upgraded at the next sign-in. Changing a password (or
removing the user) ends every session of theirs in the same transaction (:mod:`.sessions`).

"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import DataError
from . import sessions
from .sessions import utc_now

USERS = "pql_ui_users"
SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("role", pa.string()),
        ("password_hash", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("updated_at", pa.timestamp("us")),
    ]
)
ROLES = ("admin", "rep")
"""admin: everything, the model's health and the deliveries; rep: the inbox, leads, accounts
and feedback."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MIN_PASSWORD = 10


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def fingerprint(self) -> str:
        """Changes when the password does: a session signed in with another hash is void."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:20]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise DataError(
            f"user name {name!r}: use 1-64 letters, digits and . _ @ + - (starting with a "
            "letter or digit), e.g. ana or ana@example.com"
        )
    return name


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise DataError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    return password


def ensure(backend) -> None:
    backend.ensure_table(USERS, SCHEMA, primary_key=["name"], not_null=["role", "password_hash"])
    sessions.ensure(backend)


def get(backend, name: str) -> User | None:
    if not backend.has_table(USERS):
        return None
    t = backend.table(USERS)
    rows = backend.values(t.filter(t.name == name).select("name", "role", "password_hash"))
    return User(*rows[0]) if rows else None


def listing(backend) -> list[dict[str, Any]]:
    if not backend.has_table(USERS):
        return []
    t = backend.table(USERS)
    return backend.rows(t.select("name", "role", "created_at", "updated_at").order_by("name"))


def add(backend, name: str, role: str, password: str, *, replace: bool = False) -> User:
    """Create a user (or, with ``replace``, set an existing user's role and password)."""
    check_name(name)
    if role not in ROLES:
        raise DataError(f"role {role!r}: use one of {', '.join(ROLES)}")
    check_password(password)
    ensure(backend)
    now = utc_now()
    existing = get(backend, name)
    if existing is not None and not replace:
        raise DataError(
            f"user {name!r} exists; pass --reset to give them a new password (and role)"
        )
    hashed = _hasher().hash(password)
    with backend.transaction():
        if existing is not None:
            backend.update(
                USERS, {"role": role, "password_hash": hashed, "updated_at": now}, {"name": name}
            )
            sessions.end_all(backend, name)
        else:
            row = {
                "name": name,
                "role": role,
                "password_hash": hashed,
                "created_at": now,
                "updated_at": now,
            }
            backend.insert(USERS, pa.Table.from_pylist([row], schema=SCHEMA))
    return User(name, role, hashed)


def remove(backend, name: str) -> None:
    if get(backend, name) is None:
        raise DataError(f"no user {name!r} (pql users list shows who there is)")
    with backend.transaction():
        backend.delete(USERS, {"name": name})
        sessions.end_all(backend, name)


_DUMMY: list[str] = []


def verify(backend, name: str, password: str) -> User | None:
    """The user if the password is theirs, else None; as slow for an unknown name as for a
    wrong password, so timing does not tell which names exist."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    user = get(backend, name) if NAME.fullmatch(name or "") else None  # no such name can exist
    if user is None:
        if not _DUMMY:
            _DUMMY.append(hasher.hash("not a password of anyone's"))
        with contextlib.suppress(VerificationError):
            hasher.verify(_DUMMY[0], password or "-")
        return None
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        rehashed = hasher.hash(password)
        with backend.transaction():
            backend.update(
                USERS, {"password_hash": rehashed, "updated_at": utc_now()}, {"name": name}
            )
        user = User(user.name, user.role, rehashed)
    return user
