"""Microsoft Teams: an Adaptive Card posted to a channel's Workflows URL ("Post to a channel
when a webhook request is received") or to a legacy incoming-webhook URL, read from the
environment (it is a secret).

The card has a plain fallback (the message's `summary` and the card's `fallbackText`, shown in
notifications and by clients that cannot render cards). Text from the data never goes in a
TextBlock, whose text Teams renders as Markdown: it goes in TextRuns, which Teams shows as
they are, so `[link](...)`, `**bold**`, `<at>` mentions and HTML in a company name stay text.
No mention entities are sent, so nothing notifies anyone by name.

Limits (Microsoft's documentation for connectors and Workflows): about 4 requests a second
and 60 per 30 seconds per URL, a message of at most 28 KB. Messages to one destination are
paced half a second apart (60 per 30 s); each text is clipped (500 characters, 10 reasons) so
a card stays well under 28 KB. Answers: Workflows answer 202, incoming webhooks 200; an
incoming webhook that is throttled may still answer 200 with "HTTP error 429" in its body,
which is a 429 here (wait 30 seconds, Teams' window); 404 (the URL was deleted) and 413 are
permanent, 429 and 5xx are retried, Retry-After is honoured, as for every HTTP kind.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlparse

from .base import (
    Delivery,
    HttpDestination,
    Outcome,
    Retry,
    RetryAfter,
    classify,
    kind_words,
    subject,
)
from .slack import person

if TYPE_CHECKING:
    import httpx

CLIP = 500
"""Characters kept of each text from the data."""
REASONS = 10
URL_MAX = 2048
"""A longer lead link (an absurd user id) is left out rather than clipped into a wrong one."""
THROTTLED_WAIT = 30.0
"""Seconds to wait when an incoming webhook says it was throttled in a 200 (Teams counts
requests in 30-second windows)."""


def _clip(value: Any) -> str:
    text = str(value)
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def _run(text: Any, **style: Any) -> dict[str, Any]:
    """A TextRun: shown as it is, never as Markdown."""
    return {"type": "TextRun", "text": _clip(text), **style}


def _line(label: str, value: Any) -> dict[str, Any]:
    return {
        "type": "RichTextBlock",
        "inlines": [_run(f"{label}: ", weight="Bolder"), _run(value)],
    }


def teams_message(payload: dict[str, Any], link: str | None) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card for one transition."""
    s = subject(payload)
    who = s.get("id", "?")
    kind = kind_words(payload)
    company = s.get("account_id") or s.get("name") or s.get("domain") or "-"
    named = person(s) if "user" in payload else str(s.get("name") or who)  # ids stay in links
    plain = _clip(
        f"{named} ({company}) {kind}: score {s.get('score')} (tier {s.get('tier')}), "
        f"{s.get('motion')}"
    )
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": kind.capitalize(), "weight": "Bolder", "size": "Medium"},
        {"type": "RichTextBlock", "inlines": [_run(named, weight="Bolder")]},
        _line("Company", company),
        _line("Score", f"{s.get('score')} (tier {s.get('tier')})"),
        _line("Motion", s.get("motion")),
        _line("Segment", s.get("segment")),
    ]
    reasons = (s.get("top_reasons") or [])[:REASONS]
    if reasons:
        body.append({"type": "TextBlock", "text": "Why", "weight": "Bolder"})
        body += [{"type": "RichTextBlock", "inlines": [_run(f"• {r}")]} for r in reasons]
    if isinstance(s.get("champion"), dict):
        body.append(_line("Champion", person(s["champion"])))
    step = s.get("next_step")
    if isinstance(step, dict):
        body.append({"type": "TextBlock", "text": "Next step", "weight": "Bolder"})
        body.append({"type": "RichTextBlock", "inlines": [_run(step.get("action", ""))]})
        points = (step.get("talking_points") or [])[:REASONS]
        body += [{"type": "RichTextBlock", "inlines": [_run(f"– {p}")]} for p in points]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": plain,
        "body": body,
    }
    url = link and link.replace("{user_id}", quote(str(who), safe=""))  # an id is data
    if url and len(url) <= URL_MAX:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the lead", "url": url}]
    return {
        "type": "message",
        "summary": plain,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


_RUN = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"enum": ["TextRun"]}, "text": {"type": "string", "maxLength": CLIP}},
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "summary", "attachments"],
    "properties": {
        "type": {"enum": ["message"]},
        "summary": {"type": "string"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"enum": ["application/vnd.microsoft.card.adaptive"]},
                    "content": {
                        "type": "object",
                        "required": ["type", "version", "body", "fallbackText"],
                        "properties": {
                            "type": {"enum": ["AdaptiveCard"]},
                            "version": {"enum": ["1.4"]},
                            "fallbackText": {"type": "string"},
                            "body": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["type"],
                                    "properties": {
                                        "type": {"enum": ["TextBlock", "RichTextBlock"]},
                                        "text": {"type": "string"},
                                        "inlines": {"type": "array", "items": _RUN},
                                    },
                                },
                            },
                            "actions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["type", "title", "url"],
                                    "properties": {"type": {"enum": ["Action.OpenUrl"]}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
"""The Adaptive Card subset a message uses (Teams supports card version 1.4 and below)."""


class Teams(HttpDestination):
    """One Adaptive Card per delivery to the Workflows or incoming-webhook URL in the
    environment."""

    kind: ClassVar[str] = "teams"
    interval: ClassVar[float] = 0.5
    syntax: ClassVar[str | None] = "markdown"
    schema: ClassVar[dict[str, Any]] = SCHEMA

    @classmethod
    def check_secrets(cls, spec: Any, values: list[str]) -> list[str]:
        parsed = urlparse(values[0])
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"{spec.url_env} is not an http(s) URL (copy the channel's Workflows "
                "or incoming-webhook URL)"
            )
        return values

    def request(self, delivery: Delivery) -> tuple[str, str, dict[str, str]]:
        message = teams_message(delivery.data(), self.spec.link)
        return self.secrets[0], json.dumps(message), {"content-type": "application/json"}

    def classify(self, response: httpx.Response) -> Outcome:
        text = response.text
        if 200 <= response.status_code < 300 and "HTTP error" in text:
            error = f"HTTP {response.status_code}: {text[:200].strip()}"
            if "HTTP error 429" in text:
                return RetryAfter(THROTTLED_WAIT, error, 429)
            return Retry(error, response.status_code)
        return classify(response.status_code, text, response.headers.get("retry-after"))

    @staticmethod
    def markup(body: Any) -> list[str]:
        """Every TextBlock's text (Teams renders it as Markdown)."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if node.get("type") == "TextBlock":
                    out.append(node["text"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(body)
        return out

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        return (
            {
                "id": "team",
                "kind": "teams",
                "url_env": "PQL_TEST_TEAMS_URL",
                "link": "https://app.example.com/leads/{user_id}",
            },
            {"PQL_TEST_TEAMS_URL": url},
        )
