"""What a run tells those who listen to it: the engine's one way up.

A run (or a rescore) calls each observer's ``on_written`` inside its transaction, after the
scores are written: the hand-off records its transitions so, all or nothing with the run. The
engine imports nothing of its observers; whoever opens it wires them
(:func:`pqlkit.usecases.session.observers_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ..errors import PqlkitError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from ..backends import Backend

USER_STATE = "pql_user_state"
ACCOUNT_STATE = "pql_account_state"
"""The latest row of each user and account (each at its own as_of): kept by a run observer
(the hand-off's transitions), replaced by a full run and row by row by a rescore."""


@dataclass(frozen=True)
class WrittenRun:
    """What a run or a rescore wrote, told to the observers inside its transaction."""

    users: ir.Table
    accounts: ir.Table
    as_of: datetime
    model_version: str
    written_at: datetime
    partial: bool = False
    """A rescore: only these users and accounts changed; the others keep their state."""
    accounts_affected: ir.Table | None = None
    """With ``partial``: every account rolled up again (their users may have moved)."""
    users_affected: ir.Table | None = None
    """With ``partial``: the users whose rows are replaced (or deleted: not in ``users``);
    None: those in ``users``."""
    merged: bool = False
    """A full pass computed beside live rescoring (:mod:`.beside`): rows newer than its as_of,
    which a rescore wrote meanwhile, are in it as they stand, so it compares although the
    state holds later rows."""


class RunObserver(Protocol):
    """Told of each run inside its transaction; returns how many transitions it recorded
    (or None). An observer with ``keeps_state`` maintains USER_STATE and ACCOUNT_STATE."""

    def on_written(self, backend: Backend, run: WrittenRun) -> int | None: ...


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def as_utc(value: datetime | str | None) -> datetime:
    """A naive UTC datetime from a datetime (aware or naive UTC) or ISO text; None is now."""
    if value is None:
        return utc_now()
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise PqlkitError(
                f"--as-of {value!r} is not a date or timestamp; use ISO 8601, "
                "e.g. 2026-11-01 or 2026-11-01T09:30:00Z"
            ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
