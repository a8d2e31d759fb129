"""A proposed model from a user-level table (`pql learn --from-table`).

The proposal is the current model (or the starter model when there is none) with its users
read from the table itself: ``sources.users`` names the file or table, maps the row id to
``user_id``, and gives columns whose names cannot stand in a condition (spaces, punctuation)
a trait name (``sources.users.traits``). Each learned step becomes a fit signal on that trait
(``user.total_visits >= 4``, ``user.lead_source = Google``), and a step on a pair of conditions
one fit signal on ``all:`` of the two, with the base points every row starts at. The current fit and usage signals stay at 0 points, as in event mode. Scored by the
engine, the proposal gives every row the points the fit gave it (tested on every table the
tests use), so its held-out AUC is the one its header reports.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from ..features.sources import DERIVED_USER_FIELDS
from ..model.spec import CANONICAL_COLUMNS
from .fit import Points, Step
from .propose import HEADER, Proposal, assemble

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def trait_names(columns: list[str], id_column: str) -> dict[str, str]:
    """Your column -> the name it has in conditions (``user.<name>``): the column itself when
    it is a usable name, else a lower_snake_case name that no other column has. A column
    named like a field the engine derives for every user (``is_paid``, ``days_since_signup``:
    :data:`DERIVED_USER_FIELDS`) is renamed too (``table_is_paid``): under its own name a
    condition would read the engine's field, not the column the points were learned from."""
    canonical = set(CANONICAL_COLUMNS["users"])
    derived = set(DERIVED_USER_FIELDS)
    taken = {c.lower() for c in columns if _IDENTIFIER.match(c)} | canonical | derived
    names: dict[str, str] = {}
    for column in columns:
        if column == id_column:
            continue
        if _IDENTIFIER.match(column) and len(column) <= 63 and column not in derived:
            names[column] = column
            continue
        base = re.sub(r"[^a-z0-9_]+", "_", column.lower()).strip("_")[:50] or "column"
        if base[0].isdigit() or base in derived:
            base = f"c_{base}" if base[0].isdigit() else f"table_{base}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[column] = name
    return names


def _condition(step: Step, field: str) -> dict[str, Any]:
    """One step as a condition on ``field``."""
    if step.threshold is not None:
        t = step.threshold
        return {"field": field, "gte": int(t) if float(t).is_integer() else float(t)}
    value = step.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return {"field": field, "equals": value}


def _slug(value: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(value).lower()).strip("_") or "x"


