"""Which proxies are believed, and so who the client is.

TRUSTED_PROXIES lists the addresses or networks (CIDR) of the proxies in front of the service (the
ingress, a load balancer). Their X-Forwarded-For and X-Forwarded-Proto headers are believed; from any
other peer those headers are dropped before anything reads them, so a client can neither claim HTTPS
(and skip the redirect) nor choose the address its rate limits are counted against.
"""

from __future__ import annotations

import ipaddress
from collections.abc import MutableMapping
from functools import lru_cache

from django.conf import settings

# Every header a proxy may set and Django or DRF may read; dropped when the peer is not trusted.
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", None) or ()))


def is_trusted_proxy(address: str | None) -> bool:
    networks = trusted_networks()
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def drop_untrusted_forwarded_headers(meta: MutableMapping) -> None:
    """Removes the X-Forwarded-* headers unless the peer is a trusted proxy."""
    if is_trusted_proxy(meta.get("REMOTE_ADDR")):
        return
    for name in FORWARDED_HEADERS:
        meta.pop(name, None)


def client_address(meta: MutableMapping) -> str:
    """REMOTE_ADDR, or behind trusted proxies the last X-Forwarded-For entry that is not one of them
    (the entries left of it were written by the client and prove nothing)."""
    remote = meta.get("REMOTE_ADDR") or ""
    if not is_trusted_proxy(remote):
        return remote
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            return _valid_address(hop) or remote
    return remote


def _valid_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def address_of(request) -> str:
    """The request's client address (`client_address`), resolved once per request: RequestIdMiddleware
    stores it first, for the log line; the throttles and the lockouts read it here."""
    known = getattr(request, "client_address", None)
    if known is None:
        known = request.client_address = client_address(request.META)
    return known


def axes_client_address(request) -> str:
    """The admin lockout (django-axes) counts failures against the same client address as the API's
    throttles, so it trusts exactly the proxies in TRUSTED_PROXIES."""
    return address_of(request)
