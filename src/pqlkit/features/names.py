"""How features are named, in plain Python (no Ibis): the sources a model binds, and the
feature columns' prefixes with the rules' field namespaces they stand for. A cold `pql
explain` reads them without loading the features' expression code."""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("events", "users", "accounts", "outcomes", "identities")
"""The model's sources, in the order they are bound."""
USER = "user__"
ACCOUNT = "account__"
SIGNAL = "signal__"
_NAMESPACES = ((USER, "user."), (ACCOUNT, "account."), (SIGNAL, "signal."))


def env_of(columns: Iterable[str]) -> dict[str, str]:
    """Feature column -> field name used by rules (user__plan -> user.plan)."""
    out = {}
    for c in columns:
        for prefix, ns in _NAMESPACES:
            if c.startswith(prefix):
                out[c] = ns + c[len(prefix) :]
    return out
