"""Signing in and out of the web app, and the session a request carries.

Three cookies, all HttpOnly and SameSite=Strict: ``pql_session`` (an opaque random id of a
session kept in the database, :mod:`.sessions`), ``pql_login`` (the sign-in form's CSRF token,
before anyone is known: a double-submit token, so a visit to /login writes nothing) and
``pql_known`` (this browser signed in as a name before, :mod:`.guard`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ..access import accounts, sessions
from ..backends import connect
from ..errors import PqlkitError
from . import guard
from .http import safe_next, same, unavailable

LOGIN = "pql_login"
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class Door:
    def __init__(
        self,
        ui: Any,
        secret: str,
        *,
        https_only: bool = False,
        max_age: int = sessions.MAX_AGE,
        throttle: guard.Throttle | None = None,
        trusted_proxies: Iterable[str] = (),
    ):
        self.ui, self.secret = ui, secret
        self.https_only, self.max_age = https_only, max_age
        self.throttle = throttle or guard.Throttle()
        self.trusted = guard.networks(trusted_proxies)

    def cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=self.https_only,
        )

    def address(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return guard.client_address(peer, request.headers.getlist("x-forwarded-for"), self.trusted)

    def signed_in(self, request: Request, backend: Any) -> accounts.User | None:
        """The request's user, its session on ``request.state.session``; None when it has no
        live session or its user is gone or has another password since."""
        request.state.session = None
        session = sessions.load(backend, request.cookies.get(sessions.COOKIE))
        if session is None:
            return None
        user = accounts.get(backend, session.name)
        if user is None or not same(session.fingerprint, user.fingerprint):
            sessions.end(backend, session.id)
            return None
        request.state.session = session
        return user

    # --- the sign-in form ------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        token = request.cookies.get(LOGIN) or ""
        if not TOKEN.fullmatch(token):  # none yet, or not one of ours
            token = secrets.token_urlsafe(32)
        request.state.csrf = token
        response = self.ui.render(
            request, "login.html", next=safe_next(request.query_params.get("next"))
        )
        self.cookie(response, LOGIN, token, self.max_age)
        return response

    def _form_error(self, request: Request, status: int, target: str, error: str) -> Response:
        request.state.csrf = request.cookies.get(LOGIN, "")
        return self.ui.render(request, "login.html", status, next=target, error=error)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        fields: dict[str, str] = {}
        for k in ("csrf", "name", "password", "next"):
            value = form.get(k, "")
            if not isinstance(value, str):
                return PlainTextResponse("400 Bad Request: the sign-in form takes text only", 400)
            fields[k] = value
        given, expected = fields["csrf"], request.cookies.get(LOGIN, "")
        if not same(given, expected):
            return PlainTextResponse("403 Forbidden: reload the sign-in page and try again", 403)
        name, password = fields["name"].strip(), fields["password"]
        target = safe_next(fields["next"])
        address = self.address(request)
        key = guard.name_key(self.secret, name, request.cookies.get(guard.KNOWN))
        wait = self.throttle.take(key, address)
        if wait > 0:
            return self._form_error(
                request,
                429,
                target,
                f"Too many failed sign-ins; try again in {int(wait) + 1} seconds.",
            )

        def check() -> tuple[accounts.User, sessions.Session] | None:
            backend = connect(self.ui.url)
            try:
                user = accounts.verify(backend, name, password)
                if user is None:
                    return None
                return user, sessions.start(
                    backend, user.name, user.fingerprint, max_age=self.max_age
                )
            finally:
                backend.close()

        try:
            signed = await run_in_threadpool(check)
        except PqlkitError as exc:
            return unavailable(exc)
        if signed is None:
            return self._form_error(request, 401, target, "Wrong name or password.")
        user, session = signed
        self.throttle.succeeded(key, address)
        response = RedirectResponse(target, 303)
        self.cookie(response, sessions.COOKIE, session.id, self.max_age)
        self.cookie(
            response, guard.KNOWN, guard.known_cookie(self.secret, user.name), guard.KNOWN_MAX_AGE
        )
        return response

    def logout(self, request: Request, form: Any, me: accounts.User, s: Any) -> Response:
        sessions.end(s.backend, request.state.session.id)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(sessions.COOKIE, httponly=True, samesite="strict")
        return response
