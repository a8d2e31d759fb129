"""Signals: what earns (or costs) points. One class per kind, told apart by ``kind``.

Usage and MQL signals are computed from events; fit signals from user and account attributes.
A signal has a *value* (a count, a number of days, a ratio); it *fires* when the value reaches
``min``; it then earns ``points`` (or ``points`` per unit of value with ``per_unit``), bounded
by ``cap`` and rounded to a whole number.
"""

from __future__ import annotations

import builtins
import re
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from .conditions import Condition
from .strict import Strict as _Strict

DURATION_PATTERN = r"^\d+(\.\d+)?(s|m|h|d|w)$"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: The longest duration a model may give: 100 years (longer ones overflow interval arithmetic).
MAX_DURATION_SECONDS = 100 * 365.25 * 86400


def _duration_in_range(text: str) -> str:
    seconds = duration_seconds(text)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration (write e.g. 30d)")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is longer than 100 years")
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, examples=["30d", "12h", "2w"]),
    AfterValidator(_duration_in_range),
]


def duration_seconds(text: str) -> float:
    """'30d' -> 2592000.0. The pattern is validated by the model before this is called."""
    match = re.fullmatch(DURATION_PATTERN, text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (write a number and a unit: 30d, 12h, 2w)")
    return float(text[:-1]) * _UNIT_SECONDS[text[-1]]


def duration_days(text: str) -> float:
    return duration_seconds(text) / 86400.0


SignalId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]


class _Named(_Strict):
    id: SignalId
    """Unique id (lower_snake_case), used in activation rules, segments and reasons."""
    label: str | None = None
    """How a reason reads; `{value}` is replaced by the signal's value, e.g.
    "Invited {value} teammates". Defaults to the id."""
    description: str | None = None
    """Free text for people reading the model."""
    points: float
    """Points earned when the signal fires (negative to penalise)."""

    @property
    def reason_label(self) -> str:
        return self.label or self.id.replace("_", " ")


class _Kind(_Named):
    """What a signal kind means, declared on its class (one place per kind): the events it
    reads, when it fires, whether its value is a whole number, and how a learned threshold is
    written back into a model. The value itself is computed in features/signals.py, registered
    for the same class."""

    def event_names(self) -> list[str]:
        """Event names the signal reads ('*': any event)."""
        return list(getattr(self, "events", None) or [])

    def fires(self, value: Any, ops: Any) -> Any:
        """Whether the signal fires for ``value`` (``ops``: plain Python or SQL, see scoring.ops)."""
        return ops.cmp(value, "gte", getattr(self, "min", 1))

    @property
    def integral(self) -> bool:
        """Whether the value is always a whole number (reasons print it without decimals)."""
        return False

    def at_threshold(self, threshold: float) -> dict[str, Any]:
        """The keys that make a copy of this signal fire at a learned ``threshold``."""
        return {"min": threshold}


class _FixedPoints(_Kind):
    """Kinds that earn their points once."""

    per_unit: Literal[False] = False
    """Not available for this kind."""
    cap: float | None = None
    """Not needed for this kind (points are earned once)."""


class _Signal(_Kind):
    per_unit: bool = False
    """true: earn `points` for each unit of value (2 points per active day) instead of once."""
    cap: float | None = Field(default=None, gt=0)
    """Upper bound on the size of this signal's contribution (in points, either sign)."""
    min: float = 1
    """The value at which the signal fires."""


class _EventSignal(_Signal):
    events: list[str] = Field(min_length=1)
    """Event names that count."""
    where: dict[str, str | int | float | bool] | None = None
    """Only events whose properties equal these values (properties.<key> = value)."""
    window: Duration | None = None
    """Only events in this long before as_of (default: all history before as_of)."""


class _DecayingSignal(_EventSignal):
    half_life: Duration | None = None
    """Each event counts 0.5^(age / half_life): recent behaviour weighs more."""

    @property
    def integral(self) -> bool:
        return self.half_life is None  # a plain count


class EventCountSignal(_DecayingSignal):
    """How many times the events happened."""

    kind: Literal["event_count"]
    """The signal kind: `event_count`."""


class HandRaiseSignal(_DecayingSignal):
    """A hand-raise: asked for a demo, contacted sales, requested help from a person."""

    kind: Literal["hand_raise"]
    """The signal kind: `hand_raise`."""


class TeammatesInvitedSignal(_DecayingSignal):
    """Teammates invited: the number of invite events, or of distinct invitees when
    `property` names the invitee."""

    kind: Literal["teammates_invited"]
    """The signal kind: `teammates_invited`."""
    property: str | None = None
    """Event property naming the invitee (counts distinct values instead of events)."""

    @model_validator(mode="after")
    def _no_decay_on_distinct(self) -> TeammatesInvitedSignal:
        if self.property and self.half_life:
            raise ValueError("half_life cannot be combined with property (distinct invitees)")
        return self


class ActiveDaysSignal(_EventSignal):
    """Distinct days (UTC) with at least one of the events."""

    kind: Literal["active_days"]
    """The signal kind: `active_days`."""
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Event names that make a day active; ["*"] (the default) means any event."""

    @property
    def integral(self) -> bool:
        return True


class DistinctFeaturesSignal(_EventSignal):
    """How many different core features were used: distinct event names from `events`, or
    distinct values of `property` on those events."""

    kind: Literal["distinct_features"]
    """The signal kind: `distinct_features`."""
    property: str | None = None
    """Event property naming the feature (default: the event name is the feature)."""

    @builtins.property  # `property` is a field of this class
    def integral(self) -> bool:
        return True


class PropertyThresholdSignal(_EventSignal):
    """A numeric event property aggregated (projects created >= 3)."""

    kind: Literal["property_threshold"]
    """The signal kind: `property_threshold`."""
    property: str
    """The numeric event property."""
    agg: Literal["max", "sum", "last"] = "max"
    """How the property's values are combined: max, sum or the last one before as_of."""


