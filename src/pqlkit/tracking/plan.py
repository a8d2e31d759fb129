"""The tracking plan a model implies: the events its signals read, the properties it reads on
them with the JSON types it can use, and the traits its rules compare; exported as JSON
Schema (draft 2020-12), one schema per event and one each for identify and group traits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..features.sources import DERIVED_USER_FIELDS
from ..model.conditions import FieldCondition, walk
from ..model.signals import AnySignal, signal_events
from ..model.spec import Model

DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: JSON types a property may have, by how the engine reads it: a number it aggregates reads
#: only JSON numbers; a value it counts distinct reads text and numbers alike.
NUMBER, TEXT, BOOLEAN, ID = ("number",), ("string",), ("boolean",), ("string", "number")


@dataclass
class Field:
    """A property (or trait) the model reads, the JSON types it can use, and who reads it."""

    name: str
    types: tuple[str, ...]
    read_by: list[str] = field(default_factory=list)

    def merge(self, types: tuple[str, ...], reader: str) -> None:
        self.types = tuple(sorted({*self.types, *types}))
        if reader not in self.read_by:
            self.read_by.append(reader)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "types": list(self.types), "read_by": self.read_by}


@dataclass
class PlannedEvent:
    """An event the model reads: who reads it and the properties it reads on it."""

    name: str
    read_by: list[str] = field(default_factory=list)
    properties: dict[str, Field] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "read_by": self.read_by,
            "properties": [p.to_dict() for p in self.properties.values()],
        }


@dataclass
class TrackingPlan:
    """What the model needs the product to send."""

    model: str
    events: dict[str, PlannedEvent] = field(default_factory=dict)
    any_event: list[str] = field(default_factory=list)
    """Signals that read every event (active days, recency): any event feeds them."""
    user_traits: dict[str, Field] = field(default_factory=dict)
    account_traits: dict[str, Field] = field(default_factory=dict)

    def event(self, name: str, reader: str) -> PlannedEvent:
        planned = self.events.setdefault(name, PlannedEvent(name))
        if reader not in planned.read_by:
            planned.read_by.append(reader)
        return planned

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "events": [e.to_dict() for e in self.events.values()],
            "any_event": self.any_event,
            "user_traits": [t.to_dict() for t in self.user_traits.values()],
            "account_traits": [t.to_dict() for t in self.account_traits.values()],
        }


def _property_reads(signal: AnySignal) -> list[tuple[str, tuple[str, ...]]]:
    """(property, JSON types) the signal reads on its events."""
    reads: list[tuple[str, tuple[str, ...]]] = []
    for key, value in (getattr(signal, "where", None) or {}).items():
        if isinstance(value, bool):
            reads.append((key, BOOLEAN))
        elif isinstance(value, int | float):
            reads.append((key, NUMBER))  # compared as a JSON number
        else:
            reads.append((key, TEXT))
    kind = signal.kind
    prop = getattr(signal, "property", None)
    if kind == "property_threshold" and prop:
        reads.append((prop, NUMBER))
    elif kind in ("teammates_invited", "distinct_features") and prop:
        reads.append((prop, ID))
    usage = getattr(signal, "usage", None)
    if usage is not None and usage.property:
        reads.append((usage.property, NUMBER))
    return reads


def _condition_types(leaf: FieldCondition) -> tuple[str, ...]:
    op, value = leaf.operator, leaf.operand
    if op in ("gte", "gt", "lte", "lt", "between"):
        return NUMBER
    if op in ("matches",):
        return TEXT
    if op == "contains":
        return ("array", "string")  # a list field (a tech stack) holds the item
    if op == "is_set":
        return ("array", "boolean", "number", "string")
    values = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for v in values:
        out |= set(
            BOOLEAN if isinstance(v, bool) else NUMBER if isinstance(v, int | float) else TEXT
        )
    return tuple(sorted(out))


def tracking_plan(model: Model) -> TrackingPlan:
    """The plan ``model`` implies (events in the order the model first reads them)."""
    plan = TrackingPlan(model.name)
    for signal in model.all_signals:
        if "*" in signal.event_names():
            plan.any_event.append(signal.id)
        for name in signal_events(signal):
            planned = plan.event(name, signal.id)
            for prop, types in _property_reads(signal):
                planned.properties.setdefault(prop, Field(prop, types)).merge(types, signal.id)
    for name in model.plans.upgrade_events:
        plan.event(name, "plans.upgrade_events")
    conditions: list[tuple[str, Any]] = [
        *((f"icp.profiles.{p.id}", p.when) for p in model.icp.profiles),
        *((f"icp.exclusions.{e.id}", e.when) for e in model.icp.exclusions),
        *((s.id, s.when) for s in model.fit_signals),
        ("activation", model.activation),
        *((f"segments.{s.id}", s.when) for s in model.segments or [] if s.when is not None),
        *((f"routing.{r.motion}", r.when) for r in model.routing.rules),
    ]
    for reader, condition in conditions:
        for _, leaf in walk(condition):
            if not isinstance(leaf, FieldCondition) or leaf.namespace not in ("user", "account"):
                continue
            if leaf.namespace == "user" and leaf.name in DERIVED_USER_FIELDS:
                continue  # computed by the engine, not sent
            traits = plan.user_traits if leaf.namespace == "user" else plan.account_traits
            types = _condition_types(leaf)
            traits.setdefault(leaf.name, Field(leaf.name, types)).merge(types, reader)
    return plan


def _property_schema(f: Field) -> dict[str, Any]:
    types: Any = f.types[0] if len(f.types) == 1 else list(f.types)
    return {"type": types, "description": "read by " + ", ".join(f.read_by)}


def event_schema(plan: TrackingPlan, event: PlannedEvent) -> dict[str, Any]:
    """One event's JSON Schema: a Segment track call with this name and these properties."""
    props = {
        "type": "object",
        "properties": {p.name: _property_schema(p) for p in event.properties.values()},
        "required": list(event.properties),
    }
    return {
        "$schema": DRAFT,
        "$id": f"urn:pqlkit:tracking-plan:{plan.model}:event:{event.name}",
        "title": event.name,
        "description": f"A track call read by {', '.join(event.read_by)} (model {plan.model})",
        "type": "object",
        "properties": {
            "type": {"const": "track"},
            "event": {"const": event.name},
            "properties": props,
        },
        "required": ["event", *(["properties"] if event.properties else [])],
    }


def traits_schema(plan: TrackingPlan, call: str) -> dict[str, Any]:
    """The identify (user traits) or group (account traits) call's JSON Schema: the traits
    the model's rules compare, none required (a call may send some)."""
    traits = plan.user_traits if call == "identify" else plan.account_traits
    return {
        "$schema": DRAFT,
        "$id": f"urn:pqlkit:tracking-plan:{plan.model}:{call}",
        "title": call,
        "description": f"The {'user' if call == 'identify' else 'account'} traits the rules of "
        f"model {plan.model} compare",
        "type": "object",
        "properties": {
            "type": {"const": call},
            "traits": {
                "type": "object",
                "properties": {t.name: _property_schema(t) for t in traits.values()},
            },
        },
    }


def schemas(plan: TrackingPlan) -> dict[str, dict[str, Any]]:
    """Every schema of the plan by file stem: `event.<name>`, `identify`, `group`."""
    out = {f"event.{e.name}": event_schema(plan, e) for e in plan.events.values()}
    out["identify"] = traits_schema(plan, "identify")
    out["group"] = traits_schema(plan, "group")
    return out


__all__ = ["Field", "PlannedEvent", "TrackingPlan", "event_schema", "schemas", "tracking_plan"]
