"""What every destination shares: the delivery it is given, the outcome it returns, the session
it sends through, pacing, and the HTTP plumbing with its retry classification (Standard
Webhooks' rules: 2xx done; 410 gone; 429 and 503 wait as long as Retry-After says; 408, 409,
425, 429 and 5xx and network errors retried; any other 4xx permanent)."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..model.signals import duration_seconds

if TYPE_CHECKING:  # httpx is the hand-off extra's: imported when something is sent
    import httpx


@dataclass(frozen=True)
class Delivery:
    """One transition for one destination."""

    transition_id: str
    """The transition's stable id: the same on every retry (a webhook's webhook-id)."""
    destination: str
    payload: str
    """The transition as JSON text (the webhook body)."""
    attempts: int = 0

    @classmethod
    def of(cls, row: dict[str, Any]) -> Delivery:
        """From a row of the deliveries joined with the outbox."""
        return cls(
            str(row["transition_id"]),
            str(row["destination"]),
            str(row["payload"]),
            int(row.get("attempts") or 0),
        )

    def data(self) -> dict[str, Any]:
        value = json.loads(self.payload)
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Ok:
    """Delivered."""

    status: int | None = 200
    error: None = None


@dataclass(frozen=True)
class Retry:
    """Not delivered, may work later (a network error, 408, 409, 425, 429 or 5xx): again on
    the hand-off's schedule."""

    error: str
    status: int | None = None


@dataclass(frozen=True)
class RetryAfter:
    """Not delivered: the receiver asked to wait ``seconds`` (429 or 503 with Retry-After)."""

    seconds: float
    error: str
    status: int | None = None


@dataclass(frozen=True)
class Gone:
    """410 Gone: the endpoint asks never to be called again; the destination is disabled."""

    error: str
    status: int | None = 410


@dataclass(frozen=True)
class Permanent:
    """Refused for good (a 4xx other than 408, 409, 425, 429; a record that cannot be
    written): dead-lettered at once."""

    error: str
    status: int | None = None


Outcome = Ok | Retry | RetryAfter | Gone | Permanent


@dataclass
class Session:
    """What a destination sends through."""

    client: Any
    """An httpx.Client (tests pass one to a real local receiver)."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC).replace(tzinfo=None))
    sleep: Callable[[float], None] = time.sleep
    backend: Any = None
    """The open database, for kinds that send in batches on its thread (the CRM kinds)."""
    engine: Any = None
    """The engine over ``backend``, for kinds that read the scored state (the CRM kinds)."""


class Destination(Protocol):
    """One kind of destination: see :mod:`pqlkit.destinations`."""

    kind: ClassVar[str]
    batch: ClassVar[bool]
    """True: sent with ``send_batch`` on the database's thread (it reads or writes there)."""

    def send(self, delivery: Delivery) -> Outcome: ...

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]: ...


class Pacer:
    """At most one message every ``interval`` seconds, and none while the receiver asked to
    wait: a Retry-After pauses the whole destination, not just the delivery it answered. Safe
    to share between sending threads: each takes the next free slot."""

    def __init__(self, interval: float, sleep: Callable[[float], None] = time.sleep):
        self.interval = interval
        self.sleep = sleep
        self.last = -1e9
        self.paused_until = -1e9
        self._turn = threading.Lock()

    def paused(self) -> float:
        """Seconds left of a pause (0 when none)."""
        return max(0.0, self.paused_until - time.monotonic())

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def wait(self) -> None:
        if self.interval <= 0:
            return
        with self._turn:  # one sender at a time takes the next slot
            wait = self.interval - (time.monotonic() - self.last)
            if wait > 0:
                self.sleep(wait)
            self.last = time.monotonic()


class HttpDestination:
    """A destination reached by one HTTP POST per delivery. A kind says what to post
    (:meth:`request`); sending, pacing and classifying the answer are here."""

    kind: ClassVar[str]
    batch: ClassVar[bool] = False
    interval: ClassVar[float] = 0.0
    """The receiver's pace: seconds between two messages to one destination."""
    concurrency: ClassVar[int] = 1
    """How many deliveries may be in flight to one destination at once, unless its
    declaration says (a webhook's `concurrency:`)."""
    syntax: ClassVar[str | None] = None
    """How the receiver renders text: None (data), "slack-mrkdwn" or "markdown"."""
    auth: ClassVar[str] = "secret-url"
    """How the receiver knows the sender: "signature" (signed headers) or "secret-url" (the
    URL, from the environment, is the secret)."""
    schema: ClassVar[dict[str, Any]] = {}
    """The JSON Schema (a subset: type, required, properties, items, enum) of a posted body."""

    def __init__(self, spec: Any, secrets: list[str], session: Session):
        self.spec = spec
        self.secrets = secrets
        self.session = session
        self.timeout = duration_seconds(spec.timeout)
        self.pacer = Pacer(self.interval, session.sleep)
        self.bound: int = getattr(spec, "concurrency", None) or self.concurrency

    @classmethod
    def check_secrets(cls, spec: Any, values: list[str]) -> list[str]:
        """The secrets from the environment's values, or a ValueError saying what is wrong."""
        return values

    def request(self, delivery: Delivery) -> tuple[str, str, dict[str, str]]:
        """(url, body, headers) to POST for ``delivery``."""
        raise NotImplementedError

    @staticmethod
    def markup(body: Any) -> list[str]:
        """The texts of a posted body that the receiver renders as markup (to check escaping)."""
        return []

    @classmethod
    def example(cls, url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A declaration sending to ``url`` and its environment (for the conformance suite)."""
        raise NotImplementedError

    def send(self, delivery: Delivery) -> Outcome:
        import httpx

        url, body, headers = self.request(delivery)
        if not self.pacer.paused():
            self.pacer.wait()
        left = self.pacer.paused()  # also one that came while this delivery waited its turn
        if left > 0:  # not sent: the receiver asked to wait
            return RetryAfter(left, f"not sent: {self.spec.id} asked to wait (Retry-After)")
        try:
            response = self.session.client.post(
                url, content=body.encode(), headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out: try again later
            return Retry(f"{type(exc).__name__}: {exc}".strip(": "))
        outcome = self.classify(response)
        if isinstance(outcome, RetryAfter):
            self.pacer.pause(outcome.seconds)
        return outcome

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        return [self.send(d) for d in deliveries]

    def classify(self, response: httpx.Response) -> Outcome:
        return classify(response.status_code, response.text, response.headers.get("retry-after"))


def classify(status: int, text: str, retry_after: str | None) -> Outcome:
    """An HTTP answer as an outcome, as Standard Webhooks says."""
    if 200 <= status < 300:
        return Ok(status)
    error = f"HTTP {status}: {text[:200].strip()}".rstrip(": ")
    if status == 410:
        return Gone(error, status)
    wait = parse_retry_after(retry_after) if status in (429, 503) else None
    if wait is not None:
        return RetryAfter(wait, error, status)
    if 400 <= status < 500 and status not in (408, 409, 425, 429):
        return Permanent(error, status)
    return Retry(error, status)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), None when absent or
    unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def subject(data: dict[str, Any]) -> dict[str, Any]:
    """The user (or account) a transition is about."""
    found = data.get("user") or data.get("account") or {}
    return found if isinstance(found, dict) else {}


def kind_words(data: dict[str, Any]) -> str:
    """`pql.became_pql` as "became pql"."""
    return str(data.get("type", "")).removeprefix("pql.").replace("_", " ")