class OnboardingSignal(_FixedPoints):
    """Onboarding completed: how many of the onboarding steps were done; fires when all were
    (or `min` of them)."""

    kind: Literal["onboarding_completed"]
    """The signal kind: `onboarding_completed`."""
    steps: list[str] = Field(min_length=1)
    """The onboarding step events, or a single completion event."""
    min: float | None = None
    """Steps needed to count as completed (default: all of them)."""
    window: Duration | None = None
    """Only steps in this long before as_of."""

    @property
    def threshold(self) -> float:
        return float(len(self.steps)) if self.min is None else self.min

    @property
    def events(self) -> list[str]:
        return self.steps

    def fires(self, value: Any, ops: Any) -> Any:
        return ops.cmp(value, "gte", self.threshold)

    @property
    def integral(self) -> bool:
        return True


class UsageMetric(_Strict):
    """Product usage measured against a plan quota."""

    events: list[str] = Field(min_length=1)
    """Events that consume the quota (project_created)."""
    property: str | None = None
    """Numeric property to aggregate (default: count the events)."""
    agg: Literal["count", "sum", "max"] = "count"
    """count the events, or sum or max the property."""


class LimitReachedSignal(_FixedPoints):
    """Free-tier limit reached: either limit events the product sends, or usage measured
    against the quota of the user's plan. The value is the number of limit events, or
    usage / quota; it fires at `min` (default 1: the quota is used up)."""

    kind: Literal["limit_reached"]
    """The signal kind: `limit_reached`."""
    min: float = 1
    """Value at which the signal fires (1 = quota used up; 0.8 = 80% used)."""
    events: list[str] | None = Field(default=None, min_length=1)
    """Limit events sent by the product (limit_reached)."""
    usage: UsageMetric | None = None
    """Usage to measure against `quotas` (instead of `events`)."""
    quotas: dict[str, float] | None = None
    """Quota per plan, e.g. {free: 3}; users on plans not listed never reach a limit."""
    window: Duration | None = None
    """Only events in this long before as_of."""

    def event_names(self) -> list[str]:
        return list(self.events or []) + (list(self.usage.events) if self.usage else [])

    @property
    def integral(self) -> bool:
        return self.events is not None  # a count of limit events, not a share of a quota

    @model_validator(mode="after")
    def _events_or_usage(self) -> LimitReachedSignal:
        if (self.events is None) == (self.usage is None):
            raise ValueError("give either events (limit events) or usage with quotas, not both")
        if self.usage is not None and not self.quotas:
            raise ValueError("usage needs quotas, e.g. quotas: {free: 3}")
        if self.quotas is not None and self.usage is None:
            raise ValueError("quotas go with usage; with events, leave quotas out")
        return self


class RecencySignal(_FixedPoints):
    """Recency of last activity: the value is days since the last event (any event, or
    `events`); fires when within `within` (reward) or older than `older_than` (penalise)."""

    kind: Literal["recency"]
    """The signal kind: `recency`."""
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Events that count as activity; ["*"] means any."""
    within: Duration | None = None
    """Fires when the last activity is at most this long before as_of."""
    older_than: Duration | None = None
    """Fires when the last activity is more than this long before as_of (or there was none)."""

    def fires(self, value: Any, ops: Any) -> Any:
        if self.within is not None:
            return ops.cmp(value, "lte", duration_days(self.within))
        return ops.cmp(value, "gt", duration_days(self.older_than or "0d"))

    def at_threshold(self, threshold: float) -> dict[str, Any]:
        # the value is days since the last activity: a learned step is "quiet for t days"
        return {"older_than": f"{threshold:g}d"}

    @model_validator(mode="after")
    def _one_bound(self) -> RecencySignal:
        if (self.within is None) == (self.older_than is None):
            raise ValueError("give exactly one of within or older_than")
        return self


class TraitSignal(_FixedPoints):
    """Fit: points when a condition over user and account attributes holds."""

    kind: Literal["trait"] = "trait"
    """The signal kind: `trait`."""
    when: Condition
    """The condition over `user.*` and `account.*` fields (and `email`)."""

    @property
    def integral(self) -> bool:
        return True


_EventKinds = (
    EventCountSignal
    | HandRaiseSignal
    | TeammatesInvitedSignal
    | ActiveDaysSignal
    | DistinctFeaturesSignal
    | PropertyThresholdSignal
    | OnboardingSignal
    | LimitReachedSignal
    | RecencySignal
)
EventSignal = Annotated[_EventKinds, Field(discriminator="kind")]
AnySignal = _EventKinds | TraitSignal

#: Every event signal class, and its `kind` (derived from the union: one place to add a kind).
EVENT_SIGNAL_CLASSES: tuple[type[_Kind], ...] = typing.get_args(_EventKinds)
EVENT_SIGNAL_KINDS = tuple(
    typing.get_args(c.model_fields["kind"].annotation)[0] for c in EVENT_SIGNAL_CLASSES
)


def signal_events(signal: AnySignal) -> list[str]:
    """Event names a signal reads, without the '*' wildcard."""
    return [n for n in signal.event_names() if n != "*"]


def reads_every_event(signal: AnySignal) -> bool:
    """Whether the signal counts any event ('*'), so events cannot be filtered by name."""
    return "*" in signal.event_names()
