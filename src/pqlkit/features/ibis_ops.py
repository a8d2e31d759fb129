"""The Ibis implementation of :class:`pqlkit.scoring.ops.Ops`: decisions as SQL expressions."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir

_CMP = {
    "equals": operator.eq,
    "not_equals": operator.ne,
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}


def _expr(x: Any) -> ir.Value:
    return x if isinstance(x, ir.Value) else ibis.literal(x)


class IbisOps:
    """:class:`~pqlkit.scoring.ops.Ops` over Ibis expressions.

    Given the table the expressions come from, :meth:`stage` adds named columns to it, so the
    compiled SQL computes each intermediate once instead of inlining it into every later rule;
    read the result from :attr:`table`.
    """

    def __init__(self, table: ir.Table | None = None):
        self.table = table
        self._staged = 0
        # Nodes known never to be NULL (results of predicates, staged copies of them), so that
        # combining them does not wrap each in another COALESCE(..., FALSE).
        self._nonnull: set[Any] = set()

    def _sure(self, e: ir.Value) -> ir.Value:
        self._nonnull.add(e.op())
        return e

    def _bool(self, x: Any) -> ir.BooleanValue:
        """A non-null boolean: NULL becomes false, as PyOps treats None."""
        if isinstance(x, bool):
            return ibis.literal(x)
        e = _expr(x)
        if e.op() in self._nonnull:
            return e
        return self._sure(e.fill_null(False))

    def stage(self, values: dict[str, Any]) -> dict[str, Any]:
        if self.table is None:
            return values
        names: dict[str, str] = {}
        columns = {}
        for key, value in values.items():
            if not isinstance(value, ir.Value):
                continue
            self._staged += 1
            name = f"_s{self._staged}"
            names[key] = name
            columns[name] = value
        if not columns:
            return values
        self.table = self.table.mutate(**columns)
        out = {}
        for key, value in values.items():
            if key in names:
                column = self.table[names[key]]
                if value.op() in self._nonnull:
                    self._sure(column)
                out[key] = column
            else:
                out[key] = value
        return out

    def lit(self, value: Any) -> Any:
        return value  # kept plain until combined, so constant folding stays in Python

    def and_(self, *xs: Any) -> Any:
        if any(x is False for x in xs):
            return ibis.literal(False)
        rest = [self._bool(x) for x in xs if x is not True]
        return self._sure(functools.reduce(operator.and_, rest)) if rest else ibis.literal(True)

    def or_(self, *xs: Any) -> Any:
        if any(x is True for x in xs):
            return ibis.literal(True)
        rest = [self._bool(x) for x in xs if x is not False]
        return self._sure(functools.reduce(operator.or_, rest)) if rest else ibis.literal(False)

    def not_(self, x: Any) -> Any:
        return (not x) if isinstance(x, bool) else self._sure(~self._bool(x))

    def cmp(self, x: Any, op: str, value: Any) -> Any:
        e = _expr(x)
        if isinstance(value, str) and not e.type().is_string():
            return ibis.literal(False)
        if isinstance(value, bool) and not e.type().is_boolean():
            return ibis.literal(False)
        if e.type().is_string() and not isinstance(value, str):
            return ibis.literal(False)
        return self._bool(_CMP[op](e, value))

    def isin(self, x: Any, values: Sequence[Any]) -> Any:
        e = _expr(x)
        same = [v for v in values if _compatible(e, v)]
        return self._bool(e.isin(same)) if same else ibis.literal(False)

    def contains(self, x: Any, text: str) -> Any:
        e = _expr(x)
        if e.type().is_array():
            return self._bool(e.contains(text))
        return self._bool(e.cast("string").lower().contains(text.lower()))

    def matches(self, x: Any, pattern: str) -> Any:
        return self._bool(_expr(x).cast("string").re_search(pattern))

    def is_set(self, x: Any) -> Any:
        e = _expr(x)
        if x is None:
            return ibis.literal(False)
        if e.type().is_string():
            return self._bool(e.notnull() & (e != ""))
        if e.type().is_floating():
            return self._bool(e.notnull() & ~e.isnan())
        return self._sure(e.notnull())

    def cases(self, branches: Sequence[tuple[Any, Any]], default: Any) -> Any:
        live = []
        for cond, value in branches:
            if cond is False or (isinstance(cond, bool) and not cond):
                continue
            if cond is True:
                default = value
                break
            live.append((self._bool(cond), value))
        if not live:
            return default
        typed = next((v for _, v in live if v is not None), default)
        dtype = _expr(typed).type() if typed is not None else "string"
        else_ = ibis.null(dtype) if default is None else _expr(default).cast(dtype)
        return ibis.cases(
            *((c, ibis.null(dtype) if v is None else _expr(v).cast(dtype)) for c, v in live),
            else_=else_,
        )

    def add(self, x: Any, y: Any) -> Any:
        return x + y

    def scale(self, x: Any, factor: float) -> Any:
        return factor * x

    def round_int(self, x: Any) -> Any:
        if not isinstance(x, ir.Value):
            import math

            return math.floor(x + 0.5)
        return (x + 0.5).floor().cast("int64")

    def clamp(self, x: Any, low: float, high: float) -> Any:
        if not isinstance(x, ir.Value):
            return min(max(x, low), high)
        return x.clip(lower=low, upper=high)

    def logistic(self, x: Any) -> Any:
        if not isinstance(x, ir.Value):
            import math

            return 1.0 / (1.0 + math.exp(-x))
        return 1.0 / (1.0 + (-x).exp())

    def coalesce(self, x: Any, default: Any) -> Any:
        return _expr(x).fill_null(default) if isinstance(x, ir.Value) else x

    def fmt_value(self, x: Any, integral: bool = False) -> Any:
        if integral:  # a count: no tenths to show
            return _expr(x).cast("int64").cast("string")
        tenths = (_expr(x) * 10 + 0.5).floor().cast("int64")
        whole = (tenths // 10).cast("int64").cast("string")
        frac = (tenths % 10).cast("int64")
        return whole + ibis.ifelse(frac == 0, "", "." + frac.cast("string"))

    def fmt_points(self, x: Any) -> Any:
        if isinstance(x, int):
            return f"+{x}" if x >= 0 else str(x)
        e = _expr(x).cast("int64")
        return ibis.ifelse(e >= 0, "+" + e.cast("string"), e.cast("string"))

    def concat(self, *parts: Any) -> Any:
        exprs: list[Any] = []
        for p in parts:  # adjacent literal text joined here, not by the database on every row
            if isinstance(p, ir.Value):
                exprs.append(_expr(p).cast("string"))
            elif exprs and isinstance(exprs[-1], str):
                exprs[-1] += str(p)
            else:
                exprs.append(str(p))
        out = _expr(exprs[0])
        for p in exprs[1:]:
            out = out + p
        return out

    def join(self, sep: str, items: Sequence[tuple[Any, Any]]) -> Any:
        live = [
            ibis.ifelse(self._bool(keep), _expr(text), ibis.null("string")) for keep, text in items
        ]
        if not live:
            return ibis.literal("")
        return ibis.literal(sep).join(live).fill_null("")


def _compatible(e: ir.Value, v: Any) -> bool:
    t = e.type()  # Ibis ships no types: its answers are made bool here
    if isinstance(v, bool):
        return bool(t.is_boolean())
    if isinstance(v, int | float):
        return bool(t.is_numeric())
    return bool(t.is_string())
