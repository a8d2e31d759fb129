"""The decision logic: points, scores, fit, activation, PQL, tier, segment, motion, reasons.

Written once against :class:`~pqlkit.scoring.ops.Ops`. ``env`` maps field names
(``user.employees``, ``account.industry``, ``signal.active_days``) to values: plain Python for
one user, or Ibis columns for every user at once. Decisions are made in a fixed order, and
each step adds what it decided to ``env`` so that later rules (segments, routing) can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model.conditions import (
    AllCondition,
    AnyCondition,
    Condition,
    EmailCondition,
    FieldCondition,
    NotCondition,
    SignalCondition,
)
from ..model.defaults import effective_segments
from ..model.signals import AnySignal, TraitSignal
from ..model.spec import BandTiers, Model
from .ops import Ops, PyOps, V
from .reasons import REASON_SEPARATOR, signals_by_weight

_PLAIN = PyOps()
inf = float("inf")

#: The per-user outputs, in order.
OUTPUT_FIELDS = (
    "fit_score",
    "usage_score",
    "mql_score",
    "score",
    "icp_profile",
    "excluded",
    "exclusion",
    "exclusion_reason",
    "activated",
    "is_pql",
    "is_mql",
    "tier",
    "segment",
    "motion",
    "reasons",
    "mql_reasons",
    "points",
    "likelihood",
    "grade",
    "ranking",
)


@dataclass(frozen=True)
class Gate:
    """One condition a PQL must meet, over one decided output; written once, read by the
    decision itself, by `pql explain` and by learning and backtests."""

    name: str
    output: str
    """The output field (see :data:`OUTPUT_FIELDS`) the gate reads."""
    test: Callable[[Any, Ops[Any], Model], Any]
    words: Callable[[Mapping[str, Any], Model], str]

    def passes(self, outputs: Mapping[str, Any], model: Model, ops: Ops[Any] = _PLAIN) -> Any:
        return self.test(outputs[self.output], ops, model)

    def reason(self, outputs: Mapping[str, Any], model: Model) -> str:
        """Why a user who does not pass it is blocked, in words."""
        return self.words(outputs, model)


#: What a PQL needs, in order: fit a profile, not be excluded, be activated, reach the score.
PQL_GATES = (
    Gate(
        "profile",
        "icp_profile",
        lambda v, ops, m: ops.is_set(v),
        lambda o, m: "fits no ICP profile",
    ),
    Gate(
        "exclusion",
        "excluded",
        lambda v, ops, m: ops.not_(v),
        lambda o, m: f"excluded by {o['exclusion']} (reason: {o['exclusion_reason']})",
    ),
    Gate("activation", "activated", lambda v, ops, m: v, lambda o, m: "not activated"),
    Gate(
        "score",
        "score",
        lambda v, ops, m: ops.cmp(v, "gte", m.thresholds.pql_score),
        lambda o, m: f"score below {m.thresholds.pql_score:g}",
    ),
)
#: The gates that do not depend on points (what learning holds fixed while it refits them).
FIT_GATES = tuple(g for g in PQL_GATES if g.name != "score")


def blocked_by(
    model: Model, outputs: Mapping[str, Any], gates: tuple[Gate, ...] = PQL_GATES
) -> list[Gate]:
    """The gates one user's outputs (plain values) do not pass; empty for a PQL."""
    return [g for g in gates if not g.passes(outputs, model)]


def fit_gates_pass(rows: list[Mapping[str, Any]]) -> list[bool]:
    """For each row of outputs (plain values), whether it passes every gate but the score."""
    return [all(g.passes(row, None) for g in FIT_GATES) for row in rows]  # type: ignore[arg-type]


@dataclass(frozen=True)
class SignalResult:
    """One signal for one user (or one column of them): its value, whether it fired, points."""

    id: str
    group: str
    value: Any
    fired: Any
    points: Any
    text: Any


def evaluate(cond: Condition, env: Mapping[str, V], ops: Ops[V]) -> V:
    """A condition as a non-null boolean."""
    if isinstance(cond, AllCondition):
        return ops.and_(*(evaluate(c, env, ops) for c in cond.all))
    if isinstance(cond, AnyCondition):
        return ops.or_(*(evaluate(c, env, ops) for c in cond.any))
    if isinstance(cond, NotCondition):
        return ops.not_(evaluate(cond.not_, env, ops))
    if isinstance(cond, SignalCondition):
        return env[f"fired.{cond.signal}"]
    if isinstance(cond, EmailCondition):
        business = env["user.is_business_email"]
        return (
            business
            if cond.email == "business"
            else ops.and_(ops.is_set(env["user.email_domain"]), ops.not_(business))
        )
    return _field(cond, env[cond.field], ops)


