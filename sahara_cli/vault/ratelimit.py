"""Token buckets per caller (a remote IP, a Sahara address), for the servers.

Each key gets a bucket of ``burst`` tokens that refills at ``rate`` tokens a second; a
request takes one. Buckets are kept for the most recently seen ``max_keys`` keys; an
older one is dropped (a key seen again starts with a full bucket), so memory stays
bounded whatever the number of callers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Buckets kept at most (about 100 bytes each).
MAX_KEYS = 100_000


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0")
        self.rate = rate
        self.burst = burst if burst is not None else burst_of(rate)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when ``key`` may go on; else the seconds until its next token."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def burst_of(rate: float) -> int:
    """The default burst of a rate: two seconds' worth, at least one request."""
    return max(1, math.ceil(2 * rate))


def rate_key(remote: str) -> str:
    """The rate-limit key of a remote address: an IPv4 address as it is, an IPv6 one by
    its /64 (one host commonly holds a whole /64, so per-address buckets would be free)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if address.version == 6 else str(address)
