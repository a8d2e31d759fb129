"""What every page shares: security headers, safe redirects, links and figures for people."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
DELIVERY_STATUSES = ("pending", "failed", "dead", "disabled", "delivered")


MAX_FORM = 64 * 1024
"""The largest request body the app reads (its forms are a few hundred bytes)."""


class BodyTooLarge(Exception):
    pass


class SecurityHeaders:
    """Adds the headers above to every response, no-store to every page, and refuses a body
    over MAX_FORM with 413 (by its Content-Length, or as it streams in without one)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        try:
            too_big = int(declared) > MAX_FORM
        except ValueError:
            too_big = True
        if too_big:
            await _too_large(send)
            return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_FORM:
                raise BodyTooLarge
            return message

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            await _too_large(send)


async def _too_large(send) -> None:
    body = f"413 Request Entity Too Large: at most {MAX_FORM // 1024} KB".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain"), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


FORBIDDEN = "this page is for admins; ask an admin (pql users add NAME --role admin)"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/inbox"
    return target


def back(request: Request, form: Any) -> str:
    return safe_next(str(form.get("back", "")) or None)


def lead_url(user_id: Any) -> str:
    return "/leads/" + quote(str(user_id), safe="")


def account_url(account_id: Any) -> str:
    return "/accounts/" + quote(str(account_id), safe="")


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def num(value: Any) -> str:
    """A figure for people: whole numbers as they are, others to 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"
    return str(value)
