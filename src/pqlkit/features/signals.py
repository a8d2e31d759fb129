"""One small function per event-signal kind, each returning Ibis expressions.

A kind declares the aggregates it needs over the user's events (filtered aggregates, so all
signals share one scan and one GROUP BY) and how to finish its value from them. Values are
non-negative floats, 0 when nothing happened (recency: days, or null when unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..errors import PqlkitError
from ..model.signals import (
    ActiveDaysSignal,
    DistinctFeaturesSignal,
    EventCountSignal,
    EventSignal,
    HandRaiseSignal,
    LimitReachedSignal,
    OnboardingSignal,
    PropertyThresholdSignal,
    RecencySignal,
    TeammatesInvitedSignal,
    duration_seconds,
)


def epoch(ts: ir.TimestampValue) -> ir.FloatingValue:
    """Seconds since 1970 as a double (PostgreSQL's EXTRACT returns numeric)."""
    return ts.epoch_seconds().cast("float64")


Finish = Callable[[Mapping[str, ir.Value]], ir.Value]
Where = dict[str, str | int | float | bool]
"""Event properties an event must have (a signal's `where`)."""


class JsonAccess(Protocol):
    """Reading one member of a JSON object, the key being data (a backend class provides it)."""

    def json_text(self, properties: ir.Value, key: str) -> ir.StringValue: ...
    def json_number(self, properties: ir.Value, key: str) -> ir.FloatingValue: ...
    def json_bool(self, properties: ir.Value, key: str) -> ir.BooleanValue: ...


def _builtin(name: str) -> Callable[[Callable[..., object]], Callable[..., ir.Value]]:
    """Ibis's decorator for a function the database has built in, typed (Ibis ships no types):
    the function it makes builds an expression calling ``name``."""
    made: Callable[[Callable[..., object]], Callable[..., ir.Value]]
    made = ibis.udf.scalar.builtin(name=name)
    return made


@_builtin("lax_string")
def _lax_string(value: dt.JSON) -> str:  # type: ignore[empty-body]
    """BigQuery's LAX_STRING: a JSON string, number or boolean as text, else NULL."""


_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class IbisJson:
    """Ibis's typed JSON access, for dialects pqlkit has no backend for (`pql compile
    --dialect snowflake`). Ibis reads the key as a JSON path, so only plain keys are safe."""

    dialect: str

    def _key(self, key: str) -> str:
        if not _SIMPLE_KEY.match(key):
            raise PqlkitError(
                f"the event property {key!r} cannot be compiled for {self.dialect} (only letters, digits and _ "
                "are safe in its JSON paths); rename the property, or compile for duckdb or postgres"
            )
        return key

    def json_text(self, properties: ir.Value, key: str) -> ir.StringValue:
        # numbers and booleans as text too, as on DuckDB and PostgreSQL (Ibis's `.str` is NULL
        # for them: a distinct count or `where` over numeric values would miss them)
        value = properties[self._key(key)]
        if self.dialect == "bigquery":  # no CAST from JSON; LAX_STRING converts any scalar
            return _lax_string(value)
        return ibis.coalesce(value.str, value.cast("string"))

    def json_number(self, properties: ir.Value, key: str) -> ir.FloatingValue:
        return properties[self._key(key)].float

    def json_bool(self, properties: ir.Value, key: str) -> ir.BooleanValue:
        return properties[self._key(key)].bool


@dataclass(frozen=True)
class AsOf:
    """The point in time, as SQL: one timestamp literal and what is derived from it.

    Every time-dependent value (window starts, ages, day numbers) is written in terms of the one
    literal, so the compiled SQL can be reused for another as_of by swapping that literal; the
    database folds these constants once per query.
    """

    when: datetime

    @property
    def lit(self) -> ir.TimestampScalar:
        return ibis.timestamp(self.when)

    def minus(self, seconds: float) -> ir.TimestampScalar:
        # the coarsest whole unit: `INTERVAL '30' DAY` reads well and every dialect has it,
        # where a count of microseconds overflows or is mistyped in some (Snowflake's DATEADD)
        micros = round(seconds * 1_000_000)
        for unit, size in (
            ("days", 86_400_000_000),
            ("hours", 3_600_000_000),
            ("minutes", 60_000_000),
            ("seconds", 1_000_000),
        ):
            if micros % size == 0:
                return self.lit + ibis.interval(**{unit: -(micros // size)})
        return self.lit + ibis.interval(microseconds=-micros)

    @property
    def epoch(self) -> ir.FloatingScalar:
        return epoch(self.lit)

    @property
    def day(self) -> ir.IntegerScalar:
        return (self.epoch // 86400).cast("int64")


@dataclass(frozen=True)
class EventContext:
    """The user's events known as of ``as_of``, and helpers over them."""

    events: ir.Table
    as_of: AsOf
    bitmask_days: bool
    json: JsonAccess
    """How this database reads a member of the JSON properties (see Backend.json_text)."""

    def age_days(self) -> ir.FloatingValue:
        return (self.as_of.epoch - epoch(self.events.timestamp)) / 86400.0

    def since(self, window: str | None) -> ir.BooleanValue | None:
        if window is None:
            return None
        return self.events.timestamp >= self.as_of.minus(duration_seconds(window))

    def match(
        self, names: list[str], window: str | None = None, where: Where | None = None
    ) -> ir.BooleanValue | None:
        """Events with these names, in the window, with these properties (None: all)."""
        conds = []
        if "*" not in names:
            e = self.events.event
            conds.append(e == names[0] if len(names) == 1 else e.isin(names))
        if (w := self.since(window)) is not None:
            conds.append(w)
        props = self.events.properties
        for key, value in (where or {}).items():
            if isinstance(value, bool):
                conds.append(self.json.json_bool(props, key) == value)
            elif isinstance(value, int | float):
                conds.append(self.json.json_number(props, key) == float(value))
            else:
                conds.append(self.json.json_text(props, key) == value)
        if not conds:
            return None
        out = conds[0]
        for c in conds[1:]:
            out = out & c
        return out

    def prop_text(self, key: str) -> ir.StringValue:
        """A property as text (numbers too), NULL when absent or JSON null."""
        return self.json.json_text(self.events.properties, key)

    def prop_number(self, key: str) -> ir.FloatingValue:
        return self.json.json_number(self.events.properties, key)


@dataclass(frozen=True)
class SignalPlan:
    """Aggregates one signal needs, and how to turn them into its value."""

    aggregates: dict[str, ir.Scalar]
    finish: Finish


def only_where(value: ir.Value, cond: ir.BooleanValue | None) -> ir.Value:
    """``value`` on the rows where ``cond`` holds, NULL on the others: an aggregate over it
    equals the aggregate filtered by ``cond`` (NULLs are skipped), and the database works
    ``value`` out (a JSON member, an exp()) only on those rows, where a FILTER clause has it
    computed on every row of the scan first."""
    return value if cond is None else ibis.ifelse(cond, value, ibis.null(value.type()))


def _count(
    ctx: EventContext, name: str, cond: ir.BooleanValue | None, half_life: str | None
) -> SignalPlan:
    if half_life is None:
        agg = ctx.events.count(where=cond)
    else:
        rate = math.log(2) / (duration_seconds(half_life) / 86400.0)
        agg = only_where((ctx.age_days() * -rate).exp(), cond).sum()
    return SignalPlan({name: agg}, lambda a: a[name].fill_null(0).cast("float64"))


def event_count(s: EventCountSignal | HandRaiseSignal, ctx: EventContext, name: str) -> SignalPlan:
    return _count(ctx, name, ctx.match(s.events, s.window, s.where), s.half_life)


def teammates_invited(s: TeammatesInvitedSignal, ctx: EventContext, name: str) -> SignalPlan:
    cond = ctx.match(s.events, s.window, s.where)
    if s.property is None:
        return _count(ctx, name, cond, s.half_life)
    agg = only_where(ctx.prop_text(s.property), cond).nunique()
    return SignalPlan({name: agg}, lambda a: a[name].fill_null(0).cast("float64"))


def active_days(s: ActiveDaysSignal, ctx: EventContext, name: str) -> SignalPlan:
    cond = ctx.match(s.events, s.window, s.where)
    if ctx.bitmask_days and s.window is not None:
        # One bit per calendar day back from as_of; BIT_OR then BIT_COUNT beats COUNT(DISTINCT).
        days = math.ceil(duration_seconds(s.window) / 86400.0) + 1
        back = ctx.as_of.day - (epoch(ctx.events.timestamp) // 86400).cast("int64")
        # 63 days a signed BIGINT word (1 << 63 overflows); back >= 0 as events are before
        # as_of, so back % 63 is always a valid shift.
        bit = ibis.literal(1, "int64") << (back % 63)
        words = {}
        n_words = (days + 62) // 63
        for w in range(n_words):
            if n_words == 1:
                in_word = None  # the window fits one word: every day back is < 63
            else:
                upper = back < 63 * (w + 1)
                in_word = upper if w == 0 else ((back >= 63 * w) & upper)
            words[f"{name}_w{w}"] = bit.bit_or(where=_both(cond, in_word))

        def finish(a: Mapping[str, ir.Value]) -> ir.Value:
            parts = [bit_count(a[key].fill_null(0)) for key in words]
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            return total.cast("float64")

        return SignalPlan(words, finish)
    day = ctx.events.timestamp.date()
    return SignalPlan(
        {name: day.nunique(where=cond)}, lambda a: a[name].fill_null(0).cast("float64")
    )


@_builtin("bit_count")
def bit_count(x: int) -> int:  # type: ignore[empty-body]
    """DuckDB's BIT_COUNT over BIGINT."""


def distinct_features(s: DistinctFeaturesSignal, ctx: EventContext, name: str) -> SignalPlan:
    if s.property is not None:
        cond = ctx.match(s.events, s.window, s.where)
        agg = only_where(ctx.prop_text(s.property), cond).nunique()
        return SignalPlan({name: agg}, lambda a: a[name].fill_null(0).cast("float64"))
    if "*" in s.events:  # any event: each distinct event name is a feature
        agg = ctx.events.event.nunique(where=ctx.match(s.events, s.window, s.where))
        return SignalPlan({name: agg}, lambda a: a[name].fill_null(0).cast("float64"))
    return _per_event_presence(ctx, name, s.events, s.window, s.where)


def _both(a: ir.BooleanValue | None, b: ir.BooleanValue | None) -> ir.BooleanValue | None:
    if a is None:
        return b
    return a if b is None else a & b


def _per_event_presence(
    ctx: EventContext, name: str, events: list[str], window: str | None, where: Where | None
) -> SignalPlan:
    aggs = {
        f"{name}_{i}": ctx.events.count(where=ctx.match([e], window, where))
        for i, e in enumerate(dict.fromkeys(events))
    }

    def finish(a: Mapping[str, ir.Value]) -> ir.Value:
        # integer literals: PostgreSQL reads 1.0 as numeric, and Ibis elides a later cast
        parts = [ibis.ifelse(a[key].fill_null(0) > 0, 1, 0) for key in aggs]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total.cast("float64")

    return SignalPlan(aggs, finish)


def onboarding_completed(s: OnboardingSignal, ctx: EventContext, name: str) -> SignalPlan:
    return _per_event_presence(ctx, name, s.steps, s.window, None)


def property_threshold(s: PropertyThresholdSignal, ctx: EventContext, name: str) -> SignalPlan:
    cond = ctx.match(s.events, s.window, s.where)
    value = ctx.prop_number(s.property)
    if s.agg == "max":
        agg = only_where(value, cond).max()
    elif s.agg == "sum":
        agg = only_where(value, cond).sum()
    else:
        agg = value.argmax(ctx.events.timestamp, where=_both(cond, value.notnull()))
    return SignalPlan({name: agg}, lambda a: a[name].fill_null(0).cast("float64"))


def limit_reached(s: LimitReachedSignal, ctx: EventContext, name: str) -> SignalPlan:
    if s.events is not None:
        return _count(ctx, name, ctx.match(s.events, s.window), None)
    usage = s.usage
    assert usage is not None  # invariant: validated by the model
    cond = ctx.match(usage.events, s.window)
    if usage.agg == "count" or usage.property is None:
        agg = ctx.events.count(where=cond)
    elif usage.agg == "sum":
        agg = only_where(ctx.prop_number(usage.property), cond).sum()
    else:
        agg = only_where(ctx.prop_number(usage.property), cond).max()
    quotas = dict(s.quotas or {})

    def finish(a: Mapping[str, ir.Value]) -> ir.Value:
        plan = a["user.plan"]
        quota = ibis.cases(
            *((plan == p, float(q)) for p, q in quotas.items()), else_=ibis.null("float64")
        )
        ratio = a[name].fill_null(0).cast("float64") / quota
        return ibis.ifelse(quota > 0, ratio, 0.0).fill_null(0.0)

    return SignalPlan({name: agg}, finish)


def recency(s: RecencySignal, ctx: EventContext, name: str) -> SignalPlan:
    agg = ctx.events.timestamp.max(where=ctx.match(s.events))
    as_of = ctx.as_of

    def finish(a: Mapping[str, ir.Value]) -> ir.Value:
        since_last = (as_of.epoch - epoch(a[name])) / 86400.0
        return since_last.fill_null(a["user.days_since_signup"])

    return SignalPlan({name: agg}, finish)


#: The value of each event signal kind, registered by its model class (see model/signals.py
#: for the rest of what a kind means). A kind missing here fails the kinds conformance test.
PLANS: dict[type, Callable[..., SignalPlan]] = {
    EventCountSignal: event_count,
    HandRaiseSignal: event_count,
    TeammatesInvitedSignal: teammates_invited,
    ActiveDaysSignal: active_days,
    DistinctFeaturesSignal: distinct_features,
    PropertyThresholdSignal: property_threshold,
    OnboardingSignal: onboarding_completed,
    LimitReachedSignal: limit_reached,
    RecencySignal: recency,
}


def plan_signal(signal: EventSignal, ctx: EventContext, name: str) -> SignalPlan:
    return PLANS[type(signal)](signal, ctx, name)