def _fit_signals(
    points: Points, originals: dict[str, str], names: dict[str, str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """One fit signal per learned step (points of steps with the same condition added), and
    the trait aliases the conditions use (alias -> the table's column)."""
    # a column named like a derived field is renamed even when no step reads it: under its
    # own name it would stand beside the engine's field of that name
    used = {names[c]: c for c in originals.values() if c in DERIVED_USER_FIELDS and c in names}
    learned: dict[str, list[dict[str, Any]]] = {"fit_signals": [], "usage_signals": []}
    seen: dict[str, dict[str, Any]] = {}
    for learned_step, p in zip(points.steps, points.points, strict=True):
        if p == 0:
            continue
        conditions, ids, labels = [], [], []
        for step in learned_step.parts:  # one step, or a pair: all of its two conditions
            column = originals[step.column]
            name = names[column]
            if name != column:
                used[name] = column
            when = _condition(step, f"user.{name}")
            conditions.append(when)
            ids.append(
                f"{_slug(name)}_{_slug(step.threshold if step.threshold is not None else step.value)}"
            )
            labels.append(
                f"{column} {'>=' if step.threshold is not None else '='} "
                f"{when.get('gte', when.get('equals'))}"
            )
        when = conditions[0] if len(conditions) == 1 else {"all": conditions}
        key = repr(when)
        if key in seen:
            seen[key]["points"] += p
            continue
        d = {
            "id": _unique_id("_and_".join(ids)[:63], seen),
            "label": " and ".join(labels),
            "points": p,
            "when": when,
        }
        seen[key] = d
        learned["fit_signals"].append(d)
    return learned, used


def _unique_id(sid: str, seen: dict[str, dict[str, Any]]) -> str:
    """``sid``, or with a number when another signal has it (a long pair's id cut at 63)."""
    taken = {d["id"] for d in seen.values()}
    out, n = sid, 2
    while out in taken:
        out, n = f"{sid[:60]}_{n}", n + 1
    return out


def _header(
    base_name: str, where: Any, label: str, auc: float | None, held_out: str, *, open_gates: bool
) -> str:
    """The proposal's opening comment: where it comes from, how it was fitted and measured."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_time = not held_out.startswith("a random")
    fitted_on = (
        held_out.replace("the later quarter", "the earlier three quarters")
        if by_time
        else "a random three quarters of its rows (seed 0)"
    )
    where_measured = held_out if by_time else "the held-out quarter"
    quality = f"; AUC {auc:.3f} on {where_measured}" if auc is not None else ""
    gates = (
        "# From the starter model: every row fits (profile table_rows) and is activated.\n"
        if open_gates
        else ""
    )
    return (
        f"{HEADER} from {base_name} and the table {where} on {stamp}:\n"
        f"# points fitted to {label} on {fitted_on}{quality};\n"
        "# 10 points double the odds. Its users are the table's rows (sources.users).\n"
        f"{gates}"
        "# Review it, score it with `pql score --model` on it, then adopt it if you agree.\n"
    )


def propose_from_table(
    base_text: str,
    base_name: str,
    points: Points,
    train: pa.Table,
    *,
    users_source: dict[str, Any],
    id_column: str,
    originals: dict[str, str],
    label: str,
    auc: float | None,
    held_out: str = "a random held-out quarter",
    open_gates: bool = False,
) -> Proposal:
    """The proposed model text (validated) for points learned from a user-level table.

    ``held_out`` names the rows the AUC was measured on (a random quarter, or the later
    quarter by a time column). ``users_source`` is the model's source for the table
    ({path: ...} or {table: ...}); ``originals`` maps each input column of the fitted table to the table's own column.
    With ``open_gates`` (a proposal from the starter model, which has no gates a table's
    rows could meet) every row fits a catch-all ICP profile and counts as activated, so the
    PQL flag is the threshold alone; a model of your own keeps its gates."""
    raw = yaml.safe_load(base_text) or {}
    new = copy.deepcopy(raw)
    learned, used = _fit_signals(
        points, originals, trait_names(list(originals.values()), id_column)
    )
    source: dict[str, Any] = dict(users_source)
    if id_column != "user_id":
        source["columns"] = {"user_id": id_column}
    if used:
        source["traits"] = dict(sorted(used.items()))
    new["sources"] = {**(raw.get("sources") or {}), "users": source}
    every_row = {"field": "user.user_id", "is_set": True}
    if open_gates:
        icp = new.setdefault("icp", {})
        profiles = icp.setdefault("profiles", [])
        last = max((p.get("priority", 0) for p in profiles), default=0)
        profiles.append(
            {
                "id": "table_rows",
                "priority": last + 1,
                "description": "Every row of the table the points were learned from",
                "when": every_row,
            }
        )
        new["activation"] = every_row
    where = users_source.get("path") or users_source.get("table")
    header = _header(base_name, where, label, auc, held_out, open_gates=open_gates)
    thresholds = raw.get("thresholds") or {}
    return assemble(
        raw,
        new,
        learned,
        {},
        [],
        points,
        train,
        before=float(thresholds.get("pql_score", 60)),
        header=header,
        name=base_name,
    )


def users_source_for(name: str) -> dict[str, Any]:
    """The model's source for a user-level table given as a file or a table name."""
    path = Path(name)
    if path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        return {"path": str(path.resolve())}
    return {"table": name}


__all__ = ["propose_from_table", "trait_names", "users_source_for"]
