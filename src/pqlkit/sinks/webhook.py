"""Sending a hand-off over HTTP: signed webhooks (Standard Webhooks) and Slack messages.

The signature comes from the `standardwebhooks` library (the specification's reference
implementation), so any receiver's verifier accepts it; with several secrets (rotation) each
signs and the signatures go space-separated in one header. HTTP goes through an httpx client
the caller passes in (tests pass one to a real local receiver). Retry decisions are the
caller's: this module reports what happened, classified as the specification says.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx


@dataclass(frozen=True)
class Sent:
    """What one attempt came to."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked to wait (429 or 503 with Retry-After)."""
    gone: bool = False
    """410 Gone: the endpoint asks never to be called again."""
    permanent: bool = False
    """A 4xx other than 408, 409, 425, 429: sending it again cannot help."""


def signature(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    from standardwebhooks import Webhook

    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets)


def post(
    client: httpx.Client, url: str, body: str, headers: dict[str, str], timeout: float
) -> Sent:
    try:
        response = client.post(url, content=body.encode(), headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:  # refused, reset, timed out: try again later
        return Sent(False, error=f"{type(exc).__name__}: {exc}".strip(": "))
    status = response.status_code
    if 200 <= status < 300:
        return Sent(True, status)
    error = f"HTTP {status}: {response.text[:200].strip()}".rstrip(": ")
    if status == 410:
        return Sent(False, status, error, gone=True)
    retry_after = (
        _retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
    )
    permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
    return Sent(False, status, error, retry_after=retry_after, permanent=permanent)


def send_webhook(
    client: httpx.Client,
    url: str,
    secrets: list[str],
    msg_id: str,
    payload: str,
    timeout: float,
    now: datetime | None = None,
) -> Sent:
    """POST ``payload`` with webhook-id (the transition's stable id, the same on every retry),
    a fresh webhook-timestamp and its signature."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.replace(tzinfo=UTC).timestamp())),
        "webhook-signature": signature(secrets, msg_id, when, payload),
        "user-agent": "pqlkit",
    }
    return post(client, url, payload, headers, timeout)


def slack_message(payload: dict[str, Any], link: str | None) -> dict[str, Any]:
    """A Block Kit message for one transition, with the plain-text fallback Slack shows in
    notifications."""
    subject = payload.get("user") or payload.get("account") or {}
    who = subject.get("id", "?")
    kind = str(payload.get("type", "")).removeprefix("pql.").replace("_", " ")
    company = subject.get("account_id") or subject.get("name") or subject.get("domain") or "-"
    text = (
        f"{who} ({company}) {kind}: score {subject.get('score')} (tier {subject.get('tier')}), "
        f"{subject.get('motion')}"
    )
    reasons = subject.get("top_reasons") or []
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{kind.capitalize()}: {who}"[:150]},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Company*\n{_md(company)}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Score*\n{subject.get('score')} (tier {_md(subject.get('tier'))})",
                },
                {"type": "mrkdwn", "text": f"*Motion*\n{_md(subject.get('motion'))}"},
                {"type": "mrkdwn", "text": f"*Segment*\n{_md(subject.get('segment'))}"},
            ],
        },
    ]
    if reasons:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Why*\n" + "\n".join(f"• {_md(r)}" for r in reasons),
                },
            }
        )
    if link:
        url = link.replace("{user_id}", quote(str(who), safe=""))  # an id is data, not link syntax
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{url}|Open the lead>"}]}
        )
    return {"text": text, "blocks": blocks}


def _md(value: Any) -> str:
    """Slack mrkdwn with &, < and > escaped (they would start links and mentions)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
