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
from typing import Any, Protocol, TypeVar

V = TypeVar("V")
"""A value the decision logic computes with: a plain Python value, or a database expression."""


class Ops(Protocol[V]):
    """Operations over values that may be plain Python (``Ops[Any]``) or database expressions
    (``Ops[ir.Value]``). The decision logic is generic in ``V``: mypy checks it never mixes a
    plain value into an expression's place without an operation that knows both."""

    def lit(self, value: Any) -> V: ...
    def and_(self, *xs: V) -> V: ...
    def or_(self, *xs: V) -> V: ...
    def not_(self, x: V) -> V: ...
    def cmp(self, x: V, op: str, value: Any) -> V: ...
    def isin(self, x: V, values: Sequence[Any]) -> V: ...
    def contains(self, x: V, text: str) -> V: ...
    def matches(self, x: V, pattern: str) -> V: ...
    def is_set(self, x: V) -> V: ...
    def cases(self, branches: Sequence[tuple[V, V]], default: V) -> V: ...
    def add(self, x: V, y: V) -> V: ...
    def scale(self, x: V, factor: float) -> V: ...
    def round_int(self, x: V) -> V: ...
    def clamp(self, x: V, low: float, high: float) -> V: ...
    def logistic(self, x: V) -> V: ...
    def coalesce(self, x: V, default: V) -> V: ...
    def fmt_value(self, x: V, integral: bool = False) -> V: ...
    def fmt_points(self, x: V) -> V: ...
    def concat(self, *parts: V | str) -> V: ...
    def join(self, sep: str, items: Sequence[tuple[V, V]]) -> V: ...
    def stage(self, values: dict[str, V]) -> dict[str, V]:
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

    def add(self, x: Any, y: Any) -> Any:
        return x + y

    def scale(self, x: Any, factor: float) -> Any:
        return factor * x

    def round_int(self, x: Any) -> int:
        rounded: int = math.floor(x + 0.5)  # x is a number here: the floor is an int
        return rounded

    def clamp(self, x: Any, low: float, high: float) -> Any:
        return min(max(x, low), high)

    def logistic(self, x: Any) -> float:
        return 1.0 / (1.0 + math.exp(-x))

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
