"""Kiosk accounts in the admin: superusers add one (its API key made with it), change its no-block
permission (the key's scopes follow) and its password (a new key); neither is ever shown."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework_api_key.models import APIKey

from lending.models import ApiKeyScopes
from sip_gateway import accounts
from sip_gateway.models import SipAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_a_superuser_adds_changes_and_deletes_an_account(superuser):
    added = superuser.post(
        reverse("admin:sip_gateway_sipaccount_add"),
        {"login": "hall", "institution": "lib", "location": "hall", "password1": "s3cret", "password2": "s3cret"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    account = SipAccount.objects.get(login="hall")
    assert account.created_by == "root" and accounts.verify("hall", "s3cret") is not None
    first_key = account.api_key_id

    url = reverse("admin:sip_gateway_sipaccount_change", args=[account.pk])
    page = superuser.get(url).content.decode()
    assert "s3cret" not in page and account.sealed_key not in page and account.password not in page
    changed = superuser.post(
        url,
        {
            "institution": "lib",
            "location": "hall",
            "allow_no_block": "on",
            "new_password1": "n3w",
            "new_password2": "n3w",
        },
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    account.refresh_from_db()
    assert account.api_key_id != first_key and not APIKey.objects.filter(pk=first_key).exists()
    assert "override" in ApiKeyScopes.objects.get(api_key_id=account.api_key_id).scope_list
    assert accounts.verify("hall", "n3w") is not None and accounts.verify("hall", "s3cret") is None

    deleted = superuser.post(reverse("admin:sip_gateway_sipaccount_delete", args=[account.pk]), {"post": "yes"})
    assert deleted.status_code == 302
    assert not SipAccount.objects.exists() and not APIKey.objects.exists()


def test_differing_passwords_are_refused(superuser):
    answer = superuser.post(
        reverse("admin:sip_gateway_sipaccount_add"),
        {"login": "hall", "institution": "lib", "password1": "a", "password2": "b"},
    )
    assert answer.status_code == 200 and "The passwords differ." in answer.content.decode()
    assert not SipAccount.objects.exists()


def test_staff_who_are_not_superusers_do_not_see_accounts(client):
    client.force_login(get_user_model().objects.create_user("staff", "s@example.com", "pw", is_staff=True))
    assert client.get(reverse("admin:sip_gateway_sipaccount_changelist")).status_code == 403
