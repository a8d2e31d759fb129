"""Each event the model reads, counted over the last window against its own recent baseline
(the same span one season back, `periods` times: by default the same hour on each of the last
seven days), and the alert when one stops arriving or falls sharply.

:func:`volumes` is one query over the events table (arrival time, `received_at`): one filtered
count per span, grouped by event. :func:`judge` decides in plain Python. :class:`VolumeWatch`
is a flusher subscriber (see :mod:`pqlkit.collect.subscriber`): every `every` seconds it
judges on the flusher's connection, records each change of an event's status in
`pql_tracking_alerts`, tells the declared destinations, and keeps the statuses for /metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..model.instrumentation import Instrumentation
from ..model.signals import duration_seconds

log = logging.getLogger("pqlkit.tracking")

ALERTS = "pql_tracking_alerts"
"""Every change of a watched event's status (dropped, stopped, recovered), with the counts."""
ALERTS_SCHEMA = pa.schema(
    [
        ("event", pa.string()),
        ("status", pa.string()),
        ("count", pa.int64()),
        ("expected", pa.float64()),
        ("at", pa.timestamp("us")),
        ("notified", pa.string()),
    ]
)
#: Statuses that are alerts; `ok` and `unjudged` (too rare to tell) are not.
ALERTING = ("dropped", "stopped")
#: At most this many steps of `every` are judged in one check (a flusher far behind catches up).
MAX_STEPS = 10


@dataclass(frozen=True)
class Volume:
    """One event's count over the last window and its baseline (the mean of earlier spans)."""

    event: str
    count: int
    expected: float
    status: str
    """ok, dropped, stopped, or unjudged (a baseline below `min_expected`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spans(spec: Instrumentation, now: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) of the last window, then of each baseline span, newest first."""
    window = timedelta(seconds=duration_seconds(spec.window))
    season = timedelta(seconds=duration_seconds(spec.season))
    return [(now - k * season - window, now - k * season) for k in range(spec.periods + 1)]


def volumes(
    backend: Any, table: str, events: list[str], spec: Instrumentation, now: datetime
) -> dict[str, list[int]]:
    """Per event, its count in each span of :func:`spans` (the last window first)."""
    if not events or not backend.has_table(table):
        return {e: [0] * (spec.periods + 1) for e in events}
    t = backend.table(table)
    at = t.received_at
    bounds = spans(spec, now)
    lo, hi = bounds[-1][0], bounds[0][1]
    rows = (
        t.filter(t.event.isin(events), at >= lo, at < hi)
        .group_by("event")
        .aggregate(
            **{
                f"n{k}": t.event.count(where=(at >= a) & (at < b))
                for k, (a, b) in enumerate(bounds)
            }
        )
    )
    found = {str(r[0]): [int(v or 0) for v in r[1:]] for r in backend.values(rows)}
    return {e: found.get(e, [0] * len(bounds)) for e in events}


def judge(event: str, counts: list[int], spec: Instrumentation) -> Volume:
    """An event's status from its counts (the last window first)."""
    count, baseline = counts[0], counts[1:]
    expected = sum(baseline) / len(baseline)
    if expected < spec.min_expected:
        status = "unjudged"
    elif count == 0:
        status = "stopped"
    elif count <= (1 - spec.drop) * expected:
        status = "dropped"
    else:
        status = "ok"
    return Volume(event, count, round(expected, 3), status)


def alert_payload(
    volume: Volume, previous: str, spec: Instrumentation, at: datetime
) -> dict[str, Any]:
    """What a destination is told: a webhook gets it as it is, Slack as a short message."""
    kind = "recovered" if volume.status not in ALERTING else volume.status
    return {
        "type": f"pql.tracking.event_{kind}",
        "event": volume.event,
        "status": volume.status,
        "previous": previous,
        "count": volume.count,
        "expected": volume.expected,
        "window": spec.window,
        "at": at.isoformat() + "Z",
        "text": _text(volume, spec),
    }


def _text(v: Volume, spec: Instrumentation) -> str:
    if v.status == "stopped":
        return (
            f"{v.event} stopped arriving: none in the last {spec.window}, against "
            f"{v.expected:g} expected; signals that read it cannot fire"
        )
    if v.status == "dropped":
        return (
            f"{v.event} fell: {v.count} in the last {spec.window}, against {v.expected:g} expected"
        )
    return f"{v.event} is arriving again: {v.count} in the last {spec.window}"


Notify = Callable[[dict[str, Any]], str]
"""Tells the declared destinations of one alert; returns what became of it (for the record)."""


