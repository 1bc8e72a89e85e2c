"""Kiosk accounts: the API key sealed under the SIP password (a database dump alone opens nothing),
the key's scopes, and `manage.py sip_accounts`."""

from __future__ import annotations

import asyncio
import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework_api_key.models import APIKey

from lending.models import ApiKeyScopes
from sip_gateway import accounts, crypto
from sip_gateway.models import SipAccount

pytestmark = pytest.mark.django_db


def test_the_key_opens_only_with_the_password_and_for_its_login():
    sealed = crypto.seal("prefix.secret", "pw", "kiosk1")
    assert "prefix.secret" not in sealed
    assert crypto.unseal(sealed, "pw", "kiosk1") == "prefix.secret"
    assert crypto.unseal(sealed, "wrong", "kiosk1") is None
    assert crypto.unseal(sealed, "pw", "kiosk2") is None  # copied onto another account: useless
    assert crypto.unseal("garbage", "pw", "kiosk1") is None
    tampered = sealed.replace(f"${crypto.SCRYPT_N}$", f"${2**30}$")
    assert crypto.unseal(tampered, "pw", "kiosk1") is None  # no gigabytes for a tampered cost


def test_an_account_is_an_api_key_with_a_kiosks_scopes():
    plain = accounts.create_account("plain", "pw", institution="lib")
    offline = accounts.create_account("offline", "pw", institution="lib", allow_no_block=True)
    assert ApiKeyScopes.objects.get(api_key=plain.api_key).scope_list == ["circulation", "patron-read"]
    assert ApiKeyScopes.objects.get(api_key=offline.api_key).scope_list == ["circulation", "patron-read", "override"]
    row = SipAccount.objects.values().get(login="plain")
    assert "pw" not in (row["password"], row["sealed_key"])
    found = accounts.verify("plain", "pw")
    assert found is not None and APIKey.objects.get_from_key(found.api_key).pk == plain.api_key.pk
    assert accounts.verify("plain", "wrong") is None
    assert accounts.verify("nobody", "pw") is None


def test_a_new_password_is_a_new_key_and_the_old_one_is_gone():
    account = accounts.create_account("kiosk", "old", institution="lib")
    old_key = account.api_key.pk
    accounts.set_password(account, "new")
    assert not APIKey.objects.filter(pk=old_key).exists()
    assert accounts.verify("kiosk", "old") is None
    assert accounts.verify("kiosk", "new") is not None


def test_a_revoked_key_does_not_log_in():
    account = accounts.create_account("kiosk", "pw", institution="lib")
    APIKey.objects.filter(pk=account.api_key.pk).update(revoked=True)
    assert accounts.verify("kiosk", "pw") is None


def test_logins_are_remembered_only_when_they_succeed(transactional_db):
    accounts.create_account("kiosk", "pw", institution="lib")
    authenticator = accounts.Authenticator()

    async def attempts():
        return [await authenticator.login("kiosk", password) for password in ("wrong", "pw", "pw")]

    wrong, first, again = asyncio.run(attempts())
    assert wrong is None and first is again  # the second success came from memory
    SipAccount.objects.all().delete()
    assert asyncio.run(accounts.Authenticator().login("kiosk", "pw")) is None


def test_a_storm_of_one_accounts_logins_derives_its_key_once_per_slot(transactional_db, monkeypatch):
    """Kiosks sharing one account reconnect together (a gateway restart): those waiting for a login slot
    take the login a slot just made, instead of each paying the scrypt derivation (seen in `make bench`:
    50 kiosks, 9 logins past the kiosks' 10 s answer timeout on a slow machine)."""
    accounts.create_account("kiosk", "pw", institution="lib")
    derivations = []
    real_verify = accounts.verify

    def counted(login, password):
        derivations.append(login)
        return real_verify(login, password)

    monkeypatch.setattr(accounts, "verify", counted)
    authenticator = accounts.Authenticator(concurrency=2)

    async def storm():
        return await asyncio.gather(*(authenticator.login("kiosk", "pw") for _ in range(12)))

    logged_in = asyncio.run(storm())
    assert all(found is not None and found.login == "kiosk" for found in logged_in)
    assert len(derivations) <= 2  # the first slots' logins; the other ten took theirs from memory


@pytest.mark.parametrize(
    "fields",
    [
        {"login": "", "password": "pw", "institution": "lib"},
        {"login": "a|b", "password": "pw", "institution": "lib"},
        {"login": "k", "password": "", "institution": "lib"},
        {"login": "k", "password": "pw", "institution": ""},
        {"login": "k" * 65, "password": "pw", "institution": "lib"},
    ],
)
def test_accounts_sip_cannot_carry_are_refused(fields):
    with pytest.raises(accounts.AccountError):
        accounts.create_account(fields.pop("login"), fields.pop("password"), **fields)
    assert not APIKey.objects.exists()


def run(*args) -> str:
    out = io.StringIO()
    call_command("sip_accounts", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_lists_repasswords_and_deletes():
    # A password the output cannot hold by chance ("pw" could: the new key, printed once, is random).
    created = run("create", "kiosk", "--institution", "lib", "--location", "hall", "--password", "sesame-7Qx!")
    assert "kiosk" in created and "sesame-7Qx!" not in created
    listed = run("list")
    assert "kiosk" in listed and "hall" in listed and "active" in listed
    with pytest.raises(CommandError, match="exists already"):
        run("create", "kiosk", "--institution", "lib", "--password", "pw")
    run("set-password", "kiosk", "--password", "new")
    assert accounts.verify("kiosk", "new") is not None
    run("delete", "kiosk")
    assert not SipAccount.objects.exists() and not APIKey.objects.exists()
    with pytest.raises(CommandError, match="No kiosk account"):
        run("delete", "kiosk")
