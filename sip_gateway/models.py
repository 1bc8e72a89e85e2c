"""Kiosk accounts: each SIP2 login (`CN`/`CO` of a `93`) is one API key of the lending service.

The password is stored as Django hashes passwords (`make_password`); the API key the account acts
with is stored sealed under that password (`sip_gateway.crypto`), so only a correct login opens it.
The key's scopes are what a kiosk needs: `circulation` and `patron-read`, and `override` only for an
account allowed no-block (offline) transactions. `manage.py sip_accounts` and the admin manage them.
"""

from __future__ import annotations

from django.contrib.auth.hashers import check_password, make_password
from django.db import models

from sip_gateway import crypto

MAX_FIELD_LENGTH = 64


class SipAccount(models.Model):
    login = models.CharField(max_length=MAX_FIELD_LENGTH, unique=True, help_text="The kiosk's `CN` login.")
    password = models.CharField(max_length=128, help_text="The `CO` password, hashed.")
    institution = models.CharField(max_length=MAX_FIELD_LENGTH, help_text="The institution id (`AO`) it answers with.")
    location = models.CharField(
        max_length=MAX_FIELD_LENGTH, blank=True, default="", help_text="The kiosk's location code (`CP`)."
    )
    allow_no_block = models.BooleanField(
        default=False,
        help_text="May apply no-block (offline) transactions, recorded as overrides.",
    )
    api_key = models.OneToOneField(
        "rest_framework_api_key.APIKey",
        on_delete=models.CASCADE,
        related_name="sip_account",
        help_text="The lending API key the kiosk acts with.",
    )
    sealed_key = models.TextField(help_text="The API key, encrypted under the SIP password (never shown).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        verbose_name = "SIP2 kiosk account"
        ordering = ["login"]

    def __str__(self) -> str:
        return self.login

    def set_secrets(self, password: str, raw_api_key: str) -> None:
        """Hashes the password and seals the API key under it."""
        self.password = make_password(password)
        self.sealed_key = crypto.seal(raw_api_key, password, self.login)

    def open_key(self, password: str) -> str | None:
        """The API key when `password` is this account's, else None."""
        if not check_password(password, self.password):
            return None
        return crypto.unseal(self.sealed_key, password, self.login)

    @property
    def scopes(self) -> list[str]:
        return kiosk_scopes(self.allow_no_block)


def kiosk_scopes(allow_no_block: bool) -> list[str]:
    """What a kiosk's key needs: circulation (check-out, check-in, renew, an item's status) and
    patron-read (the patron's loans and holds); override only for no-block transactions."""
    from lending.models import Scope

    return [Scope.CIRCULATION, Scope.PATRON_READ, *([Scope.OVERRIDE] if allow_no_block else [])]
