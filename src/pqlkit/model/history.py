"""The model file's own record of its promotions (`pql promote` writes it, newest first)."""

from __future__ import annotations

from pydantic import Field

from .strict import Strict


class HistoryEntry(Strict):
    """One promotion: which model became the live one, when, by whom and why."""

    version: str = Field(pattern=r"^[0-9a-f]{12}$")
    """The promoted file's version as it was judged (its sha256, first 12 hex digits: the
    version its challenger scores carry)."""
    promoted_at: str
    """When, in UTC (ISO 8601)."""
    by: str
    """Who promoted it."""
    why: str
    """Why, in the words of whoever promoted it."""
    previous_version: str | None = None
    """The version of the model it replaced."""


__all__ = ["HistoryEntry"]
