"""Conditions: the small rule language shared by ICP profiles, exclusions, fit signals,
activation, segments and routing.

A condition is one of:

    {field: account.employees, between: [50, 1000]}   compare a field
    {email: business}                                  business or personal e-mail
    {signal: invited_teammates}                        a signal fired
    {all: [...]}, {any: [...]}, {not: {...}}           combine

Fields are namespaced: ``user.*`` and ``account.*`` (attributes), ``signal.<id>`` (a signal's
value), ``score.fit|usage|mql|total`` and ``decision.profile|excluded|exclusion|activated|
is_pql|tier|segment``. Which namespaces a condition may use depends on where it stands
(see :data:`NAMESPACES_BY_CONTEXT`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from .strict import Strict as _Strict

Scalar = str | int | float | bool

OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "between",
    "contains",
    "matches",
    "is_set",
    "gte",
    "gt",
    "lte",
    "lt",
)

SCORE_FIELDS = ("fit", "usage", "mql", "total")
DECISION_FIELDS = (
    "profile",
    "excluded",
    "exclusion",
    "activated",
    "is_pql",
    "tier",
    "segment",
)

#: Which field namespaces a condition may use, by where it stands in the model. Decisions are
#: made in this order, so a rule can only look at what was decided before it.
NAMESPACES_BY_CONTEXT: dict[str, tuple[str, ...]] = {
    "fit": ("user", "account"),
    "activation": ("user", "account", "signal"),
    "segment": ("user", "account", "signal", "score", "decision"),
    "routing": ("user", "account", "signal", "score", "decision"),
}
DECISIONS_BY_CONTEXT: dict[str, tuple[str, ...]] = {
    "segment": ("profile", "excluded", "exclusion", "activated", "is_pql", "tier"),
    "routing": DECISION_FIELDS,
}


class FieldCondition(_Strict):
    """Compare one field with exactly one operator."""

    field: str = Field(pattern=r"^(user|account|signal|score|decision)\.[A-Za-z_][A-Za-z0-9_]*$")
    """The field: `user.<column>`, `account.<column>`, `signal.<id>`, `score.<fit|usage|mql|total>`
    or `decision.<name>`."""
    equals: Scalar | None = None
    """Equal to this value (strings compare exactly)."""
    not_equals: Scalar | None = None
    """Set and not equal to this value."""
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    """One of these values."""
    not_in: list[Scalar] | None = Field(default=None, min_length=1)
    """Set and none of these values."""
    between: tuple[float, float] | None = None
    """Within [low, high], both ends included."""
    contains: str | None = None
    """Text contains this (case-insensitive); for a list field (a tech stack), holds this item."""
    matches: str | None = None
    """Text matches this regular expression (keep to the RE2/POSIX common subset)."""
    is_set: bool | None = None
    """true: the field has a value (not null, not empty text); false: it has none."""
    gte: float | None = None
    """Greater than or equal to."""
    gt: float | None = None
    """Greater than."""
    lte: float | None = None
    """Less than or equal to."""
    lt: float | None = None
    """Less than."""

    @model_validator(mode="after")
    def _one_operator(self) -> FieldCondition:
        given = [op for op in OPERATORS if getattr(self, _attr(op)) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one operator for field {self.field!r} "
                f"(one of: {', '.join(OPERATORS)}); got {', '.join(given) or 'none'}"
            )
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError(f"between: low {self.between[0]} is above high {self.between[1]}")
        if self.matches is not None:
            _check_pattern(self.matches)
        return self

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if getattr(self, _attr(op)) is not None)

    @property
    def operand(self) -> Any:
        return getattr(self, _attr(self.operator))

    @property
    def namespace(self) -> str:
        return self.field.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.field.split(".", 1)[1]


#: Regular-expression features RE2 (DuckDB) lacks; PostgreSQL's engine has them, so a model
#: that used them would score differently, or fail, depending on the database.
_NOT_PORTABLE = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?P=", "a named backreference"),
)


def _check_pattern(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"matches: {pattern!r} is not a regular expression ({exc})") from None
    for token, what in _NOT_PORTABLE:
        if token in pattern:
            raise ValueError(
                f"matches: {what} is not supported by every database (DuckDB uses RE2); rewrite without it"
            )
    if re.search(r"\\[1-9]", pattern):
        raise ValueError(
            "matches: backreferences (\\1) are not supported by every database (DuckDB uses RE2)"
        )


def _attr(op: str) -> str:
    return "in_" if op == "in" else op


class EmailCondition(_Strict):
    """The user's e-mail domain is a business domain or a free-mail provider."""

    email: Literal["business", "personal"]
    """`business`: not on the free-mail list; `personal`: on it (gmail.com, outlook.com, ...)."""


class SignalCondition(_Strict):
    """A signal fired (its value reached its `min`)."""

    signal: str
    """The id of a fit, usage or MQL signal."""


class AllCondition(_Strict):
    """Every condition holds."""

    all: list[Condition] = Field(min_length=1)
    """The conditions, all of which must hold."""


class AnyCondition(_Strict):
    """At least one condition holds."""

    any: list[Condition] = Field(min_length=1)
    """The conditions, one of which must hold."""


class NotCondition(_Strict):
    """The condition does not hold."""

    not_: Condition = Field(alias="not")
    """The condition to negate."""


_TAGS = ("all", "any", "not", "signal", "email", "field")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = set(value)
    elif isinstance(value, BaseModel):
        keys = {f.alias or name for name, f in type(value).model_fields.items()}
    else:
        return None
    for tag in _TAGS:
        if tag in keys:
            return tag
    return None


Condition = Annotated[
    Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[SignalCondition, Tag("signal")]
    | Annotated[EmailCondition, Tag("email")]
    | Annotated[FieldCondition, Tag("field")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=(
            "a condition needs one of the keys: field, email, signal, all, any, not"
        ),
    ),
]

AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


def walk(
    condition: Condition, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], FieldCondition | EmailCondition | SignalCondition]]:
    """Yield (path, leaf) for every leaf condition, paths relative to ``condition``."""
    if isinstance(condition, AllCondition):
        for i, child in enumerate(condition.all):
            yield from walk(child, (*path, "all", i))
    elif isinstance(condition, AnyCondition):
        for i, child in enumerate(condition.any):
            yield from walk(child, (*path, "any", i))
    elif isinstance(condition, NotCondition):
        yield from walk(condition.not_, (*path, "not"))
    else:
        yield path, condition
