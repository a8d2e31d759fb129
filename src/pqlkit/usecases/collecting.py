"""Collecting use cases: import event files, forget people, configure the collector."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends import connect
from ..errors import PqlkitError
from .common import duration

if TYPE_CHECKING:
    from ..collect.forget import Forgotten
    from ..collect.importer import ImportReport
    from ..server.app import Collector


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """['user_id=uid', ...] as {'user_id': 'uid'}."""
    mapping = {}
    for item in items:
        column, sep, theirs = item.partition("=")
        if not sep or not column.strip() or not theirs.strip():
            raise PqlkitError(f"--map {item!r}: write COLUMN=YOURS, e.g. --map user_id=uid")
        mapping[column.strip()] = theirs.strip()
    return mapping


def import_events(
    files: list[Path],
    url: str | None = None,
    *,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    table: str = "events",
    source: str = "import",
    strict: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ImportReport:
    """Import event files (CSV, JSON lines, Parquet; Segment, RudderStack, Amplitude exports)."""
    from ..collect.importer import import_files

    backend = connect(url)
    try:
        return import_files(
            backend,
            list(files),
            fmt=fmt,
            mapping=mapping or {},
            table=table,
            source=source,
            strict=strict,
            progress=progress,
        )
    finally:
        backend.close()


def forget_users(user_ids: list[str], url: str | None = None) -> list[Forgotten]:
    """Delete the users everywhere, suppress their later messages, and purge the files."""
    from ..collect.forget import forget

    backend = connect(url)
    try:
        return forget(backend, list(user_ids))
    finally:
        backend.close()


def write_keys(pairs: Iterable[str]) -> dict[str, str]:
    """SOURCE=KEY pairs (or PQL_WRITE_KEYS, comma-separated) as {source: key}."""
    listed = list(pairs) or [p for p in os.environ.get("PQL_WRITE_KEYS", "").split(",") if p]
    keys = {}
    for pair in listed:
        source, sep, key = pair.partition("=")
        if not sep or not source.strip() or not key.strip():
            raise PqlkitError(
                f"--write-key {pair!r}: write SOURCE=KEY, e.g. --write-key web=sk_live_123"
            )
        keys[source.strip()] = key.strip()
    if not keys:
        raise PqlkitError("give at least one write key: --write-key SOURCE=KEY (or PQL_WRITE_KEYS)")
    return keys


def collector(
    url: str | None,
    log_dir: str | Path,
    keys: dict[str, str],
    *,
    table: str = "events",
    resolve_every: float = 5.0,
    model: str | Path | None = None,
    full_every: str = "1h",
    product_keys: list[str] | None = None,
) -> Collector:
    """The Segment-compatible collector app (run it under an ASGI server: `pql serve`); with a
    ``model``, it scores live, hands off, and answers the product's prompt and feedback API."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise PqlkitError(
            '`pql serve` needs the server extra: pip install "pqlkit[server]"'
        ) from None
    from ..server.app import Collector

    every = duration("--full-every", full_every).total_seconds()
    products = list(product_keys or []) + [
        k.strip() for k in os.environ.get("PQL_PRODUCT_KEY", "").split(",") if k.strip()
    ]
    if model is not None:
        from ..handoff.deliver import secrets_for
        from ..model.load import load_model

        loaded = load_model(model)  # a bad model or a missing secret stops here, clearly
        if loaded.model.handoff is None:
            raise PqlkitError(
                f"{loaded.path}: `pql serve --model` scores live for the hand-off, and the model "
                "has no `handoff:` section (destinations and routes); see docs/model.md"
            )
        secrets_for(loaded.model.handoff)
        if not products:
            raise PqlkitError(
                "`pql serve --model` answers the product's prompt and feedback API: give a "
                "product key (--product-key KEY or PQL_PRODUCT_KEY)"
            )
    return Collector(
        url or "pql.duckdb",
        log_dir,
        keys,
        table=table,
        resolve_interval=resolve_every,
        model=model,
        full_every=every,
        product_keys=products,
    )
