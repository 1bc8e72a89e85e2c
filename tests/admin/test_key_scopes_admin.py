"""The admin sets an API key's scopes (checkboxes on the key's page) and lists them."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework_api_key.models import APIKey

from lending.api.permissions import create_key
from lending.models import ApiKeyScopes

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def inline(scopes: list[str], *, initial: int = 0) -> dict:
    return {
        "grant-TOTAL_FORMS": "1",
        "grant-INITIAL_FORMS": str(initial),
        "grant-MIN_NUM_FORMS": "1",
        "grant-MAX_NUM_FORMS": "1",
        "grant-0-scopes": scopes,
    }


def test_a_key_created_in_the_admin_gets_the_ticked_scopes(superuser):
    response = superuser.post(
        reverse("admin:rest_framework_api_key_apikey_add"),
        {"name": "desk-app", "expiry_date_0": "", "expiry_date_1": "", **inline(["reports", "circulation"])},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    grant = ApiKeyScopes.objects.get(api_key__name="desk-app")
    assert grant.scope_list == ["circulation", "reports"]


def test_the_admin_changes_and_lists_a_keys_scopes(superuser):
    api_key, _ = create_key("reporting", ["patron-read"])
    url = reverse("admin:rest_framework_api_key_apikey_change", args=[api_key.pk])
    page = superuser.get(url).content.decode()
    ticked = re.findall(r'<input type="checkbox" name="grant-0-scopes" value="([a-z-]+)"[^>]*checked', page)
    assert ticked == ["patron-read"]
    response = superuser.post(
        url,
        {
            "name": "reporting",
            "expiry_date_0": "",
            "expiry_date_1": "",
            **inline(["reports"], initial=1),
            "grant-0-api_key": api_key.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ApiKeyScopes.objects.get(api_key=api_key).scope_list == ["reports"]
    listing = superuser.get(reverse("admin:rest_framework_api_key_apikey_changelist")).content.decode()
    assert "reports" in listing


def test_a_key_without_a_grant_lists_none(superuser):
    APIKey.objects.create_key(name="bare")
    listing = superuser.get(reverse("admin:rest_framework_api_key_apikey_changelist")).content.decode()
    assert "(none)" in listing


def test_a_patron_self_key_is_bound_to_its_patron_in_the_admin(superuser):
    add = reverse("admin:rest_framework_api_key_apikey_add")
    fields = {"name": "opac", "expiry_date_0": "", "expiry_date_1": "", **inline(["patron-self"])}

    unbound = superuser.post(add, {**fields, "grant-0-patron_email": ""})
    bound = superuser.post(add, {**fields, "grant-0-patron_email": "Ann@Example.com"})

    assert unbound.status_code == 200 and "needs the patron it acts for" in unbound.content.decode()
    assert bound.status_code == 302, bound.content.decode()[:2000]
    assert ApiKeyScopes.objects.get(api_key__name="opac").patron_email == "ann@example.com"
