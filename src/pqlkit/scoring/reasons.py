"""The order of reasons: the one place that decides which "why" a person reads first.

A short "why" (the inbox, a lead page, a webhook's ``top_reasons``, Slack, a CRM field, the
`pql score` table) lists the largest contributions first, behaviour (usage) before fit at equal
points, and only reasons that fired: a signal that did not fire gave no points and shows none.
Stored reasons (``a (+15); b (+10)``) are written usage first, so a stable sort by points keeps
behaviour ahead of fit at equal points in them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

REASON_SEPARATOR = "; "
"""How the reasons of one user are joined in the stored ``reasons`` text."""

_POINTS = re.compile(r"\(([+-]\d+)\)\s*$")
T = TypeVar("T")

#: Behaviour explains a lead better than who they are: usage first at equal points.
_GROUP_RANK = {"usage": 0, "fit": 1, "mql": 2}


def weight_key(points: float, group: str) -> tuple[float, int]:
    """The sort key of one contribution: the most points first, usage before fit at equal
    points (negative contributions come last)."""
    return (-points, _GROUP_RANK.get(group, 3))


def points_of(reason: str) -> int:
    """The points a stored reason shows at its end ("Asked for sales (+15)" -> 15); 0 if none."""
    found = _POINTS.search(reason)
    return int(found.group(1)) if found else 0


def by_weight(reasons: str | Sequence[str] | None) -> list[str]:
    """Stored reasons (the ``reasons`` text, or its parts) in the order people read them."""
    if reasons is None:
        return []
    parts = reasons.split(REASON_SEPARATOR) if isinstance(reasons, str) else list(reasons)
    # Stored text is usage first, so at equal points the stable sort keeps behaviour first.
    return sorted((r for r in parts if r), key=lambda r: -points_of(r))


def top_reasons(reasons: str | Sequence[str] | None, n: int = 3) -> list[str]:
    """The ``n`` reasons worth most, as the inbox, the hand-off and the CRM show them."""
    return by_weight(reasons)[:n]


def joined_by_weight(reasons: str | None) -> str | None:
    """The stored reasons text reordered by weight (what the CRM and `pql score` show)."""
    return None if reasons is None else REASON_SEPARATOR.join(by_weight(reasons))


def signals_by_weight(signals: Iterable[T], get: Any = getattr) -> list[T]:
    """Explained signals (each with ``fired``, ``points``, ``group``): the fired ones that make
    the score by weight, then the fired MQL ones (not part of the score) by weight, then the
    rest in model order."""
    items = list(signals)
    fired = [s for s in items if get(s, "fired")]
    rest = [s for s in items if not get(s, "fired")]
    fired.sort(
        key=lambda s: (
            get(s, "group") == "mql",
            *weight_key(get(s, "points") or 0, get(s, "group")),
        )
    )
    return fired + rest


__all__ = [
    "REASON_SEPARATOR",
    "by_weight",
    "joined_by_weight",
    "points_of",
    "signals_by_weight",
    "top_reasons",
    "weight_key",
]
