"""Instrumentation health: the tracking plan the model implies (`pql tracking-plan`), the
collector's count of what breaks it, the volume watch of `pql serve --model`, and what the
web app and `pql tracking` show of it."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PqlkitError
from .session import Session

if TYPE_CHECKING:
    from ..model.load import LoadedModel
    from ..model.spec import Model
    from ..tracking.check import Checker
    from ..tracking.plan import TrackingPlan
    from ..tracking.volume import VolumeWatch


def plan(model: Model) -> TrackingPlan:
    """The tracking plan ``model`` implies."""
    from ..tracking.plan import tracking_plan

    return tracking_plan(model)


def export_plan(model: Model | str | Path, out: Path | None = None) -> dict[str, Any]:
    """The plan of ``model`` (or the model file at that path) as JSON Schemas (one per event,
    one for identify, one for group), written one file each into ``out``
    (``<name>.schema.json``) when given."""
    from ..tracking.plan import schemas

    if isinstance(model, str | Path):
        from ..model.load import load_model

        model = load_model(model).model
    found = plan(model)
    bundle = schemas(found)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for stem, schema in bundle.items():
            # an event name is any text: the file's name keeps only what every system allows
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
            (out / f"{safe}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    return {"plan": found.to_dict(), "schemas": bundle}


def checker(model: Model) -> Checker:
    """What the collector's request path counts violations with."""
    from ..tracking.check import Checker

    return Checker(plan(model))


def watched_events(model: Model) -> list[str]:
    """The events a drought of which the volume watch reports: every event the model reads."""
    return list(plan(model).events)


def watch_factory(model_path: str, table: str = "events") -> Callable[[], Any] | None:
    """What makes the volume watch in the flusher's process (picklable), or None when the
    model declares no `instrumentation:` section."""
    from ..model.load import load_model

    loaded = load_model(model_path)
    if loaded.model.instrumentation is None:
        return None
    _notifier(loaded)  # a notify destination that cannot be sent to stops here, clearly
    return functools.partial(_watch, model_path, table)


def _watch(model_path: str, table: str) -> VolumeWatch:
    from ..model.load import load_model
    from ..tracking.volume import VolumeWatch

    loaded = load_model(model_path)
    spec = loaded.model.instrumentation
    assert spec is not None  # checked by watch_factory
    return VolumeWatch(spec, watched_events(loaded.model), table=table, notify=_notifier(loaded))


#: The destination kinds an alert can go to (a short message, not a transition's card).
ALERT_KINDS = ("webhook", "slack")


def _notifier(loaded: LoadedModel) -> Callable[[dict[str, Any]], str] | None:
    """Sends an alert to each destination `instrumentation.notify` names (webhook or Slack: one POST, not retried; what became of it is recorded with the alert)."""
    from ..destinations import KINDS, Delivery, Ok, build
    from ..destinations import Session as Sending
    from ..handoff.deliver import destination, secrets_for

    spec, handoff = loaded.model.instrumentation, loaded.model.handoff
    if spec is None or not spec.notify or handoff is None:
        return None
    specs = [destination(handoff, d) for d in spec.notify]
    for d in specs:
        if d.kind not in ALERT_KINDS:
            raise PqlkitError(
                f"{loaded.path}: instrumentation.notify: {d.id} is a {d.kind} destination; "
                f"alerts go to {' or '.join(ALERT_KINDS)} destinations"
            )
    from ..crm.destinations import KINDS as ALL

    secrets = secrets_for(handoff, kinds=ALL)
    import httpx

    client = httpx.Client()
    senders = [build(KINDS, d, secrets[d.id], Sending(client)) for d in specs]

    def send(payload: dict[str, Any]) -> str:
        body = json.dumps(payload, sort_keys=True)
        alert_id = "alert_" + hashlib.sha256(body.encode()).hexdigest()[:24]
        told = []
        for s in senders:
            outcome = s.send(Delivery(alert_id, s.spec.id, body))  # type: ignore[attr-defined]
            told.append(f"{s.spec.id}: " + ("sent" if isinstance(outcome, Ok) else outcome.error))  # type: ignore[attr-defined]
        return "; ".join(told)

    return send


def alerts(session: Session) -> list[dict[str, Any]]:
    """The events in an alert now (their latest recorded status is dropped or stopped)."""
    from ..tracking.volume import current_alerts

    return current_alerts(session.backend)


def volume_now(
    session: Session, *, table: str = "events", at: datetime | None = None
) -> dict[str, Any]:
    """Every event the model reads, judged now against its baseline (`pql tracking`), and the
    alerts recorded by `pql serve --model`."""
    from ..tracking.volume import judge, volumes

    model = session.model
    spec = model.instrumentation
    if spec is None:
        from ..model.instrumentation import Instrumentation

        spec = Instrumentation()
    events = watched_events(model)
    now = at or datetime.now(UTC).replace(tzinfo=None)
    counts = volumes(session.backend, table, events, spec, now)
    return {
        "window": spec.window,
        "season": spec.season,
        "periods": spec.periods,
        "drop": spec.drop,
        "declared": model.instrumentation is not None,
        "events": [judge(e, counts[e], spec).to_dict() for e in events],
        "alerts": [
            {**a, "at": a["at"].isoformat() if hasattr(a["at"], "isoformat") else a["at"]}
            for a in alerts(session)
        ],
    }


__all__ = [
    "alerts",
    "checker",
    "export_plan",
    "plan",
    "volume_now",
    "watch_factory",
    "watched_events",
]
