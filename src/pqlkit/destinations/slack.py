"""Slack incoming webhooks: a readable Block Kit message.

Slack takes about one message a second per incoming webhook, so messages to one destination
are paced a second apart. Every text from the data (ids, company, segment, reasons) is
escaped as Slack asks (&, < and >, which would start links and mentions such as <!channel>),
in the blocks and in the plain fallback `text` alike: Slack renders that one as mrkdwn too,
in notifications.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import quote

from .base import Delivery, HttpDestination, kind_words, subject


def md(value: Any) -> str:
    """Slack mrkdwn with &, < and > escaped."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def person(who: dict[str, Any] | None) -> str:
    """A person as a rep knows them: e-mail (else id) and role, e.g. "ana@acme.com (CTO)"."""
    if not who:
        return "-"
    name = who.get("email") or who.get("id") or "?"
    return f"{name} ({who['role']})" if who.get("role") else str(name)


def _next_step(step: Any) -> str:
    """A play as mrkdwn: the action, its talking points and its links."""
    lines = [f"*Next step*\n{md(step.get('action', ''))}"]
    lines += [f"• {md(p)}" for p in step.get("talking_points") or []]
    links = [
        f"<{md(quote(str(link.get('url', '')), safe=':/?#[]@!$&()*+,;=%~'))}|{md(link.get('label', ''))}>"
        for link in step.get("links") or []
        if isinstance(link, dict)
    ]
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)[:3000]


def slack_message(payload: dict[str, Any], link: str | None) -> dict[str, Any]:
    """A Block Kit message for one transition, with the fallback Slack shows in notifications.
    People are named as people (e-mail and role); ids stay in the link."""
    if str(payload.get("type", "")).startswith("pql.tracking."):
        return alert_message(payload)
    who_raw = subject(payload).get("id", "?")
    s = subject(payload)
    kind = kind_words(payload)
    company = s.get("account_id") or s.get("name") or s.get("domain") or "-"
    named = person(s) if "user" in payload else str(s.get("name") or who_raw)
    who = md(named)
    text = (
        f"{who} ({md(company)}) {kind}: score {md(s.get('score'))} (tier {md(s.get('tier'))}), "
        f"{md(s.get('motion'))}"
    )
    reasons = s.get("top_reasons") or []
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",  # plain_text: Slack shows it as it is
            "text": {"type": "plain_text", "text": f"{kind.capitalize()}: {named}"[:150]},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Company*\n{md(company)}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Score*\n{md(s.get('score'))} (tier {md(s.get('tier'))})"
                    + _likelihood(s),
                },
                {"type": "mrkdwn", "text": f"*Motion*\n{md(s.get('motion'))}"},
                {"type": "mrkdwn", "text": f"*Segment*\n{md(s.get('segment'))}"},
            ],
        },
    ]
    if reasons:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Why*\n" + "\n".join(f"• {md(r)}" for r in reasons),
                },
            }
        )
    if isinstance(s.get("champion"), dict):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Champion*\n{md(person(s['champion']))}"},
            }
        )
    if isinstance(s.get("next_step"), dict):
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _next_step(s["next_step"])}}
        )
    if link:
        url = link.replace("{user_id}", quote(str(who_raw), safe=""))  # an id is data
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{url}|Open the lead>"}]}
        )
    return {"text": text, "blocks": blocks}


def alert_message(payload: dict[str, Any]) -> dict[str, Any]:
    """An instrumentation alert (an event stopped, fell, or is back): its one sentence."""
    text = md(payload.get("text", payload.get("type")))
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _likelihood(s: dict[str, Any]) -> str:
    """The calibrated likelihood and grade, when the model has a calibration."""
    p = s.get("likelihood")
    return "" if p is None else f"\nlikelihood {float(p):.0%}, grade {md(s.get('grade'))}"


_TEXT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["mrkdwn", "plain_text"]},
        "text": {"type": "string", "maxLength": 3000},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text", "blocks"],
    "properties": {
        "text": {"type": "string"},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["header", "section", "context"]},
                    "text": _TEXT,
                    "fields": {"type": "array", "maxItems": 10, "items": _TEXT},
                    "elements": {"type": "array", "items": _TEXT},
                },
            },
        },
    },
}
"""The Block Kit subset a message uses, with Slack's limits (50 blocks, 10 fields, 3000
characters a text)."""


class Slack(HttpDestination):
    """One Block Kit message per delivery to the incoming-webhook URL in the environment."""

    kind: ClassVar[str] = "slack"
    interval: ClassVar[float] = 1.0
    syntax: ClassVar[str | None] = "slack-mrkdwn"
    schema: ClassVar[dict[str, Any]] = SCHEMA

    def request(self, delivery: Delivery) -> tuple[str, str, dict[str, str]]:
        message = slack_message(delivery.data(), self.spec.link)
        return self.secrets[0], json.dumps(message), {"content-type": "application/json"}

    @staticmethod
    def markup(body: Any) -> list[str]:
        out = [body["text"]]
        for block in body["blocks"]:
            texts = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
            out += [t["text"] for t in texts if t and t.get("type") == "mrkdwn"]
        return out

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        return (
            {
                "id": "chat",
                "kind": "slack",
                "url_env": "PQL_TEST_SLACK_URL",
                "link": "https://app.example.com/leads/{user_id}",
            },
            {"PQL_TEST_SLACK_URL": url},
        )
