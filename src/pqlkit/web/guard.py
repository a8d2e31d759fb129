"""What stands before the password check: the throttle of failed sign-ins, the browsers a user
signed in from before, and which address a request comes from (behind trusted proxies too).

The throttle takes its slot before the slow hash, so parallel attempts cannot overtake the count
(40 at once for one name get 5 checked), and it refuses with delays that grow, never a lock:
after ``per_name`` failures for a name (``per_address`` from an address) each further attempt
waits twice as long as the one before, 15 s, 30 s, 1 min ... up to ``cap`` (15 min), a refused
attempt costs no more waiting, and an hour without failures forgets them. A browser that signed in as a name before keeps a signed cookie saying so
and counts for that name on a counter of its own, so whoever guesses someone's password does
not keep that someone out (OWASP's "device cookie").
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import PqlkitError

KNOWN = "pql_known"
"""The cookie of a browser that signed in before: a nonce and its MAC over the name."""
KNOWN_MAX_AGE = 365 * 24 * 3600
TRUSTED_ENV = "PQL_TRUSTED_PROXIES"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0


@dataclass
class Throttle:
    per_name: int = 5
    per_address: int = 30
    base: float = 15.0
    cap: float = 900.0
    forget: float = 3600.0
    """Seconds without a failure after which a key starts afresh."""
    clock: Callable[[], float] = time.monotonic
    _counts: dict[str, _Count] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _wait(self, key: str, free: int, now: float) -> float:
        count = self._counts.get(key)
        if count is None:
            return 0.0
        if now - count.last >= self.forget:
            del self._counts[key]
            return 0.0
        if count.failures < free:
            return 0.0
        delay = min(self.base * 2.0 ** (count.failures - free), self.cap)
        return max(0.0, delay - (now - count.last))

    def take(self, name_key: str, address: str) -> float:
        """Take a slot for an attempt (counted as failed until :meth:`succeeded`); 0 when
        taken, else the seconds to wait, and nothing is counted."""
        keys = {f"n:{name_key}": self.per_name, f"a:{address}": self.per_address}
        with self._lock:
            now = self.clock()
            wait = max(self._wait(k, free, now) for k, free in keys.items())
            if wait > 0:
                return wait
            if len(self._counts) > 100_000:  # a flood of names: keep the memory bounded
                self._counts = {k: c for k, c in self._counts.items() if now - c.last < self.cap}
            for k in keys:
                count = self._counts.setdefault(k, _Count())
                count.failures += 1
                count.last = now
        return 0.0

    def succeeded(self, name_key: str, address: str) -> None:
        """The attempt was right: the name starts afresh, the address gets its slot back."""
        with self._lock:
            self._counts.pop(f"n:{name_key}", None)
            count = self._counts.get(f"a:{address}")
            if count is not None:
                count.failures = max(0, count.failures - 1)


def _mac(secret: str, nonce: str, name: str) -> str:
    message = f"{nonce}\0{name.lower()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def known_cookie(secret: str, name: str) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_mac(secret, nonce, name)}"


def name_key(secret: str, name: str, cookie: str | None) -> str:
    """The throttle's key for attempts at ``name``: the name, or the name on this browser
    when it signed in as that name before."""
    nonce, _, mac = (cookie or "").partition(".")
    if nonce and hmac.compare_digest(mac.encode(), _mac(secret, nonce, name).encode()):
        return f"{name.lower()}\0{nonce}"
    return name.lower()


def networks(values: Iterable[str]) -> list[Network]:
    """Trusted proxies from CIDRs or addresses (`--trusted-proxy`, $PQL_TRUSTED_PROXIES)."""
    found = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                found.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise PqlkitError(
                    f"trusted proxy {part!r} is not an address or a CIDR; use e.g. 10.0.0.0/8 "
                    "or 127.0.0.1 (--trusted-proxy, or comma-separated in "
                    f"${TRUSTED_ENV})"
                ) from None
    return found


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: list[str], trusted: list[Network]) -> str:
    """Who is asking: the peer, or, when the peer is a trusted proxy, the nearest address in
    X-Forwarded-For that is not one (each proxy appends the address it heard from)."""
    address = peer or "-"
    if not _trusted(address, trusted):
        return address
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a hop no proxy would write: trust none of it
        if not _trusted(hop, trusted):
            return hop
        address = hop
    return address
