"""Every event signal kind computed in plain Python, straight from the docs, for one user's
events: the reference the SQL path must equal (tests/test_signal_kinds.py)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

from pqlkit.model import signals as s


def _text(v: Any) -> str | None:
    """A property value as the databases' JSON text extraction gives it."""
    if v is None or isinstance(v, dict | list):
        return None if v is None else json.dumps(v, separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _where_ok(props: dict[str, Any], where: dict[str, Any] | None) -> bool:
    for key, want in (where or {}).items():
        got = props.get(key)
        if isinstance(want, bool):
            if not (isinstance(got, bool) and got == want):
                return False
        elif isinstance(want, int | float):
            if _number(got) != float(want):
                return False
        elif _text(got) != want:
            return False
    return True


def _seconds(d: str) -> float:
    return s.duration_seconds(d)


def _matching(events, names, as_of: datetime, window: str | None, where=None):
    since = as_of - timedelta(seconds=_seconds(window)) if window else None
    return [
        e
        for e in events
        if ("*" in names or e["event"] in names)
        and (since is None or e["timestamp"] >= since)
        and _where_ok(e["props"], where)
    ]


def _count(matched, as_of: datetime, half_life: str | None) -> float:
    if half_life is None:
        return float(len(matched))
    rate = math.log(2) / (_seconds(half_life) / 86400.0)
    return sum(
        math.exp(-rate * (as_of - e["timestamp"]).total_seconds() / 86400.0) for e in matched
    )


def value(
    signal: Any,
    events: list[dict[str, Any]],
    as_of: datetime,
    *,
    plan: str | None,
    days_since_signup: float,
) -> float:
    """The signal's value for one user whose events (before as_of) are ``events``."""
    events = [e for e in events if e["timestamp"] < as_of]
    if isinstance(signal, s.EventCountSignal | s.HandRaiseSignal):
        return _count(
            _matching(events, signal.events, as_of, signal.window, signal.where),
            as_of,
            signal.half_life,
        )
    if isinstance(signal, s.TeammatesInvitedSignal):
        matched = _matching(events, signal.events, as_of, signal.window, signal.where)
        if signal.property is None:
            return _count(matched, as_of, signal.half_life)
        return float(
            len({t for e in matched if (t := _text(e["props"].get(signal.property))) is not None})
        )
    if isinstance(signal, s.ActiveDaysSignal):
        matched = _matching(events, signal.events, as_of, signal.window, signal.where)
        return float(len({e["timestamp"].date() for e in matched}))
    if isinstance(signal, s.DistinctFeaturesSignal):
        matched = _matching(events, signal.events, as_of, signal.window, signal.where)
        if signal.property is not None:
            return float(
                len(
                    {
                        t
                        for e in matched
                        if (t := _text(e["props"].get(signal.property))) is not None
                    }
                )
            )
        return float(len({e["event"] for e in matched}))
    if isinstance(signal, s.PropertyThresholdSignal):
        matched = _matching(events, signal.events, as_of, signal.window, signal.where)
        numbers = [
            (e["timestamp"], n)
            for e in matched
            if (n := _number(e["props"].get(signal.property))) is not None
        ]
        if not numbers:
            return 0.0
        if signal.agg == "max":
            return max(n for _, n in numbers)
        if signal.agg == "sum":
            return sum(n for _, n in numbers)
        return max(numbers)[1]  # the last one before as_of
    if isinstance(signal, s.OnboardingSignal):
        return float(
            len({e["event"] for e in _matching(events, signal.steps, as_of, signal.window)})
        )
    if isinstance(signal, s.LimitReachedSignal):
        if signal.events is not None:
            return float(len(_matching(events, signal.events, as_of, signal.window)))
        usage = signal.usage
        assert usage is not None and signal.quotas is not None
        matched = _matching(events, usage.events, as_of, signal.window)
        if usage.agg == "count" or usage.property is None:
            used = float(len(matched))
        else:
            numbers = [
                n for e in matched if (n := _number(e["props"].get(usage.property))) is not None
            ]
            used = (sum(numbers) if usage.agg == "sum" else max(numbers)) if numbers else 0.0
        quota = signal.quotas.get(plan) if plan is not None else None
        return used / quota if quota else 0.0
    if isinstance(signal, s.RecencySignal):
        matched = _matching(events, signal.events, as_of, None)
        if not matched:
            return days_since_signup
        return (as_of - max(e["timestamp"] for e in matched)).total_seconds() / 86400.0
    raise AssertionError(f"no reference for {type(signal).__name__}")
