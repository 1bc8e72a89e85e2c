"""Rate limits per API key and per client address, counted in the default cache (`CACHE_URL`), which
all processes and replicas share in production. Beyond a limit: 429 `rate_limited` with `Retry-After`.

Rates come from THROTTLE_RATE_PER_KEY and THROTTLE_RATE_PER_IP ("<n>/<second|minute|hour|day>"),
read on every request; an empty rate means no limit. The client address is REMOTE_ADDR, or behind
the proxies of TRUSTED_PROXIES the address they forward (lending/api/proxies.py).

Failed authentications (a wrong, revoked or expired key) are counted per client address too: beyond
AUTH_FAILURES_PER_MINUTE in a minute, every request of that address is refused with 429 until the
minute ends, whatever key it carries, so keys cannot be guessed at speed.

The cache is a dependency, not a gate: when it fails (Redis down), the limits fail open. The request
goes on, a warning is logged (at most once per process every 10 s) and
`lending_throttle_cache_errors_total` counts every request let through that way. After a failure the
cache is left alone for CACHE_RETRY_SECONDS, so a Redis that hangs costs one request its timeout
(CACHE_TIMEOUT_SECONDS), not every request.

Each limit is a counter per fixed window (the current minute, for "/min"), raised with one atomic
`incr` in the cache: a request costs the same whatever the rate. DRF's `SimpleRateThrottle` keeps
the timestamp of every request of the window instead, and reads and writes them all back on each
request (6,000 of them at the default rate). The price of a fixed window: a caller may fit up to
twice its rate across the boundary of two windows, which is the usual trade for service limits.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from prometheus_client import Counter
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from lending.api.proxies import address_of

logger = logging.getLogger(__name__)

cache_errors = Counter(
    "lending_throttle_cache_errors_total",
    "Rate-limit checks that let the request through because the cache failed (fail open).",
)
WARNING_INTERVAL_SECONDS = 10.0
CACHE_RETRY_SECONDS = 5.0
_last_warning = 0.0
_cache_skipped_until = 0.0


@receiver(setting_changed)
def _forget_cache_failures(setting: str, **kwargs) -> None:
    """Another cache (tests switch it) deserves a fresh try."""
    global _cache_skipped_until
    if setting == "CACHES":
        _cache_skipped_until = 0.0


def _cache_resting() -> bool:
    if time.monotonic() < _cache_skipped_until:
        cache_errors.inc()
        return True
    return False


def _cache_failed(exc: Exception) -> None:
    global _last_warning, _cache_skipped_until
    cache_errors.inc()
    now = time.monotonic()
    _cache_skipped_until = now + CACHE_RETRY_SECONDS
    if now - _last_warning >= WARNING_INTERVAL_SECONDS:
        _last_warning = now
        logger.warning("throttling skipped: the cache is unavailable (%s: %s)", exc.__class__.__name__, exc)


def count_in_window(key: str, window_seconds: int) -> int | None:
    """This event's number in the window: one atomic increment (Redis INCR). None when the cache
    fails: the caller lets the request through."""
    if _cache_resting():
        return None
    try:
        cache.add(key, 0, timeout=window_seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # the counter expired between add and incr: this event opens it again
            cache.set(key, 1, timeout=window_seconds + 1)
            return 1
    except Exception as exc:  # any cache backend's connection error: fail open
        _cache_failed(exc)
        return None


def read_counter(key: str) -> int:
    if _cache_resting():
        return 0
    try:
        return int(cache.get(key) or 0)
    except Exception as exc:
        _cache_failed(exc)
        return 0


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
        if limit is None or window_seconds is None:  # DRF parses None only from an empty rate
            return True
        now = time.time()
        window = int(now // window_seconds)
        count = count_in_window(f"{ident}_{window}", window_seconds)
        if count is None or count <= limit:
            return True
        self.wait_seconds = (window + 1) * window_seconds - now
        return False

    def get_ident(self, request: Request) -> str:
        return address_of(request)

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


# --- Failed authentications ----------------------------------------------------------------------------

AUTH_FAILURE_WINDOW_SECONDS = 60


def _auth_failure_key(address: str, window: int) -> str:
    return f"throttle_auth_failures_{address}_{window}"


def record_auth_failure(request) -> None:
    if getattr(settings, "AUTH_FAILURES_PER_MINUTE", 0) > 0:
        window = int(time.time() // AUTH_FAILURE_WINDOW_SECONDS)
        count_in_window(_auth_failure_key(address_of(request), window), AUTH_FAILURE_WINDOW_SECONDS)


def auth_lockout_seconds(request) -> float | None:
    """Seconds until the address may try again, when it failed AUTH_FAILURES_PER_MINUTE times already
    in this minute; None otherwise."""
    limit = getattr(settings, "AUTH_FAILURES_PER_MINUTE", 0)
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // AUTH_FAILURE_WINDOW_SECONDS)
    if read_counter(_auth_failure_key(address_of(request), window)) < limit:
        return None
    return (window + 1) * AUTH_FAILURE_WINDOW_SECONDS - now
