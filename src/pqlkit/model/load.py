"""Read a model file and report every problem at once, each with its line and a hint."""

from __future__ import annotations

import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ModelError, ModelIssue, ModelValidationError
from .conditions import _condition_tag
from .references import cross_reference_issues
from .spec import Model
from .text import decode
from .yaml_lines import did_you_mean, dotted, line_at, read_yaml

PathT = tuple[Any, ...]


@dataclass(frozen=True)
class LoadedModel:
    """A validated model with where it came from."""

    model: Model
    path: str
    version: str
    """sha256 of the file's bytes, first 12 hex digits: the model version stamped on scores."""
    lines: dict[PathT, int] = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: PathT) -> int:
        """The line of the deepest known node on ``path`` (0 when unknown)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line:
                return line
        return 0

    def issue(self, path: PathT, message: str, hint: str = "") -> ModelIssue:
        return ModelIssue(self.path, self.line_of(path), dotted(path), message, hint)

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent


def load_model(path: str | Path) -> LoadedModel:
    """Read and validate a model file; raise ModelError or ModelValidationError."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ModelError(
            f"{p}: no such model file (create a starter one with `pql init {p}`)"
        ) from None
    except OSError as exc:
        raise ModelError(f"{p}: cannot read the model file: {exc.strerror}") from None
    return parse_model(decode(raw, str(p)), str(p), raw)


def parse_model(text: str, filename: str = "pql.yml", raw: bytes | None = None) -> LoadedModel:
    version = hashlib.sha256(raw if raw is not None else text.encode()).hexdigest()[:12]
    data, lines, issues = read_yaml(text, filename)
    if not isinstance(data, dict):
        raise ModelValidationError(
            [
                *issues,
                ModelIssue(
                    filename,
                    1,
                    "",
                    "the model must be a mapping of keys (icp:, usage_signals:, ...)",
                    "start from `pql init`",
                ),
            ]
        )
    model = None
    try:
        model = Model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, data, lines, filename))
    issues.extend(cross_reference_issues(data, lines, filename))
    if issues or model is None:
        raise ModelValidationError(_dedupe(issues))
    return LoadedModel(model=model, path=filename, version=version, lines=lines)


# --- pydantic errors -> issues -------------------------------------------------------------


