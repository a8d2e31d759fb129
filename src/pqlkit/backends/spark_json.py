"""Spark 4's JSON access: an event property read from a VARIANT by a path that cannot be
parsed as anything but one top-level key (see :class:`.spark.SparkBackend`'s ``json_*``)."""

from __future__ import annotations

import re

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..errors import PqlkitError
from ._sql import builtin


@builtin("try_parse_json")
def _parse_json(text: str) -> dt.JSON:
    """Spark 4: JSON text as a VARIANT (NULL when it is not JSON)."""


@builtin("variant_get")
def _variant_get(v: dt.JSON, path: str) -> dt.JSON:
    """Spark 4: the VARIANT at a path."""


@builtin("schema_of_variant")
def _schema_of_variant(v: dt.JSON) -> str:  # type: ignore[empty-body]
    """Spark 4: a VARIANT's type: STRING, BIGINT, DOUBLE, DECIMAL(p,s), BOOLEAN, VOID..."""


@builtin("try_variant_get")
def _try_variant_get(v: dt.JSON, path: str, type: str) -> str:  # type: ignore[empty-body]
    """Spark 4: the value at a path as a type (here always STRING), NULL when it is not one."""


@builtin("to_json")
def _to_json(v: dt.JSON) -> str:  # type: ignore[empty-body]
    """Spark 4: a VARIANT as JSON text."""


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _path(key: str) -> str:
    """The variant path of a top-level key: `$.key`, else in brackets and quoted with a quote
    the key does not hold (Spark's paths have no escapes)."""
    if _SIMPLE_KEY.match(key):
        return f"$.{key}"
    quote = next((q for q in ("'", '"') if q not in key), None)
    if quote is None:
        raise PqlkitError(
            f"the event property {key!r} cannot be read on Spark (a key with both kinds of "
            "quote has no JSON path there); rename it, or score on DuckDB or PostgreSQL"
        )
    return f"$[{quote}{key}{quote}]"


def _member(properties: ir.Value, key: str) -> tuple[ir.Value, ir.StringValue]:
    member = _variant_get(_parse_json(properties.cast("string")), _path(key))
    return member, _schema_of_variant(member)
