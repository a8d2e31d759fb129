"""/metrics in Prometheus's text format (or OpenMetrics), for a scraper that asks for it by its
Accept header; JSON stays the answer for everyone else. The numbers are the collector's own
(:meth:`pqlkit.server.app.Collector.metrics`, with :func:`tracking`'s block when a tracking plan
is counted); prometheus-client writes the format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

COUNTERS = (
    "accepted",
    "rejected",
    "deduplicated",
    "stored",
    "suppressed",
    "quarantined",
    "abandoned",
)
GAUGES = {
    "queue_depth": "messages acknowledged and not yet durable in the log",
    "backlog_segments": "log segments durable and not yet stored (the ingest lag)",
    "storing_failing_seconds": "how long storing has been failing (0: it works)",
}
LIVE_COUNTERS = ("rescores", "rescored_users", "full_runs", "transitions", "delivered", "retrying", "dead", "disabled")  # fmt: skip
LIVE_GAUGES = {
    "in_flight": "deliveries being sent now",
    "last_rescore_ms": "how long the last live rescore took",
    "last_full_pass_at": "when the last full pass finished (Unix seconds)",
    "rescore_lag_seconds": "seconds since the last rescore or full pass",
}


def wants_prometheus(accept: str) -> bool:
    """Whether an Accept header asks for Prometheus's text or OpenMetrics (Prometheus sends
    both, and */* last)."""
    accept = accept.lower()
    return "openmetrics" in accept or "text/plain" in accept


def exposition(metrics: dict[str, Any], accept: str) -> tuple[bytes, str]:
    """The body and content type for ``metrics`` in the format ``accept`` prefers."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(metrics))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class _Snapshot:
    """A prometheus-client collector over one snapshot of the collector's numbers."""

    def __init__(self, metrics: dict[str, Any]):
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics
        for name in COUNTERS:
            yield CounterMetricFamily(f"pql_collector_{name}", f"messages {name}", value=m[name])
        lines = CounterMetricFamily("pql_log_lines", "log lines stored, by path", labels=["path"])
        for path, n in m["log_lines"].items():
            lines.add_metric([path], n)
        yield lines
        for name, doc in GAUGES.items():
            yield GaugeMetricFamily(f"pql_collector_{name}", doc, value=m[name])
        yield GaugeMetricFamily(
            "pql_collector_refusing", "1 while new events get 503", value=int(bool(m["refusing"]))
        )
        live = m.get("live") or {}
        for name in LIVE_COUNTERS:
            if name in live:
                yield CounterMetricFamily(
                    f"pql_live_{name}", f"live scoring: {name}", value=live[name]
                )
        for name, doc in LIVE_GAUGES.items():
            if live.get(name) is not None:
                yield GaugeMetricFamily(f"pql_live_{name}", doc, value=live[name])
        due = GaugeMetricFamily(
            "pql_deliveries",
            "deliveries by destination and status",
            labels=["destination", "status"],
        )
        for dest, statuses in (live.get("by_destination") or {}).items():
            for status, n in statuses.items():
                due.add_metric([dest, status], n)
        yield due
        yield from _crm_sync(m.get("crm_sync") or {})
        yield from _tracking(m.get("tracking"))


def _crm_sync(syncs: dict[str, dict[str, dict[str, Any]]]) -> Iterator[Any]:
    """The model's scheduled CRM syncs, by destination and direction (push, pull)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["destination", "direction"]
    lag = GaugeMetricFamily(
        "pql_crm_sync_lag_seconds",
        "seconds since the last successful scheduled CRM sync (since the start before one)",
        labels=labels,
    )
    last = GaugeMetricFamily(
        "pql_crm_sync_last_success_at", "when the last sync succeeded (Unix seconds)", labels=labels
    )
    failures = CounterMetricFamily(
        "pql_crm_sync_failures", "scheduled CRM syncs that failed", labels=labels
    )
    for dest, ways in syncs.items():
        for direction, s in ways.items():
            lag.add_metric([dest, direction], s["lag_seconds"])
            if s["last_ok_at"] is not None:
                last.add_metric([dest, direction], s["last_ok_at"])
            failures.add_metric([dest, direction], s["failures"])
    yield from (lag, last, failures)


def tracking(checker: Any, flusher: Any, brief: bool = False) -> dict[str, Any]:
    """The tracking plan's counts (the request path's ``checker``) and the volume watch's
    statuses (published by the ``flusher`` process) for /metrics; ``brief``: violations by kind
    and the events in an alert, for /health (open to anyone)."""
    counts = checker.snapshot()
    volume = (flusher.state.tracking_stats() if flusher else None) or {}
    if brief:
        return {"violations": counts["totals"], "alerts": volume.get("alerting", [])}
    return {**counts, "volume": volume}


def _tracking(tracking: dict[str, Any] | None) -> Iterator[Any]:
    """The tracking plan's counts (pqlkit.tracking.check) and the volume watch's statuses."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    if not tracking:
        return
    seen = CounterMetricFamily(
        "pql_tracking_events", "messages of each event the model reads", labels=["event"]
    )
    for event, n in tracking["seen"].items():
        seen.add_metric([event], n)
    yield seen
    broken = CounterMetricFamily(
        "pql_tracking_violations",
        "messages that break the tracking plan (accepted all the same)",
        labels=["event", "property", "kind"],
    )
    for row in tracking["violations"]:
        broken.add_metric([row["event"], row["property"] or "", row["kind"]], row["count"])
    yield broken
    volume = tracking.get("volume") or {}
    count = GaugeMetricFamily(
        "pql_tracking_window_events", "events in the last window", labels=["event"]
    )
    expected = GaugeMetricFamily(
        "pql_tracking_expected_events",
        "the baseline: mean events in the same window one season back",
        labels=["event"],
    )
    alert = GaugeMetricFamily(
        "pql_tracking_alert", "1 while the event has stopped or fallen sharply", labels=["event"]
    )
    for event, v in (volume.get("events") or {}).items():
        count.add_metric([event], v["count"])
        expected.add_metric([event], v["expected"])
        alert.add_metric([event], int(event in volume.get("alerting", [])))
    yield from (count, expected, alert)


__all__ = ["exposition", "tracking", "wants_prometheus"]
