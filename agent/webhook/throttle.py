"""Failed authentications, limited per client address: a guessed token costs minutes, not microseconds.

After `limit` failures within `window` seconds an address is blocked (429, `Retry-After`) for `base`
seconds; each further block doubles, up to `cap`. Every address counts on its own, so a right token
from another address is never held up. `X-Forwarded-For` names the client only when the connection
comes from one of `trusted` (a reverse proxy); otherwise the socket's peer address does.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.1`, `10.0.0.0/8`, `::1` → networks; ValueError names the bad one."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {v!r}") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def client_address(peer: str, forwarded: list[str], trusted: tuple[Network, ...]) -> str:
    """The client a request is counted against: the peer, or, behind a trusted proxy, the nearest
    address in `X-Forwarded-For` that is not itself a trusted proxy."""

    def is_trusted(text: str) -> bool:
        ip = _ip(text)
        return ip is not None and any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if _ip(hop) is None:
            return peer  # a hop that is no address: count the proxy itself
        if not is_trusted(hop):
            return str(_ip(hop))
    return peer


@dataclass
class _Record:
    failures: list[float]
    blocked_until: float = 0.0
    strikes: int = 0  # blocks so far: each one twice as long as the one before
    last: float = 0.0


class FailedAuth:
    """The per-address book of failed authentications. Thread-safe; bounded to `max_keys` addresses."""

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = 60.0,
        base: float = 60.0,
        cap: float = 3600.0,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.base, self.cap = limit, window, base, cap
        self._max_keys = max_keys
        self._clock = clock
        self._book: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, address: str) -> float:
        """Seconds this address stays blocked (0: not blocked)."""
        with self._lock:
            rec = self._book.get(address)
            return max(0.0, rec.blocked_until - self._clock()) if rec else 0.0

    def failed(self, address: str) -> float:
        """Count one failure; returns the seconds the address is now blocked (0: not blocked)."""
        now = self._clock()
        with self._lock:
            rec = self._book.pop(address, None) or _Record([])
            self._book[address] = rec  # most recent last: the oldest is evicted first
            if rec.strikes and now - rec.last > 2 * self.cap:
                rec.strikes = 0  # quiet long enough: start over
            rec.last = now
            rec.failures = [t for t in rec.failures if now - t < self.window] + [now]
            if len(rec.failures) >= self.limit and rec.blocked_until <= now:
                rec.strikes += 1
                rec.blocked_until = now + min(self.cap, self.base * 2 ** (rec.strikes - 1))
                rec.failures = []
            while len(self._book) > self._max_keys:
                self._book.popitem(last=False)
            return max(0.0, rec.blocked_until - now)


class LogThrottle:
    """At most one log line per key and interval; counts what it kept quiet."""

    def __init__(self, interval: float, max_keys: int = 1024) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._seen: dict[str, tuple[float, int]] = {}

    def check(self, key: str) -> int | None:
        """None: stay quiet. Otherwise log, mentioning this many lines kept quiet since the last."""
        now = time.monotonic()
        last, quiet = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[key] = (last, quiet + 1)
            return None
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > self._max_keys:
            del self._seen[next(iter(self._seen))]
        return quiet