def _field(cond: FieldCondition, x: V, ops: Ops[V]) -> V:
    op, v = cond.operator, cond.operand
    if op in ("equals", "gte", "gt", "lte", "lt"):
        return ops.cmp(x, op, v)
    if op == "not_equals":
        return ops.and_(ops.is_set(x), ops.cmp(x, op, v))
    if op == "in":
        return ops.isin(x, v)
    if op == "not_in":
        return ops.and_(ops.is_set(x), ops.not_(ops.isin(x, v)))
    if op == "between":
        return ops.and_(ops.cmp(x, "gte", v[0]), ops.cmp(x, "lte", v[1]))
    if op == "contains":
        return ops.contains(x, v)
    if op == "matches":
        return ops.matches(x, v)
    return ops.is_set(x) if v else ops.not_(ops.is_set(x))


def signal_result(signal: AnySignal, group: str, env: Mapping[str, V], ops: Ops[V]) -> SignalResult:
    """Value, firing, points and reason text of one signal."""
    if isinstance(signal, TraitSignal):
        fired = evaluate(signal.when, env, ops)
        value = ops.cases([(fired, ops.lit(1.0))], ops.lit(0.0))
    else:
        value = env[f"signal.{signal.id}"]
        fired = signal.fires(value, ops)
    integral = signal.integral
    shown: V | str
    if signal.per_unit:
        raw = ops.scale(value, signal.points)
        if signal.cap is not None:
            raw = ops.clamp(raw, -signal.cap, signal.cap)
        points = ops.cases([(fired, ops.round_int(raw))], ops.lit(0))
        shown = ops.fmt_points(points)
    else:
        # a fixed amount: the reason's "(+10)" is known before any data is seen
        cap = signal.cap if signal.cap is not None else inf
        fixed = _PLAIN.round_int(_PLAIN.clamp(signal.points, -cap, cap))
        points = ops.cases([(fired, ops.lit(fixed))], ops.lit(0))
        shown = _PLAIN.fmt_points(fixed)
    text = ops.concat(*_label_parts(signal.reason_label, value, integral, ops), " (", shown, ")")
    return SignalResult(signal.id, group, value, fired, points, text)


def _label_parts(label: str, value: V, integral: bool, ops: Ops[V]) -> list[V | str]:
    if "{value}" not in label:
        return [label]
    before, _, after = label.partition("{value}")
    shown = ops.fmt_value(ops.coalesce(value, ops.lit(0.0)), integral)
    return [before, shown, *_label_parts(after, value, integral, ops)]


def decide(model: Model, env: Mapping[str, V], ops: Ops[V]) -> dict[str, V]:
    """Every per-user output (see :data:`OUTPUT_FIELDS`) from the features in ``env``.

    Each step names what it decides in ``env`` for the conditions of the steps after it, and
    stages it (a step of the query) in this order."""
    env = dict(env)
    results = _signals(model, env, ops)
    fit, usage, mql, score, points = _scores(results, env, ops)
    profile, exclusion, reason, excluded, activated = _fit_decisions(model, env, ops)
    decided_so_far = {
        "icp_profile": profile,
        "excluded": excluded,
        "activated": activated,
        "score": score,
    }
    is_pql = ops.and_(*(gate.passes(decided_so_far, model, ops) for gate in PQL_GATES))
    is_mql = ops.cmp(mql, "gte", model.thresholds.mql_score)
    env.update(
        {
            "decision.profile": profile,
            "decision.excluded": excluded,
            "decision.exclusion": exclusion,
            "decision.activated": activated,
            "decision.is_pql": is_pql,
        }
    )
    decided = ops.stage({"is_pql": is_pql, "tier": _tier(model, fit, usage, score, ops)})
    is_pql, tier = decided["is_pql"], decided["tier"]
    env.update({"decision.is_pql": is_pql, "decision.tier": tier})
    # staged: routing rules read it, and each would otherwise work it out again
    segment = ops.stage({"segment": _segment(model, env, ops)})["segment"]
    env["decision.segment"] = segment
    motion = ops.cases(
        [(evaluate(r.when, env, ops), ops.lit(r.motion)) for r in model.routing.rules],
        ops.lit(model.routing.default),
    )
    # usage first: reasons.by_weight keeps behaviour ahead of fit at equal points
    contributing = [*results["usage"], *results["fit"]]
    return {
        "fit_score": fit,
        "usage_score": usage,
        "mql_score": mql,
        "score": score,
        "icp_profile": profile,
        "excluded": excluded,
        "exclusion": exclusion,
        "exclusion_reason": reason,
        "activated": activated,
        "is_pql": is_pql,
        "is_mql": is_mql,
        "tier": tier,
        "segment": segment,
        "motion": motion,
        "reasons": ops.join(
            REASON_SEPARATOR, [(ops.cmp(r.points, "not_equals", 0), r.text) for r in contributing]
        ),
        "mql_reasons": ops.join(
            REASON_SEPARATOR,
            [(ops.cmp(r.points, "not_equals", 0), r.text) for r in results["mql"]],
        ),
        **_likelihood(model, points, env, ops),
    }


