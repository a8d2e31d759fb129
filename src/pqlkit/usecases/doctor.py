"""`pql doctor`: is the database whole, and can pqlkit write to it? Every table read through
(each value of each column, so every stored block is checked), every table pqlkit writes
checked for the columns it needs, and what to do about what is found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .session import Session


@dataclass
class Checkup:
    tables: list[dict[str, Any]] = field(default_factory=list)
    """Each table: name, rows, and the error reading it (None when whole)."""
    lacking: dict[str, list[str]] = field(default_factory=dict)
    """Tables pqlkit writes that lack columns it writes (`pql migrate` adds them)."""
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lacking and all(t["error"] is None for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tables": self.tables,
            "lacking": self.lacking,
            "advice": self.advice,
        }


def checkup(session: Session, *, events: str = "events") -> Checkup:
    """Read every table through and check the ones pqlkit writes (see the module)."""
    from ..collect.schema import lacking

    b = session.backend
    out = Checkup()
    for name in sorted(b.base_tables()):
        try:
            out.tables.append({"table": name, "rows": b.verify_table(name), "error": None})
        except Exception as exc:  # a damaged block, a type the database cannot read back
            if not isinstance(exc, b.driver_errors()):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            out.tables.append({"table": name, "rows": None, "error": text})
    out.lacking = lacking(b, events)
    if out.lacking:
        out.advice.append("run `pql migrate` with the same --url to add the missing columns")
    if any(t["error"] for t in out.tables):
        out.advice.append(
            "a table cannot be read whole: stop pqlkit, copy the file aside, and rebuild: "
            "`pql demo`/`pql import` reload source data, `pql score` rebuilds every score, and "
            "the collector's log (--log-dir) replays what it acknowledged and had not stored"
        )
    return out


__all__ = ["Checkup", "checkup"]
