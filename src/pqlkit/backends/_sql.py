"""SQL text built with sqlglot's expression builders: identifiers and literals that come from
data or the model are quoted by sqlglot for the dialect, never pasted into a string."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlglot.expressions as exp


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def table(name: str) -> exp.Table:
    return exp.Table(this=ident(name))


def column(name: str, of: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(of) if of else None)


def literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, datetime):
        return exp.cast(
            exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build("timestamp")
        )
    return exp.Literal.string(str(value))


def equals_all(where: Mapping[str, Any], of: str | None = None) -> exp.Expression:
    """col1 = v1 AND col2 = v2 ... (IS NULL for None; IN for a list, tuple or set of values)."""
    parts: list[exp.Expression] = []
    for k, v in where.items():
        col = column(k, of)
        if v is None:
            parts.append(exp.Is(this=col, expression=exp.Null()))
        elif isinstance(v, list | tuple | set | frozenset):
            parts.append(col.isin(*(literal(x) for x in v)) if v else exp.false())
        else:
            parts.append(exp.EQ(this=col, expression=literal(v)))
    return exp.and_(*parts) if parts else exp.true()


#: Which rows a write touches: column -> value for each item (see :func:`equals_all`), a list
#: of such mappings (the rows any of them matches), or a sqlglot condition.
Where = Mapping[str, Any] | list[Mapping[str, Any]] | exp.Expression


def condition(where: Where) -> exp.Expression:
    """The sqlglot condition of a :data:`Where`."""
    if isinstance(where, exp.Expression):
        return where
    if isinstance(where, list):
        return exp.or_(*(equals_all(w) for w in where)) if where else exp.false()
    return equals_all(where)


def isin(name: str, values: Iterable[Any]) -> exp.Expression:
    return column(name).isin(*(literal(v) for v in values))


def sql(expression: exp.Expression, dialect: str) -> str:
    return expression.sql(dialect=dialect)


def builtin(name: str) -> Callable[[Callable[..., object]], Callable[..., Any]]:
    """Ibis's decorator for a function the database has built in, typed (Ibis ships no types):
    the function it makes builds an expression calling ``name``."""
    import ibis

    made: Callable[[Callable[..., object]], Callable[..., Any]] = ibis.udf.scalar.builtin(name=name)
    return made
