"""Turn learned points into a proposed model file, and say how it differs from the current one.

Each learned step becomes a signal the engine already knows: "projects >= 4" a copy of the
`projects` signal firing at 4, "industry = media" a trait signal, "icp_profile = startup" a
trait signal with that profile's condition (and not the higher-priority ones'). The current
fit and usage signals stay, at 0 points: they earn nothing and show in no reason, but
activation, segments and routing still read them exactly as before. ICP profiles, exclusions, activation, MQL
signals, segments and routing are left exactly as they are. The PQL threshold is set so that
about as many training rows pass it as were PQLs under the current model, and tier bands are
scaled by the same ratio. The text is validated before it is written; the user's model file is
never written to.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from ..errors import PqlkitError
from ..model.load import LoadedModel, parse_model
from ..scoring.decide import FIT_GATES, fit_gates_pass
from .fit import Points, Step

HEADER = "# Proposed by `pql learn`"
TRAITS = {
    "employees": "account.employees",
    "industry": "account.industry",
    "days_since_signup": "user.days_since_signup",
}


@dataclass
class Change:
    signal: str
    group: str
    before: float | None
    after: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Proposal:
    text: str
    pql_score_before: float
    pql_score_after: float
    changes: list[Change]
    unified_diff: str
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pql_score_before": self.pql_score_before,
            "pql_score_after": self.pql_score_after,
            "changes": [c.to_dict() for c in self.changes],
            "skipped": self.skipped,
            "diff": self.unified_diff,
        }


def _number(t: float) -> float | int:
    return int(t) if float(t).is_integer() else float(t)


def _slug(t: float) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(_number(t)).lower()).strip("_")


def _value_slug(v: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(v).lower()).strip("_") or "x"


def _referenced_signals(raw: dict[str, Any]) -> set[str]:
    """Signal ids named by activation, segments or routing conditions."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("signal"), str):
                found.add(node["signal"])
            f = node.get("field")
            if isinstance(f, str) and f.startswith("signal."):
                found.add(f.removeprefix("signal."))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for key in ("activation", "segments", "routing"):
        walk(raw.get(key))
    return found


class _Translator:
    def __init__(self, loaded: LoadedModel, raw: dict[str, Any]):
        self.model = loaded.model
        self.raw = raw
        self.event_signals = {s.id: s for s in [*self.model.usage_signals, *self.model.mql_signals]}
        self.raw_event = {
            s["id"]: s for s in [*raw.get("usage_signals", []), *raw.get("mql_signals", [])]
        }
        self.fit_signals = {s.id: s for s in self.model.fit_signals}
        self.raw_fit = {s["id"]: s for s in raw.get("fit_signals", [])}

    def step(self, step: Step, points: int) -> tuple[str, dict[str, Any]] | None:
        """(group, signal definition) for one learned step, or None if the model cannot say it."""
        c = step.column
        # a 0/1 column is learned as "= 1": for a signal's value that is "at least 1"
        threshold = (
            step.threshold if step.threshold is not None else (1.0 if step.value == 1 else None)
        )
        if c in self.event_signals and threshold is not None:
            return "usage_signals", self._event_step(c, threshold, points)
        if (
            c.startswith("fit_")
            and c.removeprefix("fit_") in self.fit_signals
            and step.value is True
        ):
            base = copy.deepcopy(self.raw_fit[c.removeprefix("fit_")])
            base.update(points=points)
            return "fit_signals", base
        when: dict[str, Any] | None = None
        label = step.name
        if c == "business_email" and step.value is True:
            when, label = {"email": "business"}, "Business e-mail"
        elif c in TRAITS and step.threshold is not None:
            when = {"field": TRAITS[c], "gte": _number(step.threshold)}
        elif c in TRAITS and step.value is not None:
            when = {"field": TRAITS[c], "equals": step.value}
        elif c == "icp_profile" and step.value is not None:
            when, label = self._profile(str(step.value)), f"Fits the {step.value} profile"
        if when is None:
            return None
        sid = f"{c}_{_slug(step.threshold) if step.threshold is not None else _value_slug(step.value)}"
        return "fit_signals", {"id": sid[:63], "label": label, "points": points, "when": when}

    def _event_step(self, sid: str, t: float, points: int) -> dict[str, Any]:
        signal = self.event_signals[sid]
        d = copy.deepcopy(self.raw_event[sid])
        for k in ("per_unit", "cap", "min", "within", "older_than"):
            d.pop(k, None)
        d.update(signal.at_threshold(_number(t)))  # each kind says how it fires at a threshold
        d["id"] = f"{sid}_{_slug(t)}"[:63]
        d["points"] = points
        return d

    def _profile(self, pid: str) -> dict[str, Any]:
        profiles = sorted(self.raw["icp"]["profiles"], key=lambda p: p.get("priority", 0))
        ids = [p["id"] for p in profiles]
        if pid not in ids:
            raise PqlkitError(
                f"learned a step on ICP profile {pid!r}, which the model does not define"
            )
        i = ids.index(pid)
        before = [{"not": p["when"]} for p in profiles[:i]]
        return {"all": [profiles[i]["when"], *before]} if before else profiles[i]["when"]


