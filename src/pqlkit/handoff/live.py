"""Live scoring inside the collector (`pql serve --model pql.yml`): after each flush, the users
whose data changed are scored again, their transitions recorded (the outbox) and delivered
within seconds.

Which users: those with new events (an anonymous id names its user once linked), those an
identify, alias or group call changed (after the identity tables are rebuilt), every user of
their accounts, and the accounts. What time alone changes (windows, decay, recency) is caught
by a full pass: at start-up, then every ``full_every`` seconds.

The database is only touched from the flusher's thread. Deliveries are claimed there and sent by
each destination's threads, several at once within its bound (:mod:`pqlkit.handoff.dispatch`;
a stalled receiver holds up only its own); what they come to is recorded by the flusher's thread
on its next pass. A delivery sent but not recorded when the process dies is sent again once its
claim lapses (:mod:`pqlkit.handoff.claims`), with the same webhook-id (the transition's id): a
receiver may see a retry, never two ids for one transition.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis

from ..backends import Backend
from ..collect.store import SUPPRESSIONS
from ..collect.tables import FEEDBACK
from ..destinations import KINDS, Delivery, Registry, Session, build
from ..engine import USER_STATE, RunObserver
from ..engine.challenger import ChallengerScorer
from ..engine.rescore import RESCORED, rescore
from ..model.handoff import Handoff
from ..model.load import load_model
from .claims import release_owned
from .deliver import Report, by_destination, claimable, destination, secrets_for, settle_all
from .dispatch import Dispatcher
from .transitions import DELIVERIES

log = logging.getLogger("pqlkit.live")


@dataclass
class LiveStats:
    """What live scoring has done since the process started (shown by /metrics)."""

    rescores: int = 0
    rescored_users: int = 0
    full_runs: int = 0
    transitions: int = 0
    last_rescore_ms: float = 0.0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    disabled: int = 0
    in_flight: int = 0
    waiting_for: list[str] | None = None
    """Source tables that do not exist yet (e.g. pql_users before the first identify)."""
    by_status: dict[str, int] = field(default_factory=dict)
    by_destination: dict[str, dict[str, int]] = field(default_factory=dict)
    """Deliveries in the database by destination, then status."""
    last_full_pass_at: float | None = None
    """When the last full pass finished (Unix seconds)."""
    rescore_lag_seconds: float | None = None
    """Seconds since the last rescore or full pass, as of the last tick."""
    """Deliveries in the database by status (pending, failed, delivered, dead, disabled)."""


class Live:
    """Rescoring and delivery for the flusher. ``note`` and ``resolved`` gather what changed;
    ``tick`` (on the flusher's thread, with its connection) does the work."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        full_every: float = 3600.0,
        due_every: float = 1.0,
        env: dict[str, str] | None = None,
        client: Any = None,
        serving: str | Path | None = None,
        kinds: Registry = KINDS,
    ):
        self.loaded = load_model(model_path)
        handoff = self.loaded.model.handoff
        if handoff is None:
            from ..errors import PqlkitError

            raise PqlkitError(
                f"{self.loaded.path}: `pql serve --model` scores live for the hand-off, and the "
                "model has no `handoff:` section (destinations and routes); see docs/model.md"
            )
        # a missing secret or a kind ``kinds`` cannot send stops the start, clearly
        secrets = secrets_for(handoff, env, kinds)
        if client is None:
            import httpx

            client = httpx.Client()
        self.client = client
        self.handoff: Handoff = handoff
        self.challengers = ChallengerScorer.of(self.loaded)  # beside each full pass
        self.secrets = secrets
        self.kinds = kinds
        self.dispatcher = Dispatcher(handoff, secrets, client, kinds)
        self.full_every = full_every
        self.due_every = due_every
        self.users: set[str] = set()
        self.accounts: set[str] = set()
        self.waiting_users: set[str] = set()  # known once the identity tables are rebuilt
        self.waiting_accounts: set[str] = set()
        self.last_full: float | None = None
        self.last_work: float | None = None  # the last rescore or full pass (monotonic)
        self.last_due = 0.0
        self.passing: FullPass | None = None
        self.templates: dict[str, str] = {}
        self.stats = LiveStats()
        # who claims the deliveries: the log folder's server (one process at a time), so a
        # restart gives back what the process before it had claimed and not recorded
        self.owner = (
            f"live@{socket.gethostname()}:{Path(serving).resolve()}"
            if serving is not None
            else f"live@{socket.gethostname()}:{os.getpid()}"
        )
        self.released = False
        self.serving = None
        if serving is not None:  # the prompt API's copy of the users' state
            from ..backends.serving import StateWriter

            self.serving = StateWriter(serving)

    # --- what changed ------------------------------------------------------------------------
    def note(self, users: Iterable[str], ids: Any) -> None:
        """A stored batch: its events' users (or anonymous ids) now; the identity calls' users
        and accounts once the identity tables are rebuilt."""
        self.users.update(users)
        for other, user in ids.link_pairs():
            self.waiting_users.update((other, user))
        for _source, _mid, entity, ident, _key in ids.traits:
            (self.waiting_accounts if entity == "account" else self.waiting_users).add(ident)

    def resolved(self) -> None:
        self.users |= self.waiting_users
        self.accounts |= self.waiting_accounts
        self.waiting_users, self.waiting_accounts = set(), set()

    def wants_tick(self) -> bool:  # the flusher's Subscriber protocol (pqlkit.collect.store)
        now = time.monotonic()
        return bool(
            self.users
            or self.accounts
            or not self.dispatcher.results.empty()
            or (self.passing is not None and not self.passing.is_alive())  # to merge
            or self.last_full is None
            or now - self.last_full >= self.full_every
            or now - self.last_due >= self.due_every
        )

    # --- the work ----------------------------------------------------------------------------
    def tick(self, backend: Backend) -> None:
        from ..engine import Engine, utc_now
        from .recorder import TransitionRecorder

        def now_exact() -> datetime:  # every stored event is before it (timestamps are clamped
            return datetime.now(UTC).replace(tzinfo=None)  # to the receive time)

        missing = self._missing_tables(backend)
        self.stats.waiting_for = missing or None
        if missing:  # e.g. pql_users before the first identify: nothing to score yet
            return
        observers: list[RunObserver] = [
            TransitionRecorder(self.handoff, self.loaded),
            *self.challengers,
        ]
        engine = Engine(self.loaded, backend, observers=observers)
        engine._templates = self.templates  # compiled once per process, not per connection
        if not self.released:  # what the process before this one claimed is due again
            self.released = True
            n = release_owned(backend, self.owner, utc_now())
            if n:
                log.info("delivery: %d claimed before a restart and not recorded, due again", n)
        report = Report()  # first record what was sent
        settle_all(backend, self.handoff, self.dispatcher.finished(), utc_now(), report)
        self._full_pass(engine, backend, now_exact)
        if self.users or self.accounts:
            users, accounts = self.users, self.accounts
            started = time.perf_counter()
            result = rescore(engine, users, accounts, now_exact())
            self.users, self.accounts = set(), set()
            self.stats.rescores += 1
            self.last_work = time.monotonic()
            self.stats.rescored_users += result.users
            self.stats.transitions += result.transitions or 0
            self.stats.last_rescore_ms = round((time.perf_counter() - started) * 1000, 1)
            self._serve(backend, RESCORED)
        self.last_due = time.monotonic()
        room, owner = self.dispatcher.room, self.owner
        rows = claimable(backend, self.handoff, utc_now(), 500, report, room=room, owner=owner)
        batches = Session(self.client, utc_now, time.sleep, backend, engine)
        for dest_id, group in by_destination(rows).items():
            if self.dispatcher.sends(dest_id):
                self.dispatcher.submit(group)
                continue
            # a batch kind (a CRM) reads and writes the database: on this thread, once a tick
            spec = destination(self.handoff, dest_id)
            dest = build(self.kinds, spec, self.secrets[dest_id], batches)
            outcomes = dest.send_batch([Delivery.of(r) for r in group])
            settle_all(
                backend, self.handoff, list(zip(group, outcomes, strict=True)), utc_now(), report
            )
        for k in ("delivered", "retrying", "dead", "disabled"):
            setattr(self.stats, k, getattr(self.stats, k) + getattr(report, k))
        self.stats.in_flight = self.dispatcher.in_flight
        d = backend.table(DELIVERIES)
        counts = backend.values(d.group_by(["destination", "status"]).aggregate(n=d.count()))
        self.stats.by_status, self.stats.by_destination = {}, {}
        for dest, status, n in counts:
            by_status = self.stats.by_status
            by_status[str(status)] = by_status.get(str(status), 0) + int(n)
            self.stats.by_destination.setdefault(str(dest), {})[str(status)] = int(n)
        if self.last_work is not None:
            self.stats.rescore_lag_seconds = round(time.monotonic() - self.last_work, 3)
        for e in report.errors:
            log.warning("delivery: %s", e)

    def _full_pass(self, engine: Any, backend: Backend, now_exact: Any) -> None:
        """Merge a pass computed beside that has finished; begin one when due: beside, on a
        connection of its own, so rescores go on meanwhile (:mod:`pqlkit.engine.beside`), or
        here when there is no state yet (the start) or no second connection (in memory)."""
        now = time.monotonic()
        if self.passing is not None and not self.passing.is_alive():
            self._merge(engine, backend)
        due = self.last_full is None or now - self.last_full >= self.full_every
        beside = None
        if due and self.last_full is not None and self.passing is None:
            beside = backend.sibling()  # None: an in-memory database, computed here instead
        if beside is not None:  # computed beside, merged by a later tick: rescores go on
            self.last_full = now
            self.passing = FullPass(
                self.loaded, beside, now_exact(), self.challengers, self.templates
            )
            self.passing.start()
        elif due and self.passing is None:
            result = engine.run(now_exact(), checks=False)
            self.last_full = now
            self._passed(result)
            self.users, self.accounts = set(), set()  # the full pass scored them all
            self._serve(backend, USER_STATE, replace_all=True)

    def _passed(self, result: Any) -> None:
        self.stats.full_runs += 1
        self.stats.last_full_pass_at = time.time()
        self.last_work = time.monotonic()
        self.stats.transitions += result.transitions or 0

    def _merge(self, engine: Any, backend: Backend) -> None:
        """The pass computed beside, merged into the state (or its failure logged: the next
        is due after ``full_every`` as usual)."""
        from ..engine.beside import MERGED_KEYS, MERGED_USERS, merge

        done, self.passing = self.passing, None
        assert done is not None
        if done.error is not None or done.computed is None:
            log.warning("full pass: %s", done.error)
            return
        result = merge(engine, done.computed, forgotten_since(backend, done.started_at))
        self._passed(result)
        # the prompt API's copy: the users the merge wrote, or all when it deleted some
        if backend.count(MERGED_KEYS) > backend.count(MERGED_USERS):
            self._serve(backend, USER_STATE, replace_all=True)
        else:
            self._serve(backend, MERGED_USERS)

    def _missing_tables(self, backend: Backend) -> list[str]:
        sources = self.loaded.model.sources
        out = []
        for role in ("events", "users", "accounts"):
            source = getattr(sources, role)
            if (
                source is not None
                and source.table is not None
                and not backend.has_table(source.table)
            ):
                out.append(source.table)
        return out

    def _serve(self, backend: Backend, table: str, *, replace_all: bool = False) -> None:
        if self.serving is None or not backend.has_table(table):
            return
        from ..backends.serving import COLUMNS

        state = backend.table(table)
        if backend.has_table(FEEDBACK):  # a rep's done or disqualify: no prompt in the cooldown
            f = backend.table(FEEDBACK)
            quiet = f.group_by(fb_user=f.user_id).aggregate(quiet_until=f.quiet_until.max())
            j = state.left_join(quiet, state.user_id == quiet.fb_user)
            state = j.select(*COLUMNS[:-1], quiet_until=j.quiet_until)
        else:
            state = state.select(*COLUMNS[:-1], quiet_until=ibis.null("timestamp"))
        rows = backend.arrow(backend.compile(state)).to_pylist()
        self.serving.write(rows, replace_all=replace_all)

    def finish(self, backend: Backend, wait: float = 5.0) -> None:
        """Stop sending (waiting up to ``wait`` seconds for what is in flight) and record
        what was sent."""
        from ..engine import utc_now

        if self.passing is not None:  # a pass computed beside stops, rolled back
            self.passing.stop()
            self.passing = None
        report = Report()  # what was not sent is given back, due at once
        settle_all(backend, self.handoff, self.dispatcher.close(wait), utc_now(), report)
        with contextlib.suppress(Exception):
            self.client.close()


