"""The few operations decision logic needs, so one function runs on plain values or in SQL.

Decision logic (:mod:`pqlkit.scoring.decide`) is written once against :class:`Ops`. With
:class:`PyOps` it computes on plain Python values (tests, `pql explain`); the features layer
passes an Ibis implementation so the very same function builds the SQL expression. Every
predicate returns a non-null boolean, so both agree on missing values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Protocol


class Ops(Protocol):
    """Operations over values that may be plain Python or database expressions."""

    def lit(self, value: Any) -> Any: ...
    def and_(self, *xs: Any) -> Any: ...
    def or_(self, *xs: Any) -> Any: ...
    def not_(self, x: Any) -> Any: ...
    def cmp(self, x: Any, op: str, value: Any) -> Any: ...
    def isin(self, x: Any, values: Sequence[Any]) -> Any: ...
    def contains(self, x: Any, text: str) -> Any: ...
    def matches(self, x: Any, pattern: str) -> Any: ...
    def is_set(self, x: Any) -> Any: ...
    def cases(self, branches: Sequence[tuple[Any, Any]], default: Any) -> Any: ...
    def round_int(self, x: Any) -> Any: ...
    def clamp(self, x: Any, low: float, high: float) -> Any: ...
    def coalesce(self, x: Any, default: Any) -> Any: ...
    def fmt_value(self, x: Any, integral: bool = False) -> Any: ...
    def fmt_points(self, x: Any) -> Any: ...
    def concat(self, *parts: Any) -> Any: ...
    def join(self, sep: str, items: Sequence[tuple[Any, Any]]) -> Any: ...
    def stage(self, values: dict[str, Any]) -> dict[str, Any]:
        """Name intermediate results so later steps refer to them instead of repeating them
        (a projection in SQL; nothing for plain values)."""
        ...


_CMP = {
    "equals": lambda a, b: a == b,
    "not_equals": lambda a, b: a != b,
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


class PyOps:
    """:class:`Ops` on plain Python values; None plays SQL's NULL."""

    def lit(self, value: Any) -> Any:
        return value

    def and_(self, *xs: Any) -> bool:
        return all(bool(x) for x in xs)

    def or_(self, *xs: Any) -> bool:
        return any(bool(x) for x in xs)

    def not_(self, x: Any) -> bool:
        return not x

    def cmp(self, x: Any, op: str, value: Any) -> bool:
        if x is None or _is_nan(x):
            return False
        try:
            return bool(_CMP[op](x, value))
        except TypeError:
            return False

    def isin(self, x: Any, values: Sequence[Any]) -> bool:
        return x is not None and x in values

    def contains(self, x: Any, text: str) -> bool:
        if x is None:
            return False
        if isinstance(x, list | tuple):
            return text in x
        return text.lower() in str(x).lower()

    def matches(self, x: Any, pattern: str) -> bool:
        return x is not None and re.search(pattern, str(x)) is not None

    def is_set(self, x: Any) -> bool:
        return x is not None and not _is_nan(x) and x != ""

    def cases(self, branches: Sequence[tuple[Any, Any]], default: Any) -> Any:
        for cond, value in branches:
            if cond:
                return value
        return default

    def round_int(self, x: Any) -> int:
        return math.floor(x + 0.5)

    def clamp(self, x: Any, low: float, high: float) -> Any:
        return min(max(x, low), high)

    def coalesce(self, x: Any, default: Any) -> Any:
        return default if x is None or _is_nan(x) else x

    def fmt_value(self, x: Any, integral: bool = False) -> str:
        """One decimal at most: 12 -> "12", 2.25 -> "2.3" (halves away from zero, as SQL)."""
        tenths = math.floor(x * 10 + 0.5)
        whole, frac = divmod(tenths, 10)
        return str(whole) if frac == 0 else f"{whole}.{frac}"

    def fmt_points(self, x: Any) -> str:
        return f"+{x}" if x >= 0 else str(x)

    def concat(self, *parts: Any) -> str:
        return "".join(str(p) for p in parts)

    def join(self, sep: str, items: Sequence[tuple[Any, Any]]) -> str:
        return sep.join(text for keep, text in items if keep)

    def stage(self, values: dict[str, Any]) -> dict[str, Any]:
        return values


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)