def _key(d: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in d.items() if k not in ("id", "points", "label")}, sort_keys=True
    )


def propose(
    loaded: LoadedModel,
    points: Points,
    train: pa.Table,
    *,
    outcome: str,
    horizon_days: int,
    auc: float | None = None,
    calibration: dict[str, Any] | None = None,
) -> Proposal:
    """The proposed model text (validated) and its differences from ``loaded``."""
    raw = yaml.safe_load(Path(loaded.path).read_text(encoding="utf-8"))
    new = copy.deepcopy(raw)
    tr = _Translator(loaded, raw)
    learned: dict[str, list[dict[str, Any]]] = {"fit_signals": [], "usage_signals": []}
    skipped: list[str] = []
    seen: dict[str, dict[str, Any]] = {}
    # a learned condition that is already a signal of the model sets that signal's points
    # instead of appearing twice (once at 0 points, once learned)
    existing = {
        g + _key(s): s["id"] for g in ("fit_signals", "usage_signals") for s in raw.get(g) or []
    }
    assigned: dict[str, int] = {}
    for step, p in zip(points.steps, points.points, strict=True):
        out = tr.step(step, p) if isinstance(step, Step) else None  # pairs: tables only
        if out is None:
            skipped.append(step.name)
            continue
        group, d = out
        k = group + _key(d)
        if k in existing:
            assigned[existing[k]] = assigned.get(existing[k], 0) + p
            continue
        if k in seen:  # the same condition learned twice (a trait and a fit signal): add up
            seen[k]["points"] += p
            continue
        seen[k] = d
        learned[group].append(d)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    quality = f", held-out AUC {auc:.3f}" if auc is not None else ""
    header = (
        f"{HEADER} from {Path(loaded.path).name} (version {loaded.version}) on {stamp}:\n"
        f"# points fitted to {outcome} within {horizon_days} days{quality}; 10 points double the odds.\n"
        "# Review it, run `pql evaluate --model` on it, then copy it over your model if you agree.\n"
    )
    return assemble(
        raw,
        new,
        learned,
        assigned,
        skipped,
        points,
        train,
        before=float(loaded.model.thresholds.pql_score),
        header=header,
        name=Path(loaded.path).name,
        calibration=calibration,
    )


