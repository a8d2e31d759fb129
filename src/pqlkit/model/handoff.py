"""The hand-off: which transitions (a user becoming a PQL, a tier changing...) go to which
destinations. Declared in the model like everything a RevOps person decides; secrets are named
by environment variable, never written in the model file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import ConfigDict, Field, field_validator

from .crm import HubSpotDestination, SalesforceDestination
from .signals import Duration
from .strict import Strict

TRANSITIONS = (
    "became_pql",
    "left_pql",
    "tier_changed",
    "segment_changed",
    "motion_changed",
    "became_pqa",
)
Transition = Literal[
    "became_pql", "left_pql", "tier_changed", "segment_changed", "motion_changed", "became_pqa"
]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=100)]
DestinationId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]


class _Strict(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


class WebhookDestination(_Strict):
    """A signed webhook (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)."""

    id: DestinationId
    """Unique id, named by routes."""
    kind: Literal["webhook"]
    """`webhook`."""
    url: str
    """Where to POST (http or https)."""
    secret_env: EnvName
    """The environment variable holding the signing secret (`whsec_...`); several secrets,
    separated by spaces, sign with each (key rotation)."""
    timeout: Duration = "10s"
    """How long to wait for an answer before trying again later."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 16
    """How many deliveries may be in flight to this URL at once. Sending starts with one at a
    time, doubles with each success up to this bound, and goes back to one after a failure."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    def env_names(self) -> list[str]:
        return [self.secret_env]


class SlackDestination(_Strict):
    """A Slack incoming webhook: a readable Block Kit message."""

    id: DestinationId
    """Unique id, named by routes."""
    kind: Literal["slack"]
    """`slack`."""
    url_env: EnvName
    """The environment variable holding the incoming-webhook URL (it is a secret)."""
    link: str | None = None
    """A link for each message; `{user_id}` is replaced (e.g. your CRM's or pqlkit's lead page)."""
    timeout: Duration = "10s"
    """How long to wait for an answer before trying again later."""

    def env_names(self) -> list[str]:
        return [self.url_env]


class TeamsDestination(_Strict):
    """A Microsoft Teams channel: an Adaptive Card per transition, posted to the channel's
    Workflows URL ("Post to a channel when a webhook request is received") or incoming-webhook
    URL."""

    id: DestinationId
    """Unique id, named by routes."""
    kind: Literal["teams"]
    """`teams`."""
    url_env: EnvName
    """The environment variable holding the Workflows or incoming-webhook URL (it is a secret)."""
    link: str | None = None
    """A link for each card; `{user_id}` is replaced (e.g. your CRM's or pqlkit's lead page)."""
    timeout: Duration = "10s"
    """How long to wait for an answer before trying again later."""

    def env_names(self) -> list[str]:
        return [self.url_env]


Destination = Annotated[
    WebhookDestination
    | SlackDestination
    | TeamsDestination
    | HubSpotDestination
    | SalesforceDestination,
    Field(discriminator="kind"),
]


class _DecisionFilter(_Strict):
    """Keys on what scoring decided; every listed key must match (unlisted: any)."""

    motion: list[str] | None = None
    """Only users (or accounts' champions) routed to these motions."""
    segment: list[str] | None = None
    """Only these segments."""
    tier: list[str] | None = None
    """Only these tiers."""
    profile: list[str] | None = None
    """Only these ICP profiles."""

    def admits(self, decided: Mapping[str, Any]) -> bool:
        """Whether a user's (or account's) decided motion, segment, tier and ICP profile are
        among the listed ones."""
        for key, allowed in (
            ("motion", self.motion),
            ("segment", self.segment),
            ("tier", self.tier),
            ("icp_profile", self.profile),
        ):
            if allowed is not None and decided.get(key) not in allowed:
                return False
        return True


class RouteFilter(_DecisionFilter):
    """Which transitions a route takes: every listed key must match (unlisted: any)."""

    transitions: list[Transition] = Field(default=["became_pql"], min_length=1)
    """Transition kinds (default: became_pql)."""


class HandoffRoute(_Strict):
    """Send the transitions that match `when` to the destinations in `to`."""

    when: RouteFilter = RouteFilter()
    """Which transitions (default: every became_pql)."""
    to: list[DestinationId] = Field(min_length=1)
    """Destination ids."""


class PromptFilter(_DecisionFilter):
    """Which users a prompt is for: every listed key must match (unlisted: any)."""

    pql: bool | None = True
    """Only PQLs (default), only non-PQLs (`false`), or anyone (`null`)."""


class Prompt(_Strict):
    """An in-app upgrade prompt the product may show (its copy lives in the product)."""

    id: DestinationId
    """What the product shows, by id (e.g. `upgrade_team`, `talk_to_sales`)."""
    when: PromptFilter = PromptFilter()
    """Who it is for (default: every PQL)."""
    data: dict[Annotated[str, Field(max_length=63)], Annotated[str, Field(max_length=500)]] = {}
    """Strings passed to the product with the answer (e.g. a plan to offer)."""


class Prompts(_Strict):
    """The in-app prompt API (`GET /v1/prompts/{user_id}` on `pql serve --model`): the first
    prompt whose `when` matches the user's live state, within a frequency cap."""

    rules: list[Prompt] = Field(min_length=1)
    """Prompts, first match wins."""
    cooldown: Duration = "1d"
    """After a prompt is shown (answered `show: true`), none is shown to that user for this long."""
    cap: int = Field(default=3, ge=1, le=1000)
    """At most this many prompts shown to a user..."""
    cap_window: Duration = "30d"
    """...within this window."""


class Handoff(_Strict):
    """Where transitions go."""

    destinations: list[Destination] = []
    """Webhooks, Slack channels, Teams channels, HubSpot and Salesforce. None (`[]`) records
    transitions and keeps the live state (the inbox, the prompt API) and sends nothing: how the
    demo starts."""
    routes: list[HandoffRoute] = []
    """Routes, each to one or more destinations; a transition goes to every route it matches.
    None (`[]`, the default) records transitions and delivers nothing: e.g. CRM destinations
    written only by `pql sync crm`."""
    cooldown: Duration = "30d"
    """After a rep marks a user done or disqualified (`pql feedback`), how long their transitions
    are recorded but not delivered (no re-alert)."""
    prompts: Prompts | None = None
    """In-app upgrade prompts the product asks for (`GET /v1/prompts/{user_id}`)."""
    retry_for: Duration = "3d"
    """How long a failing delivery is retried (Standard Webhooks' schedule: 5 s, 5 min, 30 min,
    2 h, 5 h, 10 h, 10 h...) before it is dead-lettered."""


__all__ = [
    "TRANSITIONS",
    "Handoff",
    "HandoffRoute",
    "Prompt",
    "PromptFilter",
    "Prompts",
    "RouteFilter",
    "SlackDestination",
    "TeamsDestination",
    "WebhookDestination",
]