class FullPass(threading.Thread):
    """A full pass computed on a connection of its own (:func:`pqlkit.engine.beside.compute`)
    while the flusher stores and rescores; the flusher's next tick merges it."""

    def __init__(
        self,
        loaded: Any,
        backend: Backend,
        when: datetime,
        observers: Any,
        templates: dict[str, str],  # the compiled SQL, shared: compiled once per process
    ):
        super().__init__(name="pql-full-pass", daemon=False)  # joined: never inside DuckDB at exit
        self.loaded, self.backend, self.when, self.observers = loaded, backend, when, observers
        self.started_at = datetime.now(UTC).replace(tzinfo=None)
        self.computed: Any = None
        self.error: BaseException | None = None
        self.templates = templates
        self._closing = threading.Lock()  # an interrupt never meets a closed connection
        self._closed = False

    def run(self) -> None:
        from ..engine import Engine
        from ..engine.beside import compute

        try:
            engine = Engine(
                self.loaded, self.backend, templates=self.templates, observers=self.observers
            )
            self.computed = compute(engine, self.when)
        except Exception as exc:  # logged by the merge; the state is intact
            self.error = exc
        finally:
            with self._closing:
                self._closed = True
                self.backend.close()

    def stop(self, wait: float = 30.0) -> None:
        """Interrupt the pass (its transaction rolls back) and wait for its thread."""
        with self._closing:
            if not self._closed:
                self.backend.interrupt()
        self.join(wait)


def forgotten_since(backend: Backend, since: datetime) -> list[str]:
    """The ids `pql forget` suppressed since ``since`` (a pass begun before must drop them)."""
    if not backend.has_table(SUPPRESSIONS):
        return []
    t = backend.table(SUPPRESSIONS)
    rows = backend.values(t.filter(t.forgotten_at >= ibis.timestamp(since)).select("id", "user_id"))
    return sorted({str(x) for row in rows for x in row if x is not None})


__all__ = ["Dispatcher", "FullPass", "Live", "LiveStats"]
