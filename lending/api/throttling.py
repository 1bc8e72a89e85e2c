"""Rate limits per API key and per client address, counted in the default cache (`CACHE_URL`), which
all processes and replicas share in production. Beyond a limit: 429 `rate_limited` with `Retry-After`.

Rates come from THROTTLE_RATE_PER_KEY and THROTTLE_RATE_PER_IP ("<n>/<second|minute|hour|day>"),
read on every request; an empty rate means no limit. The client address is REMOTE_ADDR, or the
X-Forwarded-For entry added by the last of TRUSTED_PROXY_COUNT proxies.

Each limit is a counter per fixed window (the current minute, for "/min"), raised with one atomic
`incr` in the cache: a request costs the same whatever the rate. DRF's `SimpleRateThrottle` keeps
the timestamp of every request of the window instead, and reads and writes them all back on each
request (6,000 of them at the default rate). The price of a fixed window: a caller may fit up to
twice its rate across the boundary of two windows, which is the usual trade for service limits.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class _FixedWindowThrottle(SimpleRateThrottle):
    """DRF's rate parsing and client identification, with a counter per window as the state."""

    rate_setting: str

    def __init__(self) -> None:
        # The rate is read per request (settings may change under tests); not in the constructor.
        self.wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting, None) or None

    def allow_request(self, request: Request, view) -> bool:
        rate = self.get_rate()
        if not rate:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        limit, window_seconds = self.parse_rate(rate)
        now = time.time()
        window = int(now // window_seconds)
        if self._count(f"{ident}_{window}", window_seconds) <= limit:
            return True
        self.wait_seconds = (window + 1) * window_seconds - now
        return False

    @staticmethod
    def _count(key: str, window_seconds: int) -> int:
        """This request's number in the window: one atomic increment (Redis INCR)."""
        cache.add(key, 0, timeout=window_seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # the counter expired between add and incr: this request opens it again
            cache.set(key, 1, timeout=window_seconds + 1)
            return 1

    def wait(self) -> float | None:
        return self.wait_seconds


class PerKeyThrottle(_FixedWindowThrottle):
    """Requests per API key; requests without a key are left to the per-address limit."""

    scope = "key"
    rate_setting = "THROTTLE_RATE_PER_KEY"

    def get_cache_key(self, request: Request, view) -> str | None:
        api_key = request.auth
        prefix = getattr(api_key, "prefix", None)
        if not prefix:
            return None
        return self.cache_format % {"scope": self.scope, "ident": prefix}


class PerAddressThrottle(_FixedWindowThrottle):
    scope = "address"
    rate_setting = "THROTTLE_RATE_PER_IP"

    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