#: The ranking's tie-break grows with the day the user was last seen (days since 1970), from 0
#: on 2000-01-01 to 0.5 on 2100-01-01: a row's ranking is then the same whatever its as_of, so
#: rows computed at different dates (a rescore's, a full pass's) rank alike.
_SEEN_FROM, _SEEN_SPAN = 10957.0, 36525.0


def _likelihood(model: Model, points: V, env: Mapping[str, V], ops: Ops[V]) -> dict[str, V]:
    """The calibrated likelihood of converting (None without a ``calibration:``), its grade,
    and the ranking value: the uncapped points plus a fraction below 0.5 that grows with the day
    the user was last seen, so equal points rank the most recently active first.
    The likelihood increases with the points, so it orders users as the ranking does."""
    seen = env.get("user.seen_day")  # absent from hand-made rows: no tie-break
    if seen is None:
        ranking = ops.add(points, ops.lit(0.0))
    else:
        day = ops.coalesce(seen, ops.lit(_SEEN_FROM))
        fresh = ops.add(ops.scale(day, 0.5 / _SEEN_SPAN), ops.lit(-0.5 * _SEEN_FROM / _SEEN_SPAN))
        ranking = ops.add(points, ops.clamp(fresh, 0, 0.5))
    cal = model.calibration
    if cal is None:
        return {
            "points": points,
            "likelihood": ops.lit(None),
            "grade": ops.lit(None),
            "ranking": ranking,
        }
    log_odds = ops.clamp(ops.add(ops.scale(points, cal.slope), ops.lit(cal.intercept)), -50, 50)
    likelihood = ops.stage({"likelihood": ops.logistic(log_odds)})["likelihood"]
    grade = ops.cases(
        [(ops.cmp(likelihood, "gte", g.min_likelihood), ops.lit(g.grade)) for g in cal.grades[:-1]],
        ops.lit(cal.grades[-1].grade),
    )
    return {"points": points, "likelihood": likelihood, "grade": grade, "ranking": ranking}


def _signals(model: Model, env: dict[str, V], ops: Ops[V]) -> dict[str, list[SignalResult]]:
    """Every signal's result by group, each signal's firing and points staged once; a signal
    sees the firing of those before it (``fired.<id>``) and its value is named for the rest."""
    groups = (
        ("fit", model.fit_signals),
        ("usage", model.usage_signals),
        ("mql", model.mql_signals),
    )
    results: dict[str, list[SignalResult]] = {}
    for group, signals in groups:
        results[group] = []
        for signal in signals:
            r = signal_result(signal, group, env, ops)
            env[f"fired.{signal.id}"] = r.fired
            env[f"signal.{signal.id}"] = r.value
            results[group].append(r)
    # Name every signal's firing and points once; everything below refers to them.
    every = [r for group in results.values() for r in group]
    staged = ops.stage(
        {**{f"fired.{r.id}": r.fired for r in every}, **{f"points.{r.id}": r.points for r in every}}
    )
    for group, rs in results.items():
        results[group] = [
            SignalResult(
                r.id, r.group, r.value, staged[f"fired.{r.id}"], staged[f"points.{r.id}"], r.text
            )
            for r in rs
        ]
    env.update({k: v for k, v in staged.items() if k.startswith("fired.")})
    return results


