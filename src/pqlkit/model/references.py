"""Cross references in a model: unique ids, signals that exist, fields in the namespaces
allowed where they stand, decisions used only after they are made."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ModelIssue
from .conditions import DECISIONS_BY_CONTEXT, NAMESPACES_BY_CONTEXT, SCORE_FIELDS
from .defaults import DEFAULT_SEGMENT_IDS
from .yaml_lines import did_you_mean, dotted, line_at

PathT = tuple[Any, ...]
Issue = Callable[..., None]


def cross_reference_issues(
    data: dict[str, Any], lines: dict[PathT, int], filename: str
) -> list[ModelIssue]:
    issues: list[ModelIssue] = []

    def issue(path: PathT, message: str, hint: str = "") -> None:
        issues.append(ModelIssue(filename, line_at(lines, path), dotted(path), message, hint))

    signal_ids: dict[str, PathT] = {}
    for group in ("fit_signals", "usage_signals", "mql_signals"):
        for i, sig in enumerate(_as_list(data.get(group))):
            sid = sig.get("id") if isinstance(sig, dict) else None
            if isinstance(sid, str):
                if sid in signal_ids:
                    issue(
                        (group, i, "id"),
                        f"duplicate signal id {sid!r}",
                        f"already used at {dotted(signal_ids[sid])}; ids must be unique",
                    )
                else:
                    signal_ids[sid] = (group, i)

    _destination_references(data, issue)

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
    _playbook_issues(data, issue)
    return issues


def _destination_references(data: dict[str, Any], issue: Issue) -> None:
    """Destination ids unique, and every route and alert naming a declared one."""
    handoff = _as_dict(data.get("handoff"))
    _unique_ids(_as_list(handoff.get("destinations")), ("handoff", "destinations"), issue, "id")
    known = [d.get("id") for d in _as_list(handoff.get("destinations")) if isinstance(d, dict)]
    prompts = _as_dict(handoff.get("prompts"))
    _unique_ids(_as_list(prompts.get("rules")), ("handoff", "prompts", "rules"), issue, "id")
    for i, route in enumerate(_as_list(handoff.get("routes"))):
        for j, dest in enumerate(_as_list(_as_dict(route).get("to"))):
            if isinstance(dest, str) and dest not in known:
                issue(
                    ("handoff", "routes", i, "to", j),
                    f"unknown destination {dest!r}",
                    did_you_mean(dest, [k for k in known if isinstance(k, str)])
                    or f"destinations: {', '.join(str(k) for k in known) or 'none'}",
                )

    for j, dest in enumerate(_as_list(_as_dict(data.get("instrumentation")).get("notify"))):
        if isinstance(dest, str) and dest not in known:
            issue(
                ("instrumentation", "notify", j),
                f"unknown destination {dest!r}",
                "notify names destinations declared in handoff.destinations: "
                + (", ".join(str(k) for k in known) or "none are declared"),
            )


def _unique_ids(items: list[Any], base: PathT, issue: Issue, key: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str):
            if value in seen:
                issue((*base, i, key), f"duplicate id {value!r}", "ids must be unique")
            seen.add(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _leaves(cond: Any, path: PathT) -> Iterator[tuple[PathT, dict[Any, Any]]]:
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


def _check_leaf(
    path: PathT, leaf: dict[Any, Any], context: str, signal_ids: dict[str, PathT], issue: Issue
) -> None:
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
                did_you_mean(ref, signal_ids)
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
            did_you_mean(name, signal_ids) or f"known signals: {', '.join(signal_ids) or 'none'}",
        )
    elif ns == "score" and name not in SCORE_FIELDS:
        issue(
            (*path, "field"),
            f"unknown score {name!r}",
            did_you_mean(name, SCORE_FIELDS) or f"one of: {', '.join(SCORE_FIELDS)}",
        )
    elif ns == "decision" and name not in DECISIONS_BY_CONTEXT.get(context, ()):
        known = DECISIONS_BY_CONTEXT.get(context, ())
        issue(
            (*path, "field"),
            f"decision.{name} is not known when {context} rules run",
            did_you_mean(name, known) or f"available: {', '.join(known)}",
        )


# --- playbooks ------------------------------------------------------------------------------

_SEGMENT_KINDS = {"asked_for_sales": "hand_raise", "maxed_out_free": "limit_reached"}


def _ids(items: Any, key: str = "id") -> list[str]:
    items = items if isinstance(items, list) else []
    return [i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str)]


def segment_names(data: Mapping[str, Any]) -> list[str]:
    """The segments a model (as read from YAML) can put a user in: its own, or the defaults
    its signal kinds make (see :func:`pqlkit.model.defaults.effective_segments`)."""
    if isinstance(data.get("segments"), list):
        return _ids(data["segments"])
    kinds = {
        s.get("kind")
        for group in ("usage_signals", "mql_signals")
        for s in _as_list(data.get(group))
        if isinstance(s, dict) and isinstance(s.get("kind"), str)  # else: refused at its line
    }
    return [
        s
        for s in DEFAULT_SEGMENT_IDS
        if _SEGMENT_KINDS.get(s, "") in kinds or s not in _SEGMENT_KINDS
    ]


def motion_names(data: Mapping[str, Any]) -> list[str]:
    """The motions a model's routing can pick: its default and every rule's."""
    routing = _as_dict(data.get("routing"))
    default = routing.get("default", "self_serve")
    names = [default] if isinstance(default, str) else []
    return list(dict.fromkeys([*names, *_ids(routing.get("rules"), "motion")]))


def _playbook_issues(data: Mapping[str, Any], issue: Issue) -> None:
    """Each play's segment, motion and profile among the model's; ids and (segment, motion,
    profile) each used once."""
    plays = data.get("playbooks")
    if not isinstance(plays, list):
        return
    icp = _as_dict(data.get("icp"))
    known = {
        "segment": segment_names(data),
        "motion": motion_names(data),
        "profile": _ids(icp.get("profiles")),
    }
    ids: dict[str, int] = {}
    keys: dict[tuple[Any, ...], int] = {}
    for i, play in enumerate(plays):
        if not isinstance(play, dict):
            continue
        for field, names in known.items():
            value = play.get(field)
            if isinstance(value, str) and value not in names:
                issue(
                    ("playbooks", i, field),
                    f"unknown {field} {value!r}",
                    " ".join(
                        x
                        for x in (
                            did_you_mean(value, names),
                            f"{field}s in this model: {', '.join(names) or 'none'}",
                        )
                        if x
                    ),
                )
        pid = play.get("id")
        if isinstance(pid, str):
            if pid in ids:
                issue(("playbooks", i, "id"), f"duplicate id {pid!r}", "ids must be unique")
            ids.setdefault(pid, i)
        key = (play.get("segment"), play.get("motion"), play.get("profile"))
        if not all(k is None or isinstance(k, str) for k in key):
            continue  # a name that is not text: the play's own fields say so at their line
        if key in keys:
            issue(
                ("playbooks", i),
                "a second play for " + " x ".join(str(k) for k in key if k is not None),
                f"playbooks[{keys[key]}] is already for it; merge the two",
            )
        keys.setdefault(key, i)
