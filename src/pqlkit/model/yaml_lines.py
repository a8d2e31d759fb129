"""YAML read with the line of every node, guarded against hostile files (alias bombs, deep
nesting, numbers out of range); problems become ModelIssues with their lines."""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from ..errors import ModelIssue, ModelValidationError
from .strict import MAX_NUMBER, describe_character
from .text import check_characters, located_at

PathT = tuple[Any, ...]


def line_at(lines: dict[PathT, int], path: PathT) -> int:
    """The line of the deepest known node on ``path`` (0 when unknown)."""
    for end in range(len(path), -1, -1):
        if tuple(path[:end]) in lines:
            return lines[tuple(path[:end])]
    return 0


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def dotted(path: PathT) -> str:
    """('usage_signals', 0, 'window') -> usage_signals[0].window"""
    out = ""
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


#: Guards against hostile or broken files: how deep the YAML may nest, how many nodes it may
#: expand to (aliases included: an alias bomb expands exponentially). How large a number may be
#: is strict.MAX_NUMBER, checked here for YAML's numbers and by the model for quoted ones.
MAX_DEPTH = 48
MAX_NODES = 50_000


class _TooLarge(Exception):
    def __init__(self, line: int, message: str, hint: str):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint

    @classmethod
    def deep(cls, line: int) -> _TooLarge:
        return cls(
            line,
            f"nested more than {MAX_DEPTH} levels deep",
            "flatten the structure; conditions rarely need more than a few levels",
        )

    def issue(self, filename: str) -> ModelValidationError:
        return ModelValidationError([ModelIssue(filename, self.line, "", self.message, self.hint)])


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """SafeLoader that stops at the first node nested deeper than MAX_DEPTH and names its
    line. Letting PyYAML's composer recurse until Python's recursion limit took a second for a
    line of 5,000 `[` (0.25 s now), depended on how deep the caller's stack already was, and
    left only a rough scan of the text to find the line."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:  # the root is at depth 1, as _to_python's path ()
                raise _TooLarge.deep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(text: str, filename: str) -> tuple[Any, dict[PathT, int], list[ModelIssue]]:
    check_characters(text, filename)
    loader = None
    try:
        loader = _Loader(text)  # the reader checks the characters here, before any node
        node = loader.get_single_node()
    except _TooLarge as exc:
        raise exc.issue(filename) from None
    except yaml.reader.ReaderError as exc:  # a character check_characters let through
        char = exc.character
        what = describe_character(chr(char)) if isinstance(char, int) else "a character"
        message = f"YAML cannot read {what}"
        raise located_at(text, exc.position, filename, message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or "malformed YAML"
        raise ModelValidationError(
            [
                ModelIssue(
                    filename,
                    line,
                    "",
                    f"malformed YAML: {problem}",
                    "check indentation and that every `key: value` has a space after the colon",
                )
            ]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[PathT, int] = {}
    issues: list[ModelIssue] = []
    if node is None:
        return None, lines, issues
    budget = [MAX_NODES]
    try:
        return _to_python(loader, node, (), lines, issues, filename, budget), lines, issues
    except _TooLarge as exc:
        raise exc.issue(filename) from None


def _to_python(
    loader: _Loader,
    node: Any,
    path: PathT,
    lines: dict[PathT, int],
    issues: list[ModelIssue],
    filename: str,
    budget: list[int],
) -> Any:
    budget[0] -= 1
    line = node.start_mark.line + 1
    if budget[0] < 0:
        raise _TooLarge(
            line,
            f"the model expands to more than {MAX_NODES:,} values",
            "aliases (*name) that repeat aliases multiply; write the values out instead",
        )
    if len(path) > MAX_DEPTH:  # aliases of nodes the loader read
        raise _TooLarge.deep(line)
    lines[path] = line
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                issues.append(
                    ModelIssue(
                        filename,
                        key_node.start_mark.line + 1,
                        dotted((*path, key)),
                        "duplicate key",
                        "a key may appear once; remove or merge the other",
                    )
                )
            if not isinstance(key, str | int | float | bool) or key is None:
                issues.append(
                    ModelIssue(
                        filename,
                        key_node.start_mark.line + 1,
                        dotted(path),
                        f"a key must be text, got {type(key).__name__}",
                        "write `name: value`",
                    )
                )
                continue
            result[key] = _to_python(
                loader, value_node, (*path, key), lines, issues, filename, budget
            )
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, child, (*path, i), lines, issues, filename, budget)
            for i, child in enumerate(node.value)
        ]
    return _scalar(loader, node, path, line, issues, filename)


def _scalar(
    loader: _Loader,
    node: Any,
    path: PathT,
    line: int,
    issues: list[ModelIssue],
    filename: str,
) -> Any:
    """A scalar's value, or None (0 for a number out of range) with the problem noted."""
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        issues.append(
            ModelIssue(
                filename,
                line,
                dotted(path),
                f"cannot read this value: {exc}",
                "write a plain number or text",
            )
        )
        return None
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (-MAX_NUMBER <= value <= MAX_NUMBER)
    ):
        # inf and nan fail this comparison too
        issues.append(
            ModelIssue(
                filename,
                line,
                dotted(path),
                f"the number {_short_number(value)} is out of range"
                if value == value
                else "NaN is not a number that can be scored",
                f"numbers in a model are between -{MAX_NUMBER:.0e} and {MAX_NUMBER:.0e}",
            )
        )
        return 0
    return value


def _short_number(value: int | float) -> str:
    text = (
        str(value)
        if isinstance(value, float) or value.bit_length() < 200
        else f"with {len(str(abs(value)))} digits"
    )
    return text if len(text) < 40 else text[:37] + "..."
