"""Hand-off use cases: deliver what is due, list deliveries, retry or replay them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..backends import connect
from ..engine import utc_now
from ..errors import PqlkitError
from ..handoff.deliver import LISTED as _LISTING
from ..model.load import load_model
from .common import day
from .session import Session

#: The columns `pql deliveries` shows: a listing's, without the timestamps.
LISTED = _LISTING[:9]


def _handoff(model_path: str | Path) -> Any:
    loaded = load_model(model_path)
    if loaded.model.handoff is None:
        raise PqlkitError(
            f"{loaded.path}: the model has no `handoff:` section (destinations and routes); see docs/model.md"
        )
    return loaded.model.handoff


def deliver(
    model_path: str | Path,
    url: str | None = None,
    *,
    loop: bool = False,
    interval: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    client: Any = None,
) -> Any:
    """Deliver what is due, once, or every ``interval`` seconds until ``stop()``."""
    try:
        import httpx
    except ImportError:
        raise PqlkitError('the hand-off needs its extra: pip install "pqlkit[handoff]"') from None
    from ..crm.destinations import KINDS
    from ..handoff.deliver import Report, deliver_due

    handoff = _handoff(model_path)
    total = Report()
    own = client is None
    client = client or httpx.Client()
    try:
        while True:
            backend = connect(url)
            try:
                r = deliver_due(
                    backend,
                    handoff,
                    utc_now,
                    client,
                    kinds=KINDS,
                    engine=_engine(model_path, backend),
                )
            finally:
                backend.close()
            for k in ("delivered", "retrying", "dead", "disabled"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.remaining = r.remaining
            total.errors += r.errors
            if loop:
                _said(r)
            if not loop or stop():
                return total
            time.sleep(interval)
    finally:
        if own:
            client.close()


def _engine(model_path: str | Path, backend: Any) -> Any:
    """The engine over this connection that CRM destinations read the scored state through
    (None when the model has none: they are the only kinds that send in batches)."""
    from ..crm.destinations import KINDS

    loaded = load_model(model_path)
    handoff = loaded.model.handoff
    if handoff is None or not any(
        getattr(KINDS[d.kind], "batch", False) for d in handoff.destinations
    ):
        return None
    from ..engine import Engine

    return Engine(loaded, backend)


def _said(r: Any) -> None:
    """A pass of `pql deliver --loop` that did something, in the deliveries' log."""
    from .. import logs

    counts = {k: getattr(r, k) for k in ("delivered", "retrying", "dead", "disabled")}
    if any(counts.values()):
        logs.get("deliveries").info(
            ", ".join(f"{n} {k}" for k, n in counts.items() if n), extra=counts
        )
    for e in r.errors:
        logs.get("deliveries").warning(f"delivery: {e}")


def deliveries(
    session: Session,
    *,
    statuses: list[str] | None = None,
    since: str | datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The deliveries in ``statuses`` (all by default), newest first; ``limit`` of them from
    the ``offset``-th on."""
    from ..handoff.deliver import listing
    from .people import people_of

    rows = listing(session.backend, statuses, day("--since", since), limit, offset)
    known = people_of(session, (r["entity_id"] for r in rows if r.get("entity") == "user"))
    for r in rows:  # who a delivery is about, as a person (the id stays in entity_id)
        r["person"] = known.get(str(r["entity_id"])) if r.get("entity") == "user" else None
    return rows


def delivery_counts(session: Session) -> dict[str, int]:
    """How many deliveries there are in each status."""
    from ..handoff.transitions import DELIVERIES, ensure_tables

    ensure_tables(session.backend)
    d = session.backend.table(DELIVERIES)
    return dict(session.backend.values(d.group_by("status").aggregate(n=d.count())))


def retry(session: Session, *, statuses: list[str], since: str | datetime | None = None) -> int:
    """Make the deliveries in ``statuses`` (since a date) due again now; how many."""
    from ..handoff.deliver import retry as run

    return run(session.backend, utc_now(), statuses, day("--since", since))


def retry_one(session: Session, transition_id: str, destination: str) -> int:
    """Make one delivery that is not pending due again now (1), or nothing (0)."""
    from ..handoff.deliver import retry_one as run

    return run(session.backend, utc_now(), transition_id, destination)


def enable(session: Session, destination: str) -> int:
    """Enable a destination a 410 disabled; its disabled deliveries are due again (how many)."""
    from ..handoff.deliver import enable as run

    return run(session.backend, destination, utc_now())


def feedback(
    session: Session,
    user_id: str,
    action: str,
    *,
    reason: str | None = None,
    by: str | None = None,
    cooldown: str | None = None,
) -> Any:
    """A rep's feedback on a user: done or disqualify (with a reason); no re-alert during the
    cooldown (the model's `handoff.cooldown`, or ``cooldown``)."""
    from ..handoff.feedback import record_feedback
    from .common import duration

    handoff = session.model.handoff
    if handoff is None:
        raise PqlkitError(
            f"{session.loaded.path}: the model has no `handoff:` section (destinations and "
            "routes); see docs/model.md"
        )
    span = duration("--cooldown", cooldown or handoff.cooldown)
    return record_feedback(
        session.backend, user_id, action, reason=reason, by=by, now=utc_now(), cooldown=span
    )
