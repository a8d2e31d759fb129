"""The base of every class in the model: strict keys, and only values that can be scored.

Every field of every model class passes one check here, whatever its type: numbers are finite
and within ±MAX_NUMBER (a quoted "NaN" or "1e400" parses as a float, and a NaN cannot be
rounded into points or compared in SQL), and text holds no control character (a NUL or an
escape in a `matches:` or `equals:` reaches SQL and fails there, without a line). Files are
checked for such characters before YAML reads them (:mod:`pqlkit.model.text`); this catches
the ones written as escapes inside double quotes ("\\0", "\\x01").
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

#: The largest number a model may give, either sign (larger ones overflow scores and SQL).
MAX_NUMBER = 1e12

#: C0 controls other than tab, newline and carriage return; DEL; C1 controls (U+0085, the
#: YAML 1.1 "next line", among them); the Unicode line and paragraph separators, which YAML
#: counts as line breaks but editors do not, so every line number after them would be wrong.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def describe_character(char: str) -> str:
    """'\\x00' -> 'a NUL character (U+0000)'."""
    code = ord(char)
    if code == 0:
        name = "a NUL character"
    elif code < 0x20 or code == 0x7F:
        name = "a control character"
    elif 0x80 <= code <= 0x9F:
        name = "a C1 control character"
    elif code in (0x2028, 0x2029):
        name = "a Unicode line separator"
    else:
        name = "the character"
    return f"{name} (U+{code:04X})"


def _check(value: Any) -> None:
    if isinstance(value, str):
        found = CONTROL.search(value)
        if found:
            raise ValueError(
                f"{describe_character(found.group())} in {value!r}: remove it "
                "(a model's text holds printable characters, tabs and newlines)"
            )
    elif isinstance(value, float | int) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a number that can be scored (write a plain number)")
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            raise ValueError(
                f"the number {value:.4g} is out of range "
                f"(numbers in a model are between -{MAX_NUMBER:.0e} and {MAX_NUMBER:.0e})"
            )
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key)
            _check(item)


class Strict(BaseModel):
    """Unknown keys refused; numbers finite and in range; text free of control characters."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _scorable(cls, value: Any) -> Any:
        # nested models were checked field by field when they were built
        if not isinstance(value, BaseModel):
            _check(value)
        return value
