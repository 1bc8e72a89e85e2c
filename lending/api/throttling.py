"""Rate limits per API key and per client address, counted in the default cache (`CACHE_URL`), which
all processes and replicas share in production. Beyond a limit: 429 `rate_limited` with `Retry-After`.

Rates come from THROTTLE_RATE_PER_KEY and THROTTLE_RATE_PER_IP ("<n>/<second|minute|hour|day>"),
read on every request; an empty rate means no limit. The client address is REMOTE_ADDR, or the
X-Forwarded-For entry added by the last of TRUSTED_PROXY_COUNT proxies.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    rate_setting: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting, None) or None


class PerKeyThrottle(_SettingsRateThrottle):
    """Requests per API key; requests without a key are left to the per-address limit."""

    scope = "key"
    rate_setting = "THROTTLE_RATE_PER_KEY"

    def get_cache_key(self, request: Request, view) -> str | None:
        api_key = request.auth
        prefix = getattr(api_key, "prefix", None)
        if not prefix:
            return None
        return self.cache_format % {"scope": self.scope, "ident": prefix}


class PerAddressThrottle(_SettingsRateThrottle):
    scope = "address"
    rate_setting = "THROTTLE_RATE_PER_IP"

    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
