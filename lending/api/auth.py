"""Service API keys: `Authorization: Api-Key <key>`, required on every API call when REQUIRE_API_KEY is
true. Keys are stored hashed (djangorestframework-api-key); `manage.py api_keys` and the admin manage
them.

A missing key is 401 `not_authenticated`; a wrong, revoked or expired one is 401
`authentication_failed`. Both carry `WWW-Authenticate: Api-Key`, and both are refused before the view
runs, so nothing is written. What a valid key may call is up to its scopes (`permissions`).
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

KEYWORD = "Api-Key"


def keys_required() -> bool:
    return bool(getattr(settings, "REQUIRE_API_KEY", False))


def presented_key(request: Request | HttpRequest) -> str | None:
    """The key of an `Authorization: Api-Key <key>` header; None when there is no such header."""
    keyword, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if keyword.lower() != KEYWORD.lower():
        return None
    return key.strip()


class ApiKeyAuthentication(BaseAuthentication):
    """Identifies the calling service by its key. With keys not required, the header is ignored."""

    def authenticate(self, request: Request):
        if not keys_required():
            return None
        key = presented_key(request)
        if key is None:
            return None
        # Keys are printable ASCII; anything else (a NUL, which PostgreSQL refuses in a query) is wrong.
        if not key or len(key) > 200 or not (key.isascii() and key.isprintable()):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        api_key = verified_keys.get(key)
        if api_key is None:
            api_key = _verified(key)
            if api_key is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
            verified_keys.put(key, api_key)
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        # For the request log line (`lending.observability.logs`), which sees Django's request, not DRF's.
        request._request.api_key_prefix = api_key.prefix  # type: ignore[attr-defined]  # an attribute of ours
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with this challenge) rather than 403 for a missing or bad key.
        return KEYWORD


def _verified(key: str):
    """The usable (unrevoked) key matching `key`, with its scopes in `granted_scopes` (see
    `lending.api.permissions`; none without a grant row), read in one query; None if none matches.
    `APIKey.objects.get_from_key`, plus the scopes."""
    from rest_framework_api_key.models import APIKey

    prefix, _, _ = key.partition(".")
    api_key = APIKey.objects.get_usable_keys().select_related("grant").filter(prefix=prefix).first()
    if api_key is None or not api_key.is_valid(key):
        return None
    grant = getattr(api_key, "grant", None)
    api_key.granted_scopes = frozenset(grant.scope_list if grant else ())
    api_key.bound_patron = grant.patron_email if grant else ""  # a `patron-self` key's patron
    return api_key


class RequireApiKey(BasePermission):
    """Lets a request through when keys are not required, or when a valid key authenticated it."""

    def has_permission(self, request: Request, view) -> bool:
        if not keys_required():
            return True
        if request.auth is None:
            raise exceptions.NotAuthenticated(f"An API key is required: send `Authorization: {KEYWORD} <key>`.")
        return True


class VerifiedKeyCache:
    """The keys this process verified in the last API_KEY_CACHE_SECONDS: a call with one of them
    costs no query and no hash. A key revoked or deleted by another process (the admin, the
    `api_keys` command) keeps working here for at most that long; in this process the change
    clears the cache at once. Only valid keys are kept, by digest, so wrong keys cannot fill it."""

    MAX_ENTRIES = 1000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, object]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str):
        entry = self._entries.get(self._digest(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, api_key) -> None:
        ttl = getattr(settings, "API_KEY_CACHE_SECONDS", 0)
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._digest(key)] = (time.monotonic() + ttl, api_key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_keys = VerifiedKeyCache()


@receiver(post_save, sender="rest_framework_api_key.APIKey")
@receiver(post_delete, sender="rest_framework_api_key.APIKey")
@receiver(post_save, sender="lending.ApiKeyScopes")
@receiver(post_delete, sender="lending.ApiKeyScopes")
def _forget_verified_keys(**kwargs) -> None:
    verified_keys.clear()
