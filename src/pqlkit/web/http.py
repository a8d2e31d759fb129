"""What every page shares: security headers, safe redirects, links and figures for people."""

from __future__ import annotations

import hmac
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import PqlkitError

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


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_VALUE = 4096
"""The longest id, filter or form field the app reads (a search of 4,000 characters finds
nothing a shorter one would not)."""
FIELDS = {"user_id": "the lead id", "account_id": "the account id", "q": "the search"}


def refused_text(items: Iterable[tuple[str, Any]]) -> str | None:
    """Why these path, query or form fields are refused (None: they are fine): text only, no
    control characters (a NUL cannot reach a database), at most MAX_VALUE characters."""
    for key, value in items:
        what = FIELDS.get(key, f"the field {key[:40]!r}")
        if not isinstance(value, str):
            return f"{what} must be text, not a file upload"
        for text in (key, value):
            found = CONTROL.search(text)
            if found:
                return (
                    f"{what} has a control character (U+{ord(found.group()):04X}) at position "
                    f"{found.start() + 1}; ids, filters and searches are plain text"
                )
        if len(value) > MAX_VALUE:
            return f"{what} is {len(value):,} characters long; at most {MAX_VALUE:,} are read"
    return None


def same(given: Any, expected: Any) -> bool:
    """Whether a token given (a form field, a cookie) is the one expected, in constant time;
    as bytes, since hmac refuses to compare text with characters beyond ASCII."""
    if not (isinstance(given, str) and isinstance(expected, str) and given and expected):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def unavailable(exc: Exception) -> Response:
    """503 for a model that stopped loading or a database that is busy or gone: the details go
    to the server's log, not to whoever asked (they may not be signed in)."""
    print(f"pql ui: {exc}", file=sys.stderr, flush=True)
    return PlainTextResponse(
        "503 Service Unavailable: pqlkit cannot read its model or database right now; try "
        "again shortly (the server's log says why)",
        503,
        headers={"retry-after": "5"},
    )


FORBIDDEN = (
    "This page is for admins (the model's health and the hand-off's deliveries). If your work "
    "needs it, ask whoever runs pqlkit for your team to make your account an admin."
)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or CONTROL.search(target)
        or len(target) > MAX_VALUE
    ):
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


def wbr(value: Any) -> Markup:
    """An id as text a line may break after each underscore (maxed_out_free)."""
    return Markup(str(escape(when(value))).replace("_", "_<wbr>"))


def num(value: Any) -> str:
    """A figure for people: whole numbers as they are, others to 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"
    return str(value)


def page_number(text: str | None) -> int:
    """A page's number from the query (1 when not given)."""
    try:
        page = int(text or 1)
    except ValueError:
        raise PqlkitError(f"page {text!r} is not a number") from None
    if page < 1:
        raise PqlkitError(f"page {page}: pages count from 1")
    return page
