"""The web app's use cases: its users (`pql users`) and serving it (`pql ui`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from ..errors import PqlkitError
from .session import Session

SECRET_ENV = "PQL_UI_SECRET"
TRUSTED_ENV = "PQL_TRUSTED_PROXIES"


def _accounts() -> Any:
    require_ui()
    from ..access import accounts

    return accounts


def require_ui() -> None:
    """Refuse clearly when the web app's extra (Starlette, Argon2) is not installed."""
    try:
        import argon2  # noqa: F401
        import starlette  # noqa: F401
    except ImportError:
        raise PqlkitError('the web app needs its extra: pip install "pqlkit[ui]"') from None


def add_user(session: Session, name: str, role: str, password: str, *, reset: bool = False):
    """Let ``name`` sign in to the web app as ``role`` (with ``reset``: a new password)."""
    return _accounts().add(session.backend, name, role, password, replace=reset)


def remove_user(session: Session, name: str) -> None:
    _accounts().remove(session.backend, name)


def users(session: Session) -> list[dict[str, Any]]:
    return _accounts().listing(session.backend)


def secret(env: dict[str, str] | None = None) -> tuple[str, bool]:
    """The key that signs the web app's cookies of browsers that signed in before:
    $PQL_UI_SECRET (at least 32 characters), else a random one for this process (those
    browsers are then new ones after it stops). Returns (key, from_environment)."""
    value = (env if env is not None else os.environ).get(SECRET_ENV)
    if value is None:
        return secrets.token_urlsafe(48), False
    if len(value) < 32:
        raise PqlkitError(
            f"${SECRET_ENV} is {len(value)} characters; use at least 32 random ones, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return value, True
