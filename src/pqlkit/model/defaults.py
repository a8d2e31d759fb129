"""Defaults the model fills in when a file leaves them out, and the shipped free-mail list."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from .conditions import (
    AllCondition,
    AnyCondition,
    Condition,
    FieldCondition,
    NotCondition,
    SignalCondition,
)
from .signals import HandRaiseSignal, LimitReachedSignal
from .spec import Model, Segment

DEFAULT_SEGMENT_IDS = (
    "converted_without_assistance",
    "asked_for_sales",
    "maxed_out_free",
    "free_user",
)


@cache
def free_mail_domains() -> frozenset[str]:
    """The shipped list of free-mail providers (model/freemail.txt)."""
    text = files("pqlkit.model").joinpath("freemail.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def _any_fired(ids: list[str]) -> Condition | None:
    if not ids:
        return None
    if len(ids) == 1:
        return SignalCondition(signal=ids[0])
    return AnyCondition(any=[SignalCondition(signal=i) for i in ids])


def effective_segments(model: Model) -> list[Segment]:
    """The model's segments, or the buyer-spectrum defaults built from its signal kinds.

    converted_without_assistance: paid as of the date, no hand-raise, no sales opportunity.
    asked_for_sales: a hand_raise signal fired.  maxed_out_free: a limit_reached signal fired.
    free_user: everyone else.
    """
    if model.segments is not None:
        return list(model.segments)
    signals = [*model.usage_signals, *model.mql_signals]
    raised = _any_fired([s.id for s in signals if isinstance(s, HandRaiseSignal)])
    limited = _any_fired([s.id for s in signals if isinstance(s, LimitReachedSignal)])
    unassisted: list[Condition] = [
        FieldCondition(field="user.is_paid", equals=True),
        NotCondition(**{"not": FieldCondition(field="user.sales_touched", equals=True)}),
    ]
    if raised is not None:
        unassisted.append(NotCondition(**{"not": raised}))
    out = [
        Segment(
            id="converted_without_assistance",
            label="Converted without assistance (upsell target)",
            when=AllCondition(all=unassisted),
        )
    ]
    if raised is not None:
        out.append(Segment(id="asked_for_sales", label="Asked for sales assistance", when=raised))
    if limited is not None:
        out.append(Segment(id="maxed_out_free", label="Maxed out the free plan", when=limited))
    out.append(Segment(id="free_user", label="Free user"))
    return out