def _pydantic_issues(
    exc: ValidationError, data: Any, lines: dict[PathT, int], filename: str
) -> list[ModelIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        path, cur = _resolve(err["loc"], data)
        etype = err["type"]
        hint = ""
        if etype == "extra_forbidden":
            key = path[-1]
            allowed = _allowed_keys(path[:-1], data)
            message = f"unknown key {key!r}"
            hint = did_you_mean(str(key), allowed) or (
                f"allowed here: {', '.join(sorted(allowed))}" if allowed else ""
            )
        elif etype == "missing":
            message = "required key is missing"
            hint = f"add `{path[-1]}:`"
        elif etype == "union_tag_invalid":
            ctx = err.get("ctx", {})
            tag = str(ctx.get("tag", ""))
            expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            message = f"unknown kind {tag!r}"
            hint = did_you_mean(tag, expected) or f"one of: {', '.join(expected)}"
            path = (*path, "kind") if path and path[-1] != "kind" else path
        elif etype == "union_tag_not_found":
            message = "missing `kind`"
            hint = f"add `kind:` ({err.get('ctx', {}).get('discriminator', '')})".replace(" ()", "")
        elif etype == "finite_number":
            message = f"{cur!r} is not a number that can be scored"
            hint = "write a plain number, e.g. 10 or 0.5"
        elif etype == "condition":
            message = err["msg"]
            hint = "e.g. {field: account.employees, gte: 50}"
        elif (
            etype == "string_pattern_mismatch"
            and path
            and path[-1]
            in (
                "window",
                "half_life",
                "within",
                "older_than",
                "active_within",
            )
        ):
            message = f"not a duration: {cur!r}"
            hint = "write a number and a unit: 30d, 12h, 2w"
        elif etype == "string_pattern_mismatch":
            message = f"{cur!r} is not allowed here"
            hint = (
                "use lower_snake_case ids (letters, digits, _)"
                if path
                and path[-1]
                in (
                    "id",
                    "reason",
                    "motion",
                )
                else f"must match {err.get('ctx', {}).get('pattern', '')}"
            )
        else:
            message = err["msg"].removeprefix("Value error, ")
            if cur is not None and etype.endswith(("_type", "_parsing")):
                message = f"{message}, got {cur!r}"
        line = line_at(lines, path)
        issues.append(ModelIssue(filename, line, dotted(path), message, hint))
    return issues


def _resolve(loc: tuple[Any, ...], data: Any) -> tuple[PathT, Any]:
    """Map a pydantic loc (with union tags in it) to a path in the YAML data."""
    path: list[Any] = []
    cur = data
    tagged = None  # the condition whose tag was just passed: its next element is a key
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if not last and cur is not tagged and isinstance(cur, dict) and elem == _condition_tag(cur):
            tagged = cur
            continue  # the tag of {field: ..., gte: ...}, not its key `field`
        if (isinstance(cur, dict) and elem in cur) or (
            isinstance(cur, list) and isinstance(elem, int) and 0 <= elem < len(cur)
        ):
            path.append(elem)
            cur = cur[elem]
        elif (
            isinstance(elem, str)
            and not last
            and (
                elem in ("all", "any", "not", "signal", "email", "field", "function-after")
                or not isinstance(cur, dict)
                or "[" in elem
                or "kind" in cur
                or _condition_tag(cur) is not None
            )
        ):
            continue  # a union tag, not a key
        elif isinstance(elem, str) and elem in ("str", "int", "float", "bool", "list[...]"):
            continue
        else:
            path.append(elem)
            cur = None
    return tuple(path), cur


def _dedupe(issues: list[ModelIssue]) -> list[ModelIssue]:
    seen: dict[tuple[int, str], ModelIssue] = {}
    for issue in issues:
        seen.setdefault((issue.line, issue.path), issue)
    return list(seen.values())


def _allowed_keys(path: PathT, data: Any) -> set[str]:
    """Keys allowed at ``path``, found by walking the Model's annotations along the data."""
    candidates: list[Any] = [Model]
    cur = data
    for elem in path:
        nxt: list[Any] = []
        cur = cur[elem] if isinstance(cur, dict | list) else None
        for cls in candidates:
            if isinstance(elem, int):
                nxt.extend(_element_types(cls))
            elif isinstance(cls, type) and issubclass(cls, BaseModel):
                for name, f in cls.model_fields.items():
                    if elem in (name, f.alias):
                        nxt.extend(_flatten(f.annotation))
        candidates = [c for c in _narrow(nxt, cur)]
    keys: set[str] = set()
    for cls in candidates:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            keys.update(f.alias or n for n, f in cls.model_fields.items())
    return keys


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_flatten(arg))
        return out
    return [annotation]


def _element_types(annotation: Any) -> list[Any]:
    out = []
    for a in _flatten(annotation):
        if typing.get_origin(a) in (list, tuple):
            for arg in typing.get_args(a):
                out.extend(_flatten(arg))
    return out


def _narrow(classes: list[Any], value: Any) -> list[Any]:
    flat = []
    for c in classes:
        flat.extend(_flatten(c))
    if not isinstance(value, dict):
        return flat
    models = [c for c in flat if isinstance(c, type) and issubclass(c, BaseModel)]
    kind = value.get("kind")
    if kind is not None:
        by_kind = [
            c
            for c in models
            if "kind" in c.model_fields
            and kind in typing.get_args(c.model_fields["kind"].annotation)
        ]
        if by_kind:
            return by_kind
    tag = _condition_tag(value)
    if tag is not None:
        tagged = [c for c in models if tag in {f.alias or n for n, f in c.model_fields.items()}]
        if tagged:
            return tagged
    return models or flat
