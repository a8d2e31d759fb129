"""Small helpers the use cases share: reading options given as text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import PqlkitError

Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """A progress callback that says nothing."""


def duration(option: str, text: str) -> timedelta:
    """'30d' given for ``option`` as a timedelta, or a PqlkitError naming the option."""
    from ..model.signals import duration_seconds

    try:
        return timedelta(seconds=duration_seconds(text))
    except ValueError as exc:
        raise PqlkitError(f"{option}: {exc}") from None


def day(option: str, text: str | datetime | None) -> datetime | None:
    """A date given for ``option`` (ISO 8601), naive UTC; None stays None."""
    from ..engine import as_utc

    if text is None:
        return None
    try:
        return as_utc(text)
    except PqlkitError:
        raise PqlkitError(
            f"{option} {text!r} is not a date; use ISO 8601, e.g. 2026-09-01"
        ) from None


def init_model(path: str | Path, *, force: bool = False) -> Path:
    """Write the commented starter model to ``path`` (light: `pql init` loads no database
    library)."""
    from ..demo.load import write_model

    target = Path(path)
    if target.exists() and not force:
        raise PqlkitError(f"{target} already exists; pass --force to overwrite it")
    write_model(target)
    return target


def by_weight(reasons: str | None) -> list[str]:
    """Stored reasons in the order people read them (for the shells; see scoring/reasons.py)."""
    from ..scoring.reasons import by_weight as order

    return order(reasons)
