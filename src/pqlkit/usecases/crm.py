"""CRM use cases: `pql sync crm` (write what changed) and `pql sync outcomes` (read deals and
opportunities back), and the CRM part of the hand-off's deliveries."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends import connect
from ..crm.state import tables
from ..engine import Engine, utc_now
from ..errors import PqlkitError
from ..model.crm import CrmDestination
from ..model.load import load_model
from .common import quiet

KINDS = ("hubspot", "salesforce")


def _extra() -> None:
    try:
        import httpx  # noqa: F401
        import tenacity  # noqa: F401
    except ImportError:
        raise PqlkitError('syncing a CRM needs its extra: pip install "pqlkit[crm]"') from None


def destinations(
    loaded: Any, wanted: str | None = None, kind: str | None = None
) -> list[CrmDestination]:
    """The model's CRM destinations (one by id, or of one kind); a clear error when none."""
    handoff = loaded.model.handoff
    found = [
        d
        for d in (handoff.destinations if handoff else [])
        if d.kind in KINDS and (kind is None or d.kind == kind)
    ]
    if wanted is not None:
        found = [d for d in found if d.id == wanted]
    if not found:
        what = f" {kind}" if kind else ""
        named = f" with id {wanted!r}" if wanted else ""
        raise PqlkitError(
            f"{loaded.path}: no{what} CRM destination{named} in handoff.destinations; add one "
            "(kind: hubspot or salesforce, see docs/model.md, Hand-off)"
        )
    return found


def secrets(dest: CrmDestination, env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    values: list[str] = []
    missing: list[str] = []
    for name in dest.env_names():
        value = (env.get(name) or "").strip()
        (values if value else missing).append(value or name)
    if missing:
        raise PqlkitError(
            f"handoff.destinations[{dest.id}]: the environment variable "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (CRM "
            "credentials live in the environment, never in the model file)"
        )
    return values


def sync_crm(
    model_path: str | Path,
    url: str | None = None,
    *,
    destination: str | None = None,
    full: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] = quiet,
    env: dict[str, str] | None = None,
    client: Any = None,
    sleep: Callable[[float], None] | None = None,
    give_up_after: float = 300.0,
) -> list[Any]:
    """Write what changed since the last sync (everything with ``full``) to each CRM
    destination (or one); ``dry_run`` only says what would go."""
    _extra()
    import httpx

    from ..crm.sync import sync

    loaded = load_model(model_path)
    targets = destinations(loaded, destination)
    creds = {d.id: secrets(d, env) for d in targets}
    own = client is None
    client = client or httpx.Client()
    backend = connect(url)
    try:
        engine = Engine(loaded, backend)
        users, accounts = tables(engine)
        if users is None:
            raise PqlkitError(
                "nothing is scored yet: run `pql score` (or `pql serve --model`) first"
            )
        reports = []
        for d in targets:
            progress(f"{d.id}: comparing with the ledger")

            def say(obj: str, done: int, total: int, d: Any = d) -> None:
                progress(f"{d.id}: {obj} {done:,} of {total:,} sent")

            reports.append(
                sync(
                    backend, d, creds[d.id], client, users, accounts, now=utc_now, full=full,
                    dry_run=dry_run, progress=say, sleep=sleep, give_up_after=give_up_after,
                )
            )  # fmt: skip
        return reports
    finally:
        backend.close()
        if own:
            client.close()


def sync_outcomes(
    model_path: str | Path,
    url: str | None = None,
    *,
    source: str | None = None,
    destination: str | None = None,
    full: bool = False,
    progress: Callable[[str], None] = quiet,
    env: dict[str, str] | None = None,
    client: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> list[Any]:
    """Read deals (HubSpot) or opportunities (Salesforce) changed since the last read into
    ``pql_crm_outcomes``."""
    _extra()
    import httpx

    from ..crm.outcomes import read

    loaded = load_model(model_path)
    targets = destinations(loaded, destination, source)
    creds = {d.id: secrets(d, env) for d in targets}
    own = client is None
    client = client or httpx.Client()
    backend = connect(url)
    try:
        from ..crm.ledger import ensure

        ensure(backend)  # pql_crm_outcomes exists before a model that reads it is bound
        bound = Engine(loaded, backend).bound
        reports = []
        for d in targets:
            progress(f"{d.id}: reading what changed")
            reports.append(
                read(
                    backend,
                    d,
                    creds[d.id],
                    client,
                    bound.users,
                    bound.accounts,
                    now=utc_now,
                    full=full,
                    sleep=sleep,
                )
            )
        return reports
    finally:
        backend.close()
        if own:
            client.close()
