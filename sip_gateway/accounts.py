"""Kiosk accounts, for the gateway (a `93` login) and for those who manage them (the command, the
admin): creating an account creates its API key; a new password means a new key (the old one is
deleted, since it was sealed under the old password); deleting an account deletes its key.

A login costs a password hash and an scrypt derivation, tens to hundreds of milliseconds of CPU. The
gateway runs it on a worker thread (never on the event loop), at most LOGIN_CONCURRENCY at once so a
storm of logins (or of wrong passwords) cannot take the threads the kiosks' transactions need, and
remembers a successful login for LOGIN_CACHE_SECONDS (by a digest of login and password), so a kiosk
that reconnects pays nothing, nor does one that waited for a slot while another made its login (kiosks
sharing an account reconnect together after a restart). A changed password or a deleted account is
honoured at the next login once that time has passed; the API refuses a deleted key at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import cast

from django.db import close_old_connections, connection, transaction
from rest_framework_api_key.models import APIKey

from lending.api.permissions import create_key
from sip_gateway.models import MAX_FIELD_LENGTH, SipAccount, kiosk_scopes

LOGIN_CONCURRENCY = 4
LOGIN_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class LoggedIn:
    """A kiosk after a successful `93`: what its messages run with. The API key lives only here."""

    login: str
    institution: str
    location: str
    allow_no_block: bool
    api_key: str


class AccountError(ValueError):
    pass


def check_text(name: str, value: str) -> str:
    """A login, institution or location as SIP carries it: printable, no `|`, at most 64 characters."""
    value = value.strip()
    if len(value) > MAX_FIELD_LENGTH or "|" in value or not value.isprintable():
        raise AccountError(f"The {name} must be at most {MAX_FIELD_LENGTH} printable characters, without `|`.")
    return value


def create_account(
    login: str, password: str, *, institution: str, location: str = "", allow_no_block: bool = False, by: str = ""
) -> SipAccount:
    login = check_text("login", login)
    if not login:
        raise AccountError("The login must not be empty.")
    if not password:
        raise AccountError("The password must not be empty.")
    institution = check_text("institution", institution)
    if not institution:
        raise AccountError("The institution (AO) must not be empty.")
    with transaction.atomic():
        if SipAccount.objects.filter(login=login).exists():
            raise AccountError(f"A kiosk account {login!r} exists already.")
        api_key, raw = _new_key(login, allow_no_block)
        account = SipAccount(
            login=login,
            institution=institution,
            location=check_text("location", location),
            allow_no_block=allow_no_block,
            api_key=api_key,
            created_by=by,
            updated_by=by,
        )
        account.set_secrets(password, raw)
        account.save()
    return account


def set_password(account: SipAccount, password: str, *, by: str = "") -> SipAccount:
    """A new password, and with it a new API key (same scopes); the old key is deleted."""
    if not password:
        raise AccountError("The password must not be empty.")
    with transaction.atomic():
        old_key = account.api_key
        account.api_key, raw = _new_key(account.login, account.allow_no_block)
        account.set_secrets(password, raw)
        account.updated_by = by
        account.save()
        old_key.delete()
    return account


def _new_key(login: str, allow_no_block: bool) -> tuple[APIKey, str]:
    """A new API key for the account, named after it, with the scopes a kiosk needs."""
    api_key, raw = create_key(f"sip:{login}"[:50], kiosk_scopes(allow_no_block))
    return cast(APIKey, api_key), raw  # create_key makes the library's APIKey


def set_no_block(account: SipAccount, allowed: bool, *, by: str = "") -> None:
    """Allows (or not) no-block transactions: the key's scopes follow (`override` or not)."""
    from lending.models import ApiKeyScopes

    with transaction.atomic():
        account.allow_no_block = allowed
        account.updated_by = by
        account.save()
        ApiKeyScopes.objects.update_or_create(
            api_key=account.api_key, defaults={"scopes": " ".join(kiosk_scopes(allowed))}
        )


def delete_account(account: SipAccount) -> None:
    with transaction.atomic():
        api_key = account.api_key
        account.delete()
        api_key.delete()


def verify(login: str, password: str) -> LoggedIn | None:
    """The account when the password opens its key; None otherwise (no such login, wrong password,
    a revoked key)."""
    account = SipAccount.objects.select_related("api_key").filter(login=login).first()
    if account is None or account.api_key.revoked:
        return None
    raw = account.open_key(password)
    if raw is None:
        return None
    return LoggedIn(account.login, account.institution, account.location, account.allow_no_block, raw)


def _verify_on_worker(login: str, password: str) -> LoggedIn | None:
    """`verify` on a worker thread of the gateway. Logins are rare (remembered once made): no
    database connection is kept on the thread."""
    close_old_connections()
    try:
        return verify(login, password)
    finally:
        connection.close()


class Authenticator:
    """`93` logins for the gateway: off the event loop, bounded, successful ones remembered."""

    def __init__(self, cache_seconds: float = LOGIN_CACHE_SECONDS, concurrency: int = LOGIN_CONCURRENCY) -> None:
        self.cache_seconds = cache_seconds
        self._gate = asyncio.Semaphore(concurrency)
        self._remembered: dict[bytes, tuple[float, LoggedIn]] = {}
        self._lock = threading.Lock()
        self._pepper = os.urandom(16)  # digests of passwords mean nothing outside this process

    def _digest(self, login: str, password: str) -> bytes:
        return hmac.new(self._pepper, f"{login}\0{password}".encode(), hashlib.sha256).digest()

    async def login(self, login: str, password: str) -> LoggedIn | None:
        digest = self._digest(login, password)
        remembered = self._remembered_login(digest)
        if remembered is not None:
            return remembered
        async with self._gate:
            # Kiosks sharing an account reconnect together: one that waited for a slot takes the
            # login another slot made meanwhile, instead of paying the derivation again.
            remembered = self._remembered_login(digest)
            if remembered is not None:
                return remembered
            found = await asyncio.to_thread(_verify_on_worker, login, password)
            if found is not None and self.cache_seconds > 0:
                with self._lock:
                    if len(self._remembered) > 10_000:
                        self._remembered.clear()
                    self._remembered[digest] = (time.monotonic() + self.cache_seconds, found)
        return found

    def _remembered_login(self, digest: bytes) -> LoggedIn | None:
        with self._lock:
            entry = self._remembered.get(digest)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None
