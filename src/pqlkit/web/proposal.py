"""A proposed model (`pql learn` writes it beside the model) as a list of changes an admin can
read: the thresholds, the tiers, points per signal, signals added and removed; the raw diff
stays one click away."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PqlkitError
from ..model.load import load_model

GROUPS = (("fit_signals", "fit"), ("usage_signals", "usage"), ("mql_signals", "MQL"))


@dataclass(frozen=True)
class Change:
    """One change: what (``what``), the value before and after (None: not there)."""

    what: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    diff: str = ""
    error: str | None = None
    """Why the proposal could not be read as a model (its raw diff is still shown)."""

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


def _points(v: float) -> str:
    return f"{v:g} point{'' if v == 1 else 's'}"


def _signals(model: Any) -> dict[tuple[str, str], Any]:
    return {(group, s.id): s for attr, group in GROUPS for s in getattr(model, attr) or []}


def _tiers(model: Any) -> str:
    tiers = model.tiers
    if getattr(tiers, "kind", None) == "bands":
        return ", ".join(f"{b.tier} from {b.min_score:g}" for b in tiers.bands)
    return f"grid: fit cuts {tiers.fit_cuts}, usage cuts {tiers.usage_cuts}"


def _worth(s: Any) -> str:
    return _points(s.points) + (" per unit" if getattr(s, "per_unit", False) else "")


def _describe(s: Any) -> str:
    return _worth(s) + (f" ({s.label})" if s.label else "")


def changes(current: Any, proposed: Any) -> list[Change]:
    """What differs between two models, in the order an admin weighs it: thresholds and tiers,
    then points per signal kept, then signals added and removed."""
    out: list[Change] = []
    for name in ("pql_score", "mql_score"):
        a = getattr(current.thresholds, name)
        b = getattr(proposed.thresholds, name)
        if a != b:
            out.append(Change(f"{name.split('_')[0].upper()} threshold", f"{a:g}", f"{b:g}"))
    if _tiers(current) != _tiers(proposed):
        out.append(Change("tiers", _tiers(current), _tiers(proposed)))
    before, after = _signals(current), _signals(proposed)
    for (group, id_), s in before.items():
        t = after.get((group, id_))
        if t is not None and _worth(t) != _worth(s):
            out.append(Change(f"{group} signal {id_}", _worth(s), _worth(t)))
    for (group, id_), t in after.items():
        if (group, id_) not in before:
            out.append(Change(f"{group} signal {id_}", None, _describe(t)))
    for (group, id_), s in before.items():
        if (group, id_) not in after:
            out.append(Change(f"{group} signal {id_}", _describe(s), None))
    return out


def compare(model_path: Path, proposal_path: Path) -> Comparison:
    """The proposal against the model: its changes and the raw unified diff."""
    old = model_path.read_text(encoding="utf-8")
    new = proposal_path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            model_path.name,
            proposal_path.name,
        )
    )
    try:
        found = changes(load_model(model_path).model, load_model(proposal_path).model)
    except PqlkitError as exc:
        return Comparison([], diff, f"{proposal_path.name} is not a valid model: {exc}")
    return Comparison(found, diff)


__all__ = ["Change", "Comparison", "changes", "compare"]