def assemble(
    raw: dict[str, Any],
    new: dict[str, Any],
    learned: dict[str, list[dict[str, Any]]],
    assigned: dict[str, int],
    skipped: list[str],
    points: Points,
    train: pa.Table,
    *,
    before: float,
    header: str,
    name: str,
    calibration: dict[str, Any] | None = None,
) -> Proposal:
    """The proposed model: ``new`` (a copy of ``raw``, the current model) with the learned
    signals added, the current fit and usage signals at 0 points (or at the points
    ``assigned`` to them), a base, the threshold and tier bands; validated."""
    if points.base:
        # every user starts at the base, so no learned score falls below 0 (the engine clips
        # scores to 0-100; clipped scores would tie and rank worse than the fit says)
        learned["fit_signals"].insert(
            0,
            {
                "id": "base_points",
                "label": "Base points",
                "points": points.base,
                "when": {"field": "user.user_id", "is_set": True},
            },
        )
    keep = _referenced_signals(raw)
    changes: list[Change] = []
    ids: set[str] = set()
    for group in ("fit_signals", "usage_signals"):
        kept = []
        for s in raw.get(group) or []:
            if s["id"] in assigned:
                kept.append({**s, "points": assigned[s["id"]]})
                changes.append(
                    Change(s["id"], group, s.get("points"), assigned[s["id"]], "learned")
                )
            else:
                kept.append({**s, "points": 0})
                why = " (activation, segments or routing read it)" if s["id"] in keep else ""
                changes.append(Change(s["id"], group, s.get("points"), 0, f"kept at 0 points{why}"))
            ids.add(s["id"])
        fresh = [d for d in learned[group] if d["points"] != 0]
        for d in fresh:
            base = d["id"]
            n = 2
            while d["id"] in ids:
                d["id"] = f"{base}_{n}"
                n += 1
            ids.add(d["id"])
            changes.append(Change(d["id"], group, None, d["points"], "learned"))
        new[group] = kept + fresh

    after = float(_threshold(points, train))
    new.setdefault("thresholds", {})["pql_score"] = _number(after)
    _scale_tiers(new.get("tiers"), after / before if before > 0 else None)
    # a calibration maps the points it was fitted on: the new points need their own
    new.pop("calibration", None)
    if calibration is not None:
        new["calibration"] = calibration
    body = yaml.safe_dump(new, sort_keys=False, allow_unicode=True, width=110)
    text = header + body
    parse_model(text, "proposed model")  # raises ModelValidationError if the translation is wrong
    old_norm = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=110).splitlines(
        keepends=True
    )
    diff = "".join(
        difflib.unified_diff(
            old_norm,
            body.splitlines(keepends=True),
            fromfile=name,
            tofile="proposed",
        )
    )
    return Proposal(text, before, after, changes, diff, skipped)


def _scale_tiers(tiers: Any, ratio: float | None) -> None:
    """Tier bands scaled as the threshold was (``ratio``: new over old), kept strictly ordered,
    lowest first (rounding must not tie them)."""
    if not isinstance(tiers, dict) or tiers.get("kind", "bands") != "bands" or ratio is None:
        return
    floor = 0
    for band in reversed(tiers.get("bands", [])):
        if band.get("min_score"):
            band["min_score"] = min(100, max(round(band["min_score"] * ratio), floor + 1))
            floor = band["min_score"]


def _threshold(points: Points, train: pa.Table) -> int:
    """The smallest whole threshold that flags no more training rows than the current model
    did (among rows passing the PQL gates: an ICP profile, not excluded, activated), but never
    above the second-highest score a gated row reaches: a threshold at the highest would put
    every PQL at one score (often 100, the clip point), which ranks nothing; it flags more
    rows instead."""
    score = np.clip(points.score(train), 0, 100)
    gate_cols = [g.output for g in FIT_GATES if g.output in train.column_names]
    gate = (
        np.asarray(fit_gates_pass(train.select(gate_cols).to_pylist()), bool)
        if len(gate_cols) == len(FIT_GATES)
        else np.ones(train.num_rows, bool)
    )
    current = (
        int(np.asarray(train.column("is_pql").to_pylist(), bool).sum())
        if "is_pql" in train.column_names
        else 0
    )
    if current == 0:
        current = max(1, int(0.1 * gate.sum()))
    reached = np.unique(np.floor(score[gate])) if gate.any() else np.array([100.0])
    ceiling = int(reached[-2] if len(reached) > 1 else max(reached[-1] - 1, 0))
    for t in range(0, ceiling + 1):
        if int((gate & (score >= t)).sum()) <= current:
            return t
    return ceiling


def check_target(target: Path, model_path: Path, *, force: bool = False) -> None:
    """Refuse a target that is the model itself, or an existing file that is not an earlier
    proposal (unless ``force``)."""
    if target.resolve() == model_path.resolve():
        raise PqlkitError(
            f"--propose {target} is your model file; pqlkit never overwrites it. Write the "
            "proposal elsewhere and copy it over once you have reviewed it"
        )
    if target.exists() and not force:
        head = target.read_text(encoding="utf-8", errors="replace")[:200]
        if not head.startswith(HEADER):
            raise PqlkitError(
                f"{target} exists and is not an earlier proposal; pass --force to replace it, "
                "or choose another --propose path"
            )


def write_proposal(
    proposal: Proposal, target: Path, model_path: Path, *, force: bool = False
) -> None:
    """Write the proposal to ``target`` (see :func:`check_target`), atomically."""
    check_target(target, model_path, force=force)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(proposal.text, encoding="utf-8")
    tmp.replace(target)


__all__ = [
    "HEADER",
    "Change",
    "Proposal",
    "assemble",
    "check_target",
    "propose",
    "write_proposal",
]
