"""Database connections: the only place pqlkit opens one.

    connect(url) -> Backend          a backend class chosen by the URL's scheme
    ├── DuckDBBackend                a file path, duckdb:///path, :memory:
    ├── PostgresBackend              postgresql://user@host:port/db  (the `postgres` extra)
    └── SparkBackend                 spark://local[2], spark://host:7077  (the `spark` extra)

Ibis is the portability layer; a backend holds only what Ibis leaves non-portable (see
:mod:`.base`). Adding a database is a class here plus the conformance suite in
tests/test_backend_conformance.py.

Importing this package loads no Ibis: :class:`Backend` and the backend classes load on first
use, so a cold command that only reads a DuckDB file through :mod:`.quick` stays light.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..errors import BackendError
from .quick import first_line

if TYPE_CHECKING:
    from .base import Backend, ConflictRule

__all__ = [
    "DEFAULT_URL",
    "SCHEMES",
    "Backend",
    "ConflictRule",
    "connect",
    "dialect_class",
    "driver_errors",
    "first_line",
    "mapped",
]

DEFAULT_URL = "pql.duckdb"

#: URL scheme -> (module, class): imported only when a URL asks for it.
SCHEMES: dict[str, tuple[str, str]] = {
    "": (".duckdb", "DuckDBBackend"),
    "duckdb": (".duckdb", "DuckDBBackend"),
    "postgres": (".postgres", "PostgresBackend"),
    "postgresql": (".postgres", "PostgresBackend"),
    "spark": (".spark", "SparkBackend"),
}

#: How long to wait for a DuckDB file another pqlkit process holds (seconds); PQL_LOCK_TIMEOUT.
LOCK_TIMEOUT = 120.0

_OPENED: list[Backend] = []


def __getattr__(name: str) -> Any:  # Backend and ConflictRule load Ibis: only when asked for
    if name in ("Backend", "ConflictRule"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def database_url(url: str | None = None) -> tuple[str, str]:
    """The URL :func:`connect` opens for ``url`` and its scheme ("" for a bare file path)."""
    url = url or os.environ.get("PQL_DATABASE_URL") or DEFAULT_URL
    scheme = url.split("://", 1)[0].lower() if "://" in url else urlparse(url).scheme.lower()
    return url, scheme


def lock_timeout(wait: float | None = None) -> float:
    """How long to wait for a DuckDB file another process holds: ``wait``, else
    PQL_LOCK_TIMEOUT, else :data:`LOCK_TIMEOUT` seconds."""
    return float(os.environ.get("PQL_LOCK_TIMEOUT", LOCK_TIMEOUT)) if wait is None else wait


def backend_class(scheme: str) -> type[Backend]:
    module, name = SCHEMES[scheme]
    cls: type[Backend] = getattr(importlib.import_module(module, __name__), name)
    return cls


def connect(url: str | None = None, *, wait: float | None = None) -> Backend:
    """A backend from a connection URL: a DuckDB file path (default ``pql.duckdb``),
    ``duckdb:///path``, ``:memory:``, ``postgresql://user@host:port/db``, or
    ``spark://local[2]?warehouse=DIR`` (see :mod:`.spark`).

    DuckDB lets one process at a time open a file for writing. pqlkit processes take turns:
    each holds an exclusive lock on ``<file>.lock`` while it has the file open and waits up to
    ``wait`` seconds (default PQL_LOCK_TIMEOUT or 120) for another to finish. The collector
    holds the file only while it flushes, so `pql score` and `pql serve` share one database.
    """
    url, scheme = database_url(url)
    if scheme not in SCHEMES:
        from .postgres import redact

        raise BackendError(
            f"unsupported database URL {redact(url)!r}: use a DuckDB file path (pql.duckdb), "
            "postgresql://user@host:port/database or spark://local[2] (spark://host:7077)"
        )
    backend: Backend = backend_class(scheme).open(url, lock_timeout(wait))  # type: ignore[attr-defined]
    _OPENED.append(backend)
    backend.on_close.append(lambda b: _OPENED.remove(b) if b in _OPENED else None)
    return backend


def dialect_class(dialect: str) -> type[Backend] | None:
    """The backend class of a dialect pqlkit knows (its JSON access is used to compile for it)."""
    for module, name in dict.fromkeys(SCHEMES.values()):
        cls: type[Backend] = getattr(importlib.import_module(module, __name__), name)
        if cls.name == dialect:
            return cls
    return None


def _loaded() -> list[type[Backend]]:
    """The backend classes whose driver is loaded (an error of a driver that was never
    imported cannot have been raised)."""
    classes = [
        getattr(importlib.import_module(module, __name__), name)
        for module, name in dict.fromkeys(SCHEMES.values())
    ]
    return [cls for cls in classes if cls.driver_module in sys.modules]


def driver_errors() -> tuple[type[BaseException], ...]:
    """The driver exception types of every backend whose driver is loaded."""
    return tuple(dict.fromkeys(t for cls in _loaded() for t in cls.driver_errors()))


def mapped(exc: BaseException, what: str) -> BackendError | None:
    """A driver error that escaped every ``Backend.errors`` block as the BackendError it
    means (:meth:`Backend.mapped`: refused value, unavailable, other), or None when no loaded
    driver raised it. For the CLI's last line of defence."""
    for cls in _loaded():
        if isinstance(exc, cls.driver_errors()):
            return cls.mapped(exc, what)
    return None


def arrow_of(expr: Any) -> Any:
    """An Ibis expression's rows as an Arrow table, through the pqlkit backend it was built on
    (Ibis's own ``to_pyarrow`` goes through pandas on Spark, and imports it on DuckDB)."""
    ibis_backend = expr._find_backend()
    for backend in reversed(_OPENED):
        if backend._con is ibis_backend:
            return backend.arrow(backend.compile(expr))
    return expr.to_pyarrow()


def opened_count() -> int:
    return len(_OPENED)


def close_opened_since(mark: int) -> None:
    """Close the backends opened after ``opened_count()`` returned ``mark``."""
    for backend in list(_OPENED[mark:]):
        backend.close()
