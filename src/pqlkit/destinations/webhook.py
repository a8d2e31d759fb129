"""Signed webhooks (Standard Webhooks).

The signature comes from the `standardwebhooks` library (the specification's reference
implementation), so any receiver's verifier accepts it; with several secrets (rotation) each
signs and the signatures go space-separated in one header. The body is the transition's JSON
as recorded, unchanged: data, never markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from .base import Delivery, HttpDestination


def signature(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    from standardwebhooks import Webhook as Signer

    return " ".join(Signer(s).sign(msg_id, timestamp, body) for s in secrets)


_FIELDS: dict[str, Any] = {"id": {"type": "string"}, "score": {"type": "number"}}
_USER_FIELDS: dict[str, Any] = {
    "points": {"type": ["integer", "null"]},
    "likelihood": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "grade": {"type": ["string", "null"]},
    "top_reasons": {"type": "array", "items": {"type": "string"}},
}
_ENTITY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "score", "tier", "segment", "motion"],
    "properties": _FIELDS,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "id", "as_of", "model_version", "change"],
    "properties": {
        "type": {
            "enum": [
                "pql.became_pql",
                "pql.left_pql",
                "pql.tier_changed",
                "pql.segment_changed",
                "pql.motion_changed",
                "pql.became_pqa",
            ]
        },
        "id": {"type": "string"},
        "as_of": {"type": "string"},
        "change": {"type": "object", "required": ["from", "to"]},
        "user": _ENTITY | {"properties": _FIELDS | _USER_FIELDS},
        "account": _ENTITY,
    },
}
"""A transition event as receivers get it: a user's (`user`) or an account's (`account`)."""


class Webhook(HttpDestination):
    """POST the transition with webhook-id (the transition's stable id, the same on every
    retry), a fresh webhook-timestamp and its signature."""

    kind: ClassVar[str] = "webhook"
    auth: ClassVar[str] = "signature"
    schema: ClassVar[dict[str, Any]] = SCHEMA

    @classmethod
    def check_secrets(cls, spec: Any, values: list[str]) -> list[str]:
        from standardwebhooks import Webhook as Signer

        secrets = values[0].split()
        for s in secrets:
            try:
                Signer(s)
            except Exception as exc:
                raise ValueError(f"{spec.secret_env} is not a whsec_ secret ({exc})") from None
        return secrets

    def request(self, delivery: Delivery) -> tuple[str, str, dict[str, str]]:
        when = self.session.now().replace(microsecond=0, tzinfo=UTC)
        body = delivery.payload
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.transition_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature(self.secrets, delivery.transition_id, when, body),
            "user-agent": "pqlkit",
        }
        return self.spec.url, body, headers

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        return (
            {"id": "hook", "kind": "webhook", "url": url, "secret_env": "PQL_TEST_HOOK_SECRET"},
            {"PQL_TEST_HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        )
