"""`pql serve --ui` hands the web app its proxy settings: X-Forwarded-For from a
`--trusted-proxy` names the client the sign-in throttle counts, from any other peer it is
ignored, and `--https-only` marks the session cookies Secure.

The command is run as written on a command line (click parses it); only uvicorn's Server.run is
replaced, by a hand that keeps the app it was given, and the app is asked over ASGI from the
peer addresses the test chooses (a real socket's peer is always 127.0.0.1)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pqlkit.access import accounts
from pqlkit.backends import connect
from pqlkit.cli.group import cli

from .test_live_serve import MODEL

PROXY = "10.20.0.1"  # the reverse proxy the test trusts
ELSEWHERE = "192.0.2.7"  # a peer nobody trusts
ATTACKER = "198.51.100.9"  # the client the proxy names


def _served(tmp_path, monkeypatch, *options: str) -> Any:
    """The app `pql serve --model ... --ui OPTIONS` would serve."""
    import uvicorn

    import pqlkit.cli.collecting as collecting

    model, db = tmp_path / "pql.yml", tmp_path / "s.duckdb"
    model.write_text(MODEL.replace("RECEIVER", "http://127.0.0.1:9/hook"))
    backend = connect(str(db))
    try:
        accounts.add(backend, "kim", "admin", "correct horse battery")
    finally:
        backend.close()
    kept: list[Any] = []

    def served(server: Any, sockets: Any = None) -> None:
        kept.append(server.config.app)
        server.started = True  # as if it had served and been stopped

    monkeypatch.setattr(uvicorn.Server, "run", served)
    monkeypatch.setattr(collecting, "_exit_zero_after_draining", lambda: [False])
    monkeypatch.setenv("PQL_TEST_HOOK_SECRET", "h" * 32)
    monkeypatch.setenv("PQL_UI_SECRET", "u" * 40)
    monkeypatch.delenv("PQL_TRUSTED_PROXIES", raising=False)
    monkeypatch.setenv("PQLKIT_LOG_FORMAT", "text")  # `pql serve` sets it for its children
    args = ["serve", "--model", str(model), "--url", str(db), "--log-dir", str(tmp_path / "log")]
    args += ["--write-key", "web=wk", "--product-key", "pk", "--ui", *options]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (app,) = kept
    return app


def _sign_in(
    app: Any, peer: str, forwarded_for: str | None, password: str = "wrong password"
) -> list[httpx.Response]:
    """The sign-in page, then a sign-in as kim, from ``peer`` (saying it forwards for
    ``forwarded_for``)."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
        async with httpx.AsyncClient(
            transport=transport, base_url="https://pql.example", headers=headers
        ) as c:
            page = await c.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token, page.text[:300]
            data = {"csrf": token.group(1), "name": "kim", "password": password}
            return [page, await c.post("/login", data=data)]

    return asyncio.run(go())


def _throttle(app: Any) -> Any:
    """The sign-in throttle of the web app behind the combined server."""
    login = next(r for r in app.web.routes if getattr(r, "path", "") == "/login")
    return login.endpoint.__self__.throttle


def test_x_forwarded_for_from_a_trusted_proxy_is_the_client_the_throttle_counts(
    tmp_path, monkeypatch
):
    app = _served(tmp_path, monkeypatch, "--trusted-proxy", "10.20.0.0/16")
    throttle = _throttle(app)
    for _ in range(throttle.per_address):  # the attacker's address has used its attempts
        assert throttle.take(f"other{_}", ATTACKER) == 0.0
    # from the trusted proxy, the client it names is the one counted: refused at once
    assert _sign_in(app, PROXY, ATTACKER)[1].status_code == 429
    # the same header from a peer nobody trusts is not heard: the peer is counted, and the
    # password is checked (wrong: 401)
    assert _sign_in(app, ELSEWHERE, ATTACKER)[1].status_code == 401
    # and the trusted proxy's own address was never the one counted
    assert _sign_in(app, PROXY, "203.0.113.5")[1].status_code == 401


def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path, monkeypatch):
    app = _served(tmp_path, monkeypatch)
    throttle = _throttle(app)
    for _ in range(throttle.per_address):
        throttle.take(f"other{_}", ATTACKER)
    assert _sign_in(app, PROXY, ATTACKER)[1].status_code == 401


@pytest.mark.parametrize("https_only", [True, False])
def test_https_only_marks_the_session_cookies_secure(tmp_path, monkeypatch, https_only):
    app = _served(tmp_path, monkeypatch, *(["--https-only"] if https_only else []))
    page, signed = _sign_in(app, PROXY, None, "correct horse battery")
    assert signed.status_code == 303, signed.text
    cookies = page.headers.get_list("set-cookie") + signed.headers.get_list("set-cookie")
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"pql_session", "pql_known"} <= names, cookies
    assert all(("; secure" in c.lower()) is https_only for c in cookies), cookies
