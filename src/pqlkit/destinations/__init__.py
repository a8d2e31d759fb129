"""Destinations: where a hand-off delivery is sent, one class per kind, in one registry.

Each kind is a class built from its model declaration, its secrets (from the environment) and a
:class:`Session` (the HTTP client, the clock, how to sleep, and the database a batch kind
writes through). ``send(delivery)`` returns what the attempt came to as one typed
:data:`Outcome`: :class:`Ok`, :class:`Retry` (a network error or a 5xx: try again on the
schedule), :class:`RetryAfter` (429 or 503 with Retry-After: wait that long),
:class:`Gone` (410: never call again) or :class:`Permanent` (another 4xx: sending it again
cannot help). Recording outcomes (the database work) is the hand-off's; this package only
sends.

:data:`KINDS` holds the HTTP kinds (webhook, slack, teams). Kinds that need more than HTTP
(the CRM kinds write their records through a ledger) live with what they need and are added
to a copy of this registry by whoever composes the system (``pqlkit.crm.destinations``); a
kind missing from the registry a pass is given is an error, never a default.

This is a bottom layer: it imports errors, model and HTTP libraries, never the hand-off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PqlkitError
from .base import (
    Delivery,
    Destination,
    Gone,
    HttpDestination,
    Ok,
    Outcome,
    Pacer,
    Permanent,
    Retry,
    RetryAfter,
    Session,
)
from .slack import Slack
from .teams import Teams
from .webhook import Webhook

Factory = Callable[[Any, list[str], Session], Destination]
"""(declaration, secrets, session) -> a destination: a class, or a function binding more."""
Registry = Mapping[str, Factory]

KINDS: dict[str, Factory] = {"webhook": Webhook, "slack": Slack, "teams": Teams}
"""The HTTP kinds, by the `kind` their declaration carries in the model."""


def factory(kinds: Registry, spec: Any) -> Factory:
    """The registered factory of ``spec``'s kind; a PqlkitError naming the destination when
    this registry has none."""
    kind = getattr(spec, "kind", None)
    try:
        return kinds[kind]  # type: ignore[index]
    except KeyError:
        raise PqlkitError(
            f"handoff.destinations[{getattr(spec, 'id', '?')}]: no sender for kind {kind!r} "
            f"here (this registry has {', '.join(sorted(kinds))}); CRM kinds are sent by "
            "`pql deliver` and `pql serve --model`, which compose pqlkit.crm.destinations"
        ) from None


def build(kinds: Registry, spec: Any, secrets: list[str], session: Session) -> Destination:
    """The destination ``spec`` declares, ready to send."""
    return factory(kinds, spec)(spec, secrets, session)


__all__ = [
    "KINDS",
    "Delivery",
    "Destination",
    "Factory",
    "Gone",
    "HttpDestination",
    "Ok",
    "Outcome",
    "Pacer",
    "Permanent",
    "Registry",
    "Retry",
    "RetryAfter",
    "Session",
    "Slack",
    "Teams",
    "Webhook",
    "build",
    "factory",
]
