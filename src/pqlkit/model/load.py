"""Read a model file and report every problem at once, each with its line and a hint."""

from __future__ import annotations

import difflib
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ModelError, ModelIssue, ModelValidationError
from .conditions import (
    DECISIONS_BY_CONTEXT,
    NAMESPACES_BY_CONTEXT,
    SCORE_FIELDS,
    _condition_tag,
)
from .spec import Model

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
        return ModelIssue(self.path, self.line_of(path), _dotted(path), message, hint)

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
    return parse_model(raw.decode("utf-8", errors="replace"), str(p), raw)


def parse_model(text: str, filename: str = "pql.yml", raw: bytes | None = None) -> LoadedModel:
    version = hashlib.sha256(raw if raw is not None else text.encode()).hexdigest()[:12]
    data, lines, issues = _read_yaml(text, filename)
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
    issues.extend(_cross_reference_issues(data, lines, filename))
    if issues or model is None:
        raise ModelValidationError(_dedupe(issues))
    return LoadedModel(model=model, path=filename, version=version, lines=lines)


# --- YAML with line numbers --------------------------------------------------------------


#: Guards against hostile or broken files: how deep the YAML may nest, how many nodes it may
#: expand to (aliases included: an alias bomb expands exponentially), how large a number may be.
MAX_DEPTH = 48
MAX_NODES = 50_000
MAX_NUMBER = 1e12


class _TooLarge(Exception):
    def __init__(self, line: int, message: str, hint: str):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