class VolumeWatch:
    """A flusher subscriber that watches ``events`` (see the module's docstring)."""

    def __init__(
        self,
        spec: Instrumentation,
        events: list[str],
        *,
        table: str = "events",
        notify: Notify | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None),
    ):
        self.spec = spec
        self.events = events
        self.table = table
        self.notify = notify
        self.now = now
        self.every = duration_seconds(spec.every)
        self.due = 0.0
        self.status: dict[str, Volume] = {}
        self._loaded = False
        self.through: datetime | None = None
        self.judged_at: datetime | None = None
        self.checks = 0
        self.alerts = 0

    # --- the subscriber ---------------------------------------------------------------------
    def note(self, users: set[str], ids: Any) -> None:
        pass

    def resolved(self) -> None:
        pass

    def wants_tick(self) -> bool:
        return time.monotonic() >= self.due

    def tick(self, backend: Any) -> None:
        if time.monotonic() < self.due:
            return
        self.due = time.monotonic() + self.every
        self.check(backend)

    def finish(self, backend: Any) -> None:
        pass

    def stored(self, through: datetime) -> None:
        """The flusher stored every request received before ``through``: the watch judges up to
        there, so a flusher running behind is not taken for events that stopped."""
        self.through = through

    # --- the watch ----------------------------------------------------------------------------
    def check(self, backend: Any) -> list[Volume]:
        """Judge every watched event now; record and tell each change into or out of an alert.

        Judged up to what is stored, in steps of `every` of the log's time since the last
        check (at most :data:`MAX_STEPS`): a flush that stores seconds of backlog at once does
        not move an alert's time later than the step at which it held."""
        if not self._loaded:
            self._load(backend)
        now = self.now() if self.through is None else min(self.now(), self.through)
        step = timedelta(seconds=self.every)
        at = max(self.judged_at + step, now - (MAX_STEPS - 1) * step) if self.judged_at else now
        judged: list[Volume] = []
        while at < now:
            judged = self._judge(backend, at)
            at += step
        judged = self._judge(backend, now)
        self.judged_at = now
        self.checks += 1
        return judged

    def _judge(self, backend: Any, now: datetime) -> list[Volume]:
        counts = volumes(backend, self.table, self.events, self.spec, now)
        judged = [judge(e, counts[e], self.spec) for e in self.events]
        changes = []
        for v in judged:
            before = self.status.get(v.event)
            was = before.status if before is not None else "ok"
            if was in ALERTING and v.status == "unjudged":
                continue  # gone so long its baseline faded: still in the alert, not recovered
            self.status[v.event] = v
            if (v.status in ALERTING and was not in ALERTING) or (
                was in ALERTING and v.status == "ok"
            ):
                changes.append((v, was))
        for v, was in changes:
            self._record(backend, v, was, now)
        return judged

    def _record(self, backend: Any, v: Volume, was: str, now: datetime) -> None:
        payload = alert_payload(v, was, self.spec, now)
        notified = ""
        if self.notify is not None:
            try:
                notified = self.notify(payload)
            except Exception as exc:  # an alert that cannot be sent is recorded, not fatal
                notified = f"not sent: {type(exc).__name__}: {exc}"
        status = v.status if v.status in ALERTING else "recovered"
        (log.warning if status in ALERTING else log.info)("%s", payload["text"])
        backend.ensure_table(ALERTS, ALERTS_SCHEMA)
        row = {**v.to_dict(), "status": status, "at": now, "notified": notified[:2000]}
        backend.insert(ALERTS, pa.Table.from_pylist([row], schema=ALERTS_SCHEMA))
        self.alerts += status in ALERTING

    def _load(self, backend: Any) -> None:
        """Events in an alert when the flusher last stopped are still in it (not told twice)."""
        self._loaded = True
        for row in current_alerts(backend):
            if row["event"] in self.events:
                self.status[row["event"]] = Volume(
                    row["event"], int(row["count"]), float(row["expected"]), row["status"]
                )

    @property
    def tracking(self) -> dict[str, Any]:
        """The statuses, for /metrics (published by the flusher process)."""
        return {
            "window": self.spec.window,
            "checks": self.checks,
            "alerts": self.alerts,
            "alerting": sorted(e for e, v in self.status.items() if v.status in ALERTING),
            "events": {e: v.to_dict() for e, v in sorted(self.status.items())},
        }


def current_alerts(backend: Any) -> list[dict[str, Any]]:
    """The events whose latest recorded status is an alert (the web app's notice)."""
    if not backend.has_table(ALERTS):
        return []
    t = backend.table(ALERTS)
    latest = t.group_by("event").aggregate(last=t.at.max())
    joined = t.join(latest, (t.event == latest.event) & (t.at == latest["last"]))
    rows = backend.rows(
        joined.select(t.event, t.status, t["count"], t.expected, t.at).order_by(t.event)
    )
    return [r for r in rows if r["status"] in ALERTING]


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True)


__all__ = [
    "ALERTING",
    "ALERTS",
    "Volume",
    "VolumeWatch",
    "alert_payload",
    "current_alerts",
    "judge",
    "spans",
    "volumes",
]
