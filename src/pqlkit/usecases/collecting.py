"""Collecting use cases: import event files, forget people, configure the collector."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PqlkitError
from .common import duration
from .session import Session

if TYPE_CHECKING:
    from ..collect.forget import Forgotten
    from ..collect.importer import ImportReport
    from ..model.handoff import Handoff


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
    session: Session,
    files: list[Path],
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

    return import_files(
        session.backend,
        list(files),
        fmt=fmt,
        mapping=mapping or {},
        table=table,
        source=source,
        strict=strict,
        progress=progress,
    )


def forget_users(session: Session, user_ids: list[str]) -> list[Forgotten]:
    """Delete the users everywhere, suppress their later messages, and purge the files."""
    from ..collect.forget import forget
    from ..handoff.transitions import erase_transitions

    return forget(session.backend, list(user_ids), erasers=[erase_transitions])


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


@dataclass(frozen=True)
class LiveScoring:
    """What `pql serve --model` adds to the collector: live scoring in the flusher's process
    (its subscriber) and the product's prompt and feedback API in the HTTP process."""

    model_path: str
    handoff: Handoff
    full_every: float
    folder: Path
    """The collector's log folder, where the prompt API's state files live too."""
    watch: Callable[[], Any] | None = None
    """What makes the volume watch (the model's `instrumentation:`), in the flusher's process."""

    @property
    def actions(self) -> tuple[str, ...]:
        from ..handoff.feedback import ACTIONS

        return ACTIONS

    @property
    def cooldown(self) -> timedelta:
        return duration("handoff.cooldown", self.handoff.cooldown)

    def subscriber(self) -> Callable[[], Any]:
        """What makes the flusher's subscriber, in the flusher's own process (picklable)."""
        return functools.partial(
            _live, self.model_path, self.full_every, str(self.folder), self.watch
        )

    def state_reader(self) -> Any:
        from ..backends.serving import StateReader

        return StateReader(self.folder)

    def prompt_desk(self, reader: Any) -> Any:
        """The prompt API's desk, or None when the model declares no prompts."""
        if self.handoff.prompts is None:
            return None
        from ..handoff.prompts import PromptDesk

        return PromptDesk(self.folder, self.handoff.prompts, reader)


def _live(
    model_path: str, full_every: float, serving: str, watch: Callable[[], Any] | None = None
) -> Any:
    from ..crm.destinations import KINDS
    from ..handoff.live import Live

    live = Live(model_path, full_every=full_every, serving=serving, kinds=KINDS)
    if watch is None:
        return live
    from ..collect.subscriber import Subscribers

    return Subscribers(live, watch())


@dataclass(frozen=True)
class CollectorSetup:
    """Everything `pql serve` needs to start the collector (``server.app.Collector.from_setup``)."""

    url: str
    log_dir: Path
    keys: dict[str, str]
    table: str = "events"
    resolve_interval: float = 5.0
    live: LiveScoring | None = None
    product_keys: list[str] = field(default_factory=list)
    metrics_keys: list[str] = field(default_factory=list)  #: keys that read GET /metrics
    syncs: Any = None
    """The CRM syncs the model schedules (a :class:`pqlkit.usecases.scheduled.ScheduledSyncs`),
    run in the server's process beside the flusher; None when it schedules none."""
    tracking: Any = None
    """Counts the requests that break the model's tracking plan (``pqlkit.tracking.check``)."""


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
    metrics_keys: list[str] | None = None,
    tracking_plan: str | Path | None = None,
) -> CollectorSetup:
    """The Segment-compatible collector's set-up (run it under an ASGI server: `pql serve`);
    with a ``model``, it scores live, hands off, and answers the product's prompt and feedback
    API. A bad model, a missing secret or a missing product key stops here, clearly. The
    requests that break the tracking plan of ``model`` (or of ``tracking_plan``, without live
    scoring) are counted."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise PqlkitError(
            '`pql serve` needs the server extra: pip install "pqlkit[server]"'
        ) from None

    every = duration("--full-every", full_every).total_seconds()
    products = list(product_keys or []) + [
        k.strip() for k in os.environ.get("PQL_PRODUCT_KEY", "").split(",") if k.strip()
    ]
    live = syncs = None
    if model is not None:
        from ..crm.destinations import KINDS
        from ..handoff.deliver import secrets_for
        from ..model.load import load_model

        loaded = load_model(model)
        if loaded.model.handoff is None:
            raise PqlkitError(
                f"{loaded.path}: `pql serve --model` scores live for the hand-off, and the model "
                "has no `handoff:` section (destinations and routes); see docs/model.md"
            )
        secrets_for(loaded.model.handoff, kinds=KINDS)
        if not products:
            raise PqlkitError(
                "`pql serve --model` answers the product's prompt and feedback API: give a "
                "product key (--product-key KEY or PQL_PRODUCT_KEY)"
            )
        from .tracking import watch_factory

        watch = watch_factory(str(model), table)
        live = LiveScoring(str(model), loaded.model.handoff, every, Path(log_dir), watch)
        from .scheduled import ScheduledSyncs

        syncs = ScheduledSyncs.from_model(model, url or "pql.duckdb")
    plan_of = model if model is not None else tracking_plan
    tracking = None
    if plan_of is not None:
        from ..model.load import load_model
        from .tracking import checker

        tracking = checker(load_model(plan_of).model)
    return CollectorSetup(
        url or "pql.duckdb",
        Path(log_dir),
        keys,
        table=table,
        resolve_interval=resolve_every,
        live=live,
        product_keys=products,
        metrics_keys=list(metrics_keys or [])
        + [k.strip() for k in os.environ.get("PQL_METRICS_KEY", "").split(",") if k.strip()],
        syncs=syncs,
        tracking=tracking,
    )


def migrate(session: Session, *, table: str = "events") -> dict[str, list[str]]:
    """Upgrade, in place, the tables an older pqlkit made: every column the collector, the
    importer and the demo write is added where it is missing. What was added, by table."""
    from ..collect.schema import migrate as run

    return run(session.backend, table)


def check_writable(session: Session, *, table: str = "events", who: str = "`pql serve`") -> None:
    """Refuse, naming tables, columns and `pql migrate`, when a table the collector writes
    lacks a column: nothing is acknowledged that the database cannot store."""
    from ..collect.schema import require_writable

    require_writable(session.backend, table, who=who)