def _scores(
    results: dict[str, list[SignalResult]], env: dict[str, V], ops: Ops[V]
) -> tuple[V, V, V, V, V]:
    """The fit, usage and MQL scores (the group totals), the score (fit plus usage) with the
    scores clamped to 0-100, and the uncapped points (fit plus usage, not clamped)."""

    def total(group: str) -> V:
        acc = ops.lit(0)
        for r in results[group]:
            acc = ops.add(acc, r.points)
        return acc

    totals = ops.stage({"fit": total("fit"), "usage": total("usage"), "mql": total("mql")})
    fit, usage, mql_raw = totals["fit"], totals["usage"], totals["mql"]
    points = ops.stage({"points": ops.add(fit, usage)})["points"]
    scores = ops.stage({"score": ops.clamp(points, 0, 100), "mql": ops.clamp(mql_raw, 0, 100)})
    score, mql = scores["score"], scores["mql"]
    env.update({"score.fit": fit, "score.usage": usage, "score.mql": mql, "score.total": score})
    return fit, usage, mql, score, points


def _fit_decisions(model: Model, env: dict[str, V], ops: Ops[V]) -> tuple[V, V, V, V, V]:
    """The ICP profile (the first by priority that matches), the exclusion and its reason,
    whether any exclusion matched, and activation."""
    profiles = sorted(model.icp.profiles, key=lambda p: p.priority)
    profile = ops.cases(
        [(evaluate(p.when, env, ops), ops.lit(p.id)) for p in profiles], ops.lit(None)
    )
    exclusion_matches = [(evaluate(e.when, env, ops), e) for e in model.icp.exclusions]
    exclusion = ops.cases([(m, ops.lit(e.id)) for m, e in exclusion_matches], ops.lit(None))
    reason = ops.cases([(m, ops.lit(e.reason)) for m, e in exclusion_matches], ops.lit(None))
    excluded = ops.or_(ops.lit(False), *(m for m, _ in exclusion_matches))
    activated = evaluate(model.activation, env, ops)
    staged = ops.stage(
        {
            "profile": profile,
            "exclusion": exclusion,
            "reason": reason,
            "excluded": excluded,
            "activated": activated,
        }
    )
    return (
        staged["profile"],
        staged["exclusion"],
        staged["reason"],
        staged["excluded"],
        staged["activated"],
    )


def _segment(model: Model, env: dict[str, V], ops: Ops[V]) -> V:
    """The first segment whose condition holds (a segment without one always does)."""
    segment = ops.cases(
        [
            (evaluate(s.when, env, ops) if s.when is not None else ops.lit(True), ops.lit(s.id))
            for s in effective_segments(model)
        ],
        ops.lit(None),
    )
    return ops.stage({"segment": segment})["segment"]


def signal_breakdown(model: Model, env: Mapping[str, V], ops: Ops[V]) -> list[SignalResult]:
    """Every signal's result for one user (for `pql explain` and the lead page): the fired
    ones by weight (:func:`~pqlkit.scoring.reasons.signals_by_weight`), then the others in model
    order; a signal that did not fire gave no points, so its text shows none."""
    env = dict(env)
    out = []
    for group, signals in (
        ("fit", model.fit_signals),
        ("usage", model.usage_signals),
        ("mql", model.mql_signals),
    ):
        for signal in signals:
            r = signal_result(signal, group, env, ops)
            env[f"fired.{signal.id}"] = r.fired
            if not r.fired:
                label = _label_parts(signal.reason_label, r.value, signal.integral, ops)
                r = SignalResult(r.id, r.group, r.value, r.fired, r.points, ops.concat(*label))
            out.append(r)
    return signals_by_weight(out)


def _tier(model: Model, fit: V, usage: V, score: V, ops: Ops[V]) -> V:
    tiers = model.tiers
    if isinstance(tiers, BandTiers):
        return ops.cases(
            [(ops.cmp(score, "gte", b.min_score), ops.lit(b.tier)) for b in tiers.bands],
            ops.lit(tiers.bands[-1].tier),
        )
    branches = []
    for fi in reversed(range(len(tiers.matrix))):
        fit_ok = ops.cmp(fit, "gte", tiers.fit_cuts[fi - 1]) if fi > 0 else ops.lit(True)
        for ui in reversed(range(len(tiers.matrix[fi]))):
            usage_ok = ops.cmp(usage, "gte", tiers.usage_cuts[ui - 1]) if ui > 0 else ops.lit(True)
            branches.append((ops.and_(fit_ok, usage_ok), ops.lit(tiers.matrix[fi][ui])))
    return ops.cases(branches, ops.lit(tiers.matrix[0][0]))
