"""One server for the whole system (`pql serve --model pql.yml --ui`): the collector's paths
(/v1/..., /health, /metrics) go to the collector, every other path to the web app, on one port
and in one process. On a DuckDB file the flusher (with live scoring, full passes and
deliveries) runs in a thread of that process too: DuckDB lets one process open a file, so a
flusher of its own would hold the web app's pages off for each flush and each full pass; in one
process, a page reads the last committed state through its own connection while they write.
On PostgreSQL the flusher keeps its own process.

The collector owns the lifespan (it starts the flusher and stops it, storing what was
acknowledged). At shutdown the web app is closed first (the model page's findings interrupted,
its warm connection let go, their threads joined): no thread may be inside DuckDB when the
interpreter finalizes, or the process aborts instead of exiting 0.
"""

from __future__ import annotations

from typing import Any

COLLECTOR_PATHS = ("/v1/", "/health", "/metrics")


class Combined:
    """An ASGI app routing by path to the collector or the web app."""

    def __init__(self, collector: Any, web: Any):
        self.collector = collector
        self.web = web
        # on a DuckDB file, the flusher runs in a thread here, so pages read beside its writes
        collector.web_beside = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.collector(scope, self._closing_web(receive), send)
            return
        path = scope.get("path", "")
        to_collector = path.startswith(COLLECTOR_PATHS[0]) or path.rstrip("/") in COLLECTOR_PATHS
        await (self.collector if to_collector else self.web)(scope, receive, send)

    def _closing_web(self, receive: Any) -> Any:
        """``receive``, closing the web app when the server shuts down."""

        async def closing() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                ui = getattr(self.web.state, "ui", None)
                if ui is not None:
                    ui.close()
            return message

        return closing


__all__ = ["Combined"]
