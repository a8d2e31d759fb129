"""HTTP to a CRM: paced to its rate limit, backing off on 429 and 5xx, refreshing a token on 401.

Retries come from tenacity (waits: the server's Retry-After when it gives one, else
exponential). When the CRM stays unavailable past ``give_up_after`` seconds the call raises
:class:`CrmUnavailable`; the sync stops there and what it had not sent stays unsent in the
ledger, for the next sync. Nothing is dropped.
"""

from __future__ import annotations

import collections
import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from ..errors import AuthError, DeliveryError

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class CrmError(DeliveryError):
    """A CRM refused a call (a missing field, a bad value...): the message says which."""

    code = "crm"


class CrmUnavailable(CrmError):
    """The CRM kept failing or limiting; what was not sent is sent at the next sync."""

    code = "crm_unavailable"
    exit_code = 75
    retryable = True


class CrmAuthError(CrmError, AuthError):
    """The CRM refused the credentials (a token, a sign-in): the message names their setting."""

    code = "crm_auth"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), if any."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class Window:
    """At most ``calls`` calls in any ``seconds`` (a sliding window of the last calls' times)."""

    def __init__(
        self,
        calls: int,
        seconds: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calls, self.seconds, self.sleep, self.clock = calls, seconds, sleep, clock
        self.times: collections.deque[float] = collections.deque()

    def wait(self) -> None:
        now = self.clock()
        while self.times and now - self.times[0] >= self.seconds:
            self.times.popleft()
        if len(self.times) >= self.calls:
            self.sleep(self.seconds - (now - self.times[0]))
            self.times.popleft()
        self.times.append(self.clock())


class Transport:
    """Calls to one CRM."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        *,
        name: str,
        timeout: float,
        headers: Callable[[], dict[str, str]],
        refresh: Callable[[], None] | None = None,
        window: Window | None = None,
        give_up_after: float = 300.0,
        max_attempts: int = 30,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client, self.base_url, self.name, self.timeout = client, base_url, name, timeout
        self.headers, self.refresh, self.window = headers, refresh, window
        self.give_up_after, self.sleep = give_up_after, sleep
        self.max_attempts = max_attempts
        self.calls = 0
        self.waited = 0.0
        """Seconds spent waiting on 429s and failures (pacing not counted)."""
        self.on_response: Callable[[httpx.Response], None] | None = None

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential(multiplier=1, min=1, max=60)(state)
        if state.outcome is not None and not state.outcome.failed:
            told = retry_after(state.outcome.result())
            if told is not None:
                return told
        return backoff

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        self.sleep(seconds)

    def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.window is not None:
            self.window.wait()
        self.calls += 1
        response = self.client.request(
            method, url, headers=self.headers(), timeout=self.timeout, **kwargs
        )
        if response.status_code == 401 and self.refresh is not None:
            self.refresh()  # an expired token: a new one, and the call once more
            self.calls += 1
            response = self.client.request(
                method, url, headers=self.headers(), timeout=self.timeout, **kwargs
            )
        if self.on_response is not None:
            self.on_response(response)
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to a call (any status but the retryable ones, which are retried)."""
        url = path if path.startswith("http") else self.base_url + path
        retrying = Retrying(
            retry=retry_if_exception_type(httpx.TransportError)
            | retry_if_result(lambda r: r.status_code in RETRYABLE),
            wait=self._wait,
            stop=stop_after_delay(self.give_up_after) | stop_after_attempt(self.max_attempts),
            sleep=self._sleep,
        )
        try:
            return retrying(self._once, method, url, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt
            why = (
                f"{type(last.exception()).__name__}: {last.exception()}"
                if last.failed
                else f"HTTP {last.result().status_code}: {last.result().text[:300]}"
            )
            raise CrmUnavailable(
                f"{self.name} kept failing ({last.attempt_number} attempts; {why}); "
                "nothing unsent is lost: the next sync sends it"
            ) from None
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from None