def _deepest_line(text: str) -> int:
    """The first line where flow-style brackets nest deeper than MAX_DEPTH (a rough scan: the
    parser itself ran out of stack, so this only has to find the place)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += ch in "[{"
            depth -= ch in "]}"
            if depth > MAX_DEPTH:
                return number
    return 1


def _read_yaml(text: str, filename: str) -> tuple[Any, dict[PathT, int], list[ModelIssue]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except RecursionError:
        raise ModelValidationError(
            [
                ModelIssue(
                    filename,
                    _deepest_line(text),
                    "",
                    f"nested more than {MAX_DEPTH} levels deep",
                    "flatten the structure; conditions rarely need more than a few levels",
                )
            ]
        ) from None
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
        loader.dispose()
    lines: dict[PathT, int] = {}
    issues: list[ModelIssue] = []
    if node is None:
        return None, lines, issues
    budget = [MAX_NODES]
    try:
        return _to_python(loader, node, (), lines, issues, filename, budget), lines, issues
    except _TooLarge as exc:
        raise ModelValidationError(
            [ModelIssue(filename, exc.line, "", exc.message, exc.hint)]
        ) from None


def _to_python(loader, node, path: PathT, lines, issues, filename, budget: list[int]) -> Any:
    budget[0] -= 1
    line = node.start_mark.line + 1
    if budget[0] < 0:
        raise _TooLarge(
            line,
            f"the model expands to more than {MAX_NODES:,} values",
            "aliases (*name) that repeat aliases multiply; write the values out instead",
        )
    if len(path) > MAX_DEPTH:
        raise _TooLarge(
            line,
            f"nested more than {MAX_DEPTH} levels deep",
            "flatten the structure; conditions rarely need more than a few levels",
        )
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
                        _dotted((*path, key)),
                        "duplicate key",
                        "a key may appear once; remove or merge the other",
                    )
                )
            if not isinstance(key, str | int | float | bool) or key is None:
                issues.append(
                    ModelIssue(
                        filename,
                        key_node.start_mark.line + 1,
                        _dotted(path),
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
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        issues.append(
            ModelIssue(
                filename,
                line,
                _dotted(path),
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
                _dotted(path),
                f"the number {_short_number(value)} is out of range",
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


# --- pydantic errors -> issues -------------------------------------------------------------


def _pydantic_issues(exc: ValidationError, data, lines, filename) -> list[ModelIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        path, cur = _resolve(err["loc"], data)
        etype = err["type"]
        hint = ""
        if etype == "extra_forbidden":
            key = path[-1]
            allowed = _allowed_keys(path[:-1], data)
            message = f"unknown key {key!r}"
            hint = _did_you_mean(str(key), allowed) or (
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
            hint = _did_you_mean(tag, expected) or f"one of: {', '.join(expected)}"
            path = (*path, "kind") if path and path[-1] != "kind" else path
        elif etype == "union_tag_not_found":
            message = "missing `kind`"
            hint = f"add `kind:` ({err.get('ctx', {}).get('discriminator', '')})".replace(" ()", "")
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
        line = _line(lines, path)
        issues.append(ModelIssue(filename, line, _dotted(path), message, hint))
    return issues


def _resolve(loc, data) -> tuple[PathT, Any]:
    """Map a pydantic loc (with union tags in it) to a path in the YAML data."""
    path: list[Any] = []
    cur = data
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
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


def _line(lines: dict[PathT, int], path: PathT) -> int:
    for end in range(len(path), -1, -1):
        if tuple(path[:end]) in lines:
            return lines[tuple(path[:end])]
    return 0


def _dotted(path: PathT) -> str:
    out = ""
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if out else str(elem))
    return out


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _dedupe(issues: list[ModelIssue]) -> list[ModelIssue]:
    seen: dict[tuple[int, str], ModelIssue] = {}
    for issue in issues:
        seen.setdefault((issue.line, issue.path), issue)
    return list(seen.values())


def _allowed_keys(path: PathT, data) -> set[str]:
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


def _flatten(annotation) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_flatten(arg))
        return out
    return [annotation]


def _element_types(annotation) -> list[Any]:
    out = []
    for a in _flatten(annotation):
        if typing.get_origin(a) in (list, tuple):
            for arg in typing.get_args(a):
                out.extend(_flatten(arg))
    return out


def _narrow(classes: list[Any], value) -> list[Any]:
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


# --- cross references --------------------------------------------------------------------


def _cross_reference_issues(data: dict, lines, filename) -> list[ModelIssue]:
    issues: list[ModelIssue] = []

    def issue(path: PathT, message: str, hint: str = "") -> None:
        issues.append(ModelIssue(filename, _line(lines, path), _dotted(path), message, hint))

    signal_ids: dict[str, PathT] = {}
    for group in ("fit_signals", "usage_signals", "mql_signals"):
        for i, sig in enumerate(_as_list(data.get(group))):
            sid = sig.get("id") if isinstance(sig, dict) else None
            if isinstance(sid, str):
                if sid in signal_ids:
                    issue(
                        (group, i, "id"),
                        f"duplicate signal id {sid!r}",
                        f"already used at {_dotted(signal_ids[sid])}; ids must be unique",
                    )
                else:
                    signal_ids[sid] = (group, i)

    icp = _as_dict(data.get("icp"))
    for group in ("profiles", "exclusions"):
        _unique_ids(_as_list(icp.get(group)), ("icp", group), issue, "id")
    segments = _as_list(data.get("segments"))
    _unique_ids(segments, ("segments",), issue, "id")
    for i, seg in enumerate(segments):
        if isinstance(seg, dict) and "when" not in seg and i != len(segments) - 1:
            issue(
                ("segments", i),
                "only the last segment may leave out `when`",
                "add a `when:` rule, or move this segment to the end",
            )

    places: list[tuple[PathT, Any, str]] = []
    for group in ("profiles", "exclusions"):
        for i, p in enumerate(_as_list(icp.get(group))):
            if isinstance(p, dict) and "when" in p:
                places.append((("icp", group, i, "when"), p["when"], "fit"))
    for i, s in enumerate(_as_list(data.get("fit_signals"))):
        if isinstance(s, dict) and "when" in s:
            places.append((("fit_signals", i, "when"), s["when"], "fit"))
    if "activation" in data:
        places.append((("activation",), data["activation"], "activation"))
    for i, s in enumerate(segments):
        if isinstance(s, dict) and "when" in s:
            places.append((("segments", i, "when"), s["when"], "segment"))
    routing = _as_dict(data.get("routing"))
    for i, r in enumerate(_as_list(routing.get("rules"))):
        if isinstance(r, dict) and "when" in r:
            places.append((("routing", "rules", i, "when"), r["when"], "routing"))

    for path, cond, context in places:
        for leaf_path, leaf in _leaves(cond, path):
            _check_leaf(leaf_path, leaf, context, signal_ids, issue)
    return issues


def _unique_ids(items, base: PathT, issue, key: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str):
            if value in seen:
                issue((*base, i, key), f"duplicate id {value!r}", "ids must be unique")
            seen.add(value)


def _as_list(value) -> list:
    return value if isinstance(value, list) else []


def _as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _leaves(cond, path: PathT):
    if not isinstance(cond, dict):
        return
    for combinator in ("all", "any"):
        if isinstance(cond.get(combinator), list):
            for i, child in enumerate(cond[combinator]):
                yield from _leaves(child, (*path, combinator, i))
            return
    if "not" in cond:
        yield from _leaves(cond["not"], (*path, "not"))
        return
    yield path, cond


def _check_leaf(path: PathT, leaf: dict, context: str, signal_ids, issue) -> None:
    allowed_ns = NAMESPACES_BY_CONTEXT[context]
    if "signal" in leaf:
        ref = leaf["signal"]
        if context == "fit":
            issue(
                (*path, "signal"),
                "fit rules cannot depend on signals",
                "use user.* and account.* fields here",
            )
        elif isinstance(ref, str) and ref not in signal_ids:
            issue(
                (*path, "signal"),
                f"unknown signal {ref!r}",
                _did_you_mean(ref, signal_ids)
                or f"known signals: {', '.join(signal_ids) or 'none'}",
            )
        return
    fld = leaf.get("field")
    if not isinstance(fld, str) or "." not in fld:
        return
    ns, name = fld.split(".", 1)
    if ns not in allowed_ns:
        issue(
            (*path, "field"),
            f"{ns}.* fields cannot be used in {context} rules",
            f"allowed here: {', '.join(n + '.*' for n in allowed_ns)}",
        )
    elif ns == "signal" and name not in signal_ids:
        issue(
            (*path, "field"),
            f"unknown signal {name!r}",
            _did_you_mean(name, signal_ids) or f"known signals: {', '.join(signal_ids) or 'none'}",
        )
    elif ns == "score" and name not in SCORE_FIELDS:
        issue(
            (*path, "field"),
            f"unknown score {name!r}",
            _did_you_mean(name, SCORE_FIELDS) or f"one of: {', '.join(SCORE_FIELDS)}",
        )
    elif ns == "decision" and name not in DECISIONS_BY_CONTEXT.get(context, ()):
        known = DECISIONS_BY_CONTEXT.get(context, ())
        issue(
            (*path, "field"),
            f"decision.{name} is not known when {context} rules run",
            _did_you_mean(name, known) or f"available: {', '.join(known)}",
        )
