"""What the flusher tells of its work, to a subscriber it is given (live scoring is one): the
flusher knows nothing of who listens."""

from __future__ import annotations

from typing import Any, Protocol

from .identity import IdentityBatch


class Subscriber(Protocol):
    """What the flusher tells of its work (live scoring, :class:`pqlkit.handoff.live.Live`,
    is one): it is given the flusher's thread and connection, and knows nothing of the log."""

    def note(self, users: set[str], ids: IdentityBatch) -> None:
        """A batch was stored: its events' users (or anonymous ids) and its identity calls."""

    def resolved(self) -> None:
        """The identity tables were rebuilt (the identity calls' users are now known)."""

    def wants_tick(self) -> bool:
        """Whether it has work for :meth:`tick` though nothing new was stored."""
        return False

    def tick(self, backend: Any) -> None:
        """Do its work on the flusher's connection (after each flush, and when it wants)."""

    def finish(self, backend: Any) -> None:
        """The flusher is stopping: record what is in flight."""

    # optional: ``stored(through: datetime)``, told how far the log is stored (every request
    # received before ``through``), by a subscriber that keeps time by the log (the volume watch)


class Subscribers:
    """Several subscribers told in turn (live scoring and the volume watch of `pql serve
    --model`): each is told everything, and ticks when it wants to."""

    def __init__(self, *subscribers: Subscriber):
        self.subscribers = subscribers

    def note(self, users: set[str], ids: IdentityBatch) -> None:
        for s in self.subscribers:
            s.note(users, ids)

    def resolved(self) -> None:
        for s in self.subscribers:
            s.resolved()

    def wants_tick(self) -> bool:
        return any(s.wants_tick() for s in self.subscribers)

    def tick(self, backend: Any) -> None:
        for s in self.subscribers:
            s.tick(backend)

    def finish(self, backend: Any) -> None:
        for s in self.subscribers:
            s.finish(backend)

    def stored(self, through: Any) -> None:
        """Everything received before ``through`` is stored (to those that keep time by it)."""
        for s in self.subscribers:
            if hasattr(s, "stored"):
                s.stored(through)

    def __getattr__(self, name: str) -> Any:
        """What one of them publishes (live scoring's ``stats``, the watch's ``tracking``)."""
        for s in self.__dict__.get("subscribers", ()):
            if hasattr(s, name):
                return getattr(s, name)
        raise AttributeError(name)
