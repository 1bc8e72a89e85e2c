"""`manage.py api_keys create | list | revoke`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework_api_key.models import APIKey

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("api_keys", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_prints_the_key_once_and_stores_only_its_hash():
    key = run("create", "patron-app").strip()
    prefix, _, secret = key.partition(".")
    stored = APIKey.objects.get(prefix=prefix)
    assert stored.name == "patron-app" and not stored.revoked
    assert secret and secret not in stored.hashed_key
    assert APIKey.objects.is_valid(key)
    assert key not in run("list")


def test_create_with_expiry():
    key = run("create", "temp", "--expires-days", "7").strip()
    assert APIKey.objects.get(prefix=key.partition(".")[0]).expiry_date is not None


def test_list_shows_prefix_name_and_state():
    key = run("create", "staff-app").strip()
    listing = run("list")
    assert key.partition(".")[0] in listing and "staff-app" in listing and "active" in listing


def test_revoke_by_prefix_and_by_name():
    first = run("create", "first").strip()
    second = run("create", "second").strip()
    assert "Revoked" in run("revoke", first.partition(".")[0])
    assert "Revoked" in run("revoke", "second")
    assert not APIKey.objects.is_valid(first) and not APIKey.objects.is_valid(second)
    assert "revoked" in run("list")
    assert "already revoked" in run("revoke", "first")


def test_revoke_refuses_an_ambiguous_name_and_an_unknown_key():
    run("create", "twin")
    run("create", "twin")
    with pytest.raises(CommandError, match="revoke one by its prefix"):
        run("revoke", "twin")
    with pytest.raises(CommandError, match="No API key"):
        run("revoke", "nobody")
    assert APIKey.objects.filter(revoked=False).count() == 2


def test_create_refuses_a_bad_name():
    with pytest.raises(CommandError):
        run("create", "x" * 51)
