"""The web app's use cases: its users (`pql users`) and serving it (`pql ui`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from ..backends import connect
from ..errors import PqlkitError

SECRET_ENV = "PQL_UI_SECRET"


def _accounts() -> Any:
    try:
        from ..web import accounts
    except ImportError:
        raise PqlkitError('the web app needs its extra: pip install "pqlkit[ui]"') from None
    return accounts


def require_ui() -> None:
    """Refuse clearly when the web app's extra is not installed."""
    _accounts()


def add_user(url: str | None, name: str, role: str, password: str, *, reset: bool = False):
    accounts = _accounts()
    backend = connect(url)
    try:
        return accounts.add(backend, name, role, password, replace=reset)
    finally:
        backend.close()


def remove_user(url: str | None, name: str) -> None:
    accounts = _accounts()
    backend = connect(url)
    try:
        accounts.remove(backend, name)
    finally:
        backend.close()


def users(url: str | None) -> list[dict[str, Any]]:
    accounts = _accounts()
    backend = connect(url)
    try:
        return accounts.listing(backend)
    finally:
        backend.close()


def secret(env: dict[str, str] | None = None) -> tuple[str, bool]:
    """The key that signs sessions: $PQL_UI_SECRET (at least 32 characters), else a random
    one for this process (sessions then end when it stops). Returns (key, from_environment)."""
    value = (env if env is not None else os.environ).get(SECRET_ENV)
    if value is None:
        return secrets.token_urlsafe(48), False
    if len(value) < 32:
        raise PqlkitError(
            f"${SECRET_ENV} is {len(value)} characters; use at least 32 random ones, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return value, True
