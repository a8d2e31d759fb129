"""The model page's findings (the report's funnel, backtest, PQL vs MQL, capacity and drift),
computed in a background thread: a backtest takes seconds to minutes, a page must not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..errors import PqlkitError


@dataclass
class Health:
    """The model page's findings, computed in the background (a backtest takes seconds to
    minutes), kept per model version and latest run."""

    key: tuple[str, ...] | None = None
    body: str | None = None
    error: str | None = None
    started: float = 0.0
    step: str = ""
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def start(
    h: Health,
    key: tuple[str, ...],
    refresh: bool,
    engine: Callable[[], AbstractContextManager[Any]],
    *,
    outcome: str = "opportunity",
) -> None:
    """Compute the findings for ``key`` (model version, latest run, outcome) unless they are
    there or being computed; ``refresh`` computes them again. ``outcome`` is what counts as
    converting (the page's ``?outcome=``: opportunity, closed_won, self_serve or any)."""
    with h.lock:
        busy = h.thread is not None and h.thread.is_alive()
        if busy or (h.key == key and not refresh and (h.body or h.error)):
            return
        h.key, h.body, h.error, h.step = key, None, None, "starting"
        h.started = time.monotonic()
        h.thread = threading.Thread(target=_compute, args=(h, key, engine, outcome), daemon=True)
        h.thread.start()


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
            found = findings(e, ReplayOptions(outcome=outcome), lambda m: setattr(h, "step", m))
            html = body(found) + challenger_section(e, outcome)
        with h.lock:
            if h.key == key:
                h.body = html
    except Exception as exc:  # shown on the page; the app goes on
        with h.lock:
            if h.key == key:
                h.error = (
                    str(exc) if isinstance(exc, PqlkitError) else f"{type(exc).__name__}: {exc}"
                )


__all__ = ["Health", "start"]
