"""Rep feedback: a user marked done (worked) or disqualified, with a reason. Their transitions
are still recorded but not delivered until the cooldown is over; the rows stay for learning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import ibis
import pyarrow as pa

from ..backends import Backend
from ..collect.tables import FEEDBACK, FEEDBACK_SCHEMA
from ..engine import USER_SCORES, USER_STATE
from ..errors import DataError
from .transitions import ensure_tables

ACTIONS = ("done", "disqualify")


@dataclass(frozen=True)
class Feedback:
    user_id: str
    action: str
    reason: str | None
    by: str | None
    at: datetime
    quiet_until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "at": self.at.isoformat(),
            "quiet_until": self.quiet_until.isoformat(),
        }


def record_feedback(
    backend: Backend,
    user_id: str,
    action: str,
    *,
    reason: str | None,
    by: str | None,
    now: datetime,
    cooldown: timedelta,
) -> Feedback:
    """Store one piece of feedback; the user must have been scored (unknown ids are refused)."""
    if action not in ACTIONS:
        raise DataError(f"feedback action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "disqualify" and not (reason and reason.strip()):
        raise DataError(
            "disqualify needs a reason (--reason), so the next rep and learning know why"
        )
    ensure_tables(backend)
    # the live state when the hand-off keeps one, else every run of `pql score`
    name = USER_STATE if backend.has_table(USER_STATE) else USER_SCORES
    state = backend.table(name) if backend.has_table(name) else None
    if state is None or not backend.values(
        state.filter(state.user_id == user_id).select("user_id").limit(1)
    ):
        raise DataError(
            f"no scored user {user_id!r}: feedback is for users pqlkit has scored (check the id)"
        )
    fb = Feedback(user_id, action, (reason or "").strip() or None, by, now, now + cooldown)
    row = {**fb.__dict__}
    with backend.transaction():
        backend.insert(FEEDBACK, pa.Table.from_pylist([row], schema=FEEDBACK_SCHEMA))
    return fb


def history(backend: Backend, user_id: str) -> list[dict[str, Any]]:
    ensure_tables(backend)
    f = backend.table(FEEDBACK)
    rows: list[dict[str, Any]] = backend.rows(
        f.filter(f.user_id == user_id).order_by(ibis.desc(f.at))
    )
    return rows
