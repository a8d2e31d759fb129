"""The product's feedback API (POST /v1/feedback): what a rep's done or disqualify must hold
before it is logged like any request."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..collect.segment_api import ApiError


def feedback_row(
    body: Any, now: datetime, actions: tuple[str, ...], cooldown: timedelta, reader: Any
) -> dict[str, Any]:
    """The row POST /v1/feedback logs, or an ApiError naming what is wrong: the body's fields
    checked, the user known to the live state (``reader``), the cooldown set from ``now``."""
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "invalid_body",
            'send {"user_id": ..., "action": "done"|"disqualify", "reason": ...}',
        )
    unknown = set(body) - {"user_id", "action", "reason", "by"}
    if unknown:
        raise ApiError(
            400,
            "invalid_body",
            f"unknown field(s): {', '.join(sorted(unknown))}; allowed: user_id, action, reason, by",
        )
    user_id, action = body.get("user_id"), body.get("action")
    reason, by = body.get("reason"), body.get("by")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 1000:
        raise ApiError(400, "invalid_user_id", "user_id: a non-empty string")
    if action not in actions:
        raise ApiError(400, "invalid_action", f"action: one of {', '.join(actions)}")
    for name, value in (("reason", reason), ("by", by)):
        if value is not None and (
            not isinstance(value, str) or len(value) > 2000 or "\x00" in value
        ):
            raise ApiError(400, f"invalid_{name}", f"{name}: a string of at most 2000 characters")
    if action == "disqualify" and not (reason and reason.strip()):
        raise ApiError(
            400,
            "reason_required",
            "disqualify needs a reason, so the next rep and learning know why",
        )
    if reader.get(user_id) is None:
        raise ApiError(
            404,
            "unknown_user",
            f"no scored user {user_id!r}: feedback is for users pqlkit has scored",
        )
    quiet = now + cooldown
    return {
        "user_id": user_id,
        "action": action,
        "reason": (reason or "").strip() or None,
        "by": by,
        "at": now.isoformat(),
        "quiet_until": quiet.isoformat(),
    }
