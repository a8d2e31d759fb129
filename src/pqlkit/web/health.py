"""The model page's findings (the report's funnel, backtest, PQL vs MQL, capacity and drift),
computed in a background thread: a backtest takes seconds to a minute, a page must not.

Computed findings are kept in the database (``pql_model_health``), one row per outcome, named by
the model version and the latest run they were computed for: a page opened after a restart, or
by another process serving the same database, shows them at once. A new run (or a changed model)
makes them stale; the page then shows the stale ones, says so, and computes the new ones in the
background. (Not computed before anyone asks: the computation holds the database for up to a
minute, and a DuckDB file is shared by turns with `pql score` and the collector's flusher.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ibis
import pyarrow as pa

from ..errors import PqlkitError

TABLE = "pql_model_health"
SCHEMA = pa.schema(
    [
        ("outcome", pa.string()),
        ("key", pa.string()),
        ("computed_at", pa.timestamp("us")),
        ("body", pa.string()),
    ]
)


@dataclass
class Health:
    """The model page's findings for one key (model version, latest run, outcome): computed,
    being computed, or failed; and the last findings computed for an older key (``stale``)."""

    key: tuple[str, ...] | None = None
    body: str | None = None
    error: str | None = None
    started: float = 0.0
    step: str = ""
    stale: tuple[str, datetime] | None = None
    """(body, computed_at) of older findings for the same outcome, shown while new ones compute."""
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    backend: Any = None
    """The computing thread's connection (interrupted by :func:`stop`)."""
    closing: bool = False

    def current(self, key: tuple[str, ...]) -> str | None:
        return self.body if self.key == key else None


def _key_text(key: tuple[str, ...]) -> str:
    return json.dumps(list(key))


def stored(backend: Any, outcome: str) -> tuple[str, str, datetime] | None:
    """(key, body, computed_at) of the findings kept for ``outcome``, if any."""
    if TABLE not in backend.known_tables():
        return None
    t = backend.table(TABLE)
    rows = backend.values(
        t.filter(t.outcome == outcome)
        .order_by(ibis.desc(t.computed_at))
        .select("key", "body", "computed_at")
        .limit(1)
    )
    return rows[0] if rows else None


def keep(backend: Any, outcome: str, key: tuple[str, ...], body: str) -> None:
    """Keep ``body`` as the findings for ``outcome`` (replacing older ones)."""
    backend.ensure_table(TABLE, SCHEMA, primary_key=["outcome"])
    row = {
        "outcome": outcome,
        "key": _key_text(key),
        "computed_at": datetime.now(UTC).replace(tzinfo=None),
        "body": body,
    }
    with backend.transaction():
        backend.delete(TABLE, {"outcome": outcome})
        backend.insert(TABLE, pa.Table.from_pylist([row], schema=SCHEMA))


def start(
    h: Health,
    key: tuple[str, ...],
    refresh: bool,
    engine: Callable[[], AbstractContextManager[Any]],
    *,
    outcome: str = "opportunity",
    backend: Any = None,
) -> None:
    """Have the findings for ``key`` (model version, latest run, outcome): from memory, from
    the database (``backend``, the request's connection), or computed in the background unless
    they are being computed; ``refresh`` computes them again. ``outcome`` is what counts as
    converting (the page's ``?outcome=``: opportunity, closed_won, self_serve or any)."""
    with h.lock:
        busy = h.thread is not None and h.thread.is_alive()
        if busy or h.closing or (h.key == key and not refresh and (h.body or h.error)):
            return
        kept = stored(backend, outcome) if backend is not None else None
        if kept is not None and kept[0] == _key_text(key) and not refresh:
            h.key, h.body, h.error, h.stale = key, kept[1], None, None
            return
        if h.body is not None and h.key is not None and h.key[-1] == outcome:
            h.stale = (h.body, datetime.now(UTC).replace(tzinfo=None))
        elif kept is not None:
            h.stale = (kept[1], kept[2])
        else:
            h.stale = None
        h.key, h.body, h.error, h.step = key, None, None, "starting"
        h.started = time.monotonic()
        # not a daemon: one stopped inside DuckDB as the interpreter finalizes aborts the
        # process (exit -6); the app's shutdown ends it with stop()
        h.thread = threading.Thread(
            target=_compute, args=(h, key, engine, outcome), name="pql-web-findings"
        )
        h.thread.start()


def stop(h: Health, timeout: float = 30.0) -> None:
    """Stop computing (the app is shutting down): interrupt the query under way, and each one
    after it, until the thread is gone (at most ``timeout`` seconds; then the interpreter
    waits for it at exit)."""
    with h.lock:
        h.closing = True
        thread = h.thread
    deadline = time.monotonic() + timeout
    while thread is not None and thread.is_alive() and time.monotonic() < deadline:
        with h.lock:
            if h.backend is not None:
                h.backend.interrupt()
        thread.join(0.1)


def _step(h: Health, message: str) -> None:
    if h.closing:
        raise PqlkitError("the web app is shutting down")
    h.step = message


def _compute(
    h: Health,
    key: tuple[str, ...],
    engine: Callable[[], AbstractContextManager[Any]],
    outcome: str,
) -> None:
    from ..report.build import body
    from ..usecases.learning import ReplayOptions, findings
    from .champion import section as challenger_section

    try:
        with engine() as e:
            with h.lock:
                h.backend = e.backend
            try:
                found = findings(e, ReplayOptions(outcome=outcome), lambda m: _step(h, m))
                html = body(found) + challenger_section(e, outcome)
                _step(h, "keeping the findings")
                keep(e.backend, outcome, key, html)
            finally:
                with h.lock:
                    h.backend = None
        with h.lock:
            if h.key == key:
                h.body, h.stale = html, None
    except Exception as exc:  # shown on the page; the app goes on
        with h.lock:
            if h.key == key:
                h.error = (
                    str(exc) if isinstance(exc, PqlkitError) else f"{type(exc).__name__}: {exc}"
                )


__all__ = ["Health", "keep", "start", "stop", "stored"]
