"""Sending deliveries concurrently: a few threads per destination, never more requests in flight
than the destination's bound, and one at a time while the receiver has trouble.

Each destination that sends one delivery per request gets as many threads as its bound (a
webhook's `concurrency:`, 16 by default; Slack and Teams keep their pace with one). How many
may be in flight starts at one, doubles with each success up to the bound, and drops back to
one after a failure (a network error, a 5xx, a 429), so a receiver in trouble sees one request
at a time and a 429's Retry-After pauses the whole destination before the next goes out (the
destination's pacer holds the pause). After a 410 nothing more is sent to it.

Rows come claimed in the database (:func:`pqlkit.handoff.deliver.claim`): a thread sends one
only while its claim leaves time for an answer, so a sender that takes over a lapsed claim can
never send what this one is still sending. What is not sent comes back as :class:`Unsent`;
every result comes back on one queue, and the database is written by whoever owns it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ..destinations import KINDS, Delivery, Gone, Ok, Permanent, Registry, Retry, Session, build
from ..model.handoff import Handoff

MARGIN = timedelta(seconds=5)
"""What a claim must have left, beyond the destination's timeout, for a send to start."""


@dataclass(frozen=True)
class Unsent:
    """Not sent: the destination answered 410 meanwhile (gone), the claim had too little time
    left (lapsed), or the dispatcher closed first (closed)."""

    why: Literal["gone", "lapsed", "closed"]
    status: None = None

    @property
    def error(self) -> str:
        return {
            "gone": "the destination is disabled (410)",
            "lapsed": "not sent: its claim ran out before a turn came",
            "closed": "not sent: the sender stopped",
        }[self.why]


Result = tuple[dict[str, Any], Any]
"""A claimed row and what sending it came to (an Outcome, or Unsent)."""


class Sender:
    """One destination's threads, their queue and its window of requests in flight."""

    def __init__(
        self,
        dest: Any,
        results: queue.Queue[Result],
        now: Callable[[], datetime],
        capacity: int,
    ):
        self.dest = dest
        self.bound = max(1, int(getattr(dest, "bound", 1)))
        self.capacity = capacity
        self.results = results
        self.now = now
        self.timeout = timedelta(seconds=float(getattr(dest, "timeout", 10.0)))
        self.window = 1
        self.active = 0
        self.peak = 0
        """The most requests in flight at once so far."""
        self.pending = 0
        """Rows submitted and not yet come back."""
        self.gone = False
        self.cond = threading.Condition()
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.threads = [
            threading.Thread(target=self._work, name=f"pql-send-{dest.spec.id}-{i}", daemon=True)
            for i in range(self.bound)
        ]
        for t in self.threads:
            t.start()

    def room(self) -> int:
        """How many more rows to claim for it now."""
        with self.cond:
            return max(0, self.capacity - self.pending)

    def submit(self, row: dict[str, Any]) -> None:
        with self.cond:
            self.pending += 1
        self.queue.put(row)

    def _work(self) -> None:
        while True:
            row = self.queue.get()
            if row is None:
                return
            sent = self._send(row)
            with self.cond:
                self.pending -= 1
            self.results.put((row, sent))

    def _send(self, row: dict[str, Any]) -> Any:
        with self.cond:
            while self.active >= self.window and not self.gone:
                self.cond.wait()
            if self.gone:
                return Unsent("gone")
            lease = row.get("lease_until")
            if lease is not None and self.now() + self.timeout + MARGIN > lease:
                return Unsent("lapsed")
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            sent: Any = self.dest.send(Delivery.of(row))
        except Exception as exc:  # a bug must not stop the thread; the row is retried
            sent = Retry(f"{type(exc).__name__}: {exc}")
        with self.cond:
            self.active -= 1
            if isinstance(sent, Ok):
                self.window = min(self.bound, self.window * 2)
            elif isinstance(sent, Gone):
                self.gone = True
            elif not isinstance(sent, Permanent):  # a retry: the receiver is in trouble
                self.window = 1
            self.cond.notify_all()
        return sent

    def drain(self) -> list[dict[str, Any]]:
        """Take back what no thread has started."""
        out: list[dict[str, Any]] = []
        while True:
            try:
                row = self.queue.get_nowait()
            except queue.Empty:
                return out
            if row is not None:
                out.append(row)
                with self.cond:
                    self.pending -= 1


class Dispatcher:
    """A :class:`Sender` for each destination of ``handoff`` that sends one delivery per
    request (those that send in batches are written by the caller, on the database's thread).
    Each destination is built once, so its pacing and a Retry-After pause hold for as long as
    the dispatcher lives."""

    def __init__(
        self,
        handoff: Handoff,
        secrets: dict[str, list[str]],
        client: Any,
        kinds: Registry = KINDS,
        *,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        lease: timedelta = timedelta(seconds=120),
    ):
        if now is None:
            from ..engine import utc_now

            now = utc_now
        self.results: queue.Queue[Result] = queue.Queue()
        self.senders: dict[str, Sender] = {}
        session = Session(client, now, sleep)
        for d in handoff.destinations:
            dest = build(kinds, d, secrets[d.id], session)
            if dest.batch:
                continue
            interval = float(getattr(dest, "interval", 0.0))
            # claimed a few hundred at a time (each claim and record is a write the database's
            # thread makes), and for a paced kind no more than it sends in a quarter of a claim:
            # a claim must not run out while its row waits in the queue
            capacity = (
                max(1, int(lease.total_seconds() / 4 / interval))
                if interval > 0
                else 64 * int(getattr(dest, "bound", 1))
            )
            self.senders[d.id] = Sender(dest, self.results, now, capacity)

    def sends(self, dest_id: str) -> bool:
        """Whether this dispatcher sends ``dest_id``'s deliveries (not a batch kind's)."""
        return dest_id in self.senders

    def room(self, dest_id: str) -> int | None:
        """How many more of ``dest_id``'s deliveries to claim now (None: not one it sends)."""
        sender = self.senders.get(dest_id)
        return sender.room() if sender is not None else None

    def hungry(self) -> bool:
        """Whether a sender has room for half its capacity or more (worth a claim)."""
        return any(2 * s.room() >= s.capacity for s in self.senders.values())

    @property
    def in_flight(self) -> int:
        """Deliveries submitted whose result has not been taken yet."""
        return sum(s.pending for s in self.senders.values()) + self.results.qsize()

    def peak(self, dest_id: str) -> int:
        """The most requests in flight at once to ``dest_id`` so far."""
        return self.senders[dest_id].peak

    def submit(self, rows: Iterable[dict[str, Any]]) -> int:
        n = 0
        for row in rows:
            self.senders[row["destination"]].submit(row)
            n += 1
        return n

    def finished(self, wait: float = 0.0) -> list[Result]:
        """The results so far, waiting up to ``wait`` seconds for the first."""
        out: list[Result] = []
        try:
            out.append(self.results.get(timeout=wait) if wait > 0 else self.results.get_nowait())
        except queue.Empty:
            return out
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait: float = 5.0) -> list[Result]:
        """Stop: what no thread started comes back as Unsent("closed"), what is being sent is
        waited for (up to ``wait`` seconds); every result not taken yet."""
        for s in self.senders.values():
            for row in s.drain():
                self.results.put((row, Unsent("closed")))
            for _ in s.threads:
                s.queue.put(None)
        deadline = time.monotonic() + wait
        for s in self.senders.values():
            for t in s.threads:
                t.join(max(0.0, deadline - time.monotonic()))
        return self.finished()


__all__ = ["Dispatcher", "Result", "Sender", "Unsent"]
