"""Counting what breaks the tracking plan, on the collector's request path, without refusing
anything: an event the plan does not name, a property it reads that is missing, a property or
trait of the wrong JSON type. The request was validated already; this only looks up the
messages' event names and the few properties the model reads (a few dictionary look-ups a
message), and keeps the counts in memory for /metrics and /health."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .plan import TrackingPlan

UNKNOWN, MISSING, WRONG = "unknown_event", "missing_property", "wrong_type"
KINDS = (UNKNOWN, MISSING, WRONG)

#: At most this many distinct unknown event names are counted by name; the rest count
#: under OTHER, so a client sending random names cannot grow the counts (or /metrics) forever.
MAX_UNKNOWN_NAMES = 100
OTHER = "(other)"


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as JSON Schema names it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class Checker:
    """Counts, by (event or call, property, kind), the messages that break ``plan``, and the
    messages of each planned event."""

    def __init__(self, plan: TrackingPlan):
        self.plan = plan
        # event -> ((property, allowed types), ...): what a message is checked against
        self._events = {
            name: tuple((p.name, frozenset(p.types)) for p in e.properties.values())
            for name, e in plan.events.items()
        }
        self._traits = {
            "identify": tuple((t.name, frozenset(t.types)) for t in plan.user_traits.values()),
            "group": tuple((t.name, frozenset(t.types)) for t in plan.account_traits.values()),
        }
        self.seen: dict[str, int] = dict.fromkeys(plan.events, 0)
        self.violations: dict[tuple[str, str, str], int] = {}
        self._unknown = 0

    def check(self, endpoint: str, body: Any) -> None:
        """Count the messages of one accepted request to ``/v1/<endpoint>``."""
        if endpoint in ("batch", "import"):
            batch = body.get("batch") if isinstance(body, dict) else None
            self.messages(batch if isinstance(batch, list) else [])
        elif isinstance(body, dict):
            self._message(endpoint, body)

    def messages(self, messages: Iterable[Any]) -> None:
        for m in messages:
            if isinstance(m, dict):
                self._message(m.get("type"), m)

    def _message(self, kind: Any, m: dict[str, Any]) -> None:
        if kind == "track":
            name = m.get("event")
            if not isinstance(name, str):
                return
            wanted = self._events.get(name)
            if wanted is None:
                self._count_unknown(name)
                return
            self.seen[name] += 1
            if wanted:
                props = m.get("properties")
                self._fields(name, wanted, props if isinstance(props, dict) else {}, True)
        elif kind in ("identify", "group"):
            wanted = self._traits[kind]
            if wanted:
                traits = m.get("traits")
                if not isinstance(traits, dict):
                    context = m.get("context")
                    traits = context.get("traits") if isinstance(context, dict) else None
                if isinstance(traits, dict):
                    self._fields(kind, wanted, traits, False)

    def _fields(
        self,
        where: str,
        wanted: tuple[tuple[str, frozenset[str]], ...],
        values: dict[str, Any],
        required: bool,
    ) -> None:
        for key, types in wanted:
            value = values.get(key)
            if value is None:
                if required:
                    self._add((where, key, MISSING))
            elif json_type(value) not in types:
                self._add((where, key, WRONG))

    def _count_unknown(self, name: str) -> None:
        key = (name, "", UNKNOWN)
        if key not in self.violations:
            if self._unknown >= MAX_UNKNOWN_NAMES:
                key = (OTHER, "", UNKNOWN)
            else:
                self._unknown += 1
        self._add(key)

    def _add(self, key: tuple[str, str, str]) -> None:
        self.violations[key] = self.violations.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """The counts as plain data (/metrics, /health)."""
        rows = [
            {"event": e, "property": p or None, "kind": k, "count": n}
            for (e, p, k), n in sorted(self.violations.items())
        ]
        totals = dict.fromkeys(KINDS, 0)
        for (_, _, k), n in self.violations.items():
            totals[k] += n
        return {"seen": dict(self.seen), "violations": rows, "totals": totals}


__all__ = ["KINDS", "MISSING", "UNKNOWN", "WRONG", "Checker", "json_type"]
