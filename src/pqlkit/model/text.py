"""A model file's bytes to text, and the characters YAML would refuse found with their line.

A model file is UTF-8. One saved as UTF-16 or UTF-32 with a byte-order mark (Windows editors
do that) is decoded as such, as YAML allows; anything else that is not UTF-8 is refused at the
line and column of the first byte that is not. Control characters (NUL, other C0 controls, DEL,
C1) are refused wherever they stand, comments included, each at its line and column: PyYAML
would stop at the first with a ReaderError that names no line.
"""

from __future__ import annotations

import codecs
import re

from ..errors import ModelIssue, ModelValidationError
from .strict import describe_character

#: Byte-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: What YAML's reader refuses (see yaml.reader.Reader.NON_PRINTABLE), and the C1 controls,
#: U+0085 included, and the Unicode line separators, which it reads as line breaks where
#: editors do not.
_REFUSED = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_LINE_BREAK = re.compile("\r\n|[\n\r]")
#: Enough to show where the damage is without burying the other problems.
MAX_CHARACTER_ISSUES = 20

_SAVE_AS_UTF8 = "save the file as UTF-8: in most editors, Save As with the encoding UTF-8"


def decode(raw: bytes, filename: str) -> str:
    """The text of a model file; ModelValidationError naming the line when it cannot be read."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            body, name = raw[len(bom) :], encoding.upper().removesuffix("-LE").removesuffix("-BE")
            break
    else:
        body, encoding, name = raw, "utf-8", "UTF-8"
        if b"\x00" in raw[:4]:  # how YAML tells UTF-16 and UTF-32 from UTF-8 without a mark
            raise ModelValidationError(
                [
                    ModelIssue(
                        filename,
                        1,
                        "",
                        "the file looks like UTF-16 or UTF-32 without a byte-order mark",
                        _SAVE_AS_UTF8,
                    )
                ]
            )
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        before = body[: exc.start].decode(encoding, errors="replace")
        line, column = _line_and_column(before, len(before))
        bad = body[exc.start : exc.end]
        raise ModelValidationError(
            [
                ModelIssue(
                    filename,
                    line,
                    "",
                    f"not valid {name} at column {column}: {exc.reason} (bytes {bad.hex(' ')})",
                    _SAVE_AS_UTF8,
                )
            ]
        ) from None


def check_characters(text: str, filename: str) -> None:
    """Refuse control characters anywhere in the text, each with its line and column."""
    issues: list[ModelIssue] = []
    for found in _REFUSED.finditer(text):
        if len(issues) == MAX_CHARACTER_ISSUES:
            issues.append(
                ModelIssue(filename, issues[-1].line, "", "more such characters follow", "")
            )
            break
        line, column = _line_and_column(text, found.start())
        char = found.group()
        issues.append(
            ModelIssue(
                filename,
                line,
                "",
                f"{describe_character(char)} at column {column}",
                "remove it, or if the file is UTF-16 or UTF-32, save it as UTF-8"
                if char == "\x00"
                else "remove it; a model file holds printable text, tabs and newlines",
            )
        )
    if issues:
        raise ModelValidationError(issues)


def located_at(text: str, position: int, filename: str, message: str) -> ModelValidationError:
    """An error at a character position of the text (e.g. from PyYAML's ReaderError)."""
    line, column = _line_and_column(text, position)
    return ModelValidationError(
        [ModelIssue(filename, line, "", f"{message} at column {column}", _SAVE_AS_UTF8)]
    )


def _line_and_column(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of ``text[position]``, counting line breaks as YAML does."""
    head = text[:position]
    breaks = list(_LINE_BREAK.finditer(head))
    if not breaks:
        return 1, position + 1
    return len(breaks) + 1, position - breaks[-1].end() + 1
