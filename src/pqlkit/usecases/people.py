"""People shown as people: the e-mail and role of the users a page names by id (a lead's
teammates, an account's users and champion, a delivery's subject), from the model's users
source. Ids stay in the rows (links and forms use them); ``person`` is what a page shows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import PqlkitError
from .session import Session

#: At most this many ids are looked up at once (a page names a few dozen).
CHUNK = 500


def people_of(session: Session, ids: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """user id -> {"email", "role"} (None where the source has no such column) for the ids
    the users source knows; empty without a model."""
    wanted = sorted({str(i) for i in ids if i is not None})
    if not wanted:
        return {}
    try:
        engine = session.engine
    except PqlkitError:  # no model: no users source to read
        return {}
    users = engine.bound.users
    cols = {c: users[c].cast("string") for c in ("email", "role") if c in users.columns}
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        t = users.filter(users.user_id.cast("string").isin(chunk))
        for row in engine.backend.rows(t.select(user_id=t.user_id.cast("string"), **cols)):
            found.setdefault(row["user_id"], {"email": row.get("email"), "role": row.get("role")})
    return found


def name_people(
    session: Session, rows: list[dict[str, Any]], key: str = "user_id", into: str = "person"
) -> list[dict[str, Any]]:
    """``rows`` with ``row[into]`` set to the person ``row[key]`` names ({"email", "role"}, or
    None when the users source does not know them)."""
    known = people_of(session, (r.get(key) for r in rows))
    for r in rows:
        r[into] = known.get(str(r[key])) if r.get(key) is not None else None
    return rows


__all__ = ["name_people", "people_of"]
